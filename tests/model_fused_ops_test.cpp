// The fused CUDA kernels against their ATen reference paths (model/fused_ops.h), on random
// inputs in fp32, bf16 and fp16. SiLU-and-multiply and RoPE must match bit for bit; RMSNorm may
// sum its squares in another order, so it may differ by one unit in the last place of the
// dtype, rarely. Needs a CUDA build with the kernels (C3_HAVE_CUDA_KERNELS) and a GPU; skipped
// elsewhere (scripts/device/golden_cuda.sh runs it).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "model/fused_ops.h"
#include "model/kv_cache.h"
#include "model/qwen2_model.h"

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
      // In fp32 a row's sum of squares in another order moves rsqrt by an ulp, and with it many
      // of the row's values; rounding to bf16 / fp16 hides that almost always.
      if (t != at::kFloat) {
        EXPECT_LE(share, 0.02) << t << " C=" << C;
      }
    }
  }
}

// ---- decode-step kernels (bf16 / fp16) ------------------------------------------------------

const at::ScalarType kHalfTypes[] = {at::kBFloat16, at::kHalf};

// Worst |got - exact| over the tensor, where exact is computed in fp64 from the same inputs.
double worst_error(const at::Tensor& got, const at::Tensor& exact64) {
  return (got.to(at::kDouble) - exact64).abs().max().item<double>();
}

// The GEMV must be as accurate as cuBLAS: both accumulate in fp32 and round once, so each is
// within about half an ulp of the exact product; a wrong index or a lost term is far beyond.
TEST(FusedKernels, GemvIsAsAccurateAsCublas) {
  REQUIRE_KERNELS();
  torch::manual_seed(4);
  struct Shape { int64_t rows, K, N; bool bias; };
  for (at::ScalarType t : kHalfTypes) {
    for (Shape sh : {Shape{1, 2048, 2560, true}, Shape{1, 11008, 72, false}, Shape{3, 64, 100, true},
                     Shape{8, 1536, 264, false}, Shape{5, 2056, 40, true}}) {
      const at::Tensor x = randn({sh.rows, 1, sh.K}, t);
      const at::Tensor w = randn({sh.N, sh.K}, t, 0.05);
      const at::Tensor b = sh.bias ? randn({sh.N}, t) : at::Tensor();
      torch::NoGradGuard ng;
      const at::Tensor got = fused::gemv(x, w, b);
      ASSERT_TRUE(got.defined()) << t << " K=" << sh.K << ": the GEMV did not take these inputs";
      const at::Tensor blas = at::linear(x, w, b);
      ASSERT_EQ(got.sizes(), blas.sizes());
      const at::Tensor exact = at::linear(x.to(at::kDouble), w.to(at::kDouble),
                                          sh.bias ? b.to(at::kDouble) : at::Tensor());
      const double e_got = worst_error(got, exact), e_blas = worst_error(blas, exact);
      std::printf("[gemv] %s rows=%ld K=%ld N=%ld: worst error %.3g (cuBLAS %.3g)\n",
                  c10::toString(t), sh.rows, sh.K, sh.N, e_got, e_blas);
      EXPECT_LE(e_got, 1.5 * e_blas + 1e-6) << t << " K=" << sh.K;
    }
  }
}

TEST(FusedKernels, GemvSiluMulIsAsAccurateAsTheAtenPath) {
  REQUIRE_KERNELS();
  torch::manual_seed(5);
  for (at::ScalarType t : kHalfTypes) {
    for (int64_t rows : {1, 4, 7}) {
      const int64_t K = 1536, I = 904;
      const at::Tensor x = randn({rows, K}, t);
      const at::Tensor gu = randn({2 * I, K}, t, 0.06);
      torch::NoGradGuard ng;
      const at::Tensor got = fused::gemv_silu_mul(x, gu);
      ASSERT_TRUE(got.defined()) << t << ": the GEMV did not take these inputs";
      const at::Tensor aten = fused::silu_mul(at::linear(x, gu));
      ASSERT_EQ(got.sizes(), aten.sizes());
      const at::Tensor both = at::linear(x.to(at::kDouble), gu.to(at::kDouble));
      const at::Tensor g = both.narrow(-1, 0, I), u = both.narrow(-1, I, I);
      const at::Tensor exact = g / (1 + (-g).exp()) * u;
      const double e_got = worst_error(got, exact), e_aten = worst_error(aten, exact);
      std::printf("[gemv silu] %s rows=%ld: worst error %.3g (ATen %.3g)\n", c10::toString(t),
                  rows, e_got, e_aten);
      EXPECT_LE(e_got, 1.5 * e_aten + 1e-6) << t << " rows=" << rows;
    }
  }
}

TEST(FusedKernels, AddRmsNormMatchesTheReference) {
  REQUIRE_KERNELS();
  torch::manual_seed(6);
  for (at::ScalarType t : kHalfTypes) {
    // 100: not a multiple of 8 (the scalar kernel); the rest take 1, 1, 1, 2 and 4 packs a thread
    for (int64_t C : {64, 100, 1536, 2048, 4096, 8192}) {
      const at::Tensor x = randn({5, 3, C}, t, 2.0), d = randn({5, 3, C}, t);
      const at::Tensor w = (torch::rand({C}) + 0.5).to(torch::kCUDA).to(t);
      torch::NoGradGuard ng;
      const auto [h, out] = fused::add_rms_norm(x, d, w, 1e-6);
      const auto [h_ref, out_ref] = fused::reference::add_rms_norm(x, d, w, 1e-6);
      EXPECT_TRUE(torch::equal(h, h_ref)) << t << " C=" << C << ": the residual add must round as ATen's";
      const at::Tensor diff = (out.to(at::kFloat) - out_ref.to(at::kFloat)).abs();
      const double ulp = t == at::kBFloat16 ? 7.9e-3 : 9.8e-4;
      const double worst = (diff / (out_ref.to(at::kFloat).abs().clamp_min(1e-30) * ulp)).max().item<double>();
      EXPECT_LE(worst, 2.0) << t << " C=" << C;
      EXPECT_LE((diff > 0).to(at::kFloat).mean().item<double>(), 0.02) << t << " C=" << C;
      const auto [h0, out0] = fused::add_rms_norm(x, at::Tensor(), w, 1e-6);  // no delta: h = x
      EXPECT_TRUE(torch::equal(h0, x));
      EXPECT_TRUE(torch::allclose(out0.to(at::kFloat), fused::reference::rms_norm(x, w, 1e-6).to(at::kFloat), 0.02, 1e-3));
    }
  }
}

// One decode step against the ATen ops it replaces (attention.cpp's static path): RoPE, the
// cache write at the slot, masked grouped attention. A short cache, and a long one at the
// paper decoder's heads, with the slot late and early: with C3_ATTN_SPLIT=1 the long ones take
// clusters of 8 blocks, the early slot leaving most of them without slots.
TEST(FusedKernels, DecodeAttentionMatchesTheAtenOps) {
  REQUIRE_KERNELS();
  torch::manual_seed(7);
  struct Shape {
    int64_t H, Hkv, D, T_max, S, slot;
  };
  for (const Shape sh : {Shape{8, 2, 64, 40, 32, 21}, Shape{16, 2, 128, 1280, 1200, 1100},
                         Shape{16, 2, 128, 1280, 1200, 7}})
  for (at::ScalarType t : kHalfTypes) {
    const int64_t B = 3, H = sh.H, Hkv = sh.Hkv, D = sh.D, T_max = sh.T_max, S = sh.S;
    const int64_t slot = sh.slot;
    const at::Tensor qkv = randn({B, 1, (H + 2 * Hkv) * D}, t);
    at::Tensor k_cache = randn({B, Hkv, T_max, D}, t), v_cache = randn({B, Hkv, T_max, D}, t);
    at::Tensor key_valid = at::ones({B, T_max}, torch::dtype(at::kBool).device(torch::kCUDA));
    key_valid[1].slice(0, 0, 6).fill_(false);  // a left-padded row
    key_valid[2][9] = false;
    const at::Tensor pos = at::tensor({slot, slot - 6, slot}, at::kLong).view({B, 1}).to(torch::kCUDA);
    const at::Tensor inv = (1.0 / at::pow(10000.0, at::arange(0, D, 2, at::kFloat) / D)).to(torch::kCUDA);
    const at::Tensor freqs = pos.to(at::kFloat).unsqueeze(-1) * inv;
    const at::Tensor emb = at::cat({freqs, freqs}, -1);  // [B, 1, D]
    const at::Tensor cos = emb.cos(), sin = emb.sin();
    const at::Tensor slot_t = at::full({1}, slot, torch::dtype(at::kLong).device(torch::kCUDA));
    torch::NoGradGuard ng;

    // Reference: the ATen path on copies of the caches.
    at::Tensor k_ref = k_cache.clone(), v_ref = v_cache.clone();
    const at::Tensor q = fused::reference::rotary(qkv.narrow(-1, 0, H * D).view({B, 1, H, D}).transpose(1, 2), cos, sin);
    const at::Tensor k = fused::reference::rotary(qkv.narrow(-1, H * D, Hkv * D).view({B, 1, Hkv, D}).transpose(1, 2), cos, sin);
    const at::Tensor v = qkv.narrow(-1, (H + Hkv) * D, Hkv * D).view({B, 1, Hkv, D}).transpose(1, 2);
    k_ref.index_copy_(2, slot_t, k);
    v_ref.index_copy_(2, slot_t, v);
    at::Tensor valid = key_valid.clone();
    valid.index_fill_(1, slot_t, true);
    const at::Tensor allowed = (valid.narrow(1, 0, S) & at::arange(S, pos.options()).le(slot)).view({B, 1, 1, S});
    const at::Tensor qd = q.to(at::kDouble).view({B, Hkv, H / Hkv, D});
    at::Tensor scores = at::matmul(qd, k_ref.narrow(2, 0, S).to(at::kDouble).transpose(-1, -2)) / std::sqrt(double(D));
    scores.masked_fill_(allowed.logical_not(), -INFINITY);
    const at::Tensor want = at::matmul(at::softmax(scores, -1), v_ref.narrow(2, 0, S).to(at::kDouble))
                                .reshape({B, 1, H * D});

    at::Tensor kv_valid = valid;  // the model sets the slot valid before the layers run
    const at::Tensor got = fused::decode_attention(qkv, cos, sin, k_cache, v_cache, slot_t, kv_valid, S, H, D);
    ASSERT_TRUE(got.defined()) << t << ": the kernel did not take these inputs";
    EXPECT_TRUE(torch::equal(k_cache, k_ref)) << t << ": the roped key must land in the slot as ATen's";
    EXPECT_TRUE(torch::equal(v_cache, v_ref)) << t;
    const double err = worst_error(got, want);
    std::printf("[decode attention] %s S=%ld slot=%ld: worst error %.3g against fp64\n",
                c10::toString(t), static_cast<long>(S), static_cast<long>(slot), err);
    EXPECT_LT(err, t == at::kBFloat16 ? 1.6e-2 : 2e-3) << t << " S=" << S << " slot=" << slot;
  }
}

// Whole decode steps over a static cache (what a CUDA graph replays) on a small bf16 model: the
// kernels (GEMV, add + RMSNorm, decode attention) against the ATen ops, both measured against
// the same model in fp32.
TEST(FusedKernels, DecodeStepsAreAsAccurateAsTheAtenPath) {
  REQUIRE_KERNELS();
  c3::model::Qwen2Config c;
  c.vocab_size = 304;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  auto make = [&](at::ScalarType t) {
    torch::manual_seed(8);
    c3::model::Qwen2ForCausalLM m(c);
    c3::model::init_weights(*m, 0.05);
    m->eval();
    m->to(torch::kCUDA, t);
    m->fuse_projections();
    return m;
  };
  torch::NoGradGuard ng;
  const int64_t B = 2, P = 10, steps = 6, T_max = 48;
  const at::Tensor prompt = torch::randint(0, c.vocab_size, {B, P}, torch::kLong).to(torch::kCUDA);
  const at::Tensor next = torch::randint(0, c.vocab_size, {steps, B, 1}, torch::kLong).to(torch::kCUDA);
  auto run = [&](c3::model::Qwen2ForCausalLM& m, at::ScalarType t) {
    c3::model::KVCache cache(c, B, T_max, t, torch::kCUDA);
    m->forward(prompt, {{}, {}, &cache});  // prefill, the dynamic way
    cache.enable_static();
    std::vector<at::Tensor> logits;
    for (int64_t i = 0; i < steps; ++i) {
      cache.slot.fill_(cache.len);
      cache.attend_len = 32;
      const at::Tensor pos = at::full({B, 1}, cache.len, prompt.options());
      logits.push_back(m->forward(next[i], {pos, {}, &cache}).to(at::kFloat));
      ++cache.len;
    }
    return at::stack(logits);
  };
  auto m32 = make(at::kFloat);
  const at::Tensor exact = run(m32, at::kFloat);
  for (at::ScalarType t : kHalfTypes) {
    auto m = make(t);
    const at::Tensor with_kernels = run(m, t);
    fused::set_kernels_enabled(false);
    const at::Tensor with_aten = run(m, t);
    fused::set_kernels_enabled(true);
    const double e_k = (with_kernels - exact).abs().max().item<double>();
    const double e_a = (with_aten - exact).abs().max().item<double>();
    std::printf("[decode steps] %s: worst logit error %.3g with the kernels, %.3g with ATen "
                "(logits up to %.3g)\n", c10::toString(t), e_k, e_a,
                exact.abs().max().item<double>());
    EXPECT_TRUE(torch::isfinite(with_kernels).all().item<bool>());
    EXPECT_LE(e_k, 2.0 * e_a + 1e-3) << t;
  }
}

TEST(FusedKernels, RecordingAutogradGetsADifferentiablePath) {
  REQUIRE_KERNELS();
  const at::Tensor x = randn({4, 64}, at::kFloat).requires_grad_(true);
  const at::Tensor w = torch::ones({64}, torch::kCUDA).requires_grad_(true);
  const at::Tensor y = fused::rms_norm(x, w, 1e-6);
  ASSERT_TRUE(y.requires_grad()) << "under autograd: the autograd node or the ATen path";
  y.sum().backward();
  EXPECT_TRUE(x.grad().defined() && w.grad().defined());
}

}  // namespace
