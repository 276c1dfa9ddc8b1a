// KVCache: a static, preallocated key/value cache, one [B, Hkv, T_max, D] pair per layer.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "model/qwen2_config.h"

namespace c3::model {

struct KVCache {
  KVCache(const Qwen2Config& cfg, int64_t batch, int64_t max_len, at::ScalarType dtype,
          at::Device device);
  std::vector<at::Tensor> k, v;  // per layer [B, Hkv, T_max, D]
  at::Tensor key_valid;          // [B, T_max] bool: which cached slots hold real (non-pad) tokens
  int64_t len = 0;               // slots filled so far; the same for every row (rows left-padded)
  int64_t batch() const { return key_valid.size(0); }
  int64_t max_len() const { return key_valid.size(1); }
  // Keeps only the rows in `rows` (a [B'] long tensor), e.g. to drop finished sequences.
  void select_rows(const at::Tensor& rows);
  void reset() { len = 0; }
};

}  // namespace c3::model
