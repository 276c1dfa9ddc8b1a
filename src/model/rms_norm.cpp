// RMSNorm as in HF Qwen2: normalise in fp32, cast back, then scale by a learned weight.
#include "model/rms_norm.h"

namespace c3::model {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  // The variance is taken in fp32 even for bf16 activations, as HF does.
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  const at::Tensor normed = x32 * at::rsqrt(variance + eps);
  return weight * normed.to(x.scalar_type());
}

}  // namespace c3::model
