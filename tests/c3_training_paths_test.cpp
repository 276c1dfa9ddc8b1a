// The cascade's training loss through each selectable path (C3_CHUNKED_CE = 0 / recompute /
// default; stacked projections on / off) on c3-tiny, fp32 on the CPU: the same loss, token hits
// and gradient for every parameter as the old path (whole logits, separate projections).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "c3/batch_inputs.h"
#include "c3/c3_model.h"
#include "model/stacked_rows.h"
#include "testdata.h"

namespace c3 {
namespace {

struct Path {
  const char* chunked_ce;  // C3_CHUNKED_CE
  bool stacked;
};

struct StepResult {
  double loss = 0;
  int64_t correct = 0;
  std::map<std::string, at::Tensor> grads;
};

StepResult train_step(cascade::C3Model& m, const std::vector<std::vector<int32_t>>& ctx,
                      const Path& p) {
  setenv("C3_CHUNKED_CE", p.chunked_ce, 1);
  const bool prev = model::stacked_training_enabled();
  model::set_stacked_training_enabled(p.stacked);
  m->train();
  m->zero_grad();
  cascade::LossOutput out = m->reconstruction_loss(ctx);
  (out.loss * 1.7).backward();  // as the trainer weights a micro-batch
  StepResult r;
  r.loss = out.loss.item<double>();
  r.correct = out.n_correct.item<int64_t>();
  for (const auto& np : m->named_parameters())
    if (np.value().grad().defined()) r.grads[np.key()] = np.value().grad().clone();
  model::set_stacked_training_enabled(prev);
  unsetenv("C3_CHUNKED_CE");
  return r;
}

TEST(TrainingPaths, EveryPathGivesTheOldLossAndGradients) {
  cascade::LoadedC3 l =
      cascade::load_c3(test::testdata("c3/c3-tiny").string(), at::kFloat, at::kCPU);
  const std::vector<std::vector<int32_t>> ctx = {
      l.tok->encode("The quick brown fox jumps over the lazy dog."),
      l.tok->encode("Cascades compress text into a few latent vectors and read it back."),
  };
  const StepResult old = train_step(l.model, ctx, {"0", false});
  ASSERT_FALSE(old.grads.empty());
  for (const Path& p :
       {Path{"1", false}, Path{"0", true}, Path{"1", true}, Path{"recompute", true}}) {
    SCOPED_TRACE(std::string("C3_CHUNKED_CE=") + p.chunked_ce +
                 " stacked=" + std::to_string(p.stacked));
    const StepResult got = train_step(l.model, ctx, p);
    EXPECT_NEAR(got.loss, old.loss, 1e-6 * old.loss);
    EXPECT_EQ(got.correct, old.correct);
    ASSERT_EQ(got.grads.size(), old.grads.size());
    double worst = 0;
    for (const auto& [name, g] : old.grads) {
      const at::Tensor d = (got.grads.at(name) - g).abs();
      const double diff = d.max().item<double>(), scale = g.abs().max().item<double>();
      EXPECT_LE(diff, 1e-5 * scale + 1e-8) << name;
      worst = std::max(worst, diff);
    }
    std::printf("C3_CHUNKED_CE=%s stacked=%d: loss %.8f (old %.8f), worst grad diff %.2g\n",
                p.chunked_ce, p.stacked, got.loss, old.loss, worst);
  }
}

struct SumsAndGrads {
  double loss_sum = 0;
  int64_t correct = 0;
  std::map<std::string, at::Tensor> grads;
};

SumsAndGrads loss_at_shape(cascade::C3Model& m, const std::vector<std::vector<int32_t>>& ctx,
                           const cascade::InputNoise& noise, const cascade::TrainShape& shape) {
  m->zero_grad();
  const cascade::TrainInputs in = cascade::train_inputs(*m, ctx, noise, shape);
  const cascade::LossSums s = m->train_loss(in);
  s.loss_sum.backward();
  SumsAndGrads r{s.loss_sum.item<double>(), s.n_correct.item<int64_t>(), {}};
  for (const auto& np : m->named_parameters())
    if (np.value().grad().defined()) r.grads[np.key()] = np.value().grad().clone();
  return r;
}

// Training graphs pad each micro-batch to a shape (more rows, passages rounded up): padding rows
// and positions must change neither the loss, nor the hits, nor any gradient, with input noise
// and self-feed drawn the same for the same key.
TEST(TrainingPaths, PaddingToAShapeChangesNothing) {
  cascade::LoadedC3 l =
      cascade::load_c3(test::testdata("c3/c3-tiny").string(), at::kFloat, at::kCPU);
  l.model->train();
  const std::vector<std::vector<int32_t>> ctx = {
      l.tok->encode("The quick brown fox jumps over the lazy dog."),
      l.tok->encode("Cascades compress text."),
  };
  const cascade::TrainShape shape{/*rows=*/4, /*passage_multiple=*/16};
  const cascade::TrainInputs in = cascade::train_inputs(*l.model, ctx, {}, shape);
  const int64_t longest = static_cast<int64_t>(ctx[0].size());
  ASSERT_EQ(in.target.size(0), 4);
  ASSERT_EQ(in.target.size(1), (longest + 15) / 16 * 16 + 1);
  ASSERT_EQ(in.n_targets, longest + static_cast<int64_t>(ctx[1].size()) + 2);

  cascade::InputNoise noisy;
  noisy.rate = 0.3;
  noisy.self_feed = 0.3;
  noisy.key = 11;
  for (const cascade::InputNoise& noise : {cascade::InputNoise{}, noisy}) {
    SCOPED_TRACE("noise " + std::to_string(noise.rate));
    const SumsAndGrads own = loss_at_shape(l.model, ctx, noise, {});
    const SumsAndGrads padded = loss_at_shape(l.model, ctx, noise, shape);
    EXPECT_NEAR(padded.loss_sum, own.loss_sum, 1e-5 * own.loss_sum);
    EXPECT_EQ(padded.correct, own.correct);
    ASSERT_EQ(padded.grads.size(), own.grads.size());
    for (const auto& [name, g] : own.grads) {
      const double diff = (padded.grads.at(name) - g).abs().max().item<double>();
      EXPECT_LE(diff, 1e-5 * g.abs().max().item<double>() + 1e-8) << name;
    }
  }
  const double clean = loss_at_shape(l.model, ctx, {}, shape).loss_sum;
  EXPECT_NE(loss_at_shape(l.model, ctx, noisy, shape).loss_sum, clean) << "the noise did nothing";
}

}  // namespace
}  // namespace c3
