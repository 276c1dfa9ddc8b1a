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

  // Static mode (a decode step that a CUDA graph can replay): the step writes its keys at the
  // slot held in `slot` (a device tensor, [1] long) and attends over slots [attend_start,
  // attend_len), masked to the valid ones up to `slot`. Shapes then depend only on the window,
  // and the caller advances `len` itself. Set by enable_static().
  bool static_mode = false;
  at::Tensor slot;               // [1] long, on the cache's device
  at::Tensor slot_index;         // [T_max] long: 0, 1, ..., for the causal part of the mask
  int64_t attend_start = 0;      // > 0 skips slots no row uses (continuous batching on the CPU)
  int64_t attend_len = 0;
  void enable_static();
  // The first n rows, as views of this cache's memory (a step over fewer rows than it holds).
  KVCache first_rows(int64_t n) const;
  int64_t batch() const { return key_valid.size(0); }
  int64_t max_len() const { return key_valid.size(1); }
  // Keeps only the rows in `rows` (a [B'] long tensor), e.g. to drop finished sequences.
  void select_rows(const at::Tensor& rows);
  // Beam search's reorder: row i becomes the old row rows[i]. With as many rows as now, only
  // the filled slots [0, len) are copied, in place, and the identity costs nothing; otherwise
  // it is select_rows.
  void reorder_rows(const std::vector<int64_t>& rows);
  void reset() { len = 0; }

 private:
  KVCache() = default;  // for first_rows
};

}  // namespace c3::model
