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
  std::function<at::Tensor(const at::Tensor&)> fn;
  std::vector<at::Tensor> params;
  // CUDA autocast was on in forward. Backward runs outside the trainer's autocast region, so the
  // recomputation must turn it on again (torch.utils.checkpoint does the same): without it, a
  // bf16 run recomputed every layer, and differentiated it, in fp32.
  bool autocast = false;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // `params` is a TensorList so that autograd sees each parameter as an input of this node.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList params,
                            c10::intrusive_ptr<Block> block) {
    ctx->save_for_backward({x});
    ctx->saved_data["block"] = at::IValue::make_capsule(block);
    return block->fn(x);  // grad mode is off here: no activations are kept
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto block = c10::static_intrusive_pointer_cast<Block>(ctx->saved_data["block"].toCapsule());
    at::Tensor y;
    {
      torch::AutoGradMode enable(true);
      compat::AutocastGuard ac(block->autocast, x.device());
      y = block->fn(x);
    }
    // Differentiate w.r.t. x and the parameters that need grad (frozen ones get none).
    std::vector<at::Tensor> inputs{x};
    std::vector<size_t> which;
    for (size_t i = 0; i < block->params.size(); ++i) {
      if (block->params[i].requires_grad()) {
        inputs.push_back(block->params[i]);
        which.push_back(i);
      }
    }
    const variable_list grads = torch::autograd::grad({y}, inputs, {grad_out[0]},
                                                      /*retain_graph=*/false,
                                                      /*create_graph=*/false,
                                                      /*allow_unused=*/true);
    // One gradient per forward argument: x, each parameter, and none for the block.
    variable_list result(1 + block->params.size() + 1);
    result[0] = grads[0];
    for (size_t j = 0; j < which.size(); ++j) result[1 + which[j]] = grads[1 + j];
    return result;
  }
};

}  // namespace

at::Tensor checkpoint(std::function<at::Tensor(const at::Tensor&)> fn, const at::Tensor& x,
                      const std::vector<at::Tensor>& params) {
  auto block = c10::make_intrusive<Block>();
  block->fn = std::move(fn);
  block->params = params;
  block->autocast = x.is_cuda() && compat::autocast_enabled_cuda();
  return CheckpointFunction::apply(x, at::TensorList(block->params), block);
}

}  // namespace c3::model
