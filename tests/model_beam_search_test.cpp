// Beam search: the batched, cached implementation against a plain reference that recomputes the
// whole sequence of each beam with no cache and ranks candidates with std::sort; and the
// bookkeeping of finished hypotheses.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "model/beam_search.h"
#include "model/generate.h"
#include "model/sampler.h"
#include "model_golden.h"

namespace c3::test {
namespace {

using model::BeamHypotheses;
using model::GenerationConfig;
using model::Prompt;

TEST(BeamHypotheses, KeepsTheBestByLengthNormalisedScore) {
  BeamHypotheses h(2, 1.0);
  EXPECT_TRUE(h.empty());
  h.add({1}, -4.0, 2);     // -2.0
  h.add({2, 2}, -3.0, 3);  // -1.0
  h.add({3}, -5.0, 1);     // -5.0: worse than both kept, dropped
  EXPECT_EQ(h.best(), (std::vector<int64_t>{2, 2}));
  h.add({4, 4, 4}, -2.0, 4);  // -0.5: replaces -2.0
  EXPECT_EQ(h.best(), (std::vector<int64_t>{4, 4, 4}));
  // Worst kept is -1.0: a running beam at -3.0 over 4 tokens (-0.75) may still beat it.
  EXPECT_FALSE(h.done(-3.0, 4));
  EXPECT_TRUE(h.done(-5.0, 4));  // -1.25
  // Length penalty 0: raw sums.
  BeamHypotheses raw(1, 0.0);
  raw.add({1, 1, 1}, -3.0, 4);
  raw.add({2}, -2.5, 2);
  EXPECT_EQ(raw.best(), (std::vector<int64_t>{2}));
}

TEST(BeamHypotheses, NotDoneUntilFull) {
  BeamHypotheses h(3, 1.0);
  h.add({1}, -0.1, 2);
  h.add({2}, -0.2, 2);
  EXPECT_FALSE(h.done(-100.0, 10));
  h.add({3}, -0.3, 2);
  EXPECT_TRUE(h.done(-100.0, 10));
}

// The same algorithm written the slow, obvious way: every beam's whole sequence through the model
// with no cache, candidates ranked by std::sort.
std::vector<int64_t> reference_beam_search(model::Qwen2ForCausalLM& m, const std::vector<int64_t>& prompt,
                                           int64_t K, int64_t max_new, int64_t ngram,
                                           int64_t stop, double lp) {
  struct RefBeam {
    std::vector<int64_t> ids;
    double sum;
  };
  struct Hyp {
    double score;
    std::vector<int64_t> ids;
  };
  std::vector<RefBeam> beams{{{}, 0.0}};
  std::vector<Hyp> hyps;
  auto norm = [&](double sum, int64_t len) {
    return sum / std::pow(static_cast<double>(std::max<int64_t>(1, len)), lp);
  };
  auto add = [&](std::vector<int64_t> ids, double sum, int64_t len) {
    const double s = norm(sum, len);
    if (static_cast<int64_t>(hyps.size()) == K) {
      auto worst = std::min_element(hyps.begin(), hyps.end(),
                                    [](const Hyp& a, const Hyp& b) { return a.score < b.score; });
      if (s <= worst->score) return;
      hyps.erase(worst);
    }
    hyps.push_back({s, std::move(ids)});
  };
  auto best = [&] {
    const Hyp* b = &hyps.at(0);
    for (const auto& h : hyps)
      if (h.score > b->score) b = &h;
    return b->ids;
  };
  torch::NoGradGuard ng;
  for (int64_t step = 0; step < max_new; ++step) {
    struct Cand {
      double v;
      size_t beam;
      int64_t id;
    };
    std::vector<Cand> cands;
    for (size_t i = 0; i < beams.size(); ++i) {
      std::vector<int64_t> full = prompt;
      full.insert(full.end(), beams[i].ids.begin(), beams[i].ids.end());
      at::Tensor logp = at::log_softmax(m->forward(at::tensor(full, at::kLong).unsqueeze(0))[0][-1], -1);
      std::vector<int64_t> banned;
      if (ngram > 0) {
        model::NgramBan ban(ngram, prompt);
        for (int64_t t : beams[i].ids) ban.push(t);
        banned = ban.banned();
      }
      for (int64_t id = 0; id < logp.size(0); ++id) {
        if (std::find(banned.begin(), banned.end(), id) != banned.end()) continue;
        cands.push_back({static_cast<double>(logp[id].item<float>()) + beams[i].sum, i, id});
      }
    }
    std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.v > b.v; });
    std::vector<RefBeam> next;
    for (size_t c = 0; c < std::min<size_t>(2 * K, cands.size()) && static_cast<int64_t>(next.size()) < K; ++c) {
      const RefBeam& parent = beams[cands[c].beam];
      if (cands[c].id == stop) {
        if (static_cast<int64_t>(c) < K) add(parent.ids, cands[c].v, static_cast<int64_t>(parent.ids.size()) + 1);
        continue;
      }
      RefBeam child = parent;
      child.ids.push_back(cands[c].id);
      child.sum = cands[c].v;
      next.push_back(child);
    }
    const bool full = static_cast<int64_t>(hyps.size()) == K;
    double worst = 0;
    if (full) {
      worst = hyps[0].score;
      for (const auto& h : hyps) worst = std::min(worst, h.score);
    }
    const bool done = full && worst >= norm(cands[0].v, step + 1);
    const bool at_end = step + 1 == max_new;
    if (next.empty() || done || at_end) {
      if (at_end)
        for (const auto& b : next) add(b.ids, b.sum, step + 1);
      return hyps.empty() ? std::vector<int64_t>{} : best();
    }
    beams = std::move(next);
  }
  return {};
}

// The stop token: the one the model most often ranks second-best over a few prompts, so that
// hypotheses finish early and late.
int64_t a_likely_token(model::Qwen2ForCausalLM& m, const std::vector<std::vector<int64_t>>& prompts) {
  torch::NoGradGuard ng;
  std::vector<int64_t> votes(m->config().vocab_size, 0);
  for (const auto& p : prompts) {
    const at::Tensor logits = m->forward(at::tensor(p, at::kLong).unsqueeze(0))[0];
    const at::Tensor second = std::get<1>(logits.topk(2, -1)).select(1, 1);
    for (int64_t t = 0; t < second.size(0); ++t) ++votes[second[t].item<int64_t>()];
  }
  return static_cast<int64_t>(std::max_element(votes.begin(), votes.end()) - votes.begin());
}

void expect_matches_reference(int64_t K, int64_t ngram, bool with_stop, double lp) {
  auto m = tiny_model(tiny_config(), 11);
  const std::vector<std::vector<int64_t>> ids = {
      {5, 17, 33, 2, 9, 40, 41, 7}, {12, 3}, {60, 61, 62, 63, 64}};
  const int64_t stop = with_stop ? a_likely_token(m, ids) : -1;
  GenerationConfig cfg;
  cfg.max_new_tokens = 14;
  cfg.num_beams = K;
  cfg.no_repeat_ngram_size = ngram;
  cfg.length_penalty = lp;
  if (with_stop) cfg.stop_tokens = {stop};
  std::vector<Prompt> prompts;
  for (const auto& p : ids) prompts.push_back({p, at::Tensor()});
  const auto got = model::generate(m, prompts, cfg);
  ASSERT_EQ(got.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto want = reference_beam_search(m, ids[i], K, cfg.max_new_tokens, ngram, stop, lp);
    EXPECT_EQ(got[i], want) << "prompt " << i << ", " << K << " beams, ngram " << ngram
                            << ", stop " << stop;
  }
}

TEST(BeamSearch, MatchesThePlainReference) { expect_matches_reference(3, 0, false, 1.0); }
TEST(BeamSearch, MatchesThePlainReferenceWithStopsAndTheNgramBan) {
  expect_matches_reference(4, 2, true, 1.0);
}
TEST(BeamSearch, MatchesThePlainReferenceWithoutLengthPenalty) {
  expect_matches_reference(2, 3, true, 0.0);
}

TEST(BeamSearch, EmbeddingPromptsGiveTheSameIds) {
  auto m = tiny_model(tiny_config(), 5);
  const std::vector<int64_t> ids = {4, 8, 15, 16, 23, 42};
  GenerationConfig cfg;
  cfg.max_new_tokens = 10;
  cfg.num_beams = 3;
  cfg.no_repeat_ngram_size = 2;
  at::Tensor emb;
  {
    torch::NoGradGuard ng;
    emb = m->embed(at::tensor(ids, at::kLong).unsqueeze(0))[0];
  }
  const auto a = model::generate(m, {Prompt{ids, at::Tensor()}}, cfg);
  const auto b = model::generate(m, {Prompt{ids, emb}}, cfg);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[0].size(), 10u);
}

TEST(BeamSearch, RejectsSampling) {
  auto m = tiny_model(tiny_config());
  GenerationConfig cfg;
  cfg.num_beams = 2;
  cfg.temperature = 0.7;
  try {
    model::generate(m, {Prompt{{1, 2, 3}, at::Tensor()}}, cfg);
    FAIL() << "beam search with a temperature was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("temperature"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace c3::test
