// Activation checkpointing: run a block without keeping its activations; backward recomputes it.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <vector>

namespace c3::model {

// A block: tensors in, tensors out (a decoder layer takes and gives the residual pair).
using CheckpointBlock = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)>;

// Returns fn(xs), computed without building an autograd graph. In backward, fn is run again on the
// saved inputs with grad enabled and differentiated w.r.t. xs and `params` (the tensors fn reads
// that need gradients; gradients reach no other tensor). fn must be deterministic (no dropout)
// and capture by value everything it needs, since it runs again later. The memory saved is every
// activation inside fn; the cost is one more forward of fn. (torch.utils.checkpoint, reentrant.)
// Every input must be defined; outputs whose gradient never arrives are skipped in backward.
std::vector<at::Tensor> checkpoint(CheckpointBlock fn, const std::vector<at::Tensor>& xs,
                                   const std::vector<at::Tensor>& params);

}  // namespace c3::model
