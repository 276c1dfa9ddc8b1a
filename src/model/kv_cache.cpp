// KVCache: a static, preallocated key/value cache, one [B, Hkv, T_max, D] pair per layer.
#include "model/kv_cache.h"

#include "util/error.h"

namespace c3::model {

KVCache::KVCache(const Qwen2Config& cfg, int64_t batch, int64_t max_len, at::ScalarType dtype,
                 at::Device device) {
  C3_CHECK(batch > 0 && max_len > 0, "KVCache: batch ({}) and max_len ({}) must be positive",
           batch, max_len);
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  const std::vector<int64_t> shape{batch, cfg.num_key_value_heads, max_len, cfg.head_dim()};
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    k.push_back(at::zeros(shape, opts));
    v.push_back(at::zeros(shape, opts));
  }
  key_valid = at::zeros({batch, max_len}, opts.dtype(at::kBool));
}

void KVCache::enable_static() {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(key_valid.device());
  static_mode = true;
  slot = at::full({1}, len, opts);
  slot_index = at::arange(max_len(), opts);
  attend_len = max_len();
}

KVCache KVCache::first_rows(int64_t n) const {
  C3_CHECK(n >= 1 && n <= batch(), "KVCache::first_rows: {} rows of {}", n, batch());
  KVCache view;
  for (const auto& t : k) view.k.push_back(t.narrow(0, 0, n));
  for (const auto& t : v) view.v.push_back(t.narrow(0, 0, n));
  view.key_valid = key_valid.narrow(0, 0, n);
  view.len = len;
  view.static_mode = static_mode;
  view.slot = slot;
  view.slot_index = slot_index;
  view.attend_start = attend_start;
  view.attend_len = attend_len;
  return view;
}

void KVCache::reorder_rows(const std::vector<int64_t>& rows) {
  const int64_t R = static_cast<int64_t>(rows.size());
  bool identity = R == batch();
  for (int64_t i = 0; identity && i < R; ++i) identity = rows[i] == i;
  if (identity) return;
  const at::Tensor idx = at::tensor(rows, at::kLong).to(key_valid.device());
  if (R != batch() || len == 0 || static_mode) {
    select_rows(idx);
    return;
  }
  auto filled = [&](at::Tensor& t) {
    at::Tensor used = t.narrow(2, 0, len);
    used.copy_(used.index_select(0, idx));
  };
  for (auto& t : k) filled(t);
  for (auto& t : v) filled(t);
  // key_valid beyond len is all false in every row, so the whole mask can move.
  key_valid.copy_(key_valid.index_select(0, idx));
}

void KVCache::select_rows(const at::Tensor& rows) {
  C3_CHECK(!static_mode, "KVCache::select_rows: a static cache keeps its rows (CUDA graphs "
           "captured its tensors)");
  const at::Tensor idx = rows.to(key_valid.device(), at::kLong);
  for (auto& t : k) t = t.index_select(0, idx);
  for (auto& t : v) t = t.index_select(0, idx);
  key_valid = key_valid.index_select(0, idx);
}

}  // namespace c3::model
