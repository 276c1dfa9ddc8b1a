// Torch-facing wrappers of the backward kernels: checks, output allocation, the current stream.
#include "model/cuda/backward_kernels.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cstdint>
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

// Rows of C elements that the add + RMSNorm kernels take: C a multiple of 4 up to their maximum,
// and the tensor contiguous at an address aligned to 4 elements (their 4-element accesses).
bool packed_rows(const at::Tensor& t, int64_t C) {
  return t.is_cuda() && t.is_contiguous() && t.numel() > 0 && C % 4 == 0 &&
         C <= kAddRmsNormTrainMaxC &&
         reinterpret_cast<uintptr_t>(t.data_ptr()) % (4 * t.element_size()) == 0;
}

// About four blocks per multiprocessor, at most one per row: the backward kernels' grid, each
// block summing its rows' share of a weight's gradient.
int partial_sum_blocks(int64_t rows) {
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(rows, 4 * sms)));
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
  const int blocks = partial_sum_blocks(N);
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

bool add_rms_norm_train_supported(const at::Tensor& x, const at::Tensor& delta,
                                  const at::Tensor& weight, at::ScalarType y_dtype) {
  if (!x.defined() || !delta.defined() || x.dim() < 1) return false;
  const int64_t C = x.size(-1);
  const auto tx = dtype_of(x.scalar_type()), td = dtype_of(delta.scalar_type()),
             ty = dtype_of(y_dtype);
  return tx && td && ty && add_rms_norm_train_types_ok(*tx, *td, *ty) && packed_rows(x, C) &&
         packed_rows(delta, C) && delta.sizes() == x.sizes() && delta.device() == x.device() &&
         weight.scalar_type() == x.scalar_type() && weight.dim() == 1 && weight.size(0) == C &&
         packed_rows(weight, C) && weight.device() == x.device();
}

std::pair<at::Tensor, at::Tensor> add_rms_norm_train(const at::Tensor& x, const at::Tensor& delta,
                                                     const at::Tensor& weight, double eps,
                                                     at::ScalarType y_dtype) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t C = x.size(-1), N = x.numel() / C;
  at::Tensor h = at::empty_like(x), y = at::empty_like(x, x.options().dtype(y_dtype));
  C10_CUDA_CHECK(launch_add_rms_norm_train(
      *dtype_of(x.scalar_type()), *dtype_of(delta.scalar_type()), *dtype_of(y_dtype),
      x.data_ptr(), delta.data_ptr(), weight.data_ptr(), h.data_ptr(), y.data_ptr(), N, C,
      static_cast<float>(eps), at::cuda::getCurrentCUDAStream()));
  return {h, y};
}

bool add_rms_norm_train_backward_supported(const at::Tensor& gy, const at::Tensor& gh,
                                           const at::Tensor& h, const at::Tensor& weight,
                                           at::ScalarType delta_dtype) {
  const int64_t C = h.size(-1);
  const auto tx = dtype_of(h.scalar_type()), td = dtype_of(delta_dtype),
             ty = gy.defined() ? dtype_of(gy.scalar_type()) : std::nullopt;
  return tx && td && ty && add_rms_norm_train_types_ok(*tx, *td, *ty) &&
         gy.sizes() == h.sizes() && gy.is_cuda() &&
         (!gh.defined() || (gh.sizes() == h.sizes() && gh.scalar_type() == h.scalar_type() &&
                            gh.is_cuda())) &&
         packed_rows(h, C) && packed_rows(weight, C);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> add_rms_norm_train_backward(
    const at::Tensor& gy_in, const at::Tensor& gh_in, const at::Tensor& h,
    const at::Tensor& weight, double eps, at::ScalarType delta_dtype, bool need_x,
    bool need_delta) {
  const c10::cuda::CUDAGuard guard(h.device());
  const int64_t C = h.size(-1), N = h.numel() / C;
  // Fresh contiguous tensors (where a gradient is not one already) are aligned.
  const at::Tensor gy = packed_rows(gy_in, C) ? gy_in : gy_in.contiguous().clone();
  const at::Tensor gh =
      !gh_in.defined() || packed_rows(gh_in, C) ? gh_in : gh_in.contiguous().clone();
  at::Tensor gx = need_x ? at::empty_like(h) : at::Tensor();
  at::Tensor gdelta = need_delta ? at::empty_like(h, h.options().dtype(delta_dtype)) : at::Tensor();
  const auto tx = *dtype_of(h.scalar_type()), td = *dtype_of(delta_dtype),
             ty = *dtype_of(gy.scalar_type());
  const int blocks = add_rms_norm_train_backward_grid(tx, td, ty, N, C);
  at::Tensor gw_part = at::empty({blocks, C}, h.options().dtype(at::kFloat));
  C10_CUDA_CHECK(launch_add_rms_norm_train_backward(
      tx, td, ty, gy.data_ptr(), gh.defined() ? gh.data_ptr() : nullptr, h.data_ptr(),
      weight.data_ptr(), need_x ? gx.data_ptr() : nullptr, need_delta ? gdelta.data_ptr() : nullptr,
      gw_part.data_ptr<float>(), N, C, static_cast<float>(eps), blocks,
      at::cuda::getCurrentCUDAStream()));
  return {gx, gdelta, gw_part.sum(0).to(weight.scalar_type())};
}

}  // namespace c3::model::fused::cuda
