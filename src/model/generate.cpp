// Generation: prefill, decode step, sample, stop check (the ExecuTorch runner's split).
//
// Shapes: B running rows, P longest prompt, C hidden size, V vocabulary.
#include "model/generate.h"

#include <algorithm>
#include <optional>
#include <map>
#include <memory>
#include <random>

#include "io/torch_compat.h"
#include "model/beam_search.h"
#include "model/cpu_threads.h"
#include "model/prompt_batch.h"
#include "model/sampler.h"
#include "model/step_graph.h"
#include "model/upload.h"
#include "util/error.h"

namespace c3::model {

// A static cache, its step inputs and the graphs captured over them (see decode_static).
struct DecodeSession {
  DecodeSession(const Qwen2Config& mc, int64_t batch, int64_t max_len, at::ScalarType dtype,
                at::Device device)
      : cache(mc, batch, max_len, dtype, device),
        ids_buf(at::zeros({batch, 1}, at::TensorOptions(at::kLong).device(device))),
        pos_buf(at::zeros({batch, 1}, at::TensorOptions(at::kLong).device(device))) {
    cache.enable_static();
  }
  KVCache cache;
  bool autocast = false;                     // captured under autocast: replay only under it
  at::Tensor ids_buf, pos_buf;               // [B, 1] long: the step's token and position
  std::map<int64_t, StepGraph> by_window;    // attend_len -> its graph
};

namespace {

template <typename T>
void keep_rows(std::vector<T>& v, const std::vector<int64_t>& keep) {
  std::vector<T> kept;
  kept.reserve(keep.size());
  for (int64_t j : keep) kept.push_back(std::move(v[j]));
  v = std::move(kept);
}

// The tokens row j may not emit at this step: its n-gram ban's (bans empty: none) and the
// config's banned tokens.
std::vector<int64_t> banned_now(const GenerationConfig& cfg, const std::vector<NgramBan>& bans,
                                size_t j) {
  std::vector<int64_t> out = bans.empty() ? std::vector<int64_t>() : bans[j].banned();
  out.insert(out.end(), cfg.banned_tokens.begin(), cfg.banned_tokens.end());
  return out;
}

// The decode loop over a static cache (GenerationConfig::static_cache): rows never leave the
// batch, the step's inputs live in fixed device buffers, and on CUDA each cache window size gets
// one captured graph. `logits` holds the prefill's last logits.
void decode_static(Qwen2ForCausalLM& model, const GenerationConfig& cfg,
                   const SamplingParams& sampling, std::mt19937_64& rng, DecodeSession& session,
                   at::Tensor logits, std::vector<int64_t> next_pos, std::vector<NgramBan>& bans,
                   std::vector<std::vector<int64_t>>& out,
                   const std::function<void(int64_t)>& on_step) {
  const at::Device dev = logits.device();
  const int64_t B = static_cast<int64_t>(out.size());
  const bool ngram = !bans.empty();
  KVCache& cache = session.cache;
  at::Tensor& ids_buf = session.ids_buf;
  at::Tensor& pos_buf = session.pos_buf;
  cache.static_mode = true;
  const bool graphs = cfg.cuda_graphs && StepGraph::available(dev);
  auto run_step = [&]() {
    return model->logits(model->hidden(model->embed(ids_buf), {pos_buf, at::Tensor(), &cache})
                             .select(1, 0));  // [B, V]
  };
  std::vector<char> done(B, 0);
  int64_t running = B;
  for (int64_t step = 0; step < cfg.max_new_tokens; ++step) {
    if (ngram || !cfg.banned_tokens.empty()) {
      std::vector<std::vector<int64_t>> banned(B);
      for (int64_t j = 0; j < B; ++j)
        if (!done[j]) banned[j] = banned_now(cfg, bans, j);
      ban_tokens(logits, banned);
    }
    std::vector<int64_t> next_ids(B, 0);
    if (sampling.temperature > 0 && running < B) {
      // Draw for the running rows only, in order, as the dynamic path (which drops finished
      // rows) does: a seed then gives the same ids on both paths.
      std::vector<int64_t> live;
      for (int64_t j = 0; j < B; ++j)
        if (!done[j]) live.push_back(j);
      const at::Tensor rows = upload(at::tensor(live, at::kLong), dev);
      const at::Tensor next = sample(logits.index_select(0, rows), sampling, rng);  // CPU
      for (size_t k = 0; k < live.size(); ++k) next_ids[live[k]] = next.data_ptr<int64_t>()[k];
    } else {
      const at::Tensor next = sample(logits, sampling, rng);  // [B] CPU
      std::copy(next.data_ptr<int64_t>(), next.data_ptr<int64_t>() + B, next_ids.begin());
    }
    for (int64_t j = 0; j < B; ++j) {
      if (done[j]) continue;
      const int64_t id = next_ids[j];
      if (std::find(cfg.stop_tokens.begin(), cfg.stop_tokens.end(), id) != cfg.stop_tokens.end()) {
        done[j] = 1;
        --running;
        continue;
      }
      out[j].push_back(id);
      if (ngram) bans[j].push(id);
    }
    if (on_step) on_step(running);
    if (running == 0 || step + 1 == cfg.max_new_tokens) break;

    // Inputs into the fixed buffers (asynchronous copies), then the step.
    ids_buf.copy_(upload(at::tensor(next_ids, at::kLong).view({B, 1}), dev));
    pos_buf.copy_(upload(at::tensor(next_pos, at::kLong).view({B, 1}), dev));
    cache.slot.fill_(cache.len);
    const int64_t window = std::min<int64_t>(cache.max_len(), (cache.len / 256 + 1) * 256);
    cache.attend_len = window;
    if (graphs) {
      StepGraph& g = session.by_window[window];
      if (!g.captured()) g.capture(run_step);
      logits = g.replay();
    } else {
      logits = run_step();
    }
    ++cache.len;
    for (int64_t& p : next_pos) ++p;
  }
}

}  // namespace

std::vector<std::vector<int64_t>> generate(Qwen2ForCausalLM& model,
                                           const std::vector<Prompt>& prompts,
                                           const GenerationConfig& cfg,
                                           const std::function<void(int64_t)>& on_step) {
  const Qwen2Config& mc = model->config();
  C3_CHECK(!prompts.empty(), "generate: no prompts");
  if (cfg.num_beams > 1) return beam_search(model, prompts, cfg, on_step);
  C3_CHECK(cfg.max_new_tokens >= 0, "max_new_tokens must be >= 0, got {}", cfg.max_new_tokens);
  C3_CHECK(cfg.no_repeat_ngram_size >= 0, "no_repeat_ngram_size must be >= 0, got {}",
           cfg.no_repeat_ngram_size);
  C3_CHECK(cfg.temperature >= 0.0, "temperature must be >= 0, got {}", cfg.temperature);
  C3_CHECK(cfg.top_k >= 0, "top_k must be >= 0, got {}", cfg.top_k);
  C3_CHECK(cfg.top_p > 0.0 && cfg.top_p <= 1.0, "top_p must be in (0, 1], got {}", cfg.top_p);
  const bool ngram = cfg.no_repeat_ngram_size > 0;
  for (size_t i = 0; i < prompts.size(); ++i) check_prompt(prompts[i], i, mc, ngram);

  std::vector<std::vector<int64_t>> out(prompts.size());
  if (cfg.max_new_tokens == 0) return out;
  torch::NoGradGuard no_grad;
  SmallModelThreads threads(model->model->embed_tokens->weight, mc.hidden_size);
  const at::Tensor& table = model->model->embed_tokens->weight;
  const SamplingParams sampling{cfg.temperature, cfg.top_k, cfg.top_p};
  std::mt19937_64 rng(cfg.seed);

  // Per running row: its prompt index, next position and n-gram table.
  PaddedBatch batch = pad_prompts(model, prompts);
  std::vector<int64_t> rows(prompts.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
  std::vector<int64_t> next_pos = batch.next_pos;
  std::vector<NgramBan> bans;
  if (ngram) {
    for (const auto& p : prompts) bans.emplace_back(cfg.no_repeat_ngram_size, p.ids);
  }

  // Prefill: the whole padded prompt batch at once; only the last slot's logits are needed.
  const int64_t B = static_cast<int64_t>(prompts.size()), P = batch.embeds.size(1);
  const bool static_cache = cfg.auto_static_cache ? table.is_cuda() : cfg.static_cache;
  std::unique_ptr<KVCache> own_cache;
  KVCache* cache_ptr = nullptr;
  if (static_cache) {
    // Reuse the last session when it fits (same rows, dtype, device; enough slots).
    auto& s = model->decode_session;
    const int64_t need = P + cfg.max_new_tokens;
    const bool autocast_on = table.is_cuda() && compat::autocast_enabled_cuda();
    if (!s || s->cache.batch() != B || s->cache.max_len() < need || s->autocast != autocast_on ||
        s->cache.k[0].scalar_type() != table.scalar_type() ||
        s->cache.k[0].device() != table.device()) {
      s.reset();  // free the old cache first
      s = std::make_shared<DecodeSession>(mc, B, (need + 255) / 256 * 256, table.scalar_type(),
                                          table.device());
      s->autocast = autocast_on;
    }
    cache_ptr = &s->cache;
    cache_ptr->len = 0;
    cache_ptr->static_mode = false;  // the prefill writes slots [0, P) the dynamic way
  } else {
    own_cache = std::make_unique<KVCache>(mc, B, P + cfg.max_new_tokens, table.scalar_type(),
                                          table.device());
    cache_ptr = own_cache.get();
  }
  KVCache& cache = *cache_ptr;
  const at::Tensor prefill = model->hidden(batch.embeds, {batch.positions, batch.mask, &cache});
  at::Tensor logits = model->logits(prefill.select(1, P - 1));  // [B, V]

  if (static_cache) {
    // Under autocast (validation while training) the session's graphs must read the live
    // weights, not this region's cached casts: the session outlives the region.
    std::optional<compat::AutocastCacheOff> no_cast_cache;
    if (model->decode_session->autocast) no_cast_cache.emplace();
    decode_static(model, cfg, sampling, rng, *model->decode_session, logits, next_pos, bans, out,
                  on_step);
    return out;
  }

  for (int64_t step = 0; step < cfg.max_new_tokens; ++step) {
    // Sample.
    if (ngram || !cfg.banned_tokens.empty()) {
      std::vector<std::vector<int64_t>> banned(rows.size());
      for (size_t j = 0; j < rows.size(); ++j) banned[j] = banned_now(cfg, bans, j);
      ban_tokens(logits, banned);
    }
    const at::Tensor next = sample(logits, sampling, rng);  // [B] CPU
    const int64_t* next_ids = next.data_ptr<int64_t>();

    // Stop check: a row that emits a stop token is done (the stop token is not returned).
    std::vector<int64_t> keep;
    for (size_t j = 0; j < rows.size(); ++j) {
      const int64_t id = next_ids[j];
      const bool stop = std::find(cfg.stop_tokens.begin(), cfg.stop_tokens.end(), id) !=
                        cfg.stop_tokens.end();
      if (stop) continue;
      out[rows[j]].push_back(id);
      if (ngram) bans[j].push(id);
      keep.push_back(static_cast<int64_t>(j));
    }
    if (on_step) on_step(static_cast<int64_t>(keep.size()));
    if (keep.empty() || step + 1 == cfg.max_new_tokens) break;

    // Drop finished rows from the batch and the cache.
    std::vector<int64_t> step_ids;
    for (int64_t j : keep) step_ids.push_back(next_ids[j]);
    if (keep.size() < rows.size()) {
      cache.select_rows(at::tensor(keep, at::kLong));
      keep_rows(rows, keep);
      keep_rows(next_pos, keep);
      if (ngram) keep_rows(bans, keep);
    }

    // Decode step: one new token per running row, attending over the cache.
    const int64_t Bk = static_cast<int64_t>(rows.size());
    const at::Tensor ids = at::tensor(step_ids, at::kLong).view({Bk, 1}).to(table.device());
    const at::Tensor pos = at::tensor(next_pos, at::kLong).view({Bk, 1}).to(table.device());
    const at::Tensor h = model->hidden(model->embed(ids), {pos, at::Tensor(), &cache});  // [B, 1, C]
    logits = model->logits(h.select(1, 0));  // [B, V]
    for (int64_t& p : next_pos) ++p;
  }
  return out;
}

}  // namespace c3::model
