// Torch-facing wrappers of the fused kernels: checks, output allocation, the current stream.
#include "model/cuda/fused_kernels.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <optional>

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

at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0), H = x.size(1), S = x.size(2), D = x.size(3);
  at::Tensor out = at::empty({B, H, S, D}, x.options());
  const int64_t sx[4] = {x.stride(0), x.stride(1), x.stride(2), x.stride(3)};
  C10_CUDA_CHECK(launch_rotary(*dtype_of(x.scalar_type()), x.data_ptr(), cos.data_ptr<float>(),
                               sin.data_ptr<float>(), out.data_ptr(), B, H, S, D, sx,
                               cos.stride(0), cos.stride(1), at::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace c3::model::fused::cuda
