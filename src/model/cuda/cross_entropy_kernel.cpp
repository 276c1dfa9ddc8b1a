// Torch-facing wrapper of the cross-entropy row kernel: checks, outputs, the current stream.
#include "model/cuda/cross_entropy_kernel.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/cuda/launch.h"

namespace c3::model::fused::cuda {
namespace {

bool dtype_ok(at::ScalarType t) { return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf; }

DType dtype_of(at::ScalarType t) {
  return t == at::kFloat ? DType::kFloat : t == at::kBFloat16 ? DType::kBFloat16 : DType::kHalf;
}

}  // namespace

bool cross_entropy_rows_supported(const at::Tensor& logits, const at::Tensor& target) {
  return logits.is_cuda() && logits.dim() == 2 && logits.is_contiguous() &&
         dtype_ok(logits.scalar_type()) && logits.size(0) > 0 &&
         logits.size(0) <= kCrossEntropyMaxRows && logits.size(1) > 0 && target.dim() == 1 &&
         target.size(0) == logits.size(0) && target.scalar_type() == at::kLong &&
         target.device() == logits.device();
}

CrossEntropyRows cross_entropy_rows(at::Tensor& logits, const at::Tensor& target_in,
                                    const at::Tensor& scale) {
  TORCH_CHECK(cross_entropy_rows_supported(logits, target_in),
              "cross-entropy kernel: unsupported logits ", logits.sizes(), " ",
              logits.scalar_type(), " or target ", target_in.sizes());
  const c10::cuda::CUDAGuard guard(logits.device());
  const int64_t n = logits.size(0), V = logits.size(1);
  const at::Tensor target = target_in.contiguous();
  at::Tensor sc;
  if (scale.defined()) sc = scale.to(logits.device(), at::kFloat).contiguous();
  at::Tensor row_loss = at::empty({n}, logits.options().dtype(at::kFloat));
  at::Tensor row_hit = at::empty({n}, logits.options().dtype(at::kInt));
  C10_CUDA_CHECK(launch_cross_entropy_rows(
      dtype_of(logits.scalar_type()), logits.data_ptr(), target.data_ptr<int64_t>(), n, V,
      sc.defined() ? sc.data_ptr<float>() : nullptr, row_loss.data_ptr<float>(),
      row_hit.data_ptr<int32_t>(), at::cuda::getCurrentCUDAStream()));
  return {row_loss.sum(), row_hit.sum(at::kLong)};
}

}  // namespace c3::model::fused::cuda
