// Cross-entropy of a linear head (lm_head or the tied embedding) over rows of hidden states,
// computed in row chunks so that the fp32 logits of the whole batch never exist at once.
//
// The reference is logits = (hidden W^T).to(fp32) for all N rows, then log_softmax + NLL: at a
// paper-size vocabulary (152k) and a batch of 64 x 513 targets, those logits alone are 20 GB, and
// autograd keeps them, their log-softmax and their gradient. Here each chunk of rows makes its
// logits, its loss and (when training) its gradients, then frees them; what stays is the
// gradient of the hidden states [N, C] and of the head [V, C]. The chunk's arithmetic is the
// reference's (the same GEMM dtype under autocast, log_softmax in fp32, the same gradient formula),
// so on the CPU in fp32 the results agree with it to summation order.
//
// Two ways to produce the gradients:
//   in forward (default): each chunk's gradients are computed while its logits exist, and backward
//     only scales them by the incoming gradient: the reference's three head GEMMs, no fourth
//     (the trick of Liger Kernel's fused linear cross-entropy);
//   recompute: forward keeps nothing but its inputs, and backward makes each chunk's logits again
//     (one more head GEMM: less memory between forward and backward, more compute).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace c3::model {

struct CrossEntropyOutput {
  at::Tensor loss;       // 0-dim fp32: mean (or sum) over the rows of -log softmax(logits)[target]
  at::Tensor n_correct;  // 0-dim long: rows whose largest logit is the target's
};

struct ChunkedCrossEntropyOptions {
  int64_t chunk_rows = 0;  // rows per chunk; 0 = equal chunks of at most kChunkElements / V rows
  bool sum = false;        // the sum over rows instead of the mean
  bool recompute = false;  // gradients in backward (recomputing the logits), not in forward
};

// At most 512 MiB of fp32 logits per chunk: 32,768 rows at a vocabulary of 4,096 (one chunk
// at batch 16 x 513 targets, two at batch 64), ~880 rows at 152k.
constexpr int64_t kChunkElements = int64_t(1) << 27;

// A target of kIgnoreTarget (a padding row, PyTorch's ignore_index) adds nothing to the loss, the
// hits or the gradients; the mean still divides by all N rows, so padded batches take sum = true.
constexpr int64_t kIgnoreTarget = -100;

// hidden [N, C] (N > 0), weight [V, C], target [N] long (each in [0, V) or kIgnoreTarget). Gradients reach hidden
// and weight when they require grad and autograd is recording. Under CUDA autocast the head's GEMMs
// run in autocast's dtype, as at::linear's would.
CrossEntropyOutput chunked_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight,
                                         const at::Tensor& target,
                                         const ChunkedCrossEntropyOptions& o = {});

// The reference: the whole [N, V] logits, at::cross_entropy_loss (the old path).
CrossEntropyOutput full_cross_entropy(const at::Tensor& hidden, const at::Tensor& weight,
                                      const at::Tensor& target, bool sum = false);

// Which path the cascade's losses take, from C3_CHUNKED_CE: "0" = full logits,
// "recompute" = chunks recomputed in backward, anything else or unset = chunks with their
// gradients made in forward.
enum class CrossEntropyPath { kFull, kChunked, kChunkedRecompute };
CrossEntropyPath cross_entropy_path();

}  // namespace c3::model
