// Running the c3 CLI from a test: a shell command line, its stdout and exit status.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "testdata.h"

namespace c3::test {

struct RunResult {
  int rc = -1;      // exit status; 128 when the command did not exit normally
  std::string out;  // what it wrote to stdout (add 2>&1 to the command for stderr too)
};

inline RunResult run_shell(const std::string& cmd) {
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return r;
}

// A path single-quoted for the shell.
inline std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

// The same, short, for building command lines.
inline std::string q(const std::filesystem::path& p) { return quoted(p); }

// A file's bytes ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The c3 binary of this build, quoted.
inline std::string c3_binary() { return quoted(binary_dir() / "c3"); }

}  // namespace c3::test
