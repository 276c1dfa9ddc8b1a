// The fused CUDA kernels against their ATen reference paths (model/fused_ops.h), on random
// inputs in fp32, bf16 and fp16. SiLU-and-multiply and RoPE must match bit for bit; RMSNorm may
// sum its squares in another order, so it may differ by one unit in the last place of the
// dtype, rarely. Needs a CUDA build with the kernels (C3_HAVE_CUDA_KERNELS) and a GPU; skipped
// elsewhere (it runs in scripts/device sessions).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "model/fused_ops.h"

namespace {

namespace fused = c3::model::fused;

// GTEST_SKIP returns from the function it is in, so this is a macro.
#define REQUIRE_KERNELS()                                                                  \
  do {                                                                                     \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";                   \
    if (!fused::kernels_enabled()) GTEST_SKIP() << "built without the CUDA kernels";      \
  } while (0)

const at::ScalarType kTypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

at::Tensor randn(at::IntArrayRef shape, at::ScalarType t, double scale = 1.0) {
  return (torch::randn(shape, torch::dtype(at::kFloat)) * scale).to(torch::kCUDA).to(t);
}

TEST(FusedKernels, SiluMulMatchesTheReferenceBitForBit) {
  REQUIRE_KERNELS();
  torch::manual_seed(1);
  for (at::ScalarType t : kTypes) {
    for (auto shape : {std::vector<int64_t>{1, 1, 2 * 8960}, std::vector<int64_t>{3, 5, 2 * 88}}) {
      const at::Tensor gu = randn(shape, t, 4.0);
      const at::Tensor got = fused::silu_mul(gu), want = fused::reference::silu_mul(gu);
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(torch::equal(got, want))
          << t << " max diff " << (got.to(at::kFloat) - want.to(at::kFloat)).abs().max().item<double>();
    }
  }
}

TEST(FusedKernels, RotaryMatchesTheReferenceBitForBitOnStridedInput) {
  REQUIRE_KERNELS();
  torch::manual_seed(2);
  for (at::ScalarType t : kTypes) {
    const int64_t B = 2, T = 5, H = 4, D = 64;
    // As attention makes q: a projection viewed [B, T, H, D], then transposed to [B, H, T, D].
    const at::Tensor x = randn({B, T, H, D}, t).transpose(1, 2);
    const at::Tensor pos = torch::randint(0, 4000, {B, T}, torch::kLong).to(torch::kCUDA);
    const at::Tensor inv = torch::rand({D / 2}).to(torch::kCUDA);
    const at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * inv;
    const at::Tensor emb = torch::cat({freqs, freqs}, -1);
    const at::Tensor cos = emb.cos(), sin = emb.sin();
    const at::Tensor got = fused::rotary(x, cos, sin), want = fused::reference::rotary(x, cos, sin);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(torch::equal(got, want))
        << t << " max diff " << (got.to(at::kFloat) - want.to(at::kFloat)).abs().max().item<double>();
  }
}

TEST(FusedKernels, RmsNormMatchesTheReferenceToTheLastPlace) {
  REQUIRE_KERNELS();
  torch::manual_seed(3);
  for (at::ScalarType t : kTypes) {
    for (int64_t C : {64, 100, 1536, 2048}) {
      const at::Tensor x = randn({7, 3, C}, t, 3.0);
      const at::Tensor w = (torch::rand({C}) + 0.5).to(torch::kCUDA).to(t);
      const at::Tensor got = fused::rms_norm(x, w, 1e-6), want = fused::reference::rms_norm(x, w, 1e-6);
      ASSERT_EQ(got.sizes(), want.sizes());
      ASSERT_EQ(got.scalar_type(), want.scalar_type());
      const at::Tensor g = got.to(at::kFloat), r = want.to(at::kFloat);
      // One unit in the last place of the dtype at each reference value.
      const double eps = t == at::kFloat ? 1.2e-7 : t == at::kBFloat16 ? 7.9e-3 : 9.8e-4;
      const at::Tensor ulp = r.abs().clamp_min(1e-30) * eps;
      const double worst = ((g - r).abs() / ulp).max().item<double>();
      const double share = (g != r).to(at::kFloat).mean().item<double>();
      std::printf("[rms_norm] %s C=%ld: worst %.2f ulp, %.3f%% differ\n", c10::toString(t), C,
                  worst, 100 * share);
      EXPECT_TRUE(torch::isfinite(g).all().item<bool>());
      EXPECT_LE(worst, 2.0) << t << " C=" << C;
      EXPECT_LE(share, 0.02) << t << " C=" << C;
    }
  }
}

TEST(FusedKernels, RecordingAutogradUsesTheReferencePath) {
  REQUIRE_KERNELS();
  const at::Tensor x = randn({4, 64}, at::kFloat).requires_grad_(true);
  const at::Tensor w = torch::ones({64}, torch::kCUDA).requires_grad_(true);
  const at::Tensor y = fused::rms_norm(x, w, 1e-6);
  ASSERT_TRUE(y.requires_grad()) << "the kernel has no backward: autograd must get the ATen path";
  y.sum().backward();
  EXPECT_TRUE(x.grad().defined() && w.grad().defined());
}

}  // namespace
