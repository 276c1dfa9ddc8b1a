// Chunked cross-entropy of a linear head: the two autograd functions (gradients in forward, or
// recomputed in backward), the reference path and the switch between them.
#include "model/chunked_cross_entropy.h"

#include <torch/autograd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "io/torch_compat.h"
#include "model/fused_ops.h"

#ifdef C3_HAVE_CUDA_KERNELS
#include "model/cuda/cross_entropy_kernel.h"
#endif

namespace c3::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The head's GEMM dtype: autocast's under CUDA autocast (as at::linear's), else the inputs'.
at::ScalarType gemm_dtype(const at::Tensor& hidden, const at::Tensor& weight) {
  if (hidden.is_cuda() && compat::autocast_enabled_cuda()) return compat::autocast_dtype_cuda();
  TORCH_CHECK(hidden.scalar_type() == weight.scalar_type(), "cross-entropy: hidden states are ",
              hidden.scalar_type(), " but the head's weight is ", weight.scalar_type());
  return hidden.scalar_type();
}

void check_inputs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& target) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
              "cross-entropy: expected hidden [N, C] and weight [V, C], got ", hidden.sizes(),
              " and ", weight.sizes());
  TORCH_CHECK(
      target.dim() == 1 && target.size(0) == hidden.size(0) && target.scalar_type() == at::kLong,
      "cross-entropy: expected target [", hidden.size(0), "] long, got ", target.sizes(), " ",
      target.scalar_type());
}

// What one pass over the chunks makes. The gradients are those of (sum of row losses) * scale.
struct Pass {
  at::Tensor loss_sum;  // fp32 0-dim
  at::Tensor correct;   // long 0-dim
  at::Tensor grad_hidden, grad_weight;
};

struct PassSpec {
  int64_t chunk_rows = 1;
  at::ScalarType dtype = at::kFloat;  // the head's GEMM dtype
  bool loss = true;                   // the loss and the hits (a recompute pass needs neither)
  at::Tensor scale;                   // fp32 0-dim on the device; undefined: no gradients
  bool grad_hidden = false, grad_weight = false;
};

// The chunk's loss, hits and (with grads) the logits' gradient in the GEMM dtype, by the CUDA
// kernel that reads each row of logits once for the loss and once more for the gradient, written
// over the logits (C3_TRAIN_KERNELS with cross_entropy). False where it does not apply.
bool kernel_chunk(const at::Tensor& logits, const at::Tensor& t, const PassSpec& s, bool grads,
                  Pass& p, at::Tensor& d) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (!logits.is_cuda() || !fused::train_kernel_enabled(fused::TrainKernel::kCrossEntropy) ||
      !fused::cuda::cross_entropy_rows_supported(logits, t))
    return false;
  at::Tensor rows = logits;
  const auto r = fused::cuda::cross_entropy_rows(rows, t, grads ? s.scale : at::Tensor());
  if (s.loss) {
    p.loss_sum.add_(r.loss_sum);
    p.correct.add_(r.hits);
  }
  if (grads) d = rows;
  return true;
#else
  (void)logits, (void)t, (void)s, (void)grads, (void)p, (void)d;
  return false;
#endif
}

// Each chunk as the reference computes it: logits = (h W^T) in the GEMM dtype, then fp32;
// log_softmax; NLL. The logits' gradient is log_softmax's backward for an NLL gradient of
// -scale at the target: exp(logp) * scale, minus scale at the target.
Pass run_chunks(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& target,
                const PassSpec& s) {
  const int64_t N = hidden.size(0);
  const at::Tensor w = weight.to(s.dtype);  // [V, C], cast once as autocast's cache would
  Pass p;
  if (s.loss) {
    p.loss_sum = at::zeros({}, hidden.options().dtype(at::kFloat));
    p.correct = at::zeros({}, hidden.options().dtype(at::kLong));
  }
  const bool grads = s.scale.defined() && (s.grad_hidden || s.grad_weight);
  if (grads && s.grad_hidden) p.grad_hidden = at::empty_like(hidden);
  for (int64_t start = 0; start < N; start += s.chunk_rows) {
    const int64_t n = std::min(s.chunk_rows, N - start);
    const at::Tensor h = hidden.narrow(0, start, n).to(s.dtype);  // [n, C]
    const at::Tensor t = target.narrow(0, start, n);              // [n]
    at::Tensor d;  // [n, V]: the logits' gradient in the GEMM dtype
    at::Tensor gemm_logits = at::mm(h, w.t());
    if (!kernel_chunk(gemm_logits, t, s, grads, p, d)) {
      at::Tensor logp;  // [n, V] fp32
      {
        const at::Tensor logits = gemm_logits.to(at::kFloat);
        gemm_logits = at::Tensor();
        if (s.loss) p.correct.add_(logits.argmax(-1).eq(t).sum());
        logp = at::log_softmax(logits, -1);
      }
      if (s.loss) p.loss_sum.add_(at::nll_loss(logp, t, {}, at::Reduction::Sum));
      if (!grads) continue;
      // Ignored rows (padding) get no gradient: their scale is 0, their target any valid index.
      const at::Tensor ignored = t.eq(kIgnoreTarget).unsqueeze(1);                 // [n, 1]
      const at::Tensor scale = s.scale.expand({n, 1}).masked_fill(ignored, 0.0);  // [n, 1]
      at::Tensor dlogits = logp.exp_().mul_(scale);  // in place: logp is not needed again
      dlogits.scatter_add_(1, t.clamp_min(0).unsqueeze(1), scale.neg());
      d = dlogits.to(s.dtype);  // as autograd casts it back through the .to(fp32)
    }
    gemm_logits = at::Tensor();
    if (!grads) continue;
    if (s.grad_hidden) p.grad_hidden.narrow(0, start, n).copy_(at::mm(d, w));
    if (s.grad_weight) {
      at::Tensor gw = at::mm(d.t(), h);  // [V, C]: the chunk's share, summed over chunks in fp32
      if (!p.grad_weight.defined()) {
        p.grad_weight = start + n >= N ? gw : gw.to(at::kFloat);
      } else {
        p.grad_weight.add_(gw);
      }
    }
  }
  if (p.grad_weight.defined()) p.grad_weight = p.grad_weight.to(weight.scalar_type());
  return p;
}

at::Tensor finish_loss(const at::Tensor& loss_sum, int64_t N, bool sum) {
  return sum ? loss_sum : loss_sum / static_cast<double>(N);
}

// The NLL gradient per row: 1 / N for the mean, 1 for the sum; times the incoming gradient.
at::Tensor row_scale(const at::Tensor& grad_out, int64_t N, bool sum, const at::Tensor& like) {
  at::Tensor g = grad_out.defined() ? grad_out.to(like.device(), at::kFloat)
                                    : at::ones({}, like.options().dtype(at::kFloat));
  return sum ? g : g / static_cast<double>(N);
}

// Gradients made in forward, while each chunk's logits exist; backward scales them.
struct InForwardFunction : torch::autograd::Function<InForwardFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden,
                               const at::Tensor& weight, const at::Tensor& target,
                               int64_t chunk_rows, bool sum) {
    const int64_t N = hidden.size(0);
    PassSpec s;
    s.chunk_rows = chunk_rows;
    s.dtype = gemm_dtype(hidden, weight);
    s.scale = row_scale(at::Tensor(), N, sum, hidden);
    s.grad_hidden = hidden.requires_grad();
    s.grad_weight = weight.requires_grad();
    Pass p = run_chunks(hidden, weight, target, s);
    ctx->saved_data["grad_hidden"] = p.grad_hidden;
    ctx->saved_data["grad_weight"] = p.grad_weight;
    ctx->mark_non_differentiable({p.correct});
    return {finish_loss(p.loss_sum, N, sum), p.correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    at::Tensor gh = ctx->saved_data["grad_hidden"].toTensor();
    at::Tensor gw = ctx->saved_data["grad_weight"].toTensor();
    const at::Tensor g = grad_out[0];  // 0-dim; 1 when the loss is backpropagated directly
    if (g.defined()) {
      if (gh.defined()) gh = gh * g.to(gh.scalar_type());
      if (gw.defined()) gw = gw * g.to(gw.scalar_type());
    }
    return {gh, gw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Forward keeps its inputs; backward runs the chunks again with the incoming gradient.
struct RecomputeFunction : torch::autograd::Function<RecomputeFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden,
                               const at::Tensor& weight, const at::Tensor& target,
                               int64_t chunk_rows, bool sum) {
    PassSpec s;
    s.chunk_rows = chunk_rows;
    s.dtype = gemm_dtype(hidden, weight);
    Pass p = run_chunks(hidden, weight, target, s);
    ctx->save_for_backward({hidden, weight, target});
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["sum"] = sum;
    ctx->saved_data["dtype"] = static_cast<int64_t>(s.dtype);  // autocast is off in backward
    ctx->mark_non_differentiable({p.correct});
    return {finish_loss(p.loss_sum, hidden.size(0), sum), p.correct};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &target = saved[2];
    PassSpec s;
    s.chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    s.dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    s.loss = false;
    s.scale = row_scale(grad_out[0], hidden.size(0), ctx->saved_data["sum"].toBool(), hidden);
    s.grad_hidden = ctx->needs_input_grad(0);
    s.grad_weight = ctx->needs_input_grad(1);
    Pass p = run_chunks(hidden, weight, target, s);
    return {p.grad_hidden, p.grad_weight, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

CrossEntropyOutput chunked_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight,
                                         const at::Tensor& target,
                                         const ChunkedCrossEntropyOptions& o) {
  check_inputs(hidden, weight, target);
  const int64_t N = hidden.size(0), V = weight.size(0);
  TORCH_CHECK(N > 0, "cross-entropy over no rows");
  int64_t chunk = o.chunk_rows;
  if (chunk <= 0) {  // at most kChunkElements logits a chunk, in chunks of equal size
    const int64_t most = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, V));
    const int64_t n_chunks = (N + most - 1) / most;
    chunk = (N + n_chunks - 1) / n_chunks;
  }
  const bool record =
      at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
  if (!record) {
    PassSpec s;
    s.chunk_rows = chunk;
    s.dtype = gemm_dtype(hidden, weight);
    const Pass p = run_chunks(hidden, weight, target, s);
    return {finish_loss(p.loss_sum, N, o.sum), p.correct};
  }
  const variable_list out = o.recompute
                                ? RecomputeFunction::apply(hidden, weight, target, chunk, o.sum)
                                : InForwardFunction::apply(hidden, weight, target, chunk, o.sum);
  return {out[0], out[1]};
}

CrossEntropyOutput full_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight,
                                      const at::Tensor& target, bool sum) {
  check_inputs(hidden, weight, target);
  const at::Tensor logits = at::linear(hidden, weight).to(at::kFloat);  // [N, V]
  CrossEntropyOutput out;
  out.loss =
      at::cross_entropy_loss(logits, target, {}, sum ? at::Reduction::Sum : at::Reduction::Mean);
  out.n_correct = logits.detach().argmax(-1).eq(target).sum();
  return out;
}

CrossEntropyPath cross_entropy_path() {
  const char* v = std::getenv("C3_CHUNKED_CE");
  if (v && std::strcmp(v, "0") == 0) return CrossEntropyPath::kFull;
  if (v && std::strcmp(v, "recompute") == 0) return CrossEntropyPath::kChunkedRecompute;
  return CrossEntropyPath::kChunked;
}

}  // namespace c3::model
