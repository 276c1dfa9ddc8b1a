// Integers out of JSON without undefined behaviour. nlohmann's get<int32_t>() on a float or on a
// number outside the type's range is an unchecked C++ conversion (UB); fuzzing found it in
// config.json, tokenizer.json and .c3 metadata. json_int() accepts integers that fit T and
// whole, finite floats that fit T (1024.0), and nothing else.
#pragma once
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>

namespace c3 {

template <typename T>
std::optional<T> json_int(const nlohmann::json& j) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>, "json_int: integer types only");
  using L = std::numeric_limits<T>;
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v > static_cast<uint64_t>(L::max())) return std::nullopt;
    return static_cast<T>(v);
  }
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (L::is_signed ? (v < static_cast<int64_t>(L::min()) || v > static_cast<int64_t>(L::max()))
                     : (v < 0 || static_cast<uint64_t>(v) > static_cast<uint64_t>(L::max())))
      return std::nullopt;
    return static_cast<T>(v);
  }
  if (j.is_number_float()) {
    const double d = j.get<double>();
    const double hi = std::ldexp(1.0, L::digits);           // 2^digits: the first value too big
    const double lo = L::is_signed ? -hi : 0.0;              // -2^digits fits a signed type
    if (!std::isfinite(d) || d != std::floor(d) || d < lo || d >= hi) return std::nullopt;
    return static_cast<T>(d);
  }
  return std::nullopt;
}

}  // namespace c3
