// Torch-facing wrappers of the backward kernels: checks, output allocation, the current stream.
#include "model/cuda/backward_kernels.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "model/cuda/fused_kernels.h"
#include "model/cuda/launch.h"

namespace c3::model::fused::cuda {
namespace {

std::optional<DType> dtype_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return DType::kFloat;
    case at::kBFloat16:
      return DType::kBFloat16;
    case at::kHalf:
      return DType::kHalf;
    default:
      return std::nullopt;
  }
}

}  // namespace

bool rms_norm_backward_supported(const at::Tensor& x, const at::Tensor& weight) {
  return rms_norm_supported(x, weight) && x.size(-1) <= kRmsNormBackwardMaxC;
}

std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& grad_in,
                                                    const at::Tensor& x_in,
                                                    const at::Tensor& weight, double eps) {
  const at::Tensor x = x_in.contiguous();
  const at::Tensor g = grad_in.to(x.scalar_type()).contiguous();
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t C = x.size(-1), N = x.numel() / C;
  // About four blocks per multiprocessor; each sums its rows' share of grad_w in fp32.
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(N, 4 * sms)));
  at::Tensor gx = at::empty_like(x);
  at::Tensor gw_part = at::empty({blocks, C}, x.options().dtype(at::kFloat));
  C10_CUDA_CHECK(launch_rms_norm_backward(*dtype_of(x.scalar_type()), g.data_ptr(), x.data_ptr(),
                                          weight.data_ptr(), gx.data_ptr(),
                                          gw_part.data_ptr<float>(), N, C, static_cast<float>(eps),
                                          blocks, at::cuda::getCurrentCUDAStream()));
  return {gx, gw_part.sum(0).to(weight.scalar_type())};
}

bool rotary_backward_supported(const at::Tensor& grad, const at::Tensor& cos,
                               const at::Tensor& sin) {
  return rotary_supported(grad, cos, sin);
}

at::Tensor rotary_backward(const at::Tensor& g, const at::Tensor& cos, const at::Tensor& sin) {
  const c10::cuda::CUDAGuard guard(g.device());
  const int64_t B = g.size(0), H = g.size(1), S = g.size(2), D = g.size(3);
  const at::Tensor gx = at::empty({B, S, H, D}, g.options()).transpose(1, 2);  // [B, H, T, D]
  const int64_t sg[4] = {g.stride(0), g.stride(1), g.stride(2), g.stride(3)};
  const int64_t sx[4] = {gx.stride(0), gx.stride(1), gx.stride(2), gx.stride(3)};
  C10_CUDA_CHECK(launch_rotary_backward(*dtype_of(g.scalar_type()), g.data_ptr(),
                                        cos.data_ptr<float>(), sin.data_ptr<float>(), gx.data_ptr(),
                                        B, H, S, D, sg, sx, cos.stride(0), cos.stride(1),
                                        at::cuda::getCurrentCUDAStream()));
  return gx;
}

bool silu_mul_backward_supported(const at::Tensor& gate_up) { return silu_mul_supported(gate_up); }

at::Tensor silu_mul_backward(const at::Tensor& grad_in, const at::Tensor& gate_up_in) {
  const at::Tensor gu = gate_up_in.contiguous();
  const at::Tensor g = grad_in.to(gu.scalar_type()).contiguous();
  const c10::cuda::CUDAGuard guard(gu.device());
  const int64_t I = gu.size(-1) / 2, N = gu.numel() / (2 * I);
  at::Tensor ggu = at::empty_like(gu);
  C10_CUDA_CHECK(launch_silu_mul_backward(*dtype_of(gu.scalar_type()), gu.data_ptr(), g.data_ptr(),
                                          ggu.data_ptr(), N, I, at::cuda::getCurrentCUDAStream()));
  return ggu;
}

}  // namespace c3::model::fused::cuda
