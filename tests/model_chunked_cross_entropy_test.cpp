// The chunked cross-entropy (model/chunked_cross_entropy.h) against the whole-logits reference:
// loss, hits and the gradients of the hidden states and the head, for several chunk sizes, both
// ways of making the gradients, mean and sum, fp32 (to 1e-6) and bf16 (to bf16 rounding).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>

#include "model/chunked_cross_entropy.h"

namespace c3::model {
namespace {

struct Case {
  at::Tensor hidden, weight, target;
};

// N rows of C features over a vocabulary of V, scaled so that the softmax is far from flat.
Case make_case(int64_t N, int64_t C, int64_t V, at::ScalarType t, uint64_t seed) {
  torch::manual_seed(seed);
  Case c;
  c.hidden = (torch::randn({N, C}) * 2.0).to(t).requires_grad_(true);
  c.weight = (torch::randn({V, C}) * 0.5).to(t).requires_grad_(true);
  c.target = torch::randint(0, V, {N}, torch::kLong);
  // Every other row's target is its argmax: the hit count is neither 0 nor N.
  const at::Tensor best = at::linear(c.hidden.detach(), c.weight.detach()).argmax(-1);
  c.target.slice(0, 0, N, 2).copy_(best.slice(0, 0, N, 2));
  return c;
}

struct Result {
  double loss;
  int64_t correct;
  at::Tensor grad_hidden, grad_weight;
};

// Runs `ce` with fresh gradients; `upstream` multiplies the loss before backward.
template <typename F>
Result run(Case& c, F ce, double upstream = 1.0) {
  c.hidden.mutable_grad() = at::Tensor();
  c.weight.mutable_grad() = at::Tensor();
  const CrossEntropyOutput out = ce(c.hidden, c.weight, c.target);
  (out.loss * upstream).backward();
  return {out.loss.item<double>(), out.n_correct.item<int64_t>(), c.hidden.grad().clone(),
          c.weight.grad().clone()};
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(ChunkedCrossEntropy, MatchesTheWholeLogitsInFp32) {
  Case c = make_case(/*N=*/37, /*C=*/24, /*V=*/53, at::kFloat, 1);
  for (bool sum : {false, true}) {
    const Result want =
        run(c, [&](auto& h, auto& w, auto& y) { return full_cross_entropy(h, w, y, sum); });
    for (bool recompute : {false, true}) {
      for (int64_t chunk : {1, 5, 16, 37, 100, 0}) {
        SCOPED_TRACE("sum " + std::to_string(sum) + " recompute " + std::to_string(recompute) +
                     " chunk " + std::to_string(chunk));
        const Result got = run(c, [&](auto& h, auto& w, auto& y) {
          return chunked_cross_entropy(h, w, y, {chunk, sum, recompute});
        });
        const double scale = sum ? 37.0 : 1.0;  // the sum's values are N times the mean's
        EXPECT_NEAR(got.loss, want.loss, 1e-6 * scale);
        EXPECT_EQ(got.correct, want.correct);
        const double dh = max_abs(got.grad_hidden, want.grad_hidden);
        const double dw = max_abs(got.grad_weight, want.grad_weight);
        EXPECT_LT(dh, 1e-6 * scale);
        EXPECT_LT(dw, 1e-6 * scale);
        if (chunk == 5)
          std::printf("fp32 sum=%d recompute=%d chunk 5: |dgrad_h| %.2g |dgrad_w| %.2g\n", sum,
                      recompute, dh, dw);
      }
    }
  }
  EXPECT_GE(run(c, [](auto& h, auto& w, auto& y) { return full_cross_entropy(h, w, y); }).correct,
            19);
}

// The trainer scales each micro-batch's mean loss: gradients in forward are scaled in backward.
TEST(ChunkedCrossEntropy, ScalesItsGradientsByTheIncomingOne) {
  Case c = make_case(19, 16, 31, at::kFloat, 2);
  const Result want = run(
      c, [](auto& h, auto& w, auto& y) { return full_cross_entropy(h, w, y); }, 2.5);
  for (bool recompute : {false, true}) {
    const Result got = run(
        c,
        [&](auto& h, auto& w, auto& y) {
          return chunked_cross_entropy(h, w, y, {4, false, recompute});
        },
        2.5);
    EXPECT_LT(max_abs(got.grad_hidden, want.grad_hidden), 1e-6) << recompute;
    EXPECT_LT(max_abs(got.grad_weight, want.grad_weight), 1e-6) << recompute;
  }
}

// Padded batches (cascade::train_inputs) mark their padding rows kIgnoreTarget: those rows add
// nothing to the loss, the hits or the head's gradient, and get a zero gradient themselves, so
// the sum equals the sum over the kept rows alone.
TEST(ChunkedCrossEntropy, IgnoredRowsAddNothing) {
  Case c = make_case(23, 16, 29, at::kFloat, 5);
  const at::Tensor keep = torch::tensor({0, 1, 2, 4, 6, 7, 8, 11, 12, 13, 15, 16, 17, 18, 20, 21},
                                        torch::kLong);
  Case kept{c.hidden.detach().index_select(0, keep).requires_grad_(true), c.weight,
            c.target.index_select(0, keep)};
  const Result want = run(kept, [](auto& h, auto& w, auto& y) {
    return chunked_cross_entropy(h, w, y, {0, /*sum=*/true, false});
  });
  ASSERT_GT(want.correct, 0);
  const at::Tensor ignored = torch::tensor({3, 5, 9, 10, 14, 19, 22}, torch::kLong);
  Case padded = c;
  padded.target = c.target.clone().index_fill_(0, ignored, kIgnoreTarget);
  auto check = [&](const Result& got, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_NEAR(got.loss, want.loss, 1e-5);
    EXPECT_EQ(got.correct, want.correct);
    EXPECT_LT(max_abs(got.grad_hidden.index_select(0, keep), want.grad_hidden), 1e-6);
    // The head's gradient sums over all 23 rows here and 16 there, so fp32's summation order
    // differs with the CPU's GEMM blocking (1.7e-6 on an AMD EPYC): bound it relative to its size.
    const double scale = want.grad_weight.abs().max().item<double>();
    EXPECT_LT(max_abs(got.grad_weight, want.grad_weight), 1e-6 * std::max(1.0, scale))
        << "of " << scale;
    EXPECT_EQ(got.grad_hidden.index_select(0, ignored).abs().max().item<double>(), 0.0)
        << "an ignored row got a gradient";
  };
  check(run(padded, [](auto& h, auto& w, auto& y) { return full_cross_entropy(h, w, y, true); }),
        "whole logits");
  for (bool recompute : {false, true})
    for (int64_t chunk : {4, 0})
      check(run(padded, [&](auto& h, auto& w, auto& y) {
              return chunked_cross_entropy(h, w, y, {chunk, true, recompute});
            }),
            "recompute " + std::to_string(recompute) + " chunk " + std::to_string(chunk));
}

TEST(ChunkedCrossEntropy, MatchesTheWholeLogitsInBf16) {
  Case c = make_case(29, 32, 41, at::kBFloat16, 3);
  const Result want = run(c, [](auto& h, auto& w, auto& y) { return full_cross_entropy(h, w, y); });
  for (bool recompute : {false, true}) {
    const Result got = run(c, [&](auto& h, auto& w, auto& y) {
      return chunked_cross_entropy(h, w, y, {8, false, recompute});
    });
    // The logits are the same bf16 GEMM; the head's gradient adds bf16 partial sums per chunk.
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::abs(want.loss));
    EXPECT_EQ(got.correct, want.correct);
    const double gh = want.grad_hidden.abs().max().item<double>();
    const double gw = want.grad_weight.abs().max().item<double>();
    EXPECT_LT(max_abs(got.grad_hidden, want.grad_hidden), 1e-2 * gh) << recompute;
    EXPECT_LT(max_abs(got.grad_weight, want.grad_weight), 2e-2 * gw) << recompute;
    EXPECT_EQ(got.grad_weight.scalar_type(), at::kBFloat16);
  }
}

// A frozen head (or frozen hidden states) gets no gradient, and the other still does.
TEST(ChunkedCrossEntropy, OnlyInputsThatNeedItGetAGradient) {
  Case c = make_case(11, 8, 13, at::kFloat, 4);
  const Result want = run(c, [](auto& h, auto& w, auto& y) { return full_cross_entropy(h, w, y); });
  for (bool recompute : {false, true}) {
    c.weight.set_requires_grad(false);
    c.weight.mutable_grad() = at::Tensor();
    c.hidden.mutable_grad() = at::Tensor();
    chunked_cross_entropy(c.hidden, c.weight, c.target, {3, false, recompute}).loss.backward();
    EXPECT_LT(max_abs(c.hidden.grad(), want.grad_hidden), 1e-6);
    EXPECT_FALSE(c.weight.grad().defined());
    c.weight.set_requires_grad(true);
  }
}

// Without autograd (validation) the loss and hits are the same and nothing is recorded.
TEST(ChunkedCrossEntropy, NoGradGivesTheSameLoss) {
  Case c = make_case(23, 16, 29, at::kFloat, 5);
  const CrossEntropyOutput want = full_cross_entropy(c.hidden, c.weight, c.target);
  torch::NoGradGuard ng;
  const CrossEntropyOutput got = chunked_cross_entropy(c.hidden, c.weight, c.target, {6});
  EXPECT_FALSE(got.loss.requires_grad());
  EXPECT_NEAR(got.loss.item<double>(), want.loss.item<double>(), 1e-6);
  EXPECT_EQ(got.n_correct.item<int64_t>(), want.n_correct.item<int64_t>());
}

TEST(ChunkedCrossEntropy, RejectsMismatchedShapes) {
  Case c = make_case(5, 8, 13, at::kFloat, 6);
  EXPECT_THROW(chunked_cross_entropy(c.hidden, c.weight.narrow(1, 0, 4), c.target), c10::Error);
  EXPECT_THROW(chunked_cross_entropy(c.hidden, c.weight, c.target.narrow(0, 0, 4)), c10::Error);
}

}  // namespace
}  // namespace c3::model
