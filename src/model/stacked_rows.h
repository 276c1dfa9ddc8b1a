// Training on stacked projections: q/k/v (and gate/up) as one GEMM in forward and backward, while
// the parameters, their gradients and the checkpoint keys stay the separate official ones.
//
// fuse_rows (linear.h) leaves the parameters as row views of one contiguous tensor. stacked_rows
// hands that tensor to autograd as a function of the parameters: forward returns it without a
// copy; backward cuts the one [sum of rows, ...] gradient into each parameter's rows (narrow
// views, no copy). So a layer makes q, k and v with one GEMM, and backward makes their input
// gradient with one GEMM and their weight gradients with one more, where separate projections
// take three of each. Autocast casts the stacked weight to bf16 once, as it cast the three.
#pragma once
#include <ATen/ATen.h>

#include <vector>

namespace c3::model {

// The rows of `parts` stacked, as a tensor whose gradient reaches each part. `fused` must hold
// exactly those rows (rows_of(fused, parts)); parts that need no gradient get none, and with
// none needing one (frozen, or autograd off) `fused` itself is returned, detached.
at::Tensor stacked_rows(const at::Tensor& fused, const std::vector<at::Tensor>& parts);

// Whether training (autograd recording) takes the stacked projections where a layer has them
// fused: on unless C3_TRAIN_STACKED=0, which keeps the separate GEMMs (to compare the two).
bool stacked_training_enabled();
// Switches it for this process (tests compare both paths).
void set_stacked_training_enabled(bool on);

}  // namespace c3::model
