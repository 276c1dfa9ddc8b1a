// Where tests find things: the golden data ($C3_TESTDATA, else the path baked in at configure
// time), the build folder and the source tree.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

namespace c3::test {

inline std::filesystem::path testdata_dir() {
  if (const char* env = std::getenv("C3_TESTDATA"); env && *env) return env;
  return C3_TESTDATA_DEFAULT;
}

// The golden data must exist: a missing folder fails the test, it never skips.
inline std::filesystem::path testdata(const std::string& rel) { return testdata_dir() / rel; }

// The build folder (the c3 binary, test outputs) and the source tree (models/, docs/). They are
// separate: a build folder may lie anywhere (cmake -S . -B /tmp/b).
inline std::filesystem::path binary_dir() { return C3_BINARY_DIR; }
inline std::filesystem::path source_dir() { return C3_SOURCE_DIR; }

}  // namespace c3::test
