// Hand-written CUDA kernels behind model/fused_ops.h (built only with a CUDA compiler:
// C3_HAVE_CUDA_KERNELS). Each reproduces the roundings of the reference ATen ops; the
// *_supported checks say which inputs a kernel takes (others go to the reference path).
#pragma once
#include <ATen/ATen.h>

#include <utility>

namespace c3::model::fused::cuda {

bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

bool silu_mul_supported(const at::Tensor& gate_up);
at::Tensor silu_mul(const at::Tensor& gate_up);

bool rotary_supported(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Decode-step kernels (decode_kernels.cu), bf16 / fp16 only.
// y = x w^T (+ b) for x [..., K] of at most kGemvMaxRows rows.
bool gemv_supported(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
at::Tensor gemv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
// silu(x gate^T) * (x up^T) for gate_up = [gate; up] stacked rows [2I, K].
bool gemv_silu_mul_supported(const at::Tensor& x, const at::Tensor& gate_up);
at::Tensor gemv_silu_mul(const at::Tensor& x, const at::Tensor& gate_up);
// {h, RMSNorm(h)} with h = x + delta (delta undefined: h = x).
bool add_rms_norm_supported(const at::Tensor& x, const at::Tensor& delta, const at::Tensor& weight);
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& delta,
                                               const at::Tensor& weight, double eps);
// Attention of one decode step: qkv [B, 1, (H + 2 Hkv) D]; cos/sin [B, 1, D] fp32; caches
// [B, Hkv, T_max, D]; slot [1] long; key_valid [B, T_max] bool; window S. Writes the step's
// roped key and value at `slot` and returns [B, 1, H D].
bool decode_attention_supported(const at::Tensor& qkv, const at::Tensor& cos,
                                const at::Tensor& k_cache, const at::Tensor& v_cache,
                                const at::Tensor& key_valid, int64_t S, int64_t H, int64_t D);
at::Tensor decode_attention(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin,
                            at::Tensor& k_cache, at::Tensor& v_cache, const at::Tensor& slot,
                            const at::Tensor& key_valid, int64_t S, int64_t H, int64_t D);

}  // namespace c3::model::fused::cuda
