// stacked_rows: the fused projection tensor as an autograd function of its row-view parameters.
#include "model/stacked_rows.h"

#include <torch/autograd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "model/linear.h"

namespace c3::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::atomic<bool>& stacked_switch() {
  static std::atomic<bool> on{[] {
    const char* v = std::getenv("C3_TRAIN_STACKED");
    return !(v && std::strcmp(v, "0") == 0);
  }()};
  return on;
}

struct StackedRowsFunction : torch::autograd::Function<StackedRowsFunction> {
  // `parts` is a TensorList so that autograd sees each parameter as an input of this node.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& fused, at::TensorList parts) {
    std::vector<int64_t> rows;
    for (const auto& p : parts) rows.push_back(p.size(0));
    ctx->saved_data["rows"] = rows;
    // A new tensor on the same storage: no copy, and `fused` itself gets no autograd history.
    return fused.detach();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const std::vector<int64_t> rows = ctx->saved_data["rows"].toIntVector();
    variable_list grads{at::Tensor()};  // none for `fused`
    int64_t off = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      // Views into the one gradient; AccumulateGrad may keep them as .grad without a copy.
      grads.push_back(ctx->needs_input_grad(1 + i) ? grad_out[0].narrow(0, off, rows[i])
                                                   : at::Tensor());
      off += rows[i];
    }
    return grads;
  }
};

}  // namespace

at::Tensor stacked_rows(const at::Tensor& fused, const std::vector<at::Tensor>& parts) {
  TORCH_CHECK(rows_of(fused, parts),
              "stacked_rows: the parameters are not the fused tensor's rows");
  bool any_grad = false;
  for (const auto& p : parts) any_grad |= p.requires_grad();
  if (!any_grad || !at::GradMode::is_enabled()) return fused.detach();
  return StackedRowsFunction::apply(fused, at::TensorList(parts));
}

bool stacked_training_enabled() { return stacked_switch().load(std::memory_order_relaxed); }

void set_stacked_training_enabled(bool on) {
  stacked_switch().store(on, std::memory_order_relaxed);
}

}  // namespace c3::model
