// Crash safety of write_file_atomic: SIGKILL mid-write and a full disk never leave a partial target.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "util/atomic_file.h"
#include "util/error.h"
#include "util/remove_tree.h"

namespace fs = std::filesystem;

namespace {

// A fresh folder under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("c3_atomic_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    c3::remove_tree(path, ec);
  }
};

// Version `v` of the test file: a header with v and the size, a pattern that depends on v, and a
// trailer; any truncation or mix of two versions fails is_complete_version().
std::string make_version(uint64_t v) {
  const size_t size = (1 << 20) + (v % 7) * 65536;  // 1-1.4 MB: several write() calls
  std::string s(size, '\0');
  std::memcpy(&s[0], "C3VER", 5);
  std::memcpy(&s[8], &v, 8);
  uint64_t sz = size;
  std::memcpy(&s[16], &sz, 8);
  for (size_t i = 24; i + 8 < size; ++i) s[i] = static_cast<char>((i * 31 + v * 7) & 0xFF);
  std::memcpy(&s[size - 8], &v, 8);
  return s;
}

bool is_complete_version(const std::string& s, uint64_t* version) {
  if (s.size() < 32 || s.compare(0, 5, "C3VER") != 0) return false;
  uint64_t v;
  std::memcpy(&v, &s[8], 8);
  *version = v;
  return s == make_version(v);
}

}  // namespace

TEST(AtomicFile, WritesAndReplaces) {
  TempDir d;
  const fs::path p = d.path / "a.bin";
  c3::write_file_atomic(p, std::string("first"));
  EXPECT_EQ(c3::read_file(p), "first");
  c3::write_file_atomic(p, std::string("second, longer"));
  EXPECT_EQ(c3::read_file(p), "second, longer");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()), 1);
}

TEST(AtomicFile, MissingFolderNamesThePath) {
  TempDir d;
  const fs::path p = d.path / "no" / "such" / "x.c3";
  try {
    c3::write_file_atomic(p, std::string("x"));
    FAIL() << "expected c3::Error";
  } catch (const c3::Error& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(p));
}

TEST(AtomicFile, ThrowingWriterKeepsOldFile) {
  TempDir d;
  const fs::path p = d.path / "keep.txt";
  c3::write_file_atomic(p, std::string("old"));
  EXPECT_THROW(c3::write_file_atomic(p,
                                     [](std::ostream& o) {
                                       o << std::string(100000, 'x');
                                       throw c3::Error("writer failed");
                                     }),
               c3::Error);
  EXPECT_EQ(c3::read_file(p), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()), 1)
      << "the temp file must be removed";
}

// Forks writers that loop write_file_atomic and SIGKILLs them at random times: the target must
// always be one complete version, and only *.tmp.* files may be left beside it.
TEST(AtomicFile, SigkillMidWriteLeavesOldOrNewFile) {
  TempDir d;
  const fs::path p = d.path / "model.bin";
  c3::write_file_atomic(p, make_version(0));
  std::mt19937 rng(1234);
  uint64_t last_seen = 0;
  int changed = 0;
  const int kRounds = 40;
  for (int round = 0; round < kRounds; ++round) {
    const uint64_t base = (round + 1) * 1000;
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (uint64_t v = base;; ++v) c3::write_file_atomic(p, make_version(v));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    uint64_t v = 0;
    ASSERT_TRUE(is_complete_version(c3::read_file(p), &v)) << "round " << round
                                                            << ": the target is partial";
    EXPECT_TRUE(v == last_seen || v >= base) << "round " << round << ": unexpected version " << v;
    changed += v != last_seen;
    last_seen = v;
    for (const auto& e : fs::directory_iterator(d.path)) {
      const std::string name = e.path().filename().string();
      if (name == "model.bin") continue;
      EXPECT_EQ(name.rfind("model.bin.tmp.", 0), 0u) << "unexpected file " << name;
      fs::remove(e.path());  // a crash leaves its temp file; nothing else
    }
  }
  // How many rounds got a write through depends on the machine's speed; it is not asserted.
  RecordProperty("rounds_with_new_version", changed);
}

// RLIMIT_FSIZE stands in for a full disk: write() fails with EFBIG (SIGXFSZ ignored).
TEST(AtomicFile, FullDiskGivesClearErrorAndNoPartialFile) {
  TempDir d;
  const fs::path fresh = d.path / "fresh.c3";
  const fs::path old = d.path / "old.c3";
  c3::write_file_atomic(old, std::string("old contents"));
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {64 * 1024, 64 * 1024};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    int code = 0;
    std::string msg;
    for (const fs::path& target : {fresh, old}) {
      try {
        c3::write_file_atomic(target, std::string(1 << 20, 'z'));
        code |= 1;  // no error: wrong
      } catch (const c3::Error& e) {
        msg += std::string(e.what()) + "\n";
      } catch (...) {
        code |= 2;
      }
    }
    (void)!::write(fds[1], msg.data(), msg.size());
    ::_exit(code);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) > 0;) msg.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: a write past the limit succeeded, 2: not a c3::Error";
  EXPECT_NE(msg.find("cannot write '" + fresh.string() + "'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot write '" + old.string() + "'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("too large"), std::string::npos) << msg;  // strerror(EFBIG)
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_EQ(c3::read_file(old), "old contents");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()), 1)
      << "no temp file may remain";
}
