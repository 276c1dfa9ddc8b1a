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

// nlohmann's parse errors quote the last token read, which can be megabytes long: keep errors
// to one readable line.
inline std::string clip_json_error(const char* what) {
  std::string s(what);
  return s.size() > 300 ? s.substr(0, 300) + "... (cut)" : s;
}

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
