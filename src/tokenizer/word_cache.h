// A per-thread cache from a pre-token's bytes to its BPE ids: most words of a text repeat.
#pragma once
#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace c3::tokenizer {

// Open addressing over one key arena and one id arena. The table starts small and doubles, so
// the slots a text touches stay in cache; at max_slots it is simply emptied, which is cheaper
// than LRU bookkeeping, and a corpus's frequent words come back within a few KB of text.
class WordCache {
 public:
  static constexpr size_t kMaxKeyBytes = 0xFFFF;

  explicit WordCache(size_t max_slots = size_t(1) << 18) : max_slots_(max_slots) {
    slots_.resize(1 << 12);
  }

  static uint64_t hash(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

  // Appends the cached ids of `key` (hash `h`) to out; false when absent.
  bool lookup(std::string_view key, uint64_t h, std::vector<int32_t>& out) const {
    const size_t mask = slots_.size() - 1;
    const uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return false;
      if (s.tag == tag && s.key_len == key.size() &&
          std::memcmp(keys_.data() + s.key_off, key.data(), key.size()) == 0) {
        out.insert(out.end(), ids_.data() + s.ids_off, ids_.data() + s.ids_off + s.ids_len);
        return true;
      }
    }
  }

  void insert(std::string_view key, uint64_t h, const int32_t* ids, size_t n) {
    if (key.empty() || key.size() > kMaxKeyBytes || n > 0xFFFF) return;
    if (2 * (count_ + 1) > slots_.size()) {
      if (slots_.size() < max_slots_) grow();
      else clear();
    }
    place({static_cast<uint32_t>(h >> 32), static_cast<uint32_t>(keys_.size()),
           static_cast<uint32_t>(ids_.size()), static_cast<uint16_t>(key.size()),
           static_cast<uint16_t>(n)},
          h);
    keys_.append(key);
    ids_.insert(ids_.end(), ids, ids + n);
    ++count_;
  }

  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    keys_.clear();
    ids_.clear();
    count_ = 0;
  }

 private:
  struct Slot {  // 16 bytes
    uint32_t tag = 0;  // high half of the hash
    uint32_t key_off = 0, ids_off = 0;
    uint16_t key_len = 0, ids_len = 0;  // key_len 0: empty slot
  };
  void place(const Slot& s, uint64_t h) {
    const size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    while (slots_[i].key_len != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const Slot& s : old) {
      if (s.key_len) place(s, hash(std::string_view(keys_.data() + s.key_off, s.key_len)));
    }
  }
  std::vector<Slot> slots_;
  size_t max_slots_, count_ = 0;
  std::string keys_;
  std::vector<int32_t> ids_;
};

}  // namespace c3::tokenizer
