// Activation checkpointing: run a block without keeping its activations; backward recomputes it.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

namespace c3::model {

// Returns fn(x), computed without building an autograd graph. In backward, fn is run again on the
// saved input with grad enabled and differentiated w.r.t. x and `params` (the tensors fn reads
// that need gradients; gradients reach no other tensor). fn must be deterministic (no dropout)
// and capture by value everything it needs, since it runs again later. The memory saved is every
// activation inside fn; the cost is one more forward of fn. (torch.utils.checkpoint, reentrant.)
at::Tensor checkpoint(std::function<at::Tensor(const at::Tensor&)> fn, const at::Tensor& x,
                      const std::vector<at::Tensor>& params);

}  // namespace c3::model
