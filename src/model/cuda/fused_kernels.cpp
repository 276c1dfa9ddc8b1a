// Torch-facing wrappers of the fused kernels: checks, output allocation, the current stream.
#include "model/cuda/fused_kernels.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "model/cuda/host_switches.h"
#include "model/cuda/launch.h"

namespace c3::model::fused::cuda {
namespace {

std::optional<DType> dtype_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::kFloat;
    case at::kBFloat16: return DType::kBFloat16;
    case at::kHalf: return DType::kHalf;
    default: return std::nullopt;
  }
}

}  // namespace

bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight) {
  return x.is_cuda() && dtype_of(x.scalar_type()) && weight.scalar_type() == x.scalar_type() &&
         weight.dim() == 1 && x.dim() >= 1 && x.size(-1) == weight.size(0) && x.numel() > 0 &&
         weight.is_contiguous() && weight.device() == x.device();
}

at::Tensor rms_norm(const at::Tensor& x_in, const at::Tensor& weight, double eps) {
  const at::Tensor x = x_in.contiguous();
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty_like(x);
  const int64_t C = x.size(-1), N = x.numel() / C;
  C10_CUDA_CHECK(launch_rms_norm(*dtype_of(x.scalar_type()), x.data_ptr(), weight.data_ptr(),
                                 out.data_ptr(), N, C, static_cast<float>(eps),
                                 at::cuda::getCurrentCUDAStream()));
  return out;
}

bool silu_mul_supported(const at::Tensor& gate_up) {
  return gate_up.is_cuda() && dtype_of(gate_up.scalar_type()) && gate_up.dim() >= 1 &&
         gate_up.size(-1) % 2 == 0 && gate_up.numel() > 0;
}

at::Tensor silu_mul(const at::Tensor& gate_up_in) {
  const at::Tensor gu = gate_up_in.contiguous();
  const c10::cuda::CUDAGuard guard(gu.device());
  const int64_t I = gu.size(-1) / 2, N = gu.numel() / (2 * I);
  std::vector<int64_t> shape = gu.sizes().vec();
  shape.back() = I;
  at::Tensor out = at::empty(shape, gu.options());
  C10_CUDA_CHECK(launch_silu_mul(*dtype_of(gu.scalar_type()), gu.data_ptr(), out.data_ptr(), N, I,
                                 at::cuda::getCurrentCUDAStream()));
  return out;
}

bool rotary_supported(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return x.is_cuda() && dtype_of(x.scalar_type()) && x.dim() == 4 && x.size(-1) % 2 == 0 &&
         x.numel() > 0 && cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat &&
         cos.dim() == 3 && cos.sizes() == sin.sizes() && cos.size(0) == x.size(0) &&
         cos.size(1) == x.size(2) && cos.size(2) == x.size(3) && cos.stride(2) == 1 &&
         sin.strides() == cos.strides() && cos.device() == x.device() &&
         sin.device() == x.device();
}

namespace {
// The roped output laid out [B, T, H, D] (a transposed view) where C3_ROTARY_BTHD=1, as the
// projection it comes from: flash attention then gives its output in that layout too, so the
// heads merge back into [B, T, C] without a copy in forward or backward. Off by default until a
// GPU run has checked it.
bool rotary_bthd_enabled() {
  static const bool on = env_switch("C3_ROTARY_BTHD", false);
  return on;
}
}  // namespace

at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), H = x.size(1), S = x.size(2), D = x.size(3);
  at::Tensor out = rotary_bthd_enabled() ? at::empty({B, S, H, D}, x.options()).transpose(1, 2)
                                         : at::empty({B, H, S, D}, x.options());
  const int64_t sx[4] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  const int64_t so[3] = {out.stride(0), out.stride(1), out.stride(2)};
  C10_CUDA_CHECK(launch_rotary(*dtype_of(x.scalar_type()), x.data_ptr(), cos.data_ptr<float>(),
                               sin.data_ptr<float>(), out.data_ptr(), B, H, S, D, sx, so,
                               cos.stride(0), cos.stride(1), at::cuda::getCurrentCUDAStream()));
  return out;
}

namespace {

bool half_type(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
}
bool aligned16(const at::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}
// x [..., K] whose rows lie K apart (a contiguous last dim and a flat row layout).
bool rows_flat(const at::Tensor& x) {
  return x.dim() >= 1 && x.numel() > 0 && x.is_contiguous();
}

}  // namespace

bool gemv_supported(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!x.is_cuda() || !half_type(x) || w.scalar_type() != x.scalar_type() || w.dim() != 2 ||
      !w.is_contiguous() || w.device() != x.device() || !rows_flat(x))
    return false;
  const int64_t K = w.size(1);
  if (x.size(-1) != K || K % 8 != 0 || x.numel() / K > kGemvMaxRows || !aligned16(x) ||
      !aligned16(w))
    return false;
  return !b.defined() || (b.scalar_type() == x.scalar_type() && b.dim() == 1 &&
                          b.size(0) == w.size(0) && b.is_contiguous() && b.device() == x.device());
}

at::Tensor gemv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t K = w.size(1), N = w.size(0), rows = x.numel() / K;
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = N;
  at::Tensor y = at::empty(shape, x.options());
  C10_CUDA_CHECK(launch_gemv(*dtype_of(x.scalar_type()), x.data_ptr(), K, rows, w.data_ptr(), N, K,
                             b.defined() ? b.data_ptr() : nullptr, false, y.data_ptr(), N,
                             at::cuda::getCurrentCUDAStream()));
  return y;
}

bool gemv_silu_mul_supported(const at::Tensor& x, const at::Tensor& gate_up) {
  return gate_up.dim() == 2 && gate_up.size(0) % 2 == 0 && gemv_supported(x, gate_up, at::Tensor());
}

at::Tensor gemv_silu_mul(const at::Tensor& x, const at::Tensor& gate_up) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t K = gate_up.size(1), I = gate_up.size(0) / 2, rows = x.numel() / K;
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = I;
  at::Tensor y = at::empty(shape, x.options());
  C10_CUDA_CHECK(launch_gemv(*dtype_of(x.scalar_type()), x.data_ptr(), K, rows, gate_up.data_ptr(),
                             I, K, nullptr, true, y.data_ptr(), I,
                             at::cuda::getCurrentCUDAStream()));
  return y;
}

bool add_rms_norm_supported(const at::Tensor& x, const at::Tensor& delta, const at::Tensor& weight) {
  if (!x.is_cuda() || !half_type(x) || !rows_flat(x) || weight.scalar_type() != x.scalar_type() ||
      weight.dim() != 1 || weight.size(0) != x.size(-1) || !weight.is_contiguous() ||
      weight.device() != x.device())
    return false;
  return !delta.defined() || (delta.sizes() == x.sizes() && delta.is_contiguous() &&
                              delta.scalar_type() == x.scalar_type() && delta.device() == x.device());
}

std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& delta,
                                               const at::Tensor& weight, double eps) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t C = x.size(-1), N = x.numel() / C;
  at::Tensor h = delta.defined() ? at::empty_like(x) : x;
  at::Tensor out = at::empty_like(x);
  C10_CUDA_CHECK(launch_add_rms_norm(*dtype_of(x.scalar_type()), x.data_ptr(),
                                     delta.defined() ? delta.data_ptr() : nullptr, weight.data_ptr(),
                                     h.data_ptr(), out.data_ptr(), N, C, static_cast<float>(eps),
                                     at::cuda::getCurrentCUDAStream()));
  return {h, out};
}

bool decode_attention_supported(const at::Tensor& qkv, const at::Tensor& cos,
                                const at::Tensor& k_cache, const at::Tensor& v_cache,
                                const at::Tensor& key_valid, int64_t S, int64_t H, int64_t D) {
  if (!qkv.is_cuda() || !half_type(qkv) || qkv.dim() != 3 || qkv.size(1) != 1 ||
      qkv.stride(2) != 1 || k_cache.dim() != 4)
    return false;
  const int64_t B = qkv.size(0), Hkv = k_cache.size(1);
  // Scores live in shared memory: S floats beside <= 7 KB of head vectors, under the 48 KB default.
  return Hkv > 0 && H % Hkv == 0 && decode_attention_head_dim_ok(D) && qkv.size(2) == (H + 2 * Hkv) * D &&
         k_cache.scalar_type() == qkv.scalar_type() && v_cache.scalar_type() == qkv.scalar_type() &&
         k_cache.is_contiguous() && v_cache.is_contiguous() && k_cache.sizes() == v_cache.sizes() &&
         k_cache.size(0) == B && k_cache.size(3) == D && S >= 1 && S <= k_cache.size(2) &&
         S <= 10000 && cos.scalar_type() == at::kFloat && cos.dim() == 3 && cos.size(0) == B &&
         cos.size(1) == 1 && cos.size(2) == D && cos.stride(2) == 1 &&
         key_valid.scalar_type() == at::kBool && key_valid.dim() == 2 && key_valid.size(0) == B &&
         key_valid.stride(1) == 1 && key_valid.size(1) >= S;
}

at::Tensor decode_attention(const at::Tensor& qkv, const at::Tensor& cos, const at::Tensor& sin,
                            at::Tensor& k_cache, at::Tensor& v_cache, const at::Tensor& slot,
                            const at::Tensor& key_valid, int64_t S, int64_t H, int64_t D) {
  TORCH_CHECK(sin.strides() == cos.strides() && sin.sizes() == cos.sizes(),
              "decode_attention: cos and sin differ in layout");
  TORCH_CHECK(slot.scalar_type() == at::kLong && slot.numel() == 1 && slot.is_cuda(),
              "decode_attention: slot must be one long on the GPU");
  const c10::cuda::CUDAGuard guard(qkv.device());
  const int64_t B = qkv.size(0);
  at::Tensor out = at::empty({B, 1, H * D}, qkv.options());
  DecodeAttentionArgs a;
  a.qkv = qkv.data_ptr();
  a.ld_qkv = qkv.stride(0);
  a.cos = cos.data_ptr<float>();
  a.sin = sin.data_ptr<float>();
  a.ld_rope = cos.stride(0);
  a.k_cache = k_cache.data_ptr();
  a.v_cache = v_cache.data_ptr();
  a.t_max = k_cache.size(2);
  a.slot = slot.data_ptr<int64_t>();
  a.key_valid = key_valid.data_ptr<bool>();
  a.ld_valid = key_valid.stride(0);
  a.B = static_cast<int>(B);
  a.S = static_cast<int>(S);
  a.H = static_cast<int>(H);
  a.Hkv = static_cast<int>(k_cache.size(1));
  a.D = static_cast<int>(D);
  a.out = out.data_ptr();
  a.ld_out = H * D;
  C10_CUDA_CHECK(launch_decode_attention(*dtype_of(qkv.scalar_type()), a,
                                         at::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace c3::model::fused::cuda
