// The training paths on the GPU against the reference ops (ctest label `cuda`; skipped without a
// CUDA device or the kernels): the autograd nodes of RMSNorm, RoPE, SiLU-and-multiply (their
// CUDA kernels both ways, on their 16-byte and their scalar paths) and the residual add +
// RMSNorm, the chunked cross-entropy under bf16 autocast (and its memory), the stacked
// projections, flash attention's own grouped-query path, activation checkpointing under
// autocast, and a whole cascade step with every new path on against every one off.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "c3/c3_model.h"
#include "io/torch_compat.h"
#include "model/chunked_cross_entropy.h"
#include "model/add_rms_norm_autograd.h"
#include "model/fused_ops.h"
#include "model/qwen2_model.h"
#include "model/rms_norm_autograd.h"
#include "model/rotary_autograd.h"
#include "model/silu_mul_autograd.h"
#include "model/stacked_rows.h"
#include "testdata.h"

#ifdef C3_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#ifdef C3_HAVE_CUDA_KERNELS
#include "model/cuda/backward_kernels.h"
#include "model/cuda/fused_kernels.h"
#endif

namespace c3::test {
namespace {

namespace fused = model::fused;

// GTEST_SKIP returns from the function it is in, so this is a macro.
#define REQUIRE_CUDA()                                                  \
  do {                                                                  \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)
#define REQUIRE_KERNELS()                                                            \
  do {                                                                               \
    REQUIRE_CUDA();                                                                  \
    if (!fused::kernels_enabled()) GTEST_SKIP() << "built without the CUDA kernels"; \
  } while (0)

const at::ScalarType kTypes[] = {at::kFloat, at::kBFloat16};

at::Tensor randn(at::IntArrayRef shape, at::ScalarType t, double scale = 1.0) {
  return (torch::randn(shape) * scale).to(torch::kCUDA).to(t);
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

using Op = std::function<at::Tensor(const std::vector<at::Tensor>&)>;

// Output and gradients of `op` on fresh leaf copies of `inputs`, backpropagating `g`.
std::vector<at::Tensor> value_and_grads(const Op& op, const std::vector<at::Tensor>& inputs,
                                        const at::Tensor& g) {
  std::vector<at::Tensor> leaves;
  for (const auto& x : inputs) leaves.push_back(x.detach().clone().requires_grad_(true));
  const at::Tensor y = op(leaves);
  y.backward(g);
  std::vector<at::Tensor> out{y.detach()};
  for (const auto& l : leaves) out.push_back(l.grad());
  return out;
}

// Node vs reference on the GPU; returns the worst relative difference of each output/gradient.
std::vector<double> compare(const Op& node, const Op& ref, const std::vector<at::Tensor>& inputs) {
  const at::Tensor probe = ref(inputs);
  const at::Tensor g = randn(probe.sizes(), probe.scalar_type());
  const auto got = value_and_grads(node, inputs, g), want = value_and_grads(ref, inputs, g);
  std::vector<double> rel;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].sizes(), want[i].sizes());
    EXPECT_EQ(got[i].scalar_type(), want[i].scalar_type());
    rel.push_back(max_abs(got[i], want[i]) / std::max(1e-30, want[i].abs().max().item<double>()));
  }
  return rel;
}

TEST(CudaTrainOps, RmsNormKernelsMatchAutogradOfTheReference) {
  REQUIRE_KERNELS();
  torch::manual_seed(1);
  for (at::ScalarType t : kTypes) {
    for (int64_t C : {64, 100, 1024, 2048}) {
      const at::Tensor x = randn({7, 33, C}, t, 3.0),
                       w = (torch::rand({C}) + 0.5).to(torch::kCUDA).to(t);
      const auto rel = compare(
          [](const auto& v) { return fused::rms_norm_autograd(v[0], v[1], 1e-6); },
          [](const auto& v) { return fused::reference::rms_norm(v[0], v[1], 1e-6); }, {x, w});
      std::printf("[rms_norm] %s C=%ld: rel diff value %.2g grad_x %.2g grad_w %.2g\n",
                  c10::toString(t), C, rel[0], rel[1], rel[2]);
      const double tol = t == at::kFloat ? 1e-5 : 2e-2;  // bf16: the reference rounds in between
      for (double r : rel) EXPECT_LE(r, tol) << c10::toString(t) << " C=" << C;
    }
  }
}

TEST(CudaTrainOps, RotaryKernelsMatchAutogradOfTheReferenceBitForBit) {
  REQUIRE_KERNELS();
  torch::manual_seed(2);
  const int64_t B = 3, T = 37, H = 4, Hkv = 2, D = 64;
  const at::Tensor pos = torch::randint(0, 4000, {B, T}, torch::kLong).to(torch::kCUDA);
  const at::Tensor inv = torch::rand({D / 2}).to(torch::kCUDA);
  const at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * inv;
  const at::Tensor emb = torch::cat({freqs, freqs}, -1);
  const at::Tensor cos = emb.cos(), sin = emb.sin();
  for (at::ScalarType t : kTypes) {
    // q and k as the stacked projection makes them: splits of [B, T, (H + 2 Hkv) D], viewed and
    // transposed to [B, H, T, D].
    const at::Tensor qkv = randn({B, T, (H + 2 * Hkv) * D}, t);
    const Op node = [&](const auto& v) {
      const auto parts = v[0].split_with_sizes({H * D, Hkv * D, Hkv * D}, -1);
      return fused::rotary_autograd(parts[0].view({B, T, H, D}).transpose(1, 2), cos, sin);
    };
    const Op ref = [&](const auto& v) {
      const auto parts = v[0].split_with_sizes({H * D, Hkv * D, Hkv * D}, -1);
      return fused::reference::rotary(parts[0].view({B, T, H, D}).transpose(1, 2), cos, sin);
    };
    const auto rel = compare(node, ref, {qkv});
    std::printf("[rotary] %s: rel diff value %.2g grad %.2g\n", c10::toString(t), rel[0], rel[1]);
    EXPECT_EQ(rel[0], 0) << c10::toString(t);
    EXPECT_EQ(rel[1], 0) << c10::toString(t);
  }
}

TEST(CudaTrainOps, SiluMulKernelsMatchAutogradOfTheReference) {
  REQUIRE_KERNELS();
  torch::manual_seed(3);
  for (at::ScalarType t : kTypes) {
    const at::Tensor gu = randn({5, 41, 2 * 704}, t, 4.0);
    const Op node = [](const auto& v) { return fused::silu_mul_autograd(v[0]); };
    const Op ref = [](const auto& v) { return fused::reference::silu_mul(v[0]); };
    const at::Tensor g = randn({5, 41, 704}, t);
    const auto got = value_and_grads(node, {gu}, g), want = value_and_grads(ref, {gu}, g);
    // The forward kernel is bit for bit (model_fused_ops_test). The backward's SiLU derivative
    // may contract a multiply-add where ATen's does not; near its zero (gate ~ -1.28) that is
    // many ulps of a tiny value, so the bound is one ulp of the gradient's scale.
    EXPECT_TRUE(torch::equal(got[0], want[0])) << c10::toString(t);
    const double rel = max_abs(got[1], want[1]) / want[1].abs().max().item<double>();
    const double share = (got[1] != want[1]).to(at::kFloat).mean().item<double>();
    std::printf("[silu_mul] %s: grad max diff %.2g of its scale, %.2g%% of elements differ\n",
                c10::toString(t), rel, 100 * share);
    EXPECT_LE(rel, t == at::kFloat ? 1e-6 : 7.9e-3) << c10::toString(t);
  }
}

#ifdef C3_HAVE_CUDA_KERNELS
// A contiguous copy of x that starts one element past a 16-byte boundary: the kernels' 16-byte
// accesses don't fit it, so they take their scalar path.
at::Tensor shifted_copy(const at::Tensor& x) {
  const at::Tensor buf = at::empty({x.numel() + 1}, x.options());
  at::Tensor y = buf.narrow(0, 1, x.numel()).view(x.sizes());
  y.copy_(x);
  return y;
}

// Both paths of the SiLU·mul kernels: 16 bytes a thread where rows allow it (I = 2816, also for
// decode's 1 to 4 rows; I = 100 in fp32), the scalar path where not (I = 100 in bf16, I = 99, a
// shifted copy). Values bit for bit against the reference; gradients as the test above, and bit
// for bit between the two paths on the same input.
TEST(CudaTrainOps, SiluMulKernelsTakeTheVectorAndTheScalarPathAlike) {
  REQUIRE_KERNELS();
  torch::manual_seed(5);
  const Op ref = [](const auto& v) { return fused::reference::silu_mul(v[0]); };
  const std::pair<int64_t, int64_t> shapes[] = {{1, 2816}, {4, 2816}, {37, 2816}, {37, 100},
                                                {5, 99}};
  for (at::ScalarType t : kTypes) {
    for (const auto& [N, I] : shapes) {
      const at::Tensor gu = randn({N, 2 * I}, t, 4.0), g = randn({N, I}, t);
      const auto want = value_and_grads(ref, {gu}, g);
      const at::Tensor shifted = shifted_copy(gu);
      for (const at::Tensor& x : {gu, shifted}) {
        EXPECT_TRUE(torch::equal(fused::cuda::silu_mul(x), want[0]))
            << c10::toString(t) << " N=" << N << " I=" << I;
        const at::Tensor grad = fused::cuda::silu_mul_backward(g, x);
        const double rel = max_abs(grad, want[1]) / want[1].abs().max().item<double>();
        EXPECT_LE(rel, t == at::kFloat ? 1e-6 : 7.9e-3) << c10::toString(t) << " I=" << I;
      }
      EXPECT_TRUE(torch::equal(fused::cuda::silu_mul_backward(g, gu),
                               fused::cuda::silu_mul_backward(g, shifted)))
          << c10::toString(t) << " N=" << N << " I=" << I;
    }
  }
}

// Both paths of the RoPE kernels against autograd through the reference, bit for bit. 16 bytes a
// thread: contiguous x, q and k of a stacked projection, one position (decode), D = 32. Scalar:
// a head dim strided in memory (sd != 1), a shifted copy, D = 8 in bf16 (half a row is less than
// a pack); backward also on a gradient with a strided head dim or shifted, through the kernel.
TEST(CudaTrainOps, RotaryKernelsTakeTheVectorAndTheScalarPathAlike) {
  REQUIRE_KERNELS();
  torch::manual_seed(6);
  struct Case {
    const char* what;
    int64_t B, T, D;
    std::function<at::Tensor(int64_t B, int64_t T, int64_t D, at::ScalarType t)> leaf;
    std::function<at::Tensor(const at::Tensor& leaf, int64_t B, int64_t T, int64_t D)> view;
  };
  const int64_t H = 4, Hkv = 2;
  const auto contiguous = [&](int64_t B, int64_t T, int64_t D, at::ScalarType t) {
    return randn({B, H, T, D}, t);
  };
  const auto as_is = [](const at::Tensor& x, int64_t, int64_t, int64_t) { return x; };
  const auto qkv = [&](int64_t B, int64_t T, int64_t D, at::ScalarType t) {
    return randn({B, T, (H + 2 * Hkv) * D}, t);
  };
  const auto k_of_qkv = [&](const at::Tensor& x, int64_t B, int64_t T, int64_t D) {
    const auto parts = x.split_with_sizes({H * D, Hkv * D, Hkv * D}, -1);
    return parts[1].view({B, T, Hkv, D}).transpose(1, 2);
  };
  const Case cases[] = {
      {"contiguous", 3, 37, 64, contiguous, as_is},
      {"k of qkv", 3, 37, 64, qkv, k_of_qkv},
      {"one position", 2, 1, 64, contiguous, as_is},
      {"D=32", 2, 9, 32, contiguous, as_is},
      {"D=8", 2, 9, 8, contiguous, as_is},
      {"strided head dim", 3, 37, 64,
       [&](int64_t B, int64_t T, int64_t D, at::ScalarType t) { return randn({B, H, D, T}, t); },
       [](const at::Tensor& x, int64_t, int64_t, int64_t) { return x.transpose(2, 3); }},
      {"shifted", 3, 37, 64,
       [&](int64_t B, int64_t T, int64_t D, at::ScalarType t) {
         return randn({B * H * T * D + 1}, t);
       },
       [&](const at::Tensor& x, int64_t B, int64_t T, int64_t D) {
         return x.narrow(0, 1, B * H * T * D).view({B, H, T, D});
       }},
  };
  for (at::ScalarType t : kTypes) {
    for (const Case& c : cases) {
      const at::Tensor pos = torch::randint(0, 4000, {c.B, c.T}, torch::kLong).to(torch::kCUDA);
      const at::Tensor inv = torch::rand({c.D / 2}).to(torch::kCUDA);
      const at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * inv;
      const at::Tensor emb = torch::cat({freqs, freqs}, -1);
      const at::Tensor cos = emb.cos(), sin = emb.sin();
      const Op node = [&](const auto& v) {
        return fused::rotary_autograd(c.view(v[0], c.B, c.T, c.D), cos, sin);
      };
      const Op ref = [&](const auto& v) {
        return fused::reference::rotary(c.view(v[0], c.B, c.T, c.D), cos, sin);
      };
      const at::Tensor x = c.leaf(c.B, c.T, c.D, t);
      const auto rel = compare(node, ref, {x});
      EXPECT_EQ(rel[0], 0) << c10::toString(t) << " " << c.what;
      EXPECT_EQ(rel[1], 0) << c10::toString(t) << " " << c.what;
      // The backward kernel on gradients it can't read 16 bytes at a time.
      const at::Tensor xv = c.view(x, c.B, c.T, c.D);
      const at::Tensor g = randn({xv.size(0), xv.size(3), xv.size(1), xv.size(2)}, t);
      for (const at::Tensor& gs : {g.permute({0, 2, 3, 1}), shifted_copy(g.permute({0, 2, 3, 1}))}) {
        const at::Tensor want = value_and_grads(
            [&](const auto& v) { return fused::reference::rotary(v[0], cos, sin); }, {xv}, gs)[1];
        EXPECT_TRUE(torch::equal(fused::cuda::rotary_backward(gs, cos, sin), want))
            << c10::toString(t) << " " << c.what;
      }
    }
  }
}
#endif

// The residual add + RMSNorm node's kernels against autograd through the unfused ops (the add,
// the reference norm, the cast of its output), with both outputs read: h by the residual stream,
// y by a projection. Rows as wide as the kernels take, and a width they don't (100: the node's
// ATen path).
TEST(CudaTrainOps, AddRmsNormKernelsMatchAutogradOfTheUnfusedOps) {
  REQUIRE_KERNELS();
  torch::manual_seed(5);
  struct Case {
    at::ScalarType x, delta, y;
    double tol;
  };
  const Case cases[] = {{at::kFloat, at::kBFloat16, at::kBFloat16, 2e-2},  // bf16 autocast
                        {at::kFloat, at::kFloat, at::kFloat, 1e-5},
                        {at::kBFloat16, at::kBFloat16, at::kBFloat16, 2e-2}};
  for (const Case& c : cases) {
    for (int64_t C : {64, 100, 512, 1024, 1536, 4096, 8192}) {
      const at::Tensor x = randn({7, 33, C}, c.x, 3.0), delta = randn({7, 33, C}, c.delta);
      const at::Tensor w = (torch::rand({C}) + 0.5).to(torch::kCUDA).to(c.x);
      const at::ScalarType yt = c.y;
      const auto both = [](const at::Tensor& h, const at::Tensor& y) {
        return h * 0.75 + y.to(h.scalar_type()) * 1.5;
      };
      const auto rel = compare(
          [&](const auto& v) {
            const auto [h, y] = fused::add_rms_norm_autograd(v[0], v[1], v[2], 1e-6, yt);
            return both(h, y);
          },
          [&](const auto& v) {
            const at::Tensor h = v[0] + v[1];
            return both(h, fused::reference::rms_norm(h, v[2], 1e-6).to(yt));
          },
          {x, delta, w});
      std::printf("[add_rms_norm] %s + %s -> %s C=%ld: rel diff value %.2g grad_x %.2g "
                  "grad_delta %.2g grad_w %.2g\n",
                  c10::toString(c.x), c10::toString(c.delta), c10::toString(c.y), C, rel[0],
                  rel[1], rel[2], rel[3]);
      for (double r : rel) EXPECT_LE(r, c.tol) << c10::toString(c.x) << " C=" << C;
    }
  }
}

// Inside a decoder layer under bf16 autocast, training takes the node and hands the projections
// bf16 (the cast they make anyway); C3_TRAIN_KERNELS without add_rms_norm gives the unfused ops
// and an fp32 norm.
TEST(CudaTrainOps, AddRmsNormDispatchUnderAutocastGivesTheProjectionsBf16) {
  REQUIRE_KERNELS();
  if (!fused::train_kernel_enabled(fused::TrainKernel::kAddRmsNorm))
    GTEST_SKIP() << "C3_TRAIN_KERNELS leaves add_rms_norm off";
  const at::Tensor x = randn({4, 64}, at::kFloat).requires_grad_(true);
  const at::Tensor d = randn({4, 64}, at::kBFloat16).requires_grad_(true);
  const at::Tensor w = torch::ones({64}, torch::kCUDA).requires_grad_(true);
  compat::AutocastGuard autocast(true, x.device());
  const auto [h, y] = fused::add_rms_norm_before_linear(x, d, w, 1e-6);
  EXPECT_NE(std::string(h.grad_fn()->name()).find("AddRmsNorm"), std::string::npos);
  EXPECT_EQ(h.scalar_type(), at::kFloat);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  EXPECT_EQ(fused::add_rms_norm(x, d, w, 1e-6).second.scalar_type(), at::kFloat);  // a final norm
  const int chosen = fused::train_kernels();
  fused::set_train_kernels(fused::kAllTrainKernels &
                           ~static_cast<int>(fused::TrainKernel::kAddRmsNorm));
  const auto [h_off, y_off] = fused::add_rms_norm_before_linear(x, d, w, 1e-6);
  fused::set_train_kernels(chosen);
  EXPECT_EQ(std::string(h_off.grad_fn()->name()).find("AddRmsNorm"), std::string::npos);
  EXPECT_EQ(y_off.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(y_off, y.to(at::kFloat), 1e-2, 1e-2));  // the sums' order may differ
}

// Under autograd the dispatch takes the nodes (one node per op), and C3_TRAIN_KERNELS=0 (the
// switch) gives back the reference ops.
TEST(CudaTrainOps, TrainingDispatchTakesTheNodesUnlessSwitchedOff) {
  REQUIRE_KERNELS();
  const at::Tensor x = randn({4, 64}, at::kFloat).requires_grad_(true);
  const at::Tensor w = torch::ones({64}, torch::kCUDA).requires_grad_(true);
  if (!fused::train_kernel_enabled(fused::TrainKernel::kRmsNorm))
    GTEST_SKIP() << "C3_TRAIN_KERNELS leaves rms_norm off";
  const std::string on = fused::rms_norm(x, w, 1e-6).grad_fn()->name();
  EXPECT_NE(on.find("RmsNormFunction"), std::string::npos) << on;
  const int chosen = fused::train_kernels();
  fused::set_train_kernels(fused::kAllTrainKernels &
                           ~static_cast<int>(fused::TrainKernel::kRmsNorm));
  const std::string off = fused::rms_norm(x, w, 1e-6).grad_fn()->name();
  fused::set_train_kernels(chosen);
  EXPECT_EQ(off.find("RmsNormFunction"), std::string::npos) << off;
}

int64_t peak_allocated() {
#ifdef C3_HAVE_CUDA
  return c10::cuda::CUDACachingAllocator::getDeviceStats(0).allocated_bytes[0].peak;
#else
  return -1;
#endif
}
void reset_peak() {
#ifdef C3_HAVE_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(0);
#endif
}

// bf16 autocast, a paper-size vocabulary: the same loss and gradients as the whole logits, and
// the peak memory of forward + backward well below theirs (4,100 x 151,936 fp32 = 2.5 GB).
TEST(CudaTrainOps, ChunkedCrossEntropyUnderAutocastMatchesAndSavesMemory) {
  REQUIRE_CUDA();
  torch::manual_seed(4);
  const int64_t N = 4100, C = 256, V = 151936;
  const at::Tensor h0 = randn({N, C}, at::kFloat), w0 = randn({V, C}, at::kFloat, 0.05);
  const at::Tensor y = torch::randint(0, V, {N}, torch::kLong).to(torch::kCUDA);
  struct R {
    double loss;
    at::Tensor gh, gw;
    int64_t peak;
  };
  auto run = [&](int mode) {  // 0 whole logits, 1 chunked, 2 chunked recompute
    at::Tensor h = h0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
    torch::cuda::synchronize();
    reset_peak();
    const int64_t base = peak_allocated();
    at::Tensor loss;
    {
      compat::AutocastGuard ac(true, torch::kCUDA);
      loss = mode == 0 ? model::full_cross_entropy(h, w, y).loss
                       : model::chunked_cross_entropy(h, w, y, {0, false, mode == 2}).loss;
    }
    loss.backward();
    torch::cuda::synchronize();
    return R{loss.item<double>(), h.grad(), w.grad(), peak_allocated() - base};
  };
  const R want = run(0);
  for (int mode : {1, 2}) {
    const R got = run(mode);
    std::printf("[chunked ce] mode %d: loss %.6f (whole %.6f); peak %.2f GB (whole %.2f GB)\n",
                mode, got.loss, want.loss, got.peak / 1e9, want.peak / 1e9);
    EXPECT_NEAR(got.loss, want.loss, 1e-4 * want.loss);
    EXPECT_LE(max_abs(got.gh, want.gh), 2e-2 * want.gh.abs().max().item<double>());
    EXPECT_LE(max_abs(got.gw, want.gw), 2e-2 * want.gw.abs().max().item<double>());
#ifdef C3_HAVE_CUDA
    EXPECT_LT(got.peak, want.peak / 2) << "mode " << mode;
#endif
  }
}

// The cross-entropy row kernel (C3_TRAIN_KERNELS with cross_entropy) against the chunk's ATen
// ops: loss, hits and both gradients, under bf16 autocast and in fp32, with ignored rows, at a
// vocabulary the 16-byte loads take (4,096) and one they do not (4,099).
TEST(CudaTrainOps, CrossEntropyKernelMatchesTheChunkOps) {
  REQUIRE_KERNELS();
  for (const int64_t V : {int64_t{4096}, int64_t{4099}}) {
    for (const bool autocast : {true, false}) {
      torch::manual_seed(6);
      const int64_t N = 777, C = 128;
      const at::Tensor h0 = randn({N, C}, at::kFloat), w0 = randn({V, C}, at::kFloat, 0.2);
      at::Tensor y = torch::randint(0, V, {N}, torch::kLong).to(torch::kCUDA);
      // Every third row's target is its argmax (hits neither 0 nor N); every seventh is ignored.
      const at::Tensor best = at::linear(h0, w0).argmax(-1);
      y.slice(0, 0, N, 3).copy_(best.slice(0, 0, N, 3));
      y.slice(0, 0, N, 7).fill_(model::kIgnoreTarget);
      auto run = [&](bool kernel) {
        const int chosen = fused::train_kernels();
        const int ce = static_cast<int>(fused::TrainKernel::kCrossEntropy);
        fused::set_train_kernels(kernel ? chosen | ce : chosen & ~ce);
        at::Tensor h = h0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true);
        model::CrossEntropyOutput out;
        {
          compat::AutocastGuard ac(autocast, torch::kCUDA);
          out = model::chunked_cross_entropy(h, w, y, {/*chunk_rows=*/300, /*sum=*/true});
        }
        out.loss.backward();
        fused::set_train_kernels(chosen);
        return std::make_tuple(out.loss.item<double>(), out.n_correct.item<int64_t>(), h.grad(),
                               w.grad());
      };
      const auto [loss_k, hits_k, gh_k, gw_k] = run(true);
      const auto [loss_r, hits_r, gh_r, gw_r] = run(false);
      const double dh = max_abs(gh_k, gh_r) / gh_r.abs().max().item<double>();
      const double dw = max_abs(gw_k, gw_r) / gw_r.abs().max().item<double>();
      std::printf("[ce kernel] V %ld %s: loss %.6f (ops %.6f), hits %ld (%ld), grad rel diff "
                  "hidden %.3g weight %.3g\n",
                  static_cast<long>(V), autocast ? "bf16" : "fp32", loss_k, loss_r,
                  static_cast<long>(hits_k), static_cast<long>(hits_r), dh, dw);
      EXPECT_NEAR(loss_k, loss_r, 1e-5 * std::abs(loss_r));
      EXPECT_EQ(hits_k, hits_r);
      EXPECT_GT(hits_r, 0);
      const double tol = autocast ? 1e-2 : 1e-5;  // bf16: a gradient may round the other way
      EXPECT_LT(dh, tol);
      EXPECT_LT(dw, tol);
    }
  }
}

model::Qwen2Config small_config() {
  model::Qwen2Config c;
  c.vocab_size = 512;
  c.hidden_size = 256;
  c.intermediate_size = 704;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  return c;
}

// One bf16-autocast step of a small Qwen2 on the GPU; gradients by parameter name.
std::map<std::string, at::Tensor> grads_of(model::Qwen2ForCausalLM& m, const at::Tensor& ids,
                                           bool autocast = true) {
  m->train();
  m->zero_grad();
  at::Tensor loss;
  {
    compat::AutocastGuard ac(autocast, torch::kCUDA);
    const at::Tensor logits = m->forward(ids);
    loss = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), ids.reshape({-1}));
  }
  loss.backward();
  std::map<std::string, at::Tensor> g;
  for (const auto& p : m->named_parameters()) g[p.key()] = p.value().grad().clone();
  return g;
}

model::Qwen2ForCausalLM small_model(uint64_t seed) {
  torch::manual_seed(seed);
  model::Qwen2ForCausalLM m(small_config());
  model::init_weights(*m, 0.05);
  m->to(torch::kCUDA);
  return m;
}

// Largest gradient difference relative to the gradient's own scale, over all parameters.
double worst_rel(const std::map<std::string, at::Tensor>& a,
                 const std::map<std::string, at::Tensor>& b) {
  double worst = 0;
  for (const auto& [k, g] : b)
    worst = std::max(worst, max_abs(a.at(k), g) / std::max(1e-30, g.abs().max().item<double>()));
  return worst;
}

// Grouped-query attention through flash attention's own GQA (k/v read once per group) against
// the same attention on k/v repeated per query head: values and gradients.
TEST(CudaTrainOps, GroupedFlashAttentionMatchesRepeatedKv) {
  REQUIRE_CUDA();
  if (!compat::kSdpaGqa) GTEST_SKIP() << "LibTorch before 2.5 has no enable_gqa";
  compat::prefer_flash_attention();  // as c3 train does: otherwise cuDNN is chosen on Hopper
  const int64_t B = 2, H = 16, Hkv = 4, T = 256, D = 64, rep = H / Hkv;
  torch::manual_seed(11);
  const at::Tensor q = randn({B, H, T, D}, at::kBFloat16).requires_grad_(true);
  const at::Tensor k = randn({B, Hkv, T, D}, at::kBFloat16).requires_grad_(true);
  const at::Tensor v = randn({B, Hkv, T, D}, at::kBFloat16).requires_grad_(true);
  const at::Tensor g = randn({B, H, T, D}, at::kBFloat16);
  auto grads = [&](const at::Tensor& out) {
    return torch::autograd::grad({out}, {q, k, v}, {g});
  };
  const at::Tensor got = compat::sdpa_grouped_flash(q, k, v, at::Tensor(), /*is_causal=*/true);
  ASSERT_TRUE(got.defined()) << "flash attention declined enable_gqa for bf16 causal inputs";
  auto repeated = [&](const at::Tensor& x) {
    return x.unsqueeze(2).expand({B, Hkv, rep, T, D}).reshape({B, H, T, D});
  };
  const at::Tensor want = compat::sdpa(q, repeated(k), repeated(v), at::Tensor(), true);
  const auto gg = grads(got), gw = grads(want);
  auto rel = [](const at::Tensor& a, const at::Tensor& b) {
    return max_abs(a, b) / std::max(1e-30, b.abs().max().item<double>());
  };
  const double d_out = rel(got, want), d_q = rel(gg[0], gw[0]);
  const double d_k = rel(gg[1], gw[1]), d_v = rel(gg[2], gw[2]);
  std::printf("[gqa] rel diff out %.3g dq %.3g dk %.3g dv %.3g\n", d_out, d_q, d_k, d_v);
  EXPECT_LT(d_out, 1e-2);
  EXPECT_LT(d_q, 1e-2);
  EXPECT_LT(d_k, 2e-2);
  EXPECT_LT(d_v, 2e-2);
}

TEST(CudaTrainOps, StackedProjectionsMatchTheSeparateOnes) {
  REQUIRE_CUDA();
  auto plain = small_model(5), stacked = small_model(5);
  stacked->fuse_projections();
  const at::Tensor ids = torch::randint(0, 512, {4, 96}, torch::kLong).to(torch::kCUDA);
  const auto want = grads_of(plain, ids), got = grads_of(stacked, ids);
  const double d = worst_rel(got, want);
  std::printf("[stacked] bf16 autocast: worst relative grad diff %.3g\n", d);
  EXPECT_LT(d, 3e-2);
}

// Recomputation in backward runs under the forward's autocast: its gradients are the plain bf16
// ones (up to kernels' nondeterminism), far closer than those of an fp32 recompute would be.
TEST(CudaTrainOps, ActivationCheckpointingRecomputesUnderAutocast) {
  REQUIRE_CUDA();
  auto m = small_model(6);
  const at::Tensor ids = torch::randint(0, 512, {4, 96}, torch::kLong).to(torch::kCUDA);
  const auto plain = grads_of(m, ids);
  const auto fp32 = grads_of(m, ids, /*autocast=*/false);
  m->model->activation_checkpointing = true;
  const auto ckpt = grads_of(m, ids);
  m->model->activation_checkpointing = false;
  const double d_ckpt = worst_rel(ckpt, plain), d_fp32 = worst_rel(fp32, plain);
  std::printf("[checkpoint] recomputed vs plain bf16 %.3g; fp32 vs bf16 %.3g\n", d_ckpt, d_fp32);
  EXPECT_LT(d_ckpt, 0.1 * d_fp32);
}

// c3-tiny on the GPU in bf16 autocast: one training step with the new paths as the environment
// chooses them (by default all on: kernels' autograd nodes, stacked projections, chunked
// cross-entropy; the switches bisect a failure) against all of them off.
TEST(CudaTrainOps, CascadeStepWithEveryNewPathMatchesTheOldOne) {
  REQUIRE_CUDA();
  cascade::LoadedC3 l = cascade::load_c3(testdata("c3/c3-tiny").string(), at::kFloat, torch::kCUDA);
  const std::vector<std::vector<int32_t>> ctx = {
      l.tok->encode("The quick brown fox jumps over the lazy dog, again and again."),
      l.tok->encode("Cascades compress text into a few latent vectors and read it back.")};
  const int kernels = fused::train_kernels();
  const bool stacked = model::stacked_training_enabled();
  const char* ce_env = std::getenv("C3_CHUNKED_CE");
  const std::string ce = ce_env ? ce_env : "1";
  auto step = [&](bool on) {
    setenv("C3_CHUNKED_CE", on ? ce.c_str() : "0", 1);
    fused::set_train_kernels(on ? kernels : 0);
    model::set_stacked_training_enabled(on && stacked);
    l.model->train();
    l.model->zero_grad();
    at::Tensor loss;
    {
      compat::AutocastGuard ac(true, torch::kCUDA);
      loss = l.model->reconstruction_loss(ctx).loss;
    }
    loss.backward();
    std::map<std::string, at::Tensor> g;
    for (const auto& p : l.model->named_parameters()) g[p.key()] = p.value().grad().clone();
    setenv("C3_CHUNKED_CE", ce.c_str(), 1);
    fused::set_train_kernels(kernels);
    model::set_stacked_training_enabled(stacked);
    return std::make_pair(loss.item<double>(), g);
  };
  const auto old_path = step(false), new_path = step(true);
  const double d = worst_rel(new_path.second, old_path.second);
  std::printf("[cascade] loss new %.5f old %.5f; worst relative grad diff %.3g\n", new_path.first,
              old_path.first, d);
  EXPECT_NEAR(new_path.first, old_path.first, 1e-2 * old_path.first);
  EXPECT_LT(d, 5e-2);
}

}  // namespace
}  // namespace c3::test
