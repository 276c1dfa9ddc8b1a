// Small helpers that several test files share (one definition each, so that a unity build, which
// compiles a binary's test files as one, sees no duplicates).
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdint>
#include <string>
#include <vector>

#include "util/error.h"

namespace c3::test {

// "[1, 2, 3]", for failure messages.
inline std::string ids_str(const std::vector<int32_t>& v) {
  return fmt::format("[{}]", fmt::join(v, ", "));
}

// The message of the c3::Error thrown by `f`, or "" when nothing (or something else) is thrown.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const c3::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace c3::test
