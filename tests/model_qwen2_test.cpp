// Qwen2ForCausalLM against the golden HF outputs (one test per checkpoint), plus synthetic checks
// of the module layout, padding, the KV cache and activation checkpointing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <set>

#include "model/generate.h"
#include "model/qwen2_model.h"
#include "model/rotary.h"
#include "model_golden.h"

namespace c3::test {
namespace {

using model::ForwardInputs;
using model::KVCache;
using model::Qwen2ForCausalLM;

constexpr double kFp32Tol = 1e-4;  // fp32 on CPU vs the fp32 golden values
constexpr double kBf16Tol = 0.1;   // bf16 activations vs the fp32 golden values (tiny models)

class Qwen2Golden : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    torch::NoGradGuard no_grad;
    model_ = model::load_qwen2(golden_dir(GetParam()), at::kFloat, at::kCPU);
    expected_ = expected(GetParam());
  }
  void report(const char* what, double diff) {
    std::printf("[%s] %s: max abs diff %.3g\n", GetParam().c_str(), what, diff);
  }
  Qwen2ForCausalLM model_{nullptr};
  std::shared_ptr<io::SafetensorsFile> expected_;
};

TEST_P(Qwen2Golden, SingleLogits) {
  torch::NoGradGuard no_grad;
  const at::Tensor ids = expected_->tensor("single_ids").unsqueeze(0);  // [1, T]
  const at::Tensor logits = model_->forward(ids)[0];                   // [T, V]
  const double diff = max_abs_diff(logits, expected_->tensor("single_logits"));
  report("single_logits fp32", diff);
  EXPECT_LT(diff, kFp32Tol);
}

TEST_P(Qwen2Golden, BatchLogits) {
  torch::NoGradGuard no_grad;
  const at::Tensor logits = model_->forward(expected_->tensor("batch_ids"));  // [B, T, V]
  const double diff = max_abs_diff(logits, expected_->tensor("batch_logits"));
  report("batch_logits fp32", diff);
  EXPECT_LT(diff, kFp32Tol);
}

TEST_P(Qwen2Golden, LastHiddenNormed) {
  torch::NoGradGuard no_grad;
  const at::Tensor ids = expected_->tensor("single_ids").unsqueeze(0);
  const at::Tensor hidden = model_->hidden(model_->embed(ids), {})[0];  // [T, C]
  const double diff = max_abs_diff(hidden, expected_->tensor("last_hidden_normed"));
  report("last_hidden_normed fp32", diff);
  EXPECT_LT(diff, kFp32Tol);
}

// Prefill a prefix, then feed the rest in a chunk and one token at a time: every logit must equal
// the full recompute (and the golden values).
TEST_P(Qwen2Golden, KVCacheDecodeMatchesFullRecompute) {
  torch::NoGradGuard no_grad;
  const at::Tensor ids = expected_->tensor("single_ids").unsqueeze(0);  // [1, T]
  const int64_t T = ids.size(1);
  const at::Tensor full = model_->forward(ids)[0];  // [T, V]

  KVCache cache(model_->config(), 1, T, at::kFloat, at::kCPU);
  std::vector<at::Tensor> parts;
  parts.push_back(model_->forward(ids.slice(1, 0, 10), {{}, {}, &cache})[0]);   // prefill
  parts.push_back(model_->forward(ids.slice(1, 10, 15), {{}, {}, &cache})[0]);  // a chunk
  for (int64_t t = 15; t < T; ++t) {
    parts.push_back(model_->forward(ids.slice(1, t, t + 1), {{}, {}, &cache})[0]);  // decode
  }
  EXPECT_EQ(cache.len, T);
  const at::Tensor cached = at::cat(parts, 0);
  const double diff = max_abs_diff(cached, full);
  report("kv-cache decode vs full recompute", diff);
  EXPECT_LT(diff, kFp32Tol);
  EXPECT_LT(max_abs_diff(cached, expected_->tensor("single_logits")), kFp32Tol);
}

// Rows of different lengths, left-padded into one batch, give the logits of each row alone.
TEST_P(Qwen2Golden, LeftPaddedBatchMatchesEachPromptAlone) {
  torch::NoGradGuard no_grad;
  const at::Tensor batch_ids = expected_->tensor("batch_ids");  // [3, 21]
  const at::Tensor golden = expected_->tensor("batch_logits");  // [3, 21, V]
  const std::vector<int64_t> lens = {21, 13, 6};
  const int64_t P = 21;
  at::Tensor ids = at::zeros({3, P}, at::kLong);
  at::Tensor mask = at::zeros({3, P}, at::kBool);
  at::Tensor pos = at::zeros({3, P}, at::kLong);
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t pad = P - lens[b];
    ids[b].slice(0, pad).copy_(batch_ids[b].slice(0, 0, lens[b]));
    mask[b].slice(0, pad).fill_(true);
    pos[b].slice(0, pad).copy_(at::arange(lens[b]));
  }
  const at::Tensor logits = model_->forward(ids, {pos, mask, nullptr});  // [3, P, V]
  EXPECT_FALSE(logits.isnan().any().item<bool>()) << "padding produced NaN";
  double diff = 0.0;
  for (int64_t b = 0; b < 3; ++b) {
    const at::Tensor row = logits[b].slice(0, P - lens[b]);
    const at::Tensor alone = model_->forward(batch_ids[b].slice(0, 0, lens[b]).unsqueeze(0))[0];
    diff = std::max(diff, max_abs_diff(row, alone));
    diff = std::max(diff, max_abs_diff(row, golden[b].slice(0, 0, lens[b])));
  }
  report("left-padded batch vs alone/golden", diff);
  EXPECT_LT(diff, kFp32Tol);

  // The same through generation: each row's ids equal those generated alone.
  model::GenerationConfig gen;
  gen.max_new_tokens = 8;
  gen.no_repeat_ngram_size = 3;
  std::vector<model::Prompt> prompts;
  for (int64_t b = 0; b < 3; ++b) prompts.push_back({to_ids(batch_ids[b].slice(0, 0, lens[b])), {}});
  const auto together = model::generate(model_, prompts, gen);
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_EQ(together[b], model::generate(model_, {prompts[b]}, gen)[0]) << "row " << b;
  }
}

// bf16 activations on the CPU: a looser tolerance, the diff reported.
TEST_P(Qwen2Golden, Bf16OnCpu) {
  torch::NoGradGuard no_grad;
  auto m = model::load_qwen2(golden_dir(GetParam()), at::kBFloat16, at::kCPU);
  const at::Tensor ids = expected_->tensor("single_ids").unsqueeze(0);
  const double diff = max_abs_diff(m->forward(ids)[0], expected_->tensor("single_logits"));
  const double batch_diff = max_abs_diff(m->forward(expected_->tensor("batch_ids")),
                                         expected_->tensor("batch_logits"));
  report("single_logits bf16 cpu", diff);
  report("batch_logits bf16 cpu", batch_diff);
  EXPECT_LT(diff, kBf16Tol);
  EXPECT_LT(batch_diff, kBf16Tol);
}

// Device mode (C3_TEST_DEVICE=cuda): bf16 on the GPU against the fp32 golden values.
TEST_P(Qwen2Golden, CudaBf16) {
  if (test_device() != "cuda") GTEST_SKIP() << "set C3_TEST_DEVICE=cuda to run on the GPU";
  ASSERT_TRUE(torch::cuda::is_available()) << "C3_TEST_DEVICE=cuda but LibTorch sees no CUDA";
  torch::NoGradGuard no_grad;
  const at::Device cuda(at::kCUDA, 0);
  auto m = model::load_qwen2(golden_dir(GetParam()), at::kBFloat16, cuda);
  const at::Tensor ids = expected_->tensor("single_ids").unsqueeze(0).to(cuda);
  const double single = max_abs_diff(m->forward(ids)[0], expected_->tensor("single_logits"));
  const double batch = max_abs_diff(m->forward(expected_->tensor("batch_ids").to(cuda)),
                                    expected_->tensor("batch_logits"));
  const double hidden = max_abs_diff(m->hidden(m->embed(ids), {})[0],
                                     expected_->tensor("last_hidden_normed"));
  // KV-cache decode on the GPU against the GPU's own full recompute.
  const int64_t T = ids.size(1);
  KVCache cache(m->config(), 1, T, at::kBFloat16, cuda);
  std::vector<at::Tensor> parts{m->forward(ids.slice(1, 0, 10), {{}, {}, &cache})[0]};
  for (int64_t t = 10; t < T; ++t) {
    parts.push_back(m->forward(ids.slice(1, t, t + 1), {{}, {}, &cache})[0]);
  }
  const double kv = max_abs_diff(at::cat(parts, 0), m->forward(ids)[0]);

  model::GenerationConfig greedy;
  greedy.max_new_tokens = 16;
  const auto g = model::generate(m, {{to_ids(expected_->tensor("greedy_prompt")), {}}}, greedy)[0];
  model::GenerationConfig ngram;
  ngram.max_new_tokens = 40;
  ngram.no_repeat_ngram_size = 3;
  const auto n = model::generate(m, {{to_ids(expected_->tensor("ngram3_prompt")), {}}}, ngram)[0];
  const auto agree = [](const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
    size_t k = 0;
    while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
    return k;
  };
  const auto g_ref = to_ids(expected_->tensor("greedy_out"));
  const auto n_ref = to_ids(expected_->tensor("ngram3_out"));
  std::printf("[%s] cuda bf16: single %.3g, batch %.3g, hidden %.3g, kv-vs-full %.3g; greedy ids "
              "%s (%zu/%zu agree), ngram3 ids %s (%zu/%zu agree)\n",
              GetParam().c_str(), single, batch, hidden, kv, g == g_ref ? "match" : "DIFFER",
              agree(g, g_ref), g_ref.size(), n == n_ref ? "match" : "DIFFER", agree(n, n_ref),
              n_ref.size());
  EXPECT_LT(single, kBf16Tol);
  EXPECT_LT(batch, kBf16Tol);
  EXPECT_LT(hidden, 4 * kBf16Tol);  // hidden states are O(1) after the norm, not O(0.1)
  EXPECT_LT(kv, kBf16Tol);
}

// Device mode, second half: c3 against HF transformers' Qwen2ForCausalLM on the same weights.
// $C3_HF_LOGITS is a folder of <model>.safetensors written by scripts/device/hf_compare_qwen2.py
// ({f32,bf16}_{single_logits,batch_logits,greedy_out,ngram3_out}); prints one table row per dtype.
TEST_P(Qwen2Golden, CompareWithHF) {
  const char* hf_dir = std::getenv("C3_HF_LOGITS");
  if (!hf_dir || !*hf_dir) GTEST_SKIP() << "set C3_HF_LOGITS (see scripts/device/golden_cuda.sh)";
  torch::NoGradGuard no_grad;
  const at::Device device = test_device() == "cuda" ? at::Device(at::kCUDA, 0) : at::kCPU;
  auto hf = io::SafetensorsFile::open(std::string(hf_dir) + "/" + GetParam() + ".safetensors");
  for (const auto& [tag, dtype] : {std::make_pair(std::string("f32"), at::kFloat),
                                   std::make_pair(std::string("bf16"), at::kBFloat16)}) {
    auto m = model::load_qwen2(golden_dir(GetParam()), dtype, device);
    const at::Tensor single =
        m->forward(expected_->tensor("single_ids").unsqueeze(0).to(device))[0].cpu();
    const at::Tensor batch = m->forward(expected_->tensor("batch_ids").to(device)).cpu();
    const at::Tensor hf_single = hf->tensor(tag + "_single_logits");
    const at::Tensor hf_batch = hf->tensor(tag + "_batch_logits");
    model::GenerationConfig greedy;
    greedy.max_new_tokens = 16;
    model::GenerationConfig ngram = greedy;
    ngram.max_new_tokens = 40;
    ngram.no_repeat_ngram_size = 3;
    const auto g = model::generate(m, {{to_ids(expected_->tensor("greedy_prompt")), {}}}, greedy)[0];
    const auto n = model::generate(m, {{to_ids(expected_->tensor("ngram3_prompt")), {}}}, ngram)[0];
    const double c3_hf = std::max(max_abs_diff(single, hf_single), max_abs_diff(batch, hf_batch));
    const double c3_gold = std::max(max_abs_diff(single, expected_->tensor("single_logits")),
                                    max_abs_diff(batch, expected_->tensor("batch_logits")));
    const double hf_gold = std::max(max_abs_diff(hf_single, expected_->tensor("single_logits")),
                                    max_abs_diff(hf_batch, expected_->tensor("batch_logits")));
    const bool g_hf = g == to_ids(hf->tensor(tag + "_greedy_out"));
    const bool n_hf = n == to_ids(hf->tensor(tag + "_ngram3_out"));
    const bool g_gold = g == to_ids(expected_->tensor("greedy_out"));
    const bool n_gold = n == to_ids(expected_->tensor("ngram3_out"));
    std::printf("| %-24s | %-4s | %-4s | c3-HF %9.3g | c3-golden %9.3g | HF-golden %9.3g | greedy "
                "c3=HF %-3s c3=golden %-3s | ngram3 c3=HF %-3s c3=golden %-3s |\n",
                GetParam().c_str(), device.is_cuda() ? "cuda" : "cpu", tag.c_str(), c3_hf, c3_gold,
                hf_gold, g_hf ? "yes" : "NO", g_gold ? "yes" : "NO", n_hf ? "yes" : "NO",
                n_gold ? "yes" : "NO");
    if (dtype == at::kFloat) {
      EXPECT_LT(c3_hf, kFp32Tol);
      EXPECT_TRUE(g_hf && n_hf) << "fp32 ids differ from HF";
    } else {
      EXPECT_LT(c3_hf, kBf16Tol);  // HF in bf16 also rounds its RoPE frequencies to bf16
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Qwen2, Qwen2Golden, testing::ValuesIn(golden_models()), param_name);

// ---------------------------------------------------------------------------------------------
// Synthetic checks (no files).

TEST(Qwen2Layout, ParameterNamesAreHFKeys) {
  auto m = tiny_model(tiny_config(/*tied=*/false));
  std::set<std::string> names;
  for (const auto& p : m->named_parameters()) names.insert(p.key());
  std::set<std::string> want = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"};
  for (int i = 0; i < 2; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    for (const char* k : {"self_attn.q_proj.weight", "self_attn.q_proj.bias",
                          "self_attn.k_proj.weight", "self_attn.k_proj.bias",
                          "self_attn.v_proj.weight", "self_attn.v_proj.bias",
                          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                          "mlp.down_proj.weight", "input_layernorm.weight",
                          "post_attention_layernorm.weight"}) {
      want.insert(l + k);
    }
  }
  EXPECT_EQ(names, want);
  EXPECT_TRUE(m->named_buffers().is_empty()) << "RoPE tables must not be checkpoint keys";
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  EXPECT_EQ(n, m->config().n_params());
}

TEST(Qwen2Layout, TiedModelHasNoLmHead) {
  auto m = tiny_model(tiny_config(/*tied=*/true));
  EXPECT_FALSE(m->lm_head);
  for (const auto& p : m->named_parameters()) EXPECT_NE(p.key(), "lm_head.weight");
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  EXPECT_EQ(n, m->config().n_params());
  // The logits use the embedding matrix.
  torch::NoGradGuard no_grad;
  const at::Tensor h = torch::randn({2, 32});
  EXPECT_LT(max_abs_diff(m->logits(h), at::matmul(h, m->model->embed_tokens->weight.t())), 1e-6);
}

TEST(Qwen2Rotary, TablesStayFp32) {
  model::RotaryEmbedding rope(8, 1e6);
  const at::Tensor want = 1.0 / at::pow(1e6, at::arange(0, 8, 2, at::kLong).to(at::kFloat) / 8);
  EXPECT_EQ(rope.inv_freq().scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(rope.inv_freq(), want));
  const auto t = rope.tables(at::arange(5).unsqueeze(0));
  EXPECT_EQ(t.cos.scalar_type(), at::kFloat);
  EXPECT_EQ(t.cos.sizes(), at::IntArrayRef({1, 5, 8}));
}

// A fully padded prefix (rows whose first queries see no real key) must stay finite.
TEST(Qwen2Padding, PaddedQueriesAreFinite) {
  auto m = tiny_model(tiny_config());
  torch::NoGradGuard no_grad;
  const at::Tensor ids = at::randint(0, 97, {2, 9}, at::kLong);
  at::Tensor mask = at::ones({2, 9}, at::kBool);
  mask[1].slice(0, 0, 5).fill_(false);
  const at::Tensor logits = m->forward(ids, {{}, mask, nullptr});
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

// Gradients with activation checkpointing equal the plain ones, for weights and input embeddings.
TEST(Qwen2Training, ActivationCheckpointingGivesSameGradients) {
  for (bool tied : {true, false}) {
    auto m = tiny_model(tiny_config(tied, /*n_kv_heads=*/1), 7);
    m->train();
    const at::Tensor ids = at::randint(0, 97, {2, 11}, at::kLong);
    const at::Tensor targets = at::randint(0, 97, {2 * 11}, at::kLong);
    at::Tensor mask = at::ones({2, 11}, at::kBool);
    mask[1].slice(0, 0, 3).fill_(false);
    auto run = [&](bool ckpt, at::Tensor* embeds_grad) {
      m->zero_grad();
      m->model->activation_checkpointing = ckpt;
      const at::Tensor embeds = m->embed(ids).detach().requires_grad_(true);
      const at::Tensor logits = m->logits(m->hidden(embeds, {{}, mask, nullptr}));
      const at::Tensor loss = at::cross_entropy_loss(logits.view({-1, 97}), targets);
      loss.backward();
      *embeds_grad = embeds.grad().clone();
      std::vector<at::Tensor> grads;
      for (const auto& p : m->parameters()) {
        // Untied: the embedding table gets no gradient (the embeddings are fed detached).
        grads.push_back(p.grad().defined() ? p.grad().clone() : at::zeros({1}));
      }
      return std::make_pair(loss.item<double>(), grads);
    };
    at::Tensor eg_plain, eg_ckpt;
    const auto plain = run(false, &eg_plain);
    const auto ckpt = run(true, &eg_ckpt);
    EXPECT_DOUBLE_EQ(plain.first, ckpt.first);
    double diff = max_abs_diff(eg_plain, eg_ckpt);
    ASSERT_EQ(plain.second.size(), ckpt.second.size());
    for (size_t i = 0; i < plain.second.size(); ++i) {
      diff = std::max(diff, max_abs_diff(plain.second[i], ckpt.second[i]));
    }
    std::printf("activation checkpointing (tied=%d): max abs grad diff %.3g\n", tied, diff);
    EXPECT_LT(diff, 1e-6);
  }
}

// A frozen layer (requires_grad false) inside a checkpointed stack gets no gradient, the rest do.
TEST(Qwen2Training, ActivationCheckpointingWithFrozenParameters) {
  auto m = tiny_model(tiny_config(), 3);
  m->train();
  for (auto& p : m->model->layers->ptr(0)->parameters()) p.set_requires_grad(false);
  m->model->activation_checkpointing = true;
  const at::Tensor ids = at::randint(0, 97, {1, 6}, at::kLong);
  m->forward(ids).sum().backward();
  for (const auto& p : m->model->layers->ptr(0)->parameters()) EXPECT_FALSE(p.grad().defined());
  for (const auto& p : m->model->layers->ptr(1)->parameters()) EXPECT_TRUE(p.grad().defined());
  EXPECT_TRUE(m->model->embed_tokens->weight.grad().defined());
}

}  // namespace
}  // namespace c3::test
