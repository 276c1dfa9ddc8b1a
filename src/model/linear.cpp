#include "model/linear.h"

#include <torch/nn/init.h>

#include <cmath>
#include <vector>

#include "model/cpu_kernels.h"
#include "model/fused_ops.h"

namespace c3::model {

namespace {
thread_local const ParameterPlacement* g_placement = nullptr;

constexpr int64_t kMaxKernelRows = 16;  // more rows (a prefill) go to BLAS

}  // namespace

at::Tensor apply_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (x.is_cuda()) {
    const at::Tensor y = fused::small_linear(x, w, b);  // a decode step's few rows, bf16 / fp16
    return y.defined() ? y : at::linear(x, w, b);
  }
  const int64_t K = w.size(-1), N = w.size(0);
  const bool kernel = !at::GradMode::is_enabled() && x.is_cpu() && w.is_cpu() &&
                      x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat &&
                      w.dim() == 2 && w.is_contiguous() && x.dim() >= 1 && x.size(-1) == K &&
                      x.numel() <= kMaxKernelRows * K &&
                      (!b.defined() || (b.is_cpu() && b.scalar_type() == at::kFloat &&
                                        b.dim() == 1 && b.size(0) == N && b.is_contiguous()));
  if (!kernel) return at::linear(x, w, b);
  const at::Tensor xc = x.contiguous();
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = N;
  at::Tensor y = at::empty(out_shape, x.options());
  const int64_t M = K ? x.numel() / K : 0;
  cpu::rows_dot_rows(xc.data_ptr<float>(), K, M, w.data_ptr<float>(), K, N, K,
                     b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), N);
  return y;
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

at::Tensor fuse_rows(const std::vector<at::Tensor>& params) {
  torch::NoGradGuard ng;
  std::vector<at::Tensor> rows;
  for (const auto& p : params) rows.push_back(p.detach());
  const at::Tensor fused = at::cat(rows, 0);  // new, contiguous storage
  int64_t off = 0;
  for (auto p : params) {  // a handle: set_data changes the parameter it shares
    const int64_t n = p.size(0);
    p.set_data(fused.narrow(0, off, n));
    off += n;
  }
  return fused;
}

bool rows_of(const at::Tensor& fused, const std::vector<at::Tensor>& params) {
  if (!fused.defined()) return false;
  const auto* base = static_cast<const char*>(fused.data_ptr());
  const int64_t row_bytes = fused.stride(0) * fused.element_size();
  int64_t off = 0;
  for (const auto& p : params) {
    // Same storage at the expected offset, and still the whole block of rows.
    if (!p.is_alias_of(fused) || p.scalar_type() != fused.scalar_type() ||
        p.data_ptr() != base + off * row_bytes || !p.is_contiguous()) {
      return false;
    }
    off += p.size(0);
  }
  return off == fused.size(0);
}

}  // namespace c3::model
