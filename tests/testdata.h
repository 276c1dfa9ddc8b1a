// Where the golden data lives: $C3_TESTDATA, else the path baked in at configure time.
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

inline std::filesystem::path binary_dir() { return C3_BINARY_DIR; }

}  // namespace c3::test
