// RMSNorm as in HF Qwen2: normalise in fp32, cast back, then scale by a learned weight.
#include "model/rms_norm.h"

#include "model/fused_ops.h"

namespace c3::model {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) { return fused::rms_norm(x, weight, eps); }

}  // namespace c3::model
