// A per-thread cache from a pre-token's bytes to its BPE ids: most words of a text repeat.
#pragma once
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace c3::tokenizer {

// Open addressing over one key arena and one id arena. When half full it is simply emptied:
// cheaper than LRU bookkeeping, and a corpus's frequent words come back within a few KB.
class WordCache {
 public:
  explicit WordCache(int log2_slots = 18) : slots_(size_t(1) << log2_slots) {
    mask_ = slots_.size() - 1;
  }

  // Appends the cached ids of `key` (hash `h`) to out; false when absent.
  bool lookup(std::string_view key, uint64_t h, std::vector<int32_t>& out) const {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return false;
      if (s.hash == h && s.key_len == key.size() &&
          std::memcmp(keys_.data() + s.key_off, key.data(), key.size()) == 0) {
        out.insert(out.end(), ids_.begin() + s.ids_off, ids_.begin() + s.ids_off + s.ids_len);
        return true;
      }
    }
  }

  void insert(std::string_view key, uint64_t h, const int32_t* ids, size_t n) {
    if (key.empty()) return;
    if (2 * (count_ + 1) > slots_.size()) clear();
    size_t i = h & mask_;
    while (slots_[i].key_len != 0) i = (i + 1) & mask_;
    slots_[i] = {h, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(key.size()),
                 static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(n)};
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
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, key_len = 0, ids_off = 0, ids_len = 0;  // key_len 0: empty slot
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0, count_ = 0;
  std::string keys_;
  std::vector<int32_t> ids_;
};

}  // namespace c3::tokenizer
