#include "model/linear.h"

#include <torch/nn/init.h>

#include <cmath>

namespace c3::model {

namespace {
thread_local const ParameterPlacement* g_placement = nullptr;
}

ParameterPlacement::ParameterPlacement(at::Device device, at::ScalarType dtype)
    : prev_(g_placement), device(device), dtype(dtype) {
  g_placement = this;
}
ParameterPlacement::~ParameterPlacement() { g_placement = prev_; }
const ParameterPlacement* ParameterPlacement::current() { return g_placement; }

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias)
    : in_features(in_features), out_features(out_features), with_bias(bias) {
  reset();
}

void LinearImpl::reset() {
  const ParameterPlacement* place = ParameterPlacement::current();
  at::TensorOptions opts;
  if (place) opts = opts.device(place->device).dtype(place->dtype);
  weight = register_parameter("weight", at::empty({out_features, in_features}, opts));
  bias = with_bias ? register_parameter("bias", at::empty({out_features}, opts)) : at::Tensor();
  if (place) return;
  // torch::nn::Linear's default: Kaiming-uniform weights, bias ~ U(-1/sqrt(in), 1/sqrt(in)).
  torch::NoGradGuard ng;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = in_features > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features)) : 0;
    torch::nn::init::uniform_(bias, -bound, bound);
  }
}

}  // namespace c3::model
