// Qwen2 self-attention: q/k/v projections with bias, RoPE, grouped-query attention, o_proj.
#include "model/attention.h"

#include <cmath>
#include <limits>

#include "io/torch_compat.h"
#include "model/cpu_kernels.h"
#include "model/fused_ops.h"
#include "model/stacked_rows.h"

namespace c3::model {

AttentionMask build_attention_mask(const at::Tensor& key_valid, int64_t offset, int64_t T,
                                   at::Device device) {
  const int64_t S = offset + T;
  const bool all_valid = !key_valid.defined() || key_valid.all().item<bool>();
  if (all_valid) {
    if (T == 1) return {at::Tensor(), false};  // one query sees every key
    if (offset == 0) return {at::Tensor(), true};
  }
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor q_pos = at::arange(offset, S, opts).unsqueeze(1);  // [T, 1]
  const at::Tensor k_pos = at::arange(0, S, opts).unsqueeze(0);       // [1, S]
  const at::Tensor causal = k_pos <= q_pos;                           // [T, S]
  if (all_valid) return {causal.unsqueeze(0).unsqueeze(0), false};    // [1, 1, T, S]
  const at::Tensor self = k_pos == q_pos;                             // [T, S]
  const at::Tensor valid = key_valid.to(at::kBool).unsqueeze(1);      // [B, 1, S]
  const at::Tensor allowed = causal & (valid | self);                 // [B, T, S]
  return {allowed.unsqueeze(1), false};                               // [B, 1, T, S]
}

namespace {

// [B, Hkv, S, D] -> [B, Hkv * n_rep, S, D]: query head h reads key/value head h / n_rep (HF's
// repeat_kv).
at::Tensor repeat_kv(const at::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const int64_t B = x.size(0), Hkv = x.size(1), S = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, Hkv, n_rep, S, D}).reshape({B, Hkv * n_rep, S, D});
}

// A decode step on the CPU in fp32 without autograd: the two products per key/value head as
// direct kernels (a BLAS bmm over 1,000 cached keys cost ~50 us; see cpu_kernels.h). The same
// ops as compat::sdpa otherwise: scale, mask, fp32 softmax.
bool cpu_decode_attention_fits(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t D = q.size(3);
  return q.size(2) == 1 && q.is_cpu() && !at::GradMode::is_enabled() &&
         q.scalar_type() == at::kFloat && k.scalar_type() == at::kFloat &&
         v.scalar_type() == at::kFloat && k.stride(3) == 1 && v.stride(3) == 1 &&
         k.stride(2) >= D && v.stride(2) >= D;
}

at::Tensor cpu_decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const AttentionMask& mask) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3);
  const int64_t Hkv = k.size(1), S = k.size(2), n_rep = H / Hkv;
  const at::Tensor qc = q.contiguous();  // [B, H, 1, D]: head g * n_rep + r reads k/v head g
  at::Tensor scores = at::empty({B, Hkv, n_rep, S}, q.options());
  const float* qp = qc.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* sp = scores.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < Hkv; ++g) {
      cpu::rows_dot_rows(qp + (b * H + g * n_rep) * D, D, n_rep,
                         kp + b * k.stride(0) + g * k.stride(1), k.stride(2), S, D, nullptr,
                         sp + (b * Hkv + g) * n_rep * S, S);
    }
  }
  scores.mul_(1.0 / std::sqrt(static_cast<double>(D)));
  if (mask.allowed.defined()) {  // [B, 1, 1, S] broadcasts over the heads
    scores.masked_fill_(mask.allowed.logical_not(), -std::numeric_limits<float>::infinity());
  }
  const at::Tensor probs = at::softmax(scores, -1).contiguous();  // [B, Hkv, n_rep, S]
  at::Tensor out = at::empty({B, H, 1, D}, q.options());
  const float* pp = probs.data_ptr<float>();
  float* op = out.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < Hkv; ++g) {
      cpu::rows_times_matrix(pp + (b * Hkv + g) * n_rep * S, n_rep, S,
                             vp + b * v.stride(0) + g * v.stride(1), v.stride(2), D,
                             op + (b * H + g * n_rep) * D);
    }
  }
  return out;  // [B, H, 1, D]
}

// softmax(q k^T / sqrt(D) + mask) v over grouped heads. q [B, H, T, D], k/v [B, Hkv, S, D].
at::Tensor grouped_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const AttentionMask& mask) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), n_rep = H / Hkv;
  if (cpu_decode_attention_fits(q, k, v)) return cpu_decode_attention(q, k, v, mask);
  if (n_rep > 1 && T == 1) {
    // Decode step: fold the n_rep query heads of each group into the query axis instead of
    // copying the whole cache n_rep times. The mask of one query broadcasts over the group.
    const at::Tensor q_grouped = q.reshape({B, Hkv, n_rep, D});  // [B, Hkv, n_rep, D]
    at::Tensor allowed;
    if (mask.allowed.defined()) {
      allowed = mask.allowed.expand({B, 1, n_rep, k.size(2)});  // [B, 1, n_rep, S]
    }
    const at::Tensor out = compat::sdpa(q_grouped, k, v, allowed, false);  // [B, Hkv, n_rep, D]
    return out.reshape({B, H, 1, D});                                       // [B, H, 1, D]
  }
  if (n_rep > 1) {
    const at::Tensor out = compat::sdpa_grouped_flash(q, k, v, mask.allowed, mask.causal);
    if (out.defined()) return out;  // [B, H, T, D]
  }
  return compat::sdpa(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), mask.allowed, mask.causal);
}

}  // namespace

Qwen2AttentionImpl::Qwen2AttentionImpl(const Qwen2Config& cfg, int64_t layer_idx)
    : n_heads(cfg.num_attention_heads),
      n_kv_heads(cfg.num_key_value_heads),
      head_dim(cfg.head_dim()),
      layer_idx(layer_idx) {
  const int64_t C = cfg.hidden_size;
  q_proj = register_module("q_proj", Linear(C, n_heads * head_dim));
  k_proj = register_module("k_proj", Linear(C, n_kv_heads * head_dim));
  v_proj = register_module("v_proj", Linear(C, n_kv_heads * head_dim));
  o_proj = register_module("o_proj",
                           Linear(n_heads * head_dim, C, /*bias=*/false));
}

std::vector<at::Tensor> Qwen2AttentionImpl::qkv_params(bool bias) const {
  if (bias) return {q_proj->bias, k_proj->bias, v_proj->bias};
  return {q_proj->weight, k_proj->weight, v_proj->weight};
}

bool Qwen2AttentionImpl::is_fused() const {
  return rows_of(qkv_weight_, qkv_params(false)) && rows_of(qkv_bias_, qkv_params(true));
}

bool Qwen2AttentionImpl::fuse_projections() {
  if (is_fused()) return false;
  qkv_weight_ = fuse_rows(qkv_params(false));
  qkv_bias_ = fuse_rows(qkv_params(true));
  return true;
}

bool Qwen2AttentionImpl::uses_fused() const {
  // Under autograd the projections train through stacked_rows (or separately).
  return !at::GradMode::is_enabled() && is_fused();
}

bool Qwen2AttentionImpl::uses_stacked() const {
  return at::GradMode::is_enabled() && stacked_training_enabled() && is_fused();
}

at::Tensor Qwen2AttentionImpl::forward(const at::Tensor& x, const RopeTables& rope,
                                       const AttentionMask& mask, KVCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t Nq = n_heads * head_dim, Nkv = n_kv_heads * head_dim;
  at::Tensor q_flat, k_flat, v_flat;  // [B, T, Nq], [B, T, Nkv], [B, T, Nkv]
  if (uses_fused()) {
    const at::Tensor qkv = apply_linear(x, qkv_weight_, qkv_bias_);  // [B, T, Nq + 2 Nkv]
    if (cache && cache->static_mode && T == 1 && cache->attend_start == 0) {
      // A graph-captured decode step: RoPE, the cache write and attention in one kernel.
      const at::Tensor attn = fused::decode_attention(
          qkv, rope.cos, rope.sin, cache->k[layer_idx], cache->v[layer_idx], cache->slot,
          cache->key_valid, cache->attend_len, n_heads, head_dim);  // [B, 1, Nq]
      if (attn.defined()) return o_proj(attn);
    }
    q_flat = qkv.narrow(-1, 0, Nq);
    k_flat = qkv.narrow(-1, Nq, Nkv);
    v_flat = qkv.narrow(-1, Nq + Nkv, Nkv);
  } else if (uses_stacked()) {
    // Training: one GEMM whose gradient reaches q_proj, k_proj and v_proj. A split, not three
    // narrows: its backward is one cat, where each narrow's would fill a zero [B, T, 3N] tensor.
    const at::Tensor qkv = apply_linear(x, stacked_rows(qkv_weight_, qkv_params(false)),
                                        stacked_rows(qkv_bias_, qkv_params(true)));
    const std::vector<at::Tensor> parts = qkv.split_with_sizes({Nq, Nkv, Nkv}, -1);
    q_flat = parts[0];
    k_flat = parts[1];
    v_flat = parts[2];
  } else {
    q_flat = q_proj(x);
    k_flat = k_proj(x);
    v_flat = v_proj(x);
  }
  const at::Tensor q_lin = q_flat.view({B, T, n_heads, head_dim}).transpose(1, 2);
  const at::Tensor k_lin = k_flat.view({B, T, n_kv_heads, head_dim}).transpose(1, 2);
  at::Tensor v = v_flat.view({B, T, n_kv_heads, head_dim}).transpose(1, 2);  // [B, Hkv, T, D]
  const at::Tensor q = apply_rotary(q_lin, rope);                                // [B, H, T, D]
  at::Tensor k = apply_rotary(k_lin, rope);                                      // [B, Hkv, T, D]

  if (cache && cache->static_mode) {
    // Static step: write at the slot tensor, read a fixed-size window (masked beyond the slot).
    // (Under autocast k/v are bf16 while the cache holds the fp32 weights' dtype.)
    const at::ScalarType cdt = cache->k[layer_idx].scalar_type();
    cache->k[layer_idx].index_copy_(2, cache->slot, k.to(cdt));
    cache->v[layer_idx].index_copy_(2, cache->slot, v.to(cdt));
    const int64_t start = cache->attend_start, S = cache->attend_len - start;
    k = cache->k[layer_idx].narrow(2, start, S);  // [B, Hkv, S, D]
    v = cache->v[layer_idx].narrow(2, start, S);
  } else if (cache) {
    // Write this step's keys/values into the preallocated cache, then read back every slot so far.
    const int64_t start = cache->len, end = cache->len + T;
    cache->k[layer_idx].slice(2, start, end).copy_(k);
    cache->v[layer_idx].slice(2, start, end).copy_(v);
    k = cache->k[layer_idx].slice(2, 0, end);  // [B, Hkv, S, D]
    v = cache->v[layer_idx].slice(2, 0, end);  // [B, Hkv, S, D]
  }

  const at::Tensor attn = grouped_attention(q, k, v, mask);                   // [B, H, T, D]
  const at::Tensor merged = attn.transpose(1, 2).reshape({B, T, n_heads * head_dim});  // [B, T, C]
  return o_proj(merged);
}

}  // namespace c3::model
