// Content fingerprints (XXH3-128 via libxxhash), printed as 32 hex digits.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace c3 {

class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hex() const;

 private:
  void* state_;
};

std::string hash_hex(std::string_view data);

}  // namespace c3
