// Fused q/k/v and gate/up projections (fuse_projections): same logits as the separate GEMMs,
// parameters stay views (gradients, in-place updates, saving), and to() falls back.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "model/decoder_layer.h"
#include "model/generate.h"
#include "model/qwen2_model.h"
#include "model/stacked_rows.h"
#include "model_golden.h"

namespace c3::test {
namespace {

using model::Qwen2DecoderLayerImpl;
using model::Qwen2ForCausalLM;

Qwen2DecoderLayerImpl& layer(Qwen2ForCausalLM& m, size_t i) {
  return *m->model->layers->ptr<Qwen2DecoderLayerImpl>(i);
}

// Every layer takes the fused path now (or none does).
bool all_fused(Qwen2ForCausalLM& m, bool want) {
  for (size_t i = 0; i < m->model->layers->size(); ++i) {
    if (layer(m, i).self_attn->uses_fused() != want || layer(m, i).mlp->uses_fused() != want)
      return false;
  }
  return true;
}

TEST(FuseProjections, LogitsMatchUnfused) {
  for (bool tied : {true, false}) {
    auto plain = tiny_model(tiny_config(tied, /*n_kv_heads=*/2), 5);
    auto fused = tiny_model(tiny_config(tied, /*n_kv_heads=*/2), 5);
    EXPECT_TRUE(fused->fuse_projections());
    torch::NoGradGuard ng;
    ASSERT_TRUE(all_fused(fused, true));
    ASSERT_TRUE(all_fused(plain, false));
    const at::Tensor ids = at::randint(0, 97, {3, 13}, at::kLong);
    at::Tensor mask = at::ones({3, 13}, at::kBool);
    mask[2].slice(0, 0, 4).fill_(false);
    const double diff = max_abs_diff(plain->forward(ids, {{}, mask, nullptr}),
                                     fused->forward(ids, {{}, mask, nullptr}));
    std::printf("fused vs separate projections (tied=%d): max abs logit diff %.3g\n", tied, diff);
    EXPECT_LT(diff, 1e-5);
  }
}

// The golden checkpoints, fp32 on the CPU: load_qwen2 fuses; a to(kFloat64) and back unfuses.
TEST(FuseProjections, GoldenModelsLogitsAndGreedyIds) {
  for (const std::string& name : golden_models()) {
    auto m = model::load_qwen2(golden_dir(name), at::kFloat, at::kCPU);
    torch::NoGradGuard ng;
    ASSERT_TRUE(all_fused(m, true)) << name;
    const at::Tensor ids = expected(name)->tensor("batch_ids");
    const at::Tensor fused_logits = m->forward(ids);
    model::GenerationConfig g;
    g.max_new_tokens = 12;
    const std::vector<model::Prompt> prompts = {{to_ids(ids[0]), {}}};
    const auto fused_ids = model::generate(m, prompts, g);

    m->to(at::kDouble);
    m->to(at::kFloat);  // new storage: the parameters no longer view the fused tensors
    ASSERT_TRUE(all_fused(m, false)) << name;
    const double diff = max_abs_diff(fused_logits, m->forward(ids));
    std::printf("[%s] fused vs separate: max abs logit diff %.3g\n", name.c_str(), diff);
    EXPECT_LT(diff, 1e-5) << name;
    EXPECT_EQ(fused_ids, model::generate(m, prompts, g)) << name;
    EXPECT_TRUE(m->fuse_projections());  // re-fusing after to() works
    EXPECT_TRUE(all_fused(m, true));
  }
}

TEST(FuseProjections, Idempotent) {
  auto m = tiny_model(tiny_config());
  EXPECT_TRUE(m->fuse_projections());
  const void* q = layer(m, 0).self_attn->q_proj->weight.data_ptr();
  EXPECT_FALSE(m->fuse_projections());
  EXPECT_EQ(q, layer(m, 0).self_attn->q_proj->weight.data_ptr());
  m->to(at::kCPU, at::kFloat);  // a no-op to() keeps the views
  EXPECT_FALSE(m->fuse_projections());
}

// Parameters keep their names, values and requires_grad, and become views of one tensor.
TEST(FuseProjections, ParametersAreViewsWithTheSameValues) {
  auto m = tiny_model(tiny_config(), 2);
  std::vector<std::pair<std::string, at::Tensor>> before;
  for (const auto& p : m->named_parameters()) before.emplace_back(p.key(), p.value().clone());
  m->fuse_projections();
  const auto after = m->named_parameters();
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [name, value] : before) {
    ASSERT_TRUE(after.contains(name)) << name;
    EXPECT_TRUE(at::equal(after[name], value)) << name;
    EXPECT_TRUE(after[name].requires_grad()) << name;
  }
  auto& attn = *layer(m, 1).self_attn;
  EXPECT_TRUE(attn.q_proj->weight.is_alias_of(attn.v_proj->weight));
  EXPECT_TRUE(attn.q_proj->bias.is_alias_of(attn.k_proj->bias));
  auto& mlp = *layer(m, 1).mlp;
  EXPECT_TRUE(mlp.gate_proj->weight.is_alias_of(mlp.up_proj->weight));
  EXPECT_FALSE(mlp.gate_proj->weight.is_alias_of(mlp.down_proj->weight));
}

// In grad mode with stacked training off the separate projections run: the gradients reach
// q_proj and gate_proj (stacked training: model_stacked_rows_test.cpp).
TEST(FuseProjections, GradientsReachTheSeparateParameters) {
  auto plain = tiny_model(tiny_config(), 9);
  auto fused = tiny_model(tiny_config(), 9);
  fused->fuse_projections();
  const bool stacked = model::stacked_training_enabled();
  model::set_stacked_training_enabled(false);
  ASSERT_TRUE(all_fused(fused, false));  // grad mode: the separate path
  const at::Tensor ids = at::randint(0, 97, {2, 7}, at::kLong);
  plain->forward(ids).pow(2).mean().backward();
  fused->forward(ids).pow(2).mean().backward();
  for (size_t i = 0; i < 2; ++i) {
    for (auto* pair : {&layer(plain, i), &layer(fused, i)}) {
      EXPECT_TRUE(pair->self_attn->q_proj->weight.grad().defined());
      EXPECT_TRUE(pair->mlp->gate_proj->weight.grad().defined());
    }
    EXPECT_TRUE(at::equal(layer(plain, i).self_attn->q_proj->weight.grad(),
                          layer(fused, i).self_attn->q_proj->weight.grad()));
    EXPECT_TRUE(at::equal(layer(plain, i).self_attn->v_proj->bias.grad(),
                          layer(fused, i).self_attn->v_proj->bias.grad()));
    EXPECT_TRUE(at::equal(layer(plain, i).mlp->gate_proj->weight.grad(),
                          layer(fused, i).mlp->gate_proj->weight.grad()));
    EXPECT_GT(layer(fused, i).mlp->up_proj->weight.grad().abs().sum().item<double>(), 0);
  }
  model::set_stacked_training_enabled(stacked);
}

// An optimizer step updates the parameters in place: the fused path sees the new values.
TEST(FuseProjections, InPlaceUpdatesShowInTheFusedPath) {
  auto plain = tiny_model(tiny_config(), 4);
  auto fused = tiny_model(tiny_config(), 4);
  fused->fuse_projections();
  const at::Tensor ids = at::randint(0, 97, {2, 9}, at::kLong);
  torch::NoGradGuard ng;
  const at::Tensor old_logits = fused->forward(ids);
  for (auto* m : {&plain, &fused}) {
    auto& l = layer(*m, 0);
    at::manual_seed(1);
    l.self_attn->q_proj->weight.add_(at::randn_like(l.self_attn->q_proj->weight), 0.5);
    l.self_attn->k_proj->bias.mul_(3.0);
    l.mlp->up_proj->weight.sub_(0.05);
    std::vector<at::Tensor> ps = {l.mlp->gate_proj->weight};
    at::_foreach_mul_(ps, 0.9);  // as AdamW's weight decay
  }
  ASSERT_TRUE(all_fused(fused, true));
  const at::Tensor new_logits = fused->forward(ids);
  EXPECT_GT(max_abs_diff(old_logits, new_logits), 1e-2);
  EXPECT_LT(max_abs_diff(plain->forward(ids), new_logits), 1e-5);
}

// Saving after fusing writes the same tensors under the same keys.
TEST(FuseProjections, SaveAfterFuseWritesTheSameTensors) {
  TempDir tmp;
  auto m = tiny_model(tiny_config(/*tied=*/false), 6);
  model::save_qwen2(m, (tmp.path / "plain").string(), at::kFloat);
  m->fuse_projections();
  model::save_qwen2(m, (tmp.path / "fused").string(), at::kFloat);
  const auto a = io::Checkpoint::open((tmp.path / "plain").string());
  const auto b = io::Checkpoint::open((tmp.path / "fused").string());
  ASSERT_EQ(a.names(), b.names());
  for (const auto& name : a.names()) EXPECT_TRUE(at::equal(a.tensor(name), b.tensor(name))) << name;
}

}  // namespace
}  // namespace c3::test
