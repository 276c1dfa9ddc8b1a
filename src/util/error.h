// c3::Error: the one exception type for bad input; messages say what failed, where, and what to try.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace c3 {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace c3

// Checks user input (never compiled out, unlike assert).
#define C3_CHECK(cond, ...)           \
  do {                                \
    if (!(cond)) ::c3::fail(__VA_ARGS__); \
  } while (0)
