// Beam search over the dynamic KV cache: reordering beams is an index_select of the cache rows.
//
// Shapes: N running prompts, K beams each, R = N K rows, V vocabulary.
#include "model/beam_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "model/cpu_threads.h"
#include "model/kv_cache.h"
#include "model/prompt_batch.h"
#include "model/sampler.h"
#include "util/error.h"

namespace c3::model {

double BeamHypotheses::score(double sum_logprobs, int64_t length) const {
  return sum_logprobs / std::pow(static_cast<double>(std::max<int64_t>(1, length)), length_penalty_);
}

void BeamHypotheses::add(std::vector<int64_t> ids, double sum_logprobs, int64_t length) {
  const double s = score(sum_logprobs, length);
  if (static_cast<int64_t>(hyps_.size()) == num_beams_) {
    auto worst = std::min_element(hyps_.begin(), hyps_.end(),
                                  [](const Hyp& a, const Hyp& b) { return a.score < b.score; });
    if (s <= worst->score) return;
    hyps_.erase(worst);
  }
  hyps_.push_back({s, std::move(ids)});
}

bool BeamHypotheses::done(double best_running_sum_logprobs, int64_t generated) const {
  if (static_cast<int64_t>(hyps_.size()) < num_beams_) return false;
  double worst = std::numeric_limits<double>::infinity();
  for (const auto& h : hyps_) worst = std::min(worst, h.score);
  return worst >= score(best_running_sum_logprobs, generated);
}

const std::vector<int64_t>& BeamHypotheses::best() const {
  C3_CHECK(!hyps_.empty(), "BeamHypotheses::best: no hypothesis");
  const Hyp* b = &hyps_[0];
  for (const auto& h : hyps_)
    if (h.score > b->score) b = &h;
  return b->ids;
}

namespace {

// One running beam: its ids so far, its n-gram table and its summed log-probability.
struct Beam {
  std::vector<int64_t> ids;
  std::optional<NgramBan> ban;  // with no_repeat_ngram_size
  double sum_logprobs = 0;
};

}  // namespace

std::vector<std::vector<int64_t>> beam_search(Qwen2ForCausalLM& model,
                                              const std::vector<Prompt>& prompts,
                                              const GenerationConfig& cfg,
                                              const std::function<void(int64_t)>& on_step) {
  const Qwen2Config& mc = model->config();
  const int64_t K = cfg.num_beams;
  C3_CHECK(K >= 1, "num_beams must be >= 1, got {}", K);
  C3_CHECK(cfg.temperature == 0.0, "beam search is greedy: set temperature 0 (got {}) or use "
           "one beam", cfg.temperature);
  C3_CHECK(cfg.length_penalty >= 0, "length_penalty must be >= 0, got {}", cfg.length_penalty);
  const bool ngram = cfg.no_repeat_ngram_size > 0;
  for (size_t i = 0; i < prompts.size(); ++i) check_prompt(prompts[i], i, mc, ngram);
  const int64_t B = static_cast<int64_t>(prompts.size());
  std::vector<std::vector<int64_t>> out(B);
  if (cfg.max_new_tokens == 0) return out;

  torch::NoGradGuard no_grad;
  SmallModelThreads threads(model->model->embed_tokens->weight, mc.hidden_size);
  const at::Tensor& table = model->model->embed_tokens->weight;
  const at::Device dev = table.device();
  auto is_stop = [&](int64_t id) {
    return std::find(cfg.stop_tokens.begin(), cfg.stop_tokens.end(), id) != cfg.stop_tokens.end();
  };

  // Prefill once per prompt, then repeat each prompt's cache row and logits K times.
  PaddedBatch batch = pad_prompts(model, prompts);
  const int64_t P = batch.embeds.size(1);
  KVCache cache(mc, B, P + cfg.max_new_tokens, table.scalar_type(), dev);
  const at::Tensor prefill = model->hidden(batch.embeds, {batch.positions, batch.mask, &cache});
  const at::Tensor repeat = at::arange(B, at::kLong).repeat_interleave(K);
  cache.select_rows(repeat);
  at::Tensor logits = model->logits(prefill.select(1, P - 1)).index_select(0, repeat.to(dev));

  std::vector<int64_t> live(B);  // the running prompts, in row order
  std::vector<std::vector<Beam>> beams(B);
  std::vector<BeamHypotheses> hyps;
  std::vector<int64_t> next_pos = batch.next_pos;
  for (int64_t b = 0; b < B; ++b) {
    live[b] = b;
    hyps.emplace_back(K, cfg.length_penalty);
    beams[b].resize(K);
    for (int64_t k = 0; k < K; ++k) {
      if (ngram) beams[b][k].ban.emplace(cfg.no_repeat_ngram_size, prompts[b].ids);
      // All K beams start equal: only the first may extend at the first step (HF's -1e9).
      beams[b][k].sum_logprobs = k == 0 ? 0.0 : -1e9;
    }
  }

  for (int64_t step = 0; step < cfg.max_new_tokens; ++step) {
    const int64_t N = static_cast<int64_t>(live.size());
    at::Tensor logp = at::log_softmax(logits.to(at::kFloat), -1);  // [R, V]
    if (ngram || !cfg.banned_tokens.empty()) {
      std::vector<std::vector<int64_t>> banned;
      for (int64_t b : live) {
        for (const auto& beam : beams[b]) {
          banned.push_back(ngram ? beam.ban->banned() : std::vector<int64_t>());
          banned.back().insert(banned.back().end(), cfg.banned_tokens.begin(),
                               cfg.banned_tokens.end());
        }
      }
      ban_tokens(logp, banned);
    }
    std::vector<double> base;
    for (int64_t b : live)
      for (const auto& beam : beams[b]) base.push_back(beam.sum_logprobs);
    const at::Tensor scores =
        logp.to(at::kDouble) + at::tensor(base, at::kDouble).to(dev).unsqueeze(1);  // [R, V]
    const int64_t V = scores.size(1);
    // 2K candidates per prompt: enough that K survive even if K of them stop.
    auto top = scores.view({N, K * V}).topk(std::min<int64_t>(2 * K, K * V), 1);
    const at::Tensor top_val = std::get<0>(top).cpu(), top_idx = std::get<1>(top).cpu();
    const int64_t C = top_val.size(1);
    const double* val = top_val.data_ptr<double>();
    const int64_t* idx = top_idx.data_ptr<int64_t>();

    std::vector<int64_t> next_live, src_rows, step_ids;
    std::vector<std::vector<Beam>> next_beams(B);
    const int64_t generated = step + 1;  // each beam's length after this step
    for (int64_t n = 0; n < N; ++n) {
      const int64_t b = live[n];
      // The K best continuations that do not stop; stops in the top K become hypotheses.
      struct Pick {
        int64_t src, id;
        double sum_logprobs;
      };
      std::vector<Pick> picks;
      for (int64_t c = 0; c < C && static_cast<int64_t>(picks.size()) < K; ++c) {
        const double v = val[n * C + c];
        if (!std::isfinite(v) || v <= -1e8) continue;  // banned, or a placeholder beam
        const int64_t src = idx[n * C + c] / V, id = idx[n * C + c] % V;
        if (is_stop(id)) {
          if (c < K) hyps[b].add(beams[b][src].ids, v, static_cast<int64_t>(beams[b][src].ids.size()) + 1);
          continue;
        }
        picks.push_back({src, id, v});
      }
      const bool at_end = step + 1 == cfg.max_new_tokens;
      if (picks.empty() || hyps[b].done(val[n * C], generated) || at_end) {
        if (at_end)  // HF's finalize: the running beams compete with the finished ones
          for (const Pick& p : picks) {
            std::vector<int64_t> ids = beams[b][p.src].ids;
            ids.push_back(p.id);
            hyps[b].add(std::move(ids), p.sum_logprobs, generated);
          }
        out[b] = hyps[b].empty() ? std::vector<int64_t>{} : hyps[b].best();
        continue;
      }
      // The new beams; a parent's last child takes its state, earlier children copy it.
      std::vector<int64_t> uses(K, 0);
      for (const Pick& p : picks) ++uses[p.src];
      std::vector<Beam>& next = next_beams[b];
      const size_t first_row = src_rows.size();
      for (const Pick& p : picks) {
        Beam& parent = beams[b][p.src];
        next.push_back(--uses[p.src] == 0 ? std::move(parent) : parent);
        next.back().ids.push_back(p.id);
        if (ngram) next.back().ban->push(p.id);
        next.back().sum_logprobs = p.sum_logprobs;
        src_rows.push_back(n * K + p.src);
        step_ids.push_back(p.id);
      }
      while (static_cast<int64_t>(next.size()) < K) {  // too few candidates: inert copies
        Beam copy = next[0];
        copy.sum_logprobs = -1e9;
        next.push_back(std::move(copy));
        src_rows.push_back(src_rows[first_row]);
        step_ids.push_back(step_ids[first_row]);
      }
      next_live.push_back(b);
    }
    for (int64_t b : next_live) beams[b] = std::move(next_beams[b]);
    std::vector<int64_t> pos;
    for (int64_t b : next_live) pos.insert(pos.end(), K, next_pos[b] + step);
    live = std::move(next_live);
    if (on_step) on_step(static_cast<int64_t>(live.size()));
    if (live.empty()) break;

    // Reorder the cache to the chosen parents, then one decode step for all K beams.
    cache.reorder_rows(src_rows);
    const int64_t R = static_cast<int64_t>(src_rows.size());
    const at::Tensor ids = at::tensor(step_ids, at::kLong).view({R, 1}).to(dev);
    const at::Tensor p = at::tensor(pos, at::kLong).view({R, 1}).to(dev);
    logits = model->logits(model->hidden(model->embed(ids), {p, at::Tensor(), &cache}).select(1, 0));
  }
  return out;
}

}  // namespace c3::model
