// The autograd nodes of RMSNorm, RoPE, SiLU-and-multiply and the residual add + RMSNorm
// (model/*_autograd.h) on their CPU path, against autograd through the reference ops (fused::reference): the same values, and the
// same gradients for x and the weight, in fp32 and bf16. (Their CUDA kernels: cuda_*_test.cpp.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "model/add_rms_norm_autograd.h"
#include "model/fused_ops.h"
#include "model/rms_norm_autograd.h"
#include "model/rotary_autograd.h"
#include "model/silu_mul_autograd.h"

namespace c3::model::fused {
namespace {

using Op = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Runs `op` on fresh leaf copies of `inputs` (those flagged in `grad`) and backpropagates `g`;
// returns the output and the inputs' gradients (undefined where not flagged).
std::vector<at::Tensor> value_and_grads(const Op& op, const std::vector<at::Tensor>& inputs,
                                        const std::vector<bool>& grad, const at::Tensor& g) {
  std::vector<at::Tensor> leaves;
  for (size_t i = 0; i < inputs.size(); ++i)
    leaves.push_back(inputs[i].detach().clone().requires_grad_(grad[i]));
  const at::Tensor y = op(leaves);
  y.backward(g);
  std::vector<at::Tensor> out{y.detach()};
  for (size_t i = 0; i < leaves.size(); ++i)
    out.push_back(grad[i] ? leaves[i].grad() : at::Tensor());
  return out;
}

// The node against the reference: values and every gradient within `tol` of the reference's
// largest magnitude (0: bit for bit).
void expect_same(const std::string& what, const Op& node, const Op& reference,
                 const std::vector<at::Tensor>& inputs, const std::vector<bool>& grad, double tol) {
  const at::Tensor probe = reference(inputs);
  const at::Tensor g = torch::randn(probe.sizes()).to(probe.scalar_type());
  const auto got = value_and_grads(node, inputs, grad, g);
  const auto want = value_and_grads(reference, inputs, grad, g);
  for (size_t i = 0; i < got.size(); ++i) {
    if (!want[i].defined()) continue;
    SCOPED_TRACE(what + (i == 0 ? " value" : " grad of input " + std::to_string(i - 1)));
    ASSERT_TRUE(got[i].defined());
    ASSERT_EQ(got[i].sizes(), want[i].sizes());
    EXPECT_EQ(got[i].scalar_type(), want[i].scalar_type());
    const double d = max_abs(got[i], want[i]), scale = want[i].abs().max().item<double>();
    if (tol == 0) {
      EXPECT_TRUE(at::equal(got[i], want[i])) << "max abs diff " << d;
    } else {
      EXPECT_LE(d, tol * scale) << "max abs diff " << d << " of " << scale;
    }
    if (i > 0)
      std::printf("%s: grad %zu max abs diff %.3g (of %.3g)\n", what.c_str(), i - 1, d, scale);
  }
}

const at::ScalarType kTypes[] = {at::kFloat, at::kBFloat16};

TEST(AutogradOps, RmsNormMatchesAutogradOfTheReference) {
  torch::manual_seed(1);
  for (at::ScalarType t : kTypes) {
    const at::Tensor x = (torch::randn({3, 5, 48}) * 3).to(t);
    const at::Tensor w = (torch::rand({48}) + 0.5).to(t);
    const Op node = [](const auto& v) { return rms_norm_autograd(v[0], v[1], 1e-6); };
    const Op ref = [](const auto& v) { return reference::rms_norm(v[0], v[1], 1e-6); };
    // The backward is the same math in another order (one fused formula, not eight nodes).
    const double tol = t == at::kFloat ? 2e-6 : 2e-2;
    expect_same(std::string("rms_norm ") + c10::toString(t), node, ref, {x, w}, {true, true}, tol);
    expect_same(std::string("rms_norm frozen weight ") + c10::toString(t), node, ref, {x, w},
                {true, false}, tol);
  }
  // fp32 residual stream with an fp32 weight under a bf16 model: the trainer's mixed case.
  const at::Tensor x = torch::randn({4, 32}).to(at::kBFloat16);
  const at::Tensor w = torch::rand({32}) + 0.5;
  expect_same(
      "rms_norm bf16 x, fp32 weight",
      [](const auto& v) { return rms_norm_autograd(v[0], v[1], 1e-5); },
      [](const auto& v) { return reference::rms_norm(v[0], v[1], 1e-5); }, {x, w}, {true, true},
      2e-2);
}

TEST(AutogradOps, RotaryMatchesAutogradOfTheReferenceBitForBit) {
  torch::manual_seed(2);
  const int64_t B = 2, T = 5, H = 3, D = 16;
  const at::Tensor pos = torch::randint(0, 500, {B, T}, torch::kLong);
  const at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * torch::rand({D / 2});
  const at::Tensor emb = torch::cat({freqs, freqs}, -1);
  const at::Tensor cos = emb.cos(), sin = emb.sin();
  for (at::ScalarType t : kTypes) {
    // As attention makes q: a projection viewed [B, T, H, D], then transposed to [B, H, T, D].
    const Op node = [&](const auto& v) { return rotary_autograd(v[0].transpose(1, 2), cos, sin); };
    const Op ref = [&](const auto& v) { return reference::rotary(v[0].transpose(1, 2), cos, sin); };
    const at::Tensor x = torch::randn({B, T, H, D}).to(t);
    expect_same(std::string("rotary ") + c10::toString(t), node, ref, {x}, {true}, 0);
  }
  // Tables whose halves differ: the backward is the exact transpose, not a rotation by -sin.
  const at::Tensor c2 = torch::randn({B, T, D}), s2 = torch::randn({B, T, D});
  expect_same(
      "rotary, unequal halves", [&](const auto& v) { return rotary_autograd(v[0], c2, s2); },
      [&](const auto& v) { return reference::rotary(v[0], c2, s2); }, {torch::randn({B, H, T, D})},
      {true}, 0);
}

TEST(AutogradOps, SiluMulMatchesAutogradOfTheReferenceBitForBit) {
  torch::manual_seed(3);
  for (at::ScalarType t : kTypes) {
    const at::Tensor gu = (torch::randn({2, 7, 2 * 24}) * 4).to(t);
    expect_same(
        std::string("silu_mul ") + c10::toString(t),
        [](const auto& v) { return silu_mul_autograd(v[0]); },
        [](const auto& v) { return reference::silu_mul(v[0]); }, {gu}, {true}, 0);
  }
}

// The residual add + RMSNorm node against the unfused ops (h = x + delta, the reference norm,
// the cast of its output): h, y and the gradients of x, delta and the weight, with both outputs
// read downstream (the residual stream and a projection), or only one of them.
TEST(AutogradOps, AddRmsNormMatchesAutogradOfTheUnfusedOps) {
  torch::manual_seed(4);
  struct Case {
    at::ScalarType x, delta, y;
    double tol;
  };
  // fp32 residual stream: as under bf16 autocast (bf16 branch outputs, bf16 into the GEMMs);
  // a bf16 model; all fp32. bf16 gradients may round a last-bit difference of fp32 sums apart.
  const Case cases[] = {{at::kFloat, at::kBFloat16, at::kBFloat16, 1e-2},
                        {at::kFloat, at::kFloat, at::kFloat, 2e-6},
                        {at::kBFloat16, at::kBFloat16, at::kBFloat16, 2e-2}};
  for (const Case& c : cases) {
    const at::Tensor x = (torch::randn({3, 5, 48}) * 3).to(c.x);
    const at::Tensor delta = torch::randn({3, 5, 48}).to(c.delta);
    const at::Tensor w = (torch::rand({48}) + 0.5).to(c.x);
    const at::ScalarType yt = c.y;
    // Both outputs read: h by the residual stream, y (in its dtype) by what follows.
    const auto both = [yt](const at::Tensor& h, const at::Tensor& y) {
      return h * 0.75 + y.to(h.scalar_type()) * 1.5;
    };
    const Op node = [&](const auto& v) {
      const auto [h, y] = add_rms_norm_autograd(v[0], v[1], v[2], 1e-6, yt);
      EXPECT_EQ(y.scalar_type(), yt);
      return both(h, y);
    };
    const Op ref = [&](const auto& v) {
      const at::Tensor h = v[0] + v[1];
      return both(h, reference::rms_norm(h, v[2], 1e-6).to(yt));
    };
    const std::string name = std::string("add_rms_norm ") + c10::toString(c.x) + " + " +
                             c10::toString(c.delta) + " -> " + c10::toString(c.y);
    expect_same(name, node, ref, {x, delta, w}, {true, true, true}, c.tol);
    expect_same(name + ", frozen weight", node, ref, {x, delta, w}, {true, true, false}, c.tol);
  }
  const at::Tensor x = torch::randn({4, 32}), delta = torch::randn({4, 32}).to(at::kBFloat16);
  const at::Tensor w = torch::rand({32}) + 0.5;
  expect_same(
      "add_rms_norm, only y read",
      [](const auto& v) { return add_rms_norm_autograd(v[0], v[1], v[2], 1e-5, at::kFloat).second; },
      [](const auto& v) { return reference::rms_norm(v[0] + v[1], v[2], 1e-5); }, {x, delta, w},
      {true, true, true}, 2e-6);
  expect_same(
      "add_rms_norm, only h read",
      [](const auto& v) { return add_rms_norm_autograd(v[0], v[1], v[2], 1e-5, at::kFloat).first; },
      [](const auto& v) { return v[0] + v[1]; }, {x, delta, w}, {true, true, false}, 0);
}

// On the CPU the dispatch keeps the unfused ops (the node is for CUDA's kernels), so CPU training
// stays bit for bit what it was.
TEST(AutogradOps, AddRmsNormDispatchKeepsTheUnfusedOpsOnTheCpu) {
  const at::Tensor x = torch::randn({2, 16}).requires_grad_(true);
  const at::Tensor d = torch::randn({2, 16}).requires_grad_(true);
  const at::Tensor w = torch::ones({16}).requires_grad_(true);
  const auto [h, y] = add_rms_norm_before_linear(x, d, w, 1e-6);
  EXPECT_EQ(std::string(h.grad_fn()->name()).find("AddRmsNorm"), std::string::npos);
  EXPECT_EQ(y.scalar_type(), at::kFloat);
  const at::Tensor want = reference::rms_norm(x + d, w, 1e-6);
  EXPECT_TRUE(at::equal(y, want));
}

// C3_TRAIN_KERNELS picks the ops whose kernels train: all, none, or a list (to bisect).
TEST(AutogradOps, TrainKernelsListParses) {
  const int all = static_cast<int>(TrainKernel::kRmsNorm) | static_cast<int>(TrainKernel::kRotary) |
                  static_cast<int>(TrainKernel::kSiluMul) |
                  static_cast<int>(TrainKernel::kAddRmsNorm);
  EXPECT_EQ(parse_train_kernels(nullptr), all);  // the default set: cross_entropy opt-in
  EXPECT_EQ(parse_train_kernels("1"), all);
  EXPECT_EQ(parse_train_kernels("0"), 0);
  EXPECT_EQ(parse_train_kernels("all"), all | static_cast<int>(TrainKernel::kCrossEntropy));
  EXPECT_EQ(parse_train_kernels("cross_entropy,rotary"),
            static_cast<int>(TrainKernel::kCrossEntropy) | static_cast<int>(TrainKernel::kRotary));
  EXPECT_EQ(parse_train_kernels("rotary"), static_cast<int>(TrainKernel::kRotary));
  EXPECT_EQ(parse_train_kernels("silu_mul,rms_norm"),
            static_cast<int>(TrainKernel::kSiluMul) | static_cast<int>(TrainKernel::kRmsNorm));
  EXPECT_EQ(parse_train_kernels("add_rms_norm"), static_cast<int>(TrainKernel::kAddRmsNorm));
  EXPECT_THROW(parse_train_kernels("rms_norm,rope"), std::exception);
}

}  // namespace
}  // namespace c3::model::fused
