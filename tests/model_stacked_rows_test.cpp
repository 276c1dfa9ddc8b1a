// Training on stacked q/k/v and gate/up projections (model/stacked_rows.h): the loss and every
// gradient equal the separate projections' (fp32), the gradients land in the official
// parameters, and saving after training writes the same keys and values.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <map>
#include <string>

#include "model/decoder_layer.h"
#include "model/stacked_rows.h"
#include "model_golden.h"

namespace c3::test {
namespace {

using model::Qwen2DecoderLayerImpl;
using model::Qwen2ForCausalLM;

Qwen2DecoderLayerImpl& layer(Qwen2ForCausalLM& m, size_t i) {
  return *m->model->layers->ptr<Qwen2DecoderLayerImpl>(i);
}

// Turns stacked training on or off for a scope.
struct StackedTraining {
  bool prev = model::stacked_training_enabled();
  explicit StackedTraining(bool on) { model::set_stacked_training_enabled(on); }
  ~StackedTraining() { model::set_stacked_training_enabled(prev); }
};

// A forward + backward in train mode; returns the loss and each parameter's gradient by name.
std::pair<double, std::map<std::string, at::Tensor>> loss_and_grads(Qwen2ForCausalLM& m,
                                                                    const at::Tensor& ids,
                                                                    const at::Tensor& mask) {
  m->train();
  m->zero_grad();
  const at::Tensor logits = m->forward(ids, {{}, mask, nullptr});
  const at::Tensor loss =
      at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).narrow(0, 0, ids.numel() - 1),
                             ids.reshape({-1}).narrow(0, 1, ids.numel() - 1));
  loss.backward();
  std::map<std::string, at::Tensor> g;
  for (const auto& p : m->named_parameters()) g[p.key()] = p.value().grad().clone();
  return {loss.item<double>(), g};
}

TEST(StackedRows, LossAndEveryGradientMatchTheSeparateProjections) {
  for (bool tied : {true, false}) {
    auto plain = tiny_model(tiny_config(tied, /*n_kv_heads=*/2), 7);
    auto stacked = tiny_model(tiny_config(tied, /*n_kv_heads=*/2), 7);
    stacked->fuse_projections();
    const at::Tensor ids = at::randint(0, 97, {3, 11}, at::kLong);
    at::Tensor mask = at::ones({3, 11}, at::kBool);
    mask[1].slice(0, 0, 3).fill_(false);
    StackedTraining on(true);
    const auto want = loss_and_grads(plain, ids, mask);
    {
      torch::AutoGradMode grad(true);
      ASSERT_TRUE(layer(stacked, 0).self_attn->uses_stacked());
      ASSERT_TRUE(layer(stacked, 1).mlp->uses_stacked());
      ASSERT_FALSE(layer(plain, 0).self_attn->uses_stacked());  // not fused: separate GEMMs
    }
    const auto got = loss_and_grads(stacked, ids, mask);
    EXPECT_NEAR(got.first, want.first, 1e-6 * std::abs(want.first));
    ASSERT_EQ(got.second.size(), want.second.size());
    double worst = 0;
    for (const auto& [name, g] : want.second) {
      const at::Tensor& h = got.second.at(name);
      ASSERT_EQ(h.sizes(), g.sizes()) << name;
      const double d = max_abs_diff(h, g), scale = g.abs().max().item<double>();
      EXPECT_LE(d, 1e-5 * scale + 1e-7) << name;
      worst = std::max(worst, d);
    }
    std::printf(
        "stacked vs separate projections (tied=%d): loss %.7f vs %.7f, worst grad diff %.2g\n",
        tied, got.first, want.first, worst);
  }
}

// The gradients are the official parameters' own (q_proj, k_proj, ... keep their .grad) and
// C3_TRAIN_STACKED=0 (here: the switch) gives back the separate GEMMs bit for bit.
TEST(StackedRows, GradientsLandInTheOfficialParametersAndTheSwitchRestoresTheOldPath) {
  auto plain = tiny_model(tiny_config(), 3);
  auto stacked = tiny_model(tiny_config(), 3);
  stacked->fuse_projections();
  const at::Tensor ids = at::randint(0, 97, {2, 9}, at::kLong);
  const at::Tensor mask = at::ones({2, 9}, at::kBool);
  const auto want = loss_and_grads(plain, ids, mask);
  {
    StackedTraining off(false);
    torch::AutoGradMode grad(true);
    EXPECT_FALSE(layer(stacked, 0).self_attn->uses_stacked());
    const auto got = loss_and_grads(stacked, ids, mask);
    EXPECT_EQ(got.first, want.first);
    for (const auto& [name, g] : want.second)
      EXPECT_TRUE(at::equal(got.second.at(name), g)) << name;
  }
  StackedTraining on(true);
  loss_and_grads(stacked, ids, mask);
  auto& attn = *layer(stacked, 0).self_attn;
  for (const auto* lin : {&attn.q_proj, &attn.k_proj, &attn.v_proj}) {
    ASSERT_TRUE((*lin)->weight.grad().defined());
    EXPECT_EQ((*lin)->weight.grad().sizes(), (*lin)->weight.sizes());
    EXPECT_EQ((*lin)->bias.grad().sizes(), (*lin)->bias.sizes());
  }
  EXPECT_GT(layer(stacked, 1).mlp->up_proj->weight.grad().abs().sum().item<double>(), 0);
}

// Frozen projections get no gradient through the stack, and the rest still trains.
TEST(StackedRows, FrozenPartsGetNoGradient) {
  auto m = tiny_model(tiny_config(), 5);
  m->fuse_projections();
  auto& mlp = *layer(m, 0).mlp;
  mlp.gate_proj->weight.set_requires_grad(false);
  const at::Tensor ids = at::randint(0, 97, {2, 6}, at::kLong);
  StackedTraining on(true);
  m->train();
  m->forward(ids).pow(2).mean().backward();
  EXPECT_FALSE(mlp.gate_proj->weight.grad().defined());
  EXPECT_TRUE(mlp.up_proj->weight.grad().defined());
}

// Train a step on the stacked path, update in place as AdamW does, save: the file holds the
// official separate keys with the updated values, and loads into an unfused model unchanged.
TEST(StackedRows, SaveAndLoadAfterTrainingKeepTheOfficialKeys) {
  TempDir tmp;
  auto m = tiny_model(tiny_config(/*tied=*/false), 8);
  auto reference = tiny_model(tiny_config(/*tied=*/false), 8);  // never fused
  m->fuse_projections();
  const at::Tensor ids = at::randint(0, 97, {2, 8}, at::kLong);
  StackedTraining on(true);
  for (auto* net : {&m, &reference}) {
    (*net)->train();
    (*net)->forward(ids).pow(2).mean().backward();
    torch::NoGradGuard ng;
    for (auto& p : (*net)->parameters()) p.sub_(p.grad(), 0.1);  // SGD, in place
  }
  model::save_qwen2(m, tmp.str("stacked"), at::kFloat);
  model::save_qwen2(reference, tmp.str("plain"), at::kFloat);
  const auto a = io::Checkpoint::open(tmp.str("stacked"));
  const auto b = io::Checkpoint::open(tmp.str("plain"));
  ASSERT_EQ(a.names(), b.names());
  for (const auto& name : a.names()) {
    EXPECT_LT(max_abs_diff(a.tensor(name), b.tensor(name)), 1e-6) << name;
    EXPECT_EQ(name.find("qkv"), std::string::npos) << name;
    EXPECT_EQ(name.find("gate_up"), std::string::npos) << name;
  }
  auto loaded = model::load_qwen2(tmp.str("stacked"), at::kFloat, at::kCPU);
  for (const auto& p : m->named_parameters())
    EXPECT_TRUE(at::equal(loaded->named_parameters()[p.key()], p.value())) << p.key();
}

}  // namespace
}  // namespace c3::test
