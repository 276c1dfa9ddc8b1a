// Activation checkpointing: run a block without keeping its activations; backward recomputes it.
#include "model/activation_checkpoint.h"

#include <torch/autograd.h>
#include <ATen/core/ivalue.h>

#include "io/torch_compat.h"

namespace c3::model {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The block to recompute and the parameters to differentiate, kept alive by the autograd node.
struct Block : torch::CustomClassHolder {
  CheckpointBlock fn;
  std::vector<at::Tensor> params;
  // CUDA autocast was on in forward. Backward runs outside the trainer's autocast region, so the
  // recomputation must turn it on again (torch.utils.checkpoint does the same): without it, a
  // bf16 run recomputed every layer, and differentiated it, in fp32.
  bool autocast = false;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // Inputs and `params` are TensorLists so that autograd sees each tensor as an input of this node.
  static variable_list forward(AutogradContext* ctx, at::TensorList xs, at::TensorList params,
                               c10::intrusive_ptr<Block> block) {
    ctx->save_for_backward(xs.vec());
    ctx->saved_data["block"] = at::IValue::make_capsule(block);
    return block->fn(xs.vec());  // grad mode is off here: no activations are kept
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto block = c10::static_intrusive_pointer_cast<Block>(ctx->saved_data["block"].toCapsule());
    std::vector<at::Tensor> xs;
    for (const auto& x : ctx->get_saved_variables()) xs.push_back(x.detach().requires_grad_(true));
    std::vector<at::Tensor> ys;
    {
      torch::AutoGradMode enable(true);
      compat::AutocastGuard ac(block->autocast, xs[0].device());
      ys = block->fn(xs);
    }
    // Only outputs that received a gradient (and carry a graph) take part.
    variable_list outputs, grads_in;
    for (size_t i = 0; i < ys.size(); ++i) {
      if (grad_out[i].defined() && ys[i].requires_grad()) {
        outputs.push_back(ys[i]);
        grads_in.push_back(grad_out[i]);
      }
    }
    // One gradient per forward argument: each input, each parameter, and none for the block.
    variable_list result(xs.size() + block->params.size() + 1);
    if (outputs.empty()) return result;
    // Differentiate w.r.t. the inputs and the parameters that need grad (frozen ones get none).
    std::vector<at::Tensor> inputs = xs;
    std::vector<size_t> which;
    for (size_t i = 0; i < block->params.size(); ++i) {
      if (block->params[i].requires_grad()) {
        inputs.push_back(block->params[i]);
        which.push_back(i);
      }
    }
    const variable_list grads = torch::autograd::grad(outputs, inputs, grads_in,
                                                      /*retain_graph=*/false,
                                                      /*create_graph=*/false,
                                                      /*allow_unused=*/true);
    for (size_t i = 0; i < xs.size(); ++i) result[i] = grads[i];
    for (size_t j = 0; j < which.size(); ++j) result[xs.size() + which[j]] = grads[xs.size() + j];
    return result;
  }
};

}  // namespace

std::vector<at::Tensor> checkpoint(CheckpointBlock fn, const std::vector<at::Tensor>& xs,
                                   const std::vector<at::Tensor>& params) {
  TORCH_CHECK(!xs.empty(), "checkpoint: a block needs at least one input");
  for (const auto& x : xs) TORCH_CHECK(x.defined(), "checkpoint: every input must be defined");
  auto block = c10::make_intrusive<Block>();
  block->fn = std::move(fn);
  block->params = params;
  block->autocast = xs[0].is_cuda() && compat::autocast_enabled_cuda();
  return CheckpointFunction::apply(at::TensorList(xs), at::TensorList(block->params), block);
}

}  // namespace c3::model
