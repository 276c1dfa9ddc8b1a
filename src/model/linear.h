// y = x W^T + b, with control over where and how its parameters are first made.
// torch::nn::Linear always builds them on the CPU in fp32 and runs Kaiming init: for a
// paper-size cascade (4.6B parameters) that took ~50 s before a checkpoint load overwrote it.
// Under a ParameterPlacement guard, Linear allocates on the guard's device and dtype and skips
// the init (a load or init_weights() fills every value; load_parameters is strict).
#pragma once
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <vector>

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

// y = x W^T + b, as at::linear. A few rows (a decode step) of fp32 on the CPU, with autograd not
// recording, take cpu::rows_dot_rows instead of BLAS (see cpu_kernels.h: c3-small's decode step
// was mostly sgemm overhead). Results then agree with BLAS to fp32 rounding, not bit for bit.
at::Tensor apply_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {});

class LinearImpl : public torch::nn::Cloneable<LinearImpl> {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true);
  void reset() override;  // (re)allocates and, outside a ParameterPlacement, initialises
  at::Tensor forward(const at::Tensor& x) { return apply_linear(x, weight, bias); }

  int64_t in_features, out_features;
  bool with_bias;
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out], undefined without bias
};
TORCH_MODULE(Linear);

// Row-stacking parameters for inference (q/k/v, gate/up): one GEMM instead of several.
// fuse_rows copies `params` (same dtype, device and trailing shape) into one new contiguous
// tensor, concatenated along dim 0, and re-points each parameter at its rows, so the memory is
// not doubled, checkpoint keys are unchanged and in-place updates of a parameter show in the
// fused tensor. The result does not require grad (inference only).
at::Tensor fuse_rows(const std::vector<at::Tensor>& params);
// Whether `params` are still the row views of `fused` that fuse_rows made: false once a
// module.to() to another device or dtype has replaced them (or `fused` is undefined).
bool rows_of(const at::Tensor& fused, const std::vector<at::Tensor>& params);

}  // namespace c3::model
