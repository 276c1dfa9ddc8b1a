// Trainer tests (CPU, tiny cascades): overfitting to exact reconstruction, gradients against
// finite differences, bit-for-bit resume, 2 Gloo processes against 1, checkpoint retention and
// the JSON-lines log.
//
// The 2-process test re-runs this binary through launch_local() with C3_TRAINER_TEST_MODE set;
// the children run only TrainerWorker.Run, which is skipped in a normal run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "io/safetensors.h"
#include "testdata.h"
#include "train_tiny_run.h"
#include "train/aux_lm_loss.h"
#include "train/distributed.h"
#include "train/graphed_loss.h"
#include "train/lr_schedule.h"
#include "train/model_init.h"
#include "train/trainer.h"
#include "train/validation.h"
#include "util/error.h"
#include "util/remove_tree.h"

namespace {

namespace fs = std::filesystem;
using c3::train::TrainOptions;
using c3::train::TrainResult;
using namespace c3::test::tiny_run;

fs::path trainer_dir(const std::string& name) { return fresh_test_dir("train_trainer", name); }

// A clock that advances a fixed time per step: time limits become exact step counts.
std::function<double(int64_t)> fake_clock(double seconds_per_step) {
  return [seconds_per_step](int64_t steps) { return 1000.0 + seconds_per_step * steps; };
}

std::vector<std::string> step_folders(const fs::path& run) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(run))
    if (e.is_directory()) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class Trainer : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("C3_NO_PROGRESS", "1", 1);
    ASSERT_TRUE(fs::exists(tiny_tokenizer())) << tiny_tokenizer() << " is missing";
  }
};

// ---- 1. overfitting: a few passages must come back exactly from their latents --------------

TEST_F(Trainer, OverfitsFewPassagesToExactReconstruction) {
  const fs::path dir = trainer_dir("overfit");
  const std::vector<std::string> texts = {
      "The quick brown fox jumps over the lazy dog near the river.",
      "Seven small boats sailed across the calm sea at dawn.",
      "A cold winter road leads north to the old paper market.",
  };
  write_tiny_setup(dir, texts);
  TrainOptions o = tiny_options(dir, "run");
  o.batch_size = 3;  // the whole corpus every step: plain full-batch training
  o.bucket_docs = 3;
  o.max_steps = 150;
  o.warmup_steps = 10;
  o.weight_decay = 0;
  o.log_every = 50;
  const TrainResult r = c3::train::train(o);
  EXPECT_EQ(r.steps, 150);
  EXPECT_LT(r.final_loss, 0.05);

  // Reload from the checkpoint, so the saved layout is what reconstructs.
  c3::cascade::LoadedC3 l = c3::cascade::load_c3(r.last_checkpoint, at::kFloat, at::kCPU);
  torch::NoGradGuard ng;
  for (const auto& text : texts) {
    const std::vector<int32_t> ids = l.tok->encode(text);
    c3::cascade::DecompressOptions d;
    d.max_new_tokens = static_cast<int64_t>(ids.size()) + 8;
    auto gen = l.model->decompress(l.model->compress({ids}), d);
    const std::string back = l.tok->decode(std::vector<int32_t>(gen[0].begin(), gen[0].end()));
    EXPECT_EQ(back, text) << "passage of " << ids.size() << " tokens, final loss " << r.final_loss;
  }
}

// c3's own query layout (segment positions, mask and pooling) trains through the same
// loss: the loss falls well below where it starts, and the checkpoint keeps the layout.
TEST_F(Trainer, SegmentQueryLayoutLearnsAndIsSaved) {
  const fs::path dir = trainer_dir("segments");
  write_tiny_setup(dir, {"The quick brown fox jumps over the lazy dog near the river.",
                         "Seven small boats sailed across the calm sea at dawn.",
                         "A cold winter road leads north to the old paper market."});
  TrainOptions o = tiny_options(dir, "run");
  o.init.query_positions = "segments";
  o.init.query_mask = "segment";
  o.init.query_pooling = "segment_mean";
  o.batch_size = 3;
  o.bucket_docs = 3;
  o.max_steps = 60;
  o.warmup_steps = 5;
  o.weight_decay = 0;
  const TrainResult r = c3::train::train(o);
  const auto steps = read_log(fs::path(o.out_dir) / "train_log.jsonl", "step");
  ASSERT_GT(steps.size(), 10u);
  const double first = steps.front()["loss"].get<double>();
  std::printf("segment layout: loss %.3f at step 1 -> %.3f at step %lld\n", first, r.final_loss,
              static_cast<long long>(r.steps));
  EXPECT_LT(r.final_loss, 0.3 * first);
  EXPECT_EQ(read_log(fs::path(o.out_dir) / "train_log.jsonl", "start")[0]["query_mask"], "segment");
  c3::cascade::LoadedC3 l = c3::cascade::load_c3(r.last_checkpoint, at::kFloat, at::kCPU);
  EXPECT_EQ(l.model->config.query_positions, c3::cascade::QueryPositions::kSegments);
  EXPECT_EQ(l.model->config.query_mask, c3::cascade::QueryMask::kSegment);
  EXPECT_EQ(l.model->config.query_pooling, c3::cascade::QueryPooling::kSegmentMean);
  o.init.query_mask = "blocky";
  o.out_dir = (dir / "bad").string();
  try {
    c3::train::train(o);
    FAIL() << "an unknown --query-mask was accepted";
  } catch (const c3::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--query-mask must be \"causal\" or \"segment\""),
              std::string::npos)
        << e.what();
  }
}

// --init keeps the checkpoint's chunk size (c3_max_passage_tokens) unless --max-passage-tokens
// is given; from scratch the default is 1280.
TEST(ModelInit, InitKeepsTheCheckpointsChunkSizeUnlessOneIsGiven) {
  const fs::path tiny = c3::test::testdata("c3/c3-tiny");
  const int64_t own =
      c3::cascade::load_c3(tiny.string(), at::kFloat, at::kCPU).model->config.max_passage_tokens;
  c3::train::ModelInit init;
  init.from_c3 = tiny.string();
  c3::train::TokenizerSource tok;
  EXPECT_EQ(c3::train::build_model(init, &tok)->config.max_passage_tokens, own);
  init.max_passage_tokens = own + 77;
  EXPECT_EQ(c3::train::build_model(init, &tok)->config.max_passage_tokens, own + 77);
}

// ---- 2. gradients of reconstruction_loss against central finite differences (double) ----------

// The same objective as reconstruction_loss, but entirely in double: the model's logits() rounds
// to fp32, which would swamp a finite difference. Its value is checked against the real one.
// `seen` (optional, [B, Tt - 1]) replaces the teacher-forced decoder inputs.
at::Tensor reconstruction_loss_f64(c3::cascade::C3Model& m,
                                   const std::vector<std::vector<int32_t>>& ctx,
                                   at::Tensor seen = {}) {
  const int64_t B = static_cast<int64_t>(ctx.size());
  const int64_t P = static_cast<int64_t>(m->prompt_ids().size());
  int64_t Tt = 0;
  for (auto& c : ctx) Tt = std::max<int64_t>(Tt, static_cast<int64_t>(c.size()) + 1);
  std::vector<int64_t> tgt(B * Tt, 0);
  std::vector<uint8_t> valid(B * Tt, 0);
  for (int64_t b = 0; b < B; ++b) {
    for (size_t t = 0; t <= ctx[b].size(); ++t) {
      tgt[b * Tt + t] = t < ctx[b].size() ? ctx[b][t] : m->im_end_id();
      valid[b * Tt + t] = 1;
    }
  }
  at::Tensor target = torch::tensor(tgt, torch::kLong).view({B, Tt});
  at::Tensor mask = torch::tensor(at::ArrayRef<uint8_t>(valid)).view({B, Tt}).to(torch::kBool);
  at::Tensor pe = m->prompt_embeds(m->compress(ctx));  // [B, P, C]
  if (!seen.defined()) seen = target.narrow(1, 0, Tt - 1);
  at::Tensor in = torch::cat({pe, m->decoder->embed(seen)}, 1);
  at::Tensor h = m->decoder->hidden(in, {}).narrow(1, P - 1, Tt).index({mask});  // [N, C]
  at::Tensor logits = torch::linear(h, m->decoder->model->embed_tokens->weight);  // tied
  return torch::cross_entropy_loss(logits, target.index({mask}));
}

// A fresh one-layer cascade on the tiny tokenizer: encoder and decoder widths (MLP twice that),
// 2 heads, 1 KV head, L = 4.
c3::cascade::C3Model tiny_cascade(const fs::path& dir, int enc_hidden, int dec_hidden,
                                  uint64_t seed) {
  write_qwen2_config(dir / "encoder.json", enc_hidden, 1, 2, 1, 2 * enc_hidden);
  write_qwen2_config(dir / "decoder.json", dec_hidden, 1, 2, 1, 2 * dec_hidden);
  c3::train::ModelInit init;
  init.tokenizer = tiny_tokenizer().string();
  init.encoder_config = (dir / "encoder.json").string();
  init.decoder_config = (dir / "decoder.json").string();
  init.latents = 4;
  init.seed = seed;
  c3::train::TokenizerSource tok_src;
  return c3::train::build_model(init, &tok_src);
}

// Input noise (--input-noise) corrupts what the decoder reads, never what it must predict: the
// same key gives the same loss, rate 0 is the plain objective, and the target count stays.
TEST_F(Trainer, InputNoiseIsKeyedAndLeavesTheTargets) {
  c3::cascade::C3Model m = tiny_cascade(trainer_dir("input_noise"), 16, 16, 3);
  torch::NoGradGuard ng;
  const std::vector<std::vector<int32_t>> ctx = {m->tok().encode("the small river runs north"),
                                                 m->tok().encode("seven cold winter roads")};
  auto loss = [&](double rate, uint64_t key) {
    c3::cascade::LossOutput out = m->reconstruction_loss(ctx, {rate, key});
    return std::make_pair(out.loss.item<double>(), out.n_tokens.item<int64_t>());
  };
  const auto clean = loss(0.0, 0), zero = loss(0.0, 7);
  const auto a = loss(0.5, 7), again = loss(0.5, 7), other = loss(0.5, 8);
  EXPECT_EQ(clean.first, zero.first) << "rate 0 must be the plain objective";
  EXPECT_EQ(a.first, again.first) << "the same key must draw the same noise";
  EXPECT_NE(a.first, clean.first) << "half the inputs replaced left the loss unchanged";
  EXPECT_NE(a.first, other.first) << "another key drew the same noise";
  EXPECT_EQ(a.second, clean.second) << "noise must not change the targets";
}

// Self-feed at share 1 replaces every passage token the decoder reads by the decoder's own
// argmax for it from the clean teacher-forced pass: the loss equals the f64 objective on those
// inputs. Shares below 1 are keyed like the noise, and the two shares may not exceed 1 together.
TEST_F(Trainer, SelfFeedReadsTheDecodersOwnPredictions) {
  c3::cascade::C3Model m = tiny_cascade(trainer_dir("self_feed"), 16, 24, 4);
  m->to(at::kDouble);
  torch::NoGradGuard ng;
  torch::manual_seed(9);
  for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.3);  // confident, varied argmax
  const std::vector<std::vector<int32_t>> ctx = {m->tok().encode("the small river runs north"),
                                                 m->tok().encode("seven cold roads")};
  const int64_t B = 2, P = static_cast<int64_t>(m->prompt_ids().size());
  int64_t Tt = 0;
  for (auto& c : ctx) Tt = std::max<int64_t>(Tt, static_cast<int64_t>(c.size()) + 1);
  // The clean pass's predictions, by hand: position P - 1 + t predicts target t.
  std::vector<int64_t> tgt(B * Tt, 0);
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t <= ctx[b].size(); ++t)
      tgt[b * Tt + t] = t < ctx[b].size() ? ctx[b][t] : m->im_end_id();
  const at::Tensor target = torch::tensor(tgt, torch::kLong).view({B, Tt});
  const at::Tensor pe = m->prompt_embeds(m->compress(ctx));
  const at::Tensor h = m->decoder->hidden(torch::cat({pe, m->decoder->embed(target.narrow(1, 0, Tt - 1))}, 1), {});
  const at::Tensor pred = torch::linear(h.narrow(1, P - 1, Tt), m->decoder->model->embed_tokens->weight).argmax(-1);
  at::Tensor seen = target.narrow(1, 0, Tt - 1).clone();
  int64_t changed = 0;
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < ctx[b].size(); ++t) {
      changed += seen[b][t].item<int64_t>() != pred[b][t].item<int64_t>();
      seen[b][t] = pred[b][t];
    }
  ASSERT_GT(changed, 0) << "the model predicts its inputs exactly: the test would prove nothing";
  c3::cascade::InputNoise all;
  all.self_feed = 1.0;
  all.key = 3;
  const double got = m->reconstruction_loss(ctx, all).loss.item<double>();
  // logits() rounds to fp32, hence 1e-6.
  EXPECT_NEAR(got, reconstruction_loss_f64(m, ctx, seen).item<double>(), 1e-6 * std::abs(got));
  EXPECT_GT(std::abs(got - reconstruction_loss_f64(m, ctx).item<double>()), 1e-3)
      << "self-fed inputs left the loss unchanged";

  c3::cascade::InputNoise half = all;
  half.self_feed = 0.5;
  const double a = m->reconstruction_loss(ctx, half).loss.item<double>();
  EXPECT_EQ(a, m->reconstruction_loss(ctx, half).loss.item<double>()) << "not keyed";
  c3::cascade::InputNoise too_much = half;
  too_much.rate = 0.6;
  EXPECT_THROW(m->reconstruction_loss(ctx, too_much), std::exception);
}

TEST(InputNoiseScale, FallsLinearlyToZeroAtTheDecayFraction) {
  using c3::train::input_noise_scale;
  EXPECT_EQ(input_noise_scale(0, 100, 0.0), 1.0);
  EXPECT_EQ(input_noise_scale(99, 100, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(input_noise_scale(0, 100, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(input_noise_scale(25, 100, 0.5), 0.5);
  EXPECT_EQ(input_noise_scale(50, 100, 0.5), 0.0);
  EXPECT_EQ(input_noise_scale(80, 100, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(input_noise_scale(75, 100, 1.0), 0.25);
}

TEST(CurriculumGate, CountsOnlyStepsWhoseRowsReachTheCap) {
  using c3::train::at_cap;
  EXPECT_TRUE(at_cap(64 * 400, 64, 1000));   // mean 400 = 0.4 of the cap
  EXPECT_FALSE(at_cap(64 * 399, 64, 1000));  // just under
  EXPECT_TRUE(at_cap(64 * 625, 64, 1000));   // the mean of rows cut to [cap/4, cap]
  EXPECT_FALSE(at_cap(64 * 90, 64, 1344));   // a bucket of short documents
  EXPECT_FALSE(at_cap(100, 0, 64));
}

// With a gate every loss passes, the cap still grows only on steps whose rows reach it: on
// documents of a few tokens it stays at the start; on longer ones it grows to the maximum, each
// time after `patience` steps at the cap.
TEST_F(Trainer, CurriculumGrowsOnlyOnStepsAtTheCap) {
  auto caps = [](const fs::path& dir, const std::vector<std::string>& docs, int64_t patience = 1) {
    write_tiny_setup(dir, docs);
    TrainOptions o = tiny_options(dir, "run");
    o.lengths = "uniform:8-64";
    o.curriculum_start = 24;
    o.curriculum_gate = 100;
    o.curriculum_grow = 2;
    o.curriculum_patience = patience;
    c3::train::train(o);
    std::vector<int64_t> out;
    for (const auto& s : read_log(fs::path(o.out_dir) / "train_log.jsonl", "step"))
      out.push_back(s["curriculum_len"].get<int64_t>());
    return out;
  };
  const std::vector<int64_t> short_docs = caps(trainer_dir("curriculum_short"),
      {"the river.", "a stone.", "cold light.", "north road.", "seven houses.", "small paper."});
  ASSERT_EQ(short_docs.size(), 8u);
  for (int64_t c : short_docs) EXPECT_EQ(c, 24) << "the cap grew on rows far below it";
  const std::vector<int64_t> long_docs = caps(trainer_dir("curriculum_long"), synthetic_docs(6));
  ASSERT_EQ(long_docs.size(), 8u);
  EXPECT_EQ(long_docs.back(), 64);
  const std::vector<int64_t> patient = caps(trainer_dir("curriculum_patient"), synthetic_docs(6), 3);
  // Every step at 24 is at the cap: the first growth comes after exactly 3; later caps hold at
  // least 3 steps (more where a step's rows fall short of the cap).
  ASSERT_EQ(patient.size(), 8u);
  EXPECT_EQ(patient[1], 24);
  EXPECT_EQ(patient[2], 48);
  for (size_t i = 3; i < patient.size(); ++i) {
    if (patient[i] != patient[i - 1]) {
      EXPECT_TRUE(patient[i - 1] == patient[i - 2] && patient[i - 2] == patient[i - 3])
          << "the cap grew again after fewer than 3 steps, at step " << i + 1;
    }
  }
}

// The step log carries the shares in force; with decay 0.5 over 8 steps they are 0 from step 4.
TEST_F(Trainer, LogsTheDecayingNoiseShares) {
  const fs::path dir = trainer_dir("noise_decay");
  write_tiny_setup(dir, synthetic_docs(6));
  TrainOptions o = tiny_options(dir, "run");
  o.input_noise = 0.2;
  o.self_feed = 0.1;
  o.input_noise_decay = 0.5;
  c3::train::train(o);
  int seen = 0;
  for (const auto& s : read_log(fs::path(o.out_dir) / "train_log.jsonl", "step")) {
    const int64_t step = s["step"].get<int64_t>();
    // Logged after the step: "step" k is the k-th update, made at schedule step k - 1.
    const double scale = c3::train::input_noise_scale(step - 1, o.max_steps, 0.5);
    EXPECT_DOUBLE_EQ(s["input_noise"].get<double>(), 0.2 * scale) << "step " << step;
    EXPECT_DOUBLE_EQ(s["self_feed"].get<double>(), 0.1 * scale) << "step " << step;
    ++seen;
  }
  EXPECT_EQ(seen, 8);
}

TEST_F(Trainer, GradientsMatchFiniteDifferences) {
  // Different encoder and decoder widths, so the projector is not square.
  c3::cascade::C3Model m = tiny_cascade(trainer_dir("gradcheck"), 16, 24, 11);
  m->to(at::kDouble);
  {
    // Init (std 0.02, norms at 1, biases at 0) leaves the encoder's gradients tiny, below what
    // the fp32 rounding inside RMSNorm lets a finite difference resolve; noise of std 0.2 makes
    // every path through the cascade matter.
    torch::NoGradGuard ng;
    torch::manual_seed(5);
    for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.2);
  }
  const std::vector<std::vector<int32_t>> ctx = {m->tok().encode("the small river"),
                                                 m->tok().encode("seven cold winter roads north")};
  ASSERT_NE(ctx[0].size(), ctx[1].size()) << "rows of different lengths exercise the padding";

  m->zero_grad();
  c3::cascade::LossOutput out = m->reconstruction_loss(ctx);
  out.loss.backward();
  {
    torch::NoGradGuard ng;
    const double ref = reconstruction_loss_f64(m, ctx).item<double>();
    EXPECT_NEAR(out.loss.item<double>(), ref, 1e-6 * ref) << "the f64 objective is not the same";
  }

  const std::vector<std::string> checked = {
      "decoder.model.Q.weight",
      "decoder.model.mm_projector.weight",
      "decoder.model.mm_projector.bias",
      "encoder.model.embed_tokens.weight",
      "encoder.model.layers.0.self_attn.q_proj.weight",
      "encoder.model.layers.0.input_layernorm.weight",
      "decoder.model.layers.0.self_attn.v_proj.bias",
      "decoder.model.layers.0.mlp.down_proj.weight",
      "decoder.model.norm.weight",
  };
  // Derivatives along 3 directions per tensor: the gradient itself (checks its norm), a random
  // unit vector (checks its direction) and its largest element. The reference is a 6-point
  // central difference, error O(h^6), with h = 1e-2: the model's RMSNorm computes in fp32 (as HF
  // does), and that rounding, ~1e-9 of the loss, would swamp the smaller steps of a plain
  // 2-point difference. The errors are relative to the gradient's norm (to the element itself
  // for the largest element); about 1e-4 is what the fp32 rounding leaves.
  constexpr double kStep = 1e-2, kTol = 3e-4;
  auto named = m->named_parameters();
  torch::NoGradGuard ng;
  torch::manual_seed(9);
  auto derivative = [&](at::Tensor& p, const at::Tensor& v) {
    auto diff = [&](int j) {
      p.add_(v, j * kStep);
      const double up = reconstruction_loss_f64(m, ctx).item<double>();
      p.sub_(v, 2 * j * kStep);
      const double down = reconstruction_loss_f64(m, ctx).item<double>();
      p.add_(v, j * kStep);
      return up - down;
    };
    return (45 * diff(1) - 9 * diff(2) + diff(3)) / (60 * kStep);
  };
  for (const auto& name : checked) {
    ASSERT_TRUE(named.contains(name)) << "no parameter " << name;
    at::Tensor p = named[name];
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    const at::Tensor g = p.grad().clone();
    const double gnorm = g.norm().item<double>();
    ASSERT_GT(gnorm, 1e-3) << name << ": too small a gradient to check";
    const at::Tensor r = torch::randn_like(g);
    const at::Tensor rand_dir = r / r.norm();
    at::Tensor top_dir = torch::zeros_like(g);
    const int64_t top = g.abs().flatten().argmax().item<int64_t>();
    top_dir.view({-1})[top].fill_(1.0);
    const double gtop = g.view({-1})[top].item<double>();

    const double along_g = std::abs(derivative(p, g / gnorm) - gnorm) / gnorm;
    const double along_r =
        std::abs(derivative(p, rand_dir) - (g * rand_dir).sum().item<double>()) / gnorm;
    const double along_top = std::abs(derivative(p, top_dir) - gtop) / std::abs(gtop);
    EXPECT_LT(along_g, kTol) << name << ": along the gradient";
    EXPECT_LT(along_r, kTol) << name << ": along a random direction";
    EXPECT_LT(along_top, kTol) << name << ": element " << top;
    std::printf("[gradcheck] %-46s |grad| %.3e, relative error %.1e %.1e %.1e\n", name.c_str(),
                gnorm, along_g, along_r, along_top);
  }
}

// ---- 3. resume: N steps straight == N/2 steps, then --resume for N/2, bit for bit -------------

// Variable lengths, two micro-batches, a growing curriculum with an easy share: every piece of
// state that resume must restore (data position, schedule step, AdamW moments, curriculum cap
// and smoothed loss, tokens seen) changes the result.
TrainOptions resume_options(const fs::path& dir, const std::string& run) {
  TrainOptions o = tiny_options(dir, run);
  o.lengths = "uniform:8-64";
  o.grad_accum = 2;
  // The cap grows every step (12, 36, 64) and then stays: the resume point at step 4 sees a cap
  // other than the start and a smoothed loss that is accumulating, not just reset.
  o.curriculum_start = 12;
  o.curriculum_gate = 100;
  o.curriculum_grow = 3;
  o.curriculum_patience = 1;
  o.easy_share = 0.25;
  o.max_steps = 8;
  return o;
}

TEST_F(Trainer, ResumeContinuesBitForBit) {
  const fs::path dir = trainer_dir("resume");
  write_tiny_setup(dir, synthetic_docs(10));

  const TrainResult straight = c3::train::train(resume_options(dir, "straight"));
  ASSERT_EQ(straight.steps, 8);

  TrainOptions first = resume_options(dir, "halves");
  first.stop_at_step = 4;
  const TrainResult half = c3::train::train(first);
  ASSERT_EQ(half.steps, 4);
  ASSERT_EQ(fs::path(half.last_checkpoint).filename(), "step-0000004");

  TrainOptions second = resume_options(dir, "halves");
  second.resume = (dir / "halves").string();  // the run folder: its latest checkpoint
  second.init = {};                           // the model must come from the checkpoint
  const TrainResult resumed = c3::train::train(second);
  ASSERT_EQ(resumed.steps, 8);

  const fs::path a = straight.last_checkpoint, b = resumed.last_checkpoint;
  ASSERT_EQ(a.filename(), "step-0000008");
  ASSERT_EQ(b.filename(), "step-0000008");
  const int n = expect_same_checkpoint(a, b);
  EXPECT_GT(n, 20);
  // Data position, tokens seen, curriculum and smoothed loss, and AdamW's moments and step
  // counts: the same state, so a further resume would stay identical too.
  EXPECT_EQ(read_file(a / "optimizer" / "state-000000000000.safetensors"),
            read_file(b / "optimizer" / "state-000000000000.safetensors"));
  EXPECT_EQ(nlohmann::json::parse(read_file(a / "trainer_state.json")),
            nlohmann::json::parse(read_file(b / "trainer_state.json")));

  // The appended log holds the same 8 step losses and learning rates.
  auto la = read_log(dir / "straight" / "train_log.jsonl", "step");
  auto lb = read_log(dir / "halves" / "train_log.jsonl", "step");
  ASSERT_EQ(la.size(), 8u);
  ASSERT_EQ(lb.size(), 8u);
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_EQ(la[i]["step"], lb[i]["step"]);
    EXPECT_EQ(la[i]["loss"].get<double>(), lb[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(la[i]["lr"].get<double>(), lb[i]["lr"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(la[i]["curriculum_len"], lb[i]["curriculum_len"]) << "step " << i + 1;
  }
  EXPECT_EQ(la.back()["tokens_seen"], lb.back()["tokens_seen"]);
  EXPECT_EQ(read_log(dir / "halves" / "train_log.jsonl", "start").size(), 2u);
}

// Trains options("straight") through, and options("halves") stopped after `stop` steps and
// resumed from its folder: the two final checkpoints must hold the same tensors.
void expect_resume_matches_straight(const fs::path& dir,
                                    const std::function<TrainOptions(const std::string&)>& options,
                                    int64_t stop) {
  const TrainResult straight = c3::train::train(options("straight"));
  TrainOptions first = options("halves");
  first.stop_at_step = stop;
  c3::train::train(first);
  TrainOptions second = options("halves");
  second.resume = (dir / "halves").string();
  second.init = {};
  const TrainResult resumed = c3::train::train(second);
  EXPECT_GT(expect_same_checkpoint(straight.last_checkpoint, resumed.last_checkpoint), 20);
}

TEST(BatchTokens, WholeBatchesWhileRowsTimesCapFit) {
  using c3::train::rows_per_micro_batch;
  EXPECT_EQ(rows_per_micro_batch(64, 0, 64), 64);           // off
  EXPECT_EQ(rows_per_micro_batch(64, 64 * 512, 64), 512);   // 8 batches at a 64-token cap
  EXPECT_EQ(rows_per_micro_batch(64, 64 * 512, 100), 320);  // 5: 6 would pass the budget
  EXPECT_EQ(rows_per_micro_batch(64, 64 * 512, 512), 64);
  EXPECT_EQ(rows_per_micro_batch(64, 64 * 512, 1344), 64);  // never fewer than one batch
}

// --batch-tokens: at the short starting cap a micro-batch takes several loader batches, then one
// as the cap grows; straight and resumed runs still agree bit for bit (the loader's position
// depends on the cap, which resume restores).
TEST_F(Trainer, BatchTokensTakeMoreRowsAtShortCapsAndResume) {
  const fs::path dir = trainer_dir("batch_tokens");
  write_tiny_setup(dir, synthetic_docs(10));
  auto options = [&](const std::string& run) {
    TrainOptions o = resume_options(dir, run);
    o.batch_tokens = 2 * 36;  // batch 2: 3 batches at cap 12, then 1 at 36 and 64
    return o;
  };
  expect_resume_matches_straight(dir, options, 4);

  const auto log = read_log(dir / "straight" / "train_log.jsonl", "step");
  ASSERT_EQ(log.size(), 8u);
  for (const auto& s : log) {
    // "rows" is the step's, made at the cap in force before it (the logged cap is after it).
    const int64_t rows = s["rows"].get<int64_t>();
    EXPECT_TRUE(rows == 2 * 2 * 3 || rows == 2 * 2) << "step " << s["step"] << ": " << rows;
  }
  EXPECT_EQ(log.front()["rows"], 2 * 2 * 3);  // grad_accum 2 x 3 batches of 2 at cap 12
  EXPECT_EQ(log.back()["rows"], 2 * 2);
  const auto la = read_log(dir / "halves" / "train_log.jsonl", "step");
  ASSERT_EQ(la.size(), 8u);
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_EQ(la[i]["loss"].get<double>(), log[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(la[i]["rows"], log[i]["rows"]) << "step " << i + 1;
  }
}

// --batch-tokens without a curriculum: the loader sizes each batch in tokens (short passages come
// many to a batch, long ones few), the logged rows follow, and a resumed run still matches the
// straight one bit for bit (the loader's position restores with its token batches).
TEST_F(Trainer, BatchTokensWithoutCurriculumMakeTokenSizedBatchesAndResume) {
  const fs::path dir = trainer_dir("token_batches");
  write_tiny_setup(dir, synthetic_docs(16));
  auto options = [&](const std::string& run) {
    TrainOptions o = tiny_options(dir, run);
    o.lengths = "uniform:8-64";
    o.grad_accum = 2;
    o.batch_size = 2;       // not used in this mode
    o.batch_tokens = 128;   // 2 rows of 64 tokens, up to 16 of 8
    o.bucket_docs = 16;     // the 16 passages of an epoch sorted together
    o.max_steps = 8;
    return o;
  };
  expect_resume_matches_straight(dir, options, 4);

  const auto log = read_log(dir / "straight" / "train_log.jsonl", "step");
  ASSERT_EQ(log.size(), 8u);
  std::set<int64_t> rows;
  for (const auto& s : log) rows.insert(s["rows"].get<int64_t>());
  EXPECT_GE(rows.size(), 3u) << "the rows of a step should follow its passages' lengths";
  EXPECT_GT(*rows.rbegin(), 2 * 2) << "short passages should come more than --batch-size a batch";
  const auto la = read_log(dir / "halves" / "train_log.jsonl", "step");
  ASSERT_EQ(la.size(), 8u);
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_EQ(la[i]["loss"].get<double>(), log[i]["loss"].get<double>()) << "step " << i + 1;
    EXPECT_EQ(la[i]["rows"], log[i]["rows"]) << "step " << i + 1;
  }
}

// --objective lm: both halves learn the corpus as plain language models (their next-token loss on
// it falls), the latent path (Q, the projector) stays as initialised, validation reports the LM
// figures, and the checkpoint is a cascade that the reconstruction objective starts from.
TEST_F(Trainer, LmObjectiveTrainsBothHalvesAndInitsTheCascade) {
  const fs::path dir = trainer_dir("lm_objective");
  const std::vector<std::string> docs = synthetic_docs(8);
  write_tiny_setup(dir, docs);
  TrainOptions o = tiny_options(dir, "lm");
  o.objective = TrainOptions::Objective::kLm;
  o.lengths = "uniform:16-64";
  o.batch_size = 4;
  o.max_steps = 40;
  o.valid_files = o.train_files;
  o.eval_passages = 4;
  o.eval_every = 40;
  c3::train::TokenizerSource src;
  c3::cascade::C3Model fresh = c3::train::build_model(o.init, &src);
  TrainResult r = c3::train::train(o);
  ASSERT_EQ(r.steps, 40);

  {  // the halves' LM losses on the corpus, before and after
    torch::NoGradGuard ng;
    std::vector<std::vector<int32_t>> ids;
    for (const auto& d : docs) ids.push_back(c3::train::truncated(fresh->tok().encode(d), 64));
    int64_t targets = 0;
    for (const auto& p : ids) targets += static_cast<int64_t>(p.size()) - 1;
    auto per_token = [&](c3::model::Qwen2ForCausalLM& half) {
      return c3::train::lm_loss_sums(half, ids).loss_sum.item<double>() / targets;
    };
    const double enc0 = per_token(fresh->encoder), dec0 = per_token(fresh->decoder);
    const double enc1 = per_token(r.model->encoder), dec1 = per_token(r.model->decoder);
    std::printf("[lm objective] next-token loss per token: encoder %.3f -> %.3f, decoder %.3f -> %.3f\n",
                enc0, enc1, dec0, dec1);
    EXPECT_LT(enc1, 0.6 * enc0);
    EXPECT_LT(dec1, 0.6 * dec0);
    EXPECT_TRUE(torch::equal(r.model->Q->weight, fresh->Q->weight)) << "Q has no LM gradient";
    EXPECT_TRUE(torch::equal(r.model->mm_projector->weight, fresh->mm_projector->weight));
  }

  const auto valid = read_log(dir / "lm" / "train_log.jsonl", "valid");
  ASSERT_FALSE(valid.empty());
  EXPECT_GT(valid.back()["valid_token_accuracy"].get<double>(), 0.2);
  EXPECT_FALSE(valid.back().contains("valid_char_precision"));
  EXPECT_EQ(read_log(dir / "lm" / "train_log.jsonl", "start").at(0)["objective"], "lm");

  // The reconstruction objective from that checkpoint: its halves start as trained.
  TrainOptions next = tiny_options(dir, "cascade");
  next.init = {};
  next.init.from_c3 = r.last_checkpoint;
  next.max_steps = 2;
  const TrainResult c = c3::train::train(next);
  EXPECT_EQ(c.steps, 2);

  TrainOptions bad = o;
  bad.out_dir = (dir / "bad").string();
  bad.input_noise = 0.1;
  EXPECT_THROW(
      {
        try {
          c3::train::train(bad);
        } catch (const c3::Error& e) {
          EXPECT_NE(std::string(e.what()).find("--objective lm"), std::string::npos) << e.what();
          throw;
        }
      },
      c3::Error);
}

// Training graphs (train/graphed_loss.h) on the CPU: C3_TRAIN_GRAPHS=emulate runs the graph
// path's padded shapes, input buffers, copies and in-place gradient zeroing without the capture.
// Variable lengths, two micro-batches, a curriculum, noise and self-feed: the same losses and
// parameters as the eager step, up to summation order (the padded GEMMs are larger).
TEST_F(Trainer, EmulatedGraphsTrainLikeTheEagerStep) {
  const fs::path dir = trainer_dir("graphs");
  write_tiny_setup(dir, synthetic_docs(10));
  auto run = [&](const char* graphs, const std::string& name) {
    TrainOptions o = resume_options(dir, name);
    o.max_steps = 6;
    o.input_noise = 0.1;
    o.self_feed = 0.2;
    setenv("C3_TRAIN_GRAPHS", graphs, 1);
    const TrainResult r = c3::train::train(o);
    unsetenv("C3_TRAIN_GRAPHS");
    std::vector<at::Tensor> ps;
    for (auto& p : r.model->parameters()) ps.push_back(p.detach().clone());
    return ps;
  };
  const auto eager = run("0", "eager");
  const auto graphed = run("emulate", "graphed");
  const auto start = [&](const char* name) {
    return read_log(dir / name / "train_log.jsonl", "start").at(0)["train_graphs"];
  };
  EXPECT_EQ(start("eager"), "off (no CUDA device)");
  EXPECT_EQ(start("graphed"), "emulate");
  const auto le = read_log(dir / "eager" / "train_log.jsonl", "step");
  const auto lg = read_log(dir / "graphed" / "train_log.jsonl", "step");
  ASSERT_EQ(le.size(), 6u);
  ASSERT_EQ(lg.size(), 6u);
  for (size_t i = 0; i < le.size(); ++i) {
    const double a = le[i]["loss"].get<double>(), b = lg[i]["loss"].get<double>();
    EXPECT_NEAR(b, a, 1e-5 * a) << "step " << i + 1;
    EXPECT_EQ(le[i]["token_accuracy"], lg[i]["token_accuracy"]) << "step " << i + 1;
  }
  const double d = max_abs_diff(eager, graphed);
  std::printf("emulated graphs vs eager after 6 steps: max |param diff| %.2g\n", d);
  EXPECT_LT(d, 1e-5);
}

// Which shapes keep a graph (graphed_loss.h): one that fits beside the largest eager step with a
// tenth to spare, and replays at least 3% faster than its eager step. The 2026-12-05 H100 figures:
// recipe at batch 16 replayed in 23 ms against 36 eager (kept); medium at batch 64, 0.5% faster
// (released); 16 graphs of a medium batch-64 run needed more than the 80 GB card.
TEST(TrainGraphs, KeptWhereTheyFitAndPay) {
  using c3::train::graph_fits;
  using c3::train::graph_pays;
  constexpr int64_t GB = 1000 * 1000 * 1000;
  using c3::train::largest_eager_bytes;
  EXPECT_TRUE(graph_fits(20 * GB, 0, 30 * GB, 60 * GB));
  EXPECT_FALSE(graph_fits(30 * GB, 0, 30 * GB, 60 * GB));  // 60 of 60: no room to fragment
  EXPECT_FALSE(graph_fits(10 * GB, 20 * GB, 30 * GB, 60 * GB));  // the graphs alive count too
  EXPECT_TRUE(graph_fits(1 * GB, 0, 0, 2 * GB));
  // Medium, batch 64, on 80 GB: graphs at 321-449 targets left no room for the step at 1,025.
  const int64_t largest = largest_eager_bytes(13 * GB, 321, 1025);
  EXPECT_GT(largest, 41 * GB);
  EXPECT_LT(largest, 42 * GB);
  EXPECT_TRUE(graph_fits(13 * GB, 0, largest, 74 * GB));
  EXPECT_FALSE(graph_fits(18 * GB, 13 * GB, largest, 74 * GB));
  EXPECT_EQ(largest_eager_bytes(13 * GB, 321, 0), 13 * GB);    // the longest row unknown
  EXPECT_EQ(largest_eager_bytes(13 * GB, 321, 200), 13 * GB);  // never below the peak seen
  EXPECT_TRUE(graph_pays(0.036, 0.023));
  EXPECT_FALSE(graph_pays(0.2366, 0.2354));  // medium 64: 0.5% faster
  EXPECT_FALSE(graph_pays(0.050, 0.060));    // slower
  EXPECT_TRUE(graph_pays(0.100, 0.096));     // 4% faster
  EXPECT_FALSE(graph_pays(0.100, 0.098));    // 2%
  EXPECT_FALSE(graph_pays(0.100, 0.096, 0.05));
}

// Graphs stay off where a part of the step cannot be replayed, and the start record says why.
TEST_F(Trainer, GraphsStayOffWhereTheStepCannotBeReplayed) {
  const fs::path dir = trainer_dir("graphs_off");
  write_tiny_setup(dir, synthetic_docs(6));
  TrainOptions o = tiny_options(dir, "aux");
  o.max_steps = 1;
  o.aux_lm_weight = 0.1;
  setenv("C3_TRAIN_GRAPHS", "emulate", 1);
  c3::train::train(o);
  unsetenv("C3_TRAIN_GRAPHS");
  const std::string why = read_log(fs::path(o.out_dir) / "train_log.jsonl", "start").at(0)["train_graphs"];
  EXPECT_EQ(why, "off (--aux-lm-weight runs a second forward per micro-batch)");
  TrainOptions plain = tiny_options(dir, "plain");  // the CPU asked for graphs: none, no CUDA
  plain.max_steps = 1;
  setenv("C3_TRAIN_GRAPHS", "1", 1);
  c3::train::train(plain);
  unsetenv("C3_TRAIN_GRAPHS");
  EXPECT_EQ(read_log(fs::path(plain.out_dir) / "train_log.jsonl", "start").at(0)["train_graphs"],
            "off (no CUDA device)");
}

// ---- 4. two Gloo processes with batch B == one process with batch 2B -------------------------

// Summation order differs (each rank sums half the rows), and four Adam steps turn that into
// parameter differences near 1e-6: measured 0.7e-6 with separate projections and whole logits,
// 1.7e-6 with stacked projections and the chunked loss.
constexpr double kDistTol = 3e-6;

// Variable lengths (so ranks see different token counts), two micro-batches, a curriculum and
// --batch-tokens (rows a micro-batch that change with the cap): a
// per-rank mean loss or a rank-local curriculum key would break the match.
TrainOptions dist_options(const fs::path& dir, const std::string& run, int64_t batch) {
  TrainOptions o = tiny_options(dir, run);
  o.lengths = "uniform:8-48";
  o.batch_size = batch;
  o.grad_accum = 2;
  o.curriculum_start = 16;
  o.curriculum_gate = 100;
  o.curriculum_patience = 1;
  o.batch_tokens = batch * 36;  // two loader batches a micro-batch at cap 16, one from 24 on
  o.easy_share = 0.5;
  o.lr = 1e-3;
  o.max_steps = 4;
  return o;
}

// Runs 2 copies of this binary as TrainerWorker.Run in `mode` on `dir`; launch_local's status.
int run_trainer_workers(const char* mode, const fs::path& dir) {
  setenv("C3_TRAINER_TEST_MODE", mode, 1);
  setenv("C3_TRAINER_TEST_DIR", dir.c_str(), 1);
  const int rc = c3::train::launch_local(
      2, {"train_tests", "--gtest_filter=TrainerWorker.Run", "--gtest_brief=1"});
  unsetenv("C3_TRAINER_TEST_MODE");
  unsetenv("C3_TRAINER_TEST_DIR");
  return rc;
}

TEST(TrainerWorker, Run) {
  const char* mode = std::getenv("C3_TRAINER_TEST_MODE");
  if (!mode) GTEST_SKIP() << "runs only as a child of the Trainer.*Gloo* tests";
  setenv("C3_NO_PROGRESS", "1", 1);
  const fs::path dir = std::getenv("C3_TRAINER_TEST_DIR");
  const std::string rank = std::getenv("RANK");
  if (std::string(mode) == "time") {
    // The ranks' clocks run at different speeds (1 s and 0.5 s a step) under one 40 s limit:
    // they must agree on the fitted schedule and stop together when rank 0's time is up.
    TrainOptions o = dist_options(dir, "time", 2);
    o.max_steps = 1000000;
    o.clock = fake_clock(rank == "0" ? 1.0 : 0.5);
    o.max_minutes = 40.0 / 60;
    o.fit_steps_to_time = true;
    const TrainResult r = c3::train::train(o);
    write_file(dir / ("steps" + rank + ".txt"), std::to_string(r.steps));
    return;
  }
  ASSERT_EQ(std::string(mode), "dp");
  const TrainResult r = c3::train::train(dist_options(dir, "two", 2));
  ASSERT_EQ(r.steps, 4);
  save_params(r.model, dir / ("rank" + rank + ".pt"));
}

TEST_F(Trainer, TwoGlooProcessesMatchOneProcess) {
  if (!c3::train::DataParallel::available(at::kCPU)) GTEST_SKIP() << "this build has no Gloo";
  const fs::path dir = trainer_dir("dist");
  write_tiny_setup(dir, synthetic_docs(12));

  const TrainResult one = c3::train::train(dist_options(dir, "one", 4));
  ASSERT_EQ(one.steps, 4);
  save_params(one.model, dir / "one.pt");

  ASSERT_EQ(run_trainer_workers("dp", dir), 0) << "a worker failed; its output is above";
  std::vector<at::Tensor> ref, r0, r1;
  torch::load(ref, (dir / "one.pt").string());
  torch::load(r0, (dir / "rank0.pt").string());
  torch::load(r1, (dir / "rank1.pt").string());
  ASSERT_EQ(r0.size(), ref.size());
  ASSERT_EQ(r1.size(), ref.size());
  double max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_TRUE(torch::equal(r0[i], r1[i])) << "parameter " << i << " differs between ranks";
    max_diff = std::max(max_diff, (r0[i] - ref[i]).abs().max().item<double>());
  }
  std::printf("[dist] max |2 processes - 1 process| over %zu parameters: %.3g (tolerance %.0e)\n",
              ref.size(), max_diff, kDistTol);
  EXPECT_LE(max_diff, kDistTol);

  // Rank 0's checkpoint holds rank 0's weights; both runs logged the same global losses.
  auto l1 = read_log(dir / "one" / "train_log.jsonl", "step");
  auto l2 = read_log(dir / "two" / "train_log.jsonl", "step");
  ASSERT_EQ(l1.size(), l2.size());
  for (size_t i = 0; i < l1.size(); ++i) {
    EXPECT_NEAR(l1[i]["loss"].get<double>(), l2[i]["loss"].get<double>(), 1e-5);
    EXPECT_EQ(l1[i]["tokens_seen"], l2[i]["tokens_seen"]);
    EXPECT_EQ(l1[i]["curriculum_len"], l2[i]["curriculum_len"]);
  }
}

// Data parallel with --max-minutes: the ranks run on their own clocks, so they must agree on
// the schedule's length and on the step where time is up; a rank that stopped alone would leave
// the other in a collective.
TEST_F(Trainer, GlooRanksStopTogetherWhenTimeRunsOut) {
  if (!c3::train::DataParallel::available(at::kCPU)) GTEST_SKIP() << "this build has no Gloo";
  const fs::path dir = trainer_dir("dist_time");
  write_tiny_setup(dir, synthetic_docs(12));
  ASSERT_EQ(run_trainer_workers("time", dir), 0) << "a worker failed; its output is above";
  const std::string s0 = read_file(dir / "steps0.txt"), s1 = read_file(dir / "steps1.txt");
  // The fit at step 33 (3 warm-up steps + 30): rank 0 (1 step/s, 7 s left) asks for
  // 33 + 0.97 * 7 = 39 steps, rank 1 (2 steps/s, 23.5 s left) for 33 + 0.97 * 47 = 78; the
  // ranks take the mean, 58. Rank 0's 40 s are up before step 41, which both skip.
  const auto fits = read_log(dir / "time" / "train_log.jsonl", "fit_steps_to_time");
  ASSERT_EQ(fits.size(), 1u);
  EXPECT_EQ(fits[0]["step"], 33);
  EXPECT_EQ(fits[0]["steps"], 58);
  EXPECT_EQ(s0, "41");
  EXPECT_EQ(s1, "41") << "the ranks stopped at different steps";
  const auto end = read_log(dir / "time" / "train_log.jsonl", "end");
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0]["wall_s"].get<double>(), 41.0);  // rank 0's clock
}

// ---- 5. checkpoints: keep the last K; a crashed write is ignored on resume --------------------

TEST_F(Trainer, KeepsLastKCheckpointsAndResumeIgnoresStaleTemp) {
  const fs::path dir = trainer_dir("retention");
  write_tiny_setup(dir, synthetic_docs(6));
  TrainOptions o = tiny_options(dir, "run");
  o.lengths = "fixed:16";
  o.max_steps = 5;
  o.save_every = 1;
  o.keep_last = 2;
  const fs::path run = o.out_dir;
  ASSERT_EQ(c3::train::train(o).steps, 5);
  EXPECT_EQ(step_folders(run), (std::vector<std::string>{"step-0000004", "step-0000005"}));

  // A crash in the middle of writing step 6: a temp folder with a half-written state.
  const fs::path stale = run / ".tmp-step-0000006";
  fs::create_directories(stale);
  write_file(stale / "trainer_state.json", "{\"step\": 6, \"tokens_");
  EXPECT_EQ(c3::train::latest_checkpoint(run.string()), (run / "step-0000005").string());

  o.resume = run.string();
  o.max_steps = 6;
  const TrainResult r = c3::train::train(o);
  EXPECT_EQ(r.steps, 6);
  auto starts = read_log(run / "train_log.jsonl", "start");
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[1]["resume"], (run / "step-0000005").string());
  EXPECT_EQ(step_folders(run), (std::vector<std::string>{"step-0000005", "step-0000006"}));
}

// ---- 6. the JSON-lines log --------------------------------------------------------------------

TEST_F(Trainer, LogHasTheMonitoringFields) {
  const fs::path dir = trainer_dir("log");
  write_tiny_setup(dir, synthetic_docs(6));
  TrainOptions o = tiny_options(dir, "run");
  o.lengths = "uniform:8-24";
  o.max_steps = 6;
  o.log_every = 2;
  c3::train::train(o);
  auto steps = read_log(fs::path(o.out_dir) / "train_log.jsonl", "step");
  ASSERT_EQ(steps.size(), 3u);  // steps 2, 4, 6
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto& s = steps[i];
    EXPECT_EQ(s.value("step", -1), static_cast<int>(2 * (i + 1)));
    for (const char* key : {"loss", "lr", "tokens_per_sec", "mfu", "grad_norm"}) {
      ASSERT_TRUE(s.contains(key) && s[key].is_number()) << "no number '" << key << "' in " << s;
      EXPECT_TRUE(std::isfinite(s[key].get<double>())) << key << " in " << s;
      EXPECT_GE(s[key].get<double>(), 0) << key << " in " << s;
    }
    EXPECT_GT(s["loss"].get<double>(), 0);
    EXPECT_GT(s["lr"].get<double>(), 0);
    EXPECT_GT(s["tokens_per_sec"].get<double>(), 0);
    EXPECT_GT(s["grad_norm"].get<double>(), 0);
  }
  EXPECT_EQ(read_log(fs::path(o.out_dir) / "train_log.jsonl", "start").size(), 1u);
  EXPECT_EQ(read_log(fs::path(o.out_dir) / "train_log.jsonl", "end").size(), 1u);
}


// ---- 7. --fit-steps-to-time: the cosine schedule ends when the time does ----------------------

// One process, --max-minutes alone: the run stops (and saves) at the first step boundary past
// the limit, whatever the machine's speed.
TEST_F(Trainer, StopsAndSavesWhenTimeRunsOut) {
  const fs::path dir = trainer_dir("max_minutes");
  write_tiny_setup(dir, synthetic_docs(6));
  TrainOptions o = tiny_options(dir, "run");
  o.lengths = "fixed:16";
  o.max_steps = 1000;
  o.clock = fake_clock(1.0);
  o.max_minutes = 10.5 / 60;
  const TrainResult r = c3::train::train(o);
  EXPECT_EQ(r.steps, 11);
  EXPECT_EQ(fs::path(r.last_checkpoint).filename(), "step-0000011");
  const auto end = read_log(fs::path(o.out_dir) / "train_log.jsonl", "end");
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0]["wall_s"].get<double>(), 11.0);
  EXPECT_TRUE(read_log(fs::path(o.out_dir) / "train_log.jsonl", "fit_steps_to_time").empty());
}

// With a fake clock whose steps slow from 1 s to 2 s after step 50 (as a growing curriculum
// slows them), under a 240 s limit. The first fit, at step 33 (3 warm-up steps + 30), sees
// 1 step/s and 207 s left: 33 + 0.97 * 207 = 233 steps. The refit 100 steps later sees
// 100 steps in 183 s and 24 s left: 133 + 0.97 * 24 * 100 / 183 = 145, which ends at 240 s.
TEST_F(Trainer, FitsTheScheduleToTheTimeLimit) {
  const fs::path dir = trainer_dir("fit_time");
  write_tiny_setup(dir, synthetic_docs(6));
  TrainOptions o = tiny_options(dir, "run");
  o.lengths = "fixed:8";
  o.warmup_steps = 5;
  o.max_steps = 1000000;  // far more than fits in the time
  o.clock = [](int64_t steps) { return 7.0 + steps + std::max<int64_t>(0, steps - 50); };
  o.max_minutes = 4;
  o.fit_steps_to_time = true;
  const TrainResult r = c3::train::train(o);
  const fs::path log = fs::path(o.out_dir) / "train_log.jsonl";
  auto fits = read_log(log, "fit_steps_to_time");
  ASSERT_EQ(fits.size(), 2u) << "expected a fit and a refit in " << log;
  EXPECT_EQ(fits[0]["step"], 33);
  EXPECT_EQ(fits[0]["steps"], 233);
  EXPECT_EQ(fits[1]["step"], 133);
  EXPECT_EQ(fits[1]["steps"], 145);
  const int64_t fitted = 145;
  EXPECT_EQ(r.steps, fitted);
  // Every logged lr follows the schedule of the latest fit before its step: a fit made in the
  // loop at step k sets the lr from step k + 1 on, logged as step k + 2.
  int checked = 0;
  for (const auto& s : read_log(log, "step")) {
    const int64_t step = s["step"].get<int64_t>();
    int64_t total = -1;
    for (const auto& f : fits)
      if (f["step"].get<int64_t>() <= step - 2) total = f["steps"].get<int64_t>();
    if (total < 0) continue;
    const c3::train::LrSchedule schedule{o.lr, o.min_lr_ratio, o.warmup_steps, total};
    EXPECT_DOUBLE_EQ(s["lr"].get<double>(), schedule.at(step - 1)) << "step " << step;
    ++checked;
  }
  EXPECT_EQ(checked, fitted - 34);  // every step from 35 on
  // The run ended on the fitted schedule's last step, so its lr is one cosine step above the
  // floor.
  const auto last = read_log(log, "step").back();
  EXPECT_EQ(last["step"].get<int64_t>(), fitted);
  const double floor_lr = o.lr * o.min_lr_ratio;
  const double decay_steps = static_cast<double>(fitted - o.warmup_steps);
  const double one_step_above = (o.lr - floor_lr) * (1 - std::cos(M_PI / decay_steps)) / 2;
  EXPECT_NEAR(last["lr"].get<double>(), floor_lr + one_step_above, 1e-12);
}

}  // namespace

// ---- HF initialisation and freezing ---------------------------------------------------------

namespace {

// A random HF Qwen2 folder (config.json + model.safetensors) with the tiny dims, its vocabulary
// the tiny tokenizer's size (so the cascade's grown vocab matches the checkpoint).
std::map<std::string, at::Tensor> write_hf_qwen2(const fs::path& dir, uint64_t seed) {
  c3::model::Qwen2Config cfg;
  cfg.hidden_size = 64;
  cfg.intermediate_size = 128;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;
  cfg.vocab_size = c3::tokenizer::BpeTokenizer::from_file(tiny_tokenizer().string()).vocab_size();
  cfg.tie_word_embeddings = true;
  torch::manual_seed(seed);
  c3::model::Qwen2ForCausalLM m(cfg);
  c3::model::init_weights(*m, 0.5);  // far from the trainer's own 0.02 init: a copy is visible
  c3::model::save_qwen2(m, dir.string(), at::kFloat);
  std::map<std::string, at::Tensor> params;
  for (auto& p : m->named_parameters()) params[p.key()] = p.value().detach().clone();
  return params;
}

}  // namespace

// --encoder-hf / --decoder-hf load every Qwen2 weight; --freeze decoder keeps the decoder exactly
// as loaded while the encoder, Q and the projector train.
TEST_F(Trainer, InitialisesFromHfFoldersAndFreezesTheDecoder) {
  const fs::path dir = trainer_dir("hf_init");
  write_tiny_setup(dir, synthetic_docs(12));
  const auto enc = write_hf_qwen2(dir / "hf_enc", 1);
  const auto dec = write_hf_qwen2(dir / "hf_dec", 2);
  TrainOptions o = tiny_options(dir, "run");
  o.init.encoder_config.clear();
  o.init.decoder_config.clear();
  o.init.encoder_hf = (dir / "hf_enc").string();
  o.init.decoder_hf = (dir / "hf_dec").string();
  o.freeze = "decoder";
  o.max_steps = 3;
  TrainResult r = c3::train::train(o);
  auto& m = r.model;
  int decoder_checked = 0, encoder_moved = 0;
  for (auto& p : m->decoder->named_parameters()) {
    if (!dec.count(p.key())) continue;  // Q and mm_projector live under the decoder's keys
    EXPECT_TRUE(torch::equal(p.value(), dec.at(p.key()))) << "frozen decoder." << p.key() << " changed";
    ++decoder_checked;
  }
  for (auto& p : m->encoder->named_parameters()) {
    ASSERT_TRUE(enc.count(p.key())) << p.key();
    EXPECT_EQ(p.value().sizes(), enc.at(p.key()).sizes());
    // Trained from the HF weights: close to them (lr 3e-3, 3 steps), not to a fresh 0.02 init.
    const double moved = (p.value() - enc.at(p.key())).abs().max().item<double>();
    EXPECT_LT(moved, 0.05) << "encoder." << p.key() << " is not the HF weight it started from";
    encoder_moved += moved > 0;
  }
  EXPECT_EQ(decoder_checked, static_cast<int>(dec.size()));
  EXPECT_GT(encoder_moved, 0) << "the encoder did not train";
  EXPECT_TRUE(m->Q->weight.requires_grad()) << "Q must still train";
}

// An unknown part to freeze is refused before anything runs.
TEST_F(Trainer, RejectsUnknownFreezePart) {
  const fs::path dir = trainer_dir("freeze_bad");
  write_tiny_setup(dir, synthetic_docs(4));
  TrainOptions o = tiny_options(dir, "run");
  o.freeze = "decoder,wings";
  try {
    c3::train::train(o);
    FAIL() << "expected an error";
  } catch (const c3::Error& e) {
    EXPECT_NE(std::string(e.what()).find("wings"), std::string::npos) << e.what();
  }
}
