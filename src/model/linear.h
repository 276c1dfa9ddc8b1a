// y = x W^T + b, with control over where and how its parameters are first made.
// torch::nn::Linear always builds them on the CPU in fp32 and runs Kaiming init: for a
// paper-size cascade (4.6B parameters) that took ~50 s before a checkpoint load overwrote it.
// Under a ParameterPlacement guard, Linear allocates on the guard's device and dtype and skips
// the init (a load or init_weights() fills every value; load_parameters is strict).
#pragma once
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

namespace c3::model {

// While alive, new Linear layers on this thread are allocated uninitialised on `device`/`dtype`.
class ParameterPlacement {
 public:
  ParameterPlacement(at::Device device, at::ScalarType dtype);
  ~ParameterPlacement();
  ParameterPlacement(const ParameterPlacement&) = delete;
  ParameterPlacement& operator=(const ParameterPlacement&) = delete;

 private:
  const ParameterPlacement* prev_;

 public:
  at::Device device;
  at::ScalarType dtype;
  static const ParameterPlacement* current();
};

class LinearImpl : public torch::nn::Cloneable<LinearImpl> {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  void reset() override;  // (re)allocates and, outside a ParameterPlacement, initialises
  at::Tensor forward(const at::Tensor& x) { return at::linear(x, weight, bias); }

  int64_t in_features, out_features;
  bool with_bias;
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out], undefined without bias
};
TORCH_MODULE(Linear);

}  // namespace c3::model
