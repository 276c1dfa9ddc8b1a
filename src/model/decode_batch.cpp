// Continuous batching for greedy decoding (see decode_batch.h for the cache layout).
//
// Shapes: R rows of the cache, n running rows, k joining rows, P their (padded) prompt length,
// T slots per row, V vocabulary.
#include "model/decode_batch.h"

#include <torch/torch.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <unordered_set>

#include "model/cpu_threads.h"
#include "model/prompt_batch.h"
#include "model/sampler.h"
#include "model/step_graph.h"
#include "model/upload.h"
#include "util/error.h"

namespace c3::model {

namespace {

constexpr int64_t kWindow = 256;  // CUDA attends over the cache in windows of this many slots

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The smallest power of two >= n, at most `cap`: few shapes, so few CUDA graphs.
int64_t bucket(int64_t n, int64_t cap) {
  int64_t b = 1;
  while (b < n) b *= 2;
  return std::min(b, cap);
}

}  // namespace

// A row in the batch: where its keys start and what it has produced.
struct Running {
  int64_t ticket = 0;
  int64_t start = 0;     // first cache slot of its (unpadded) prompt
  int64_t next_pos = 0;  // position of the token the next step feeds
  int64_t next_id = 0;   // that token
  int64_t max_new = 0;
  std::vector<int64_t> stop;
  std::optional<NgramBan> ban;
  std::vector<int64_t> out;
};

struct DecodeBatch::Impl {
  Qwen2ForCausalLM model{nullptr};
  DecodeBatchOptions opt;
  at::Device device{at::kCPU};
  at::ScalarType dtype = at::kFloat;
  int64_t hard_slots = 0;  // the cache never grows beyond this (twice the longest row)
  std::unique_ptr<KVCache> cache;
  int64_t clock = 0;  // the slot the next decode step writes, for every row
  std::vector<Running> rows;  // rows[i] lives in cache row i
  std::deque<std::pair<int64_t, DecodeRow>> queue;
  std::vector<FinishedRow> done_early;  // rows with a budget of 0 tokens
  std::unordered_set<int64_t> cancelled;
  int64_t next_ticket = 1;
  at::Tensor logits;            // [n, V] fp32: each running row's next-token logits
  at::Tensor ids_buf, pos_buf;  // [R, 1] long on the device: the step's inputs
  std::map<std::pair<int64_t, int64_t>, StepGraph> graphs;  // (rows, window) -> graph
  bool use_graphs = false;
  std::mt19937_64 rng{0};  // greedy never draws; sample() takes one

  void allocate(int64_t slots);
  void join();
  std::vector<FinishedRow> pick();
  void remove_rows(const std::vector<char>& gone);
  void make_room();
  void shift_slots(int64_t shift);
  void forward();
  int64_t lowest_start() const {
    int64_t lo = clock;
    for (const auto& r : rows) lo = std::min(lo, r.start);
    return lo;
  }
};

void DecodeBatch::Impl::allocate(int64_t slots) {
  const Qwen2Config& mc = model->config();
  auto fresh = std::make_unique<KVCache>(mc, opt.max_rows, slots, dtype, device);
  fresh->enable_static();
  if (cache && !rows.empty()) {
    // Keep the live slots of the running rows.
    const int64_t n = static_cast<int64_t>(rows.size());
    for (size_t l = 0; l < fresh->k.size(); ++l) {
      fresh->k[l].narrow(0, 0, n).narrow(2, 0, clock).copy_(cache->k[l].narrow(0, 0, n).narrow(2, 0, clock));
      fresh->v[l].narrow(0, 0, n).narrow(2, 0, clock).copy_(cache->v[l].narrow(0, 0, n).narrow(2, 0, clock));
    }
    fresh->key_valid.narrow(0, 0, n).narrow(1, 0, clock).copy_(
        cache->key_valid.narrow(0, 0, n).narrow(1, 0, clock));
  }
  graphs.clear();  // they captured the old cache's addresses
  cache = std::move(fresh);
}

// Queued rows take the free rows at the end of the batch. Their prompts are prefilled together
// in a cache of their own, whose keys then move into the slots [clock - P, clock).
void DecodeBatch::Impl::join() {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t k = std::min<int64_t>(opt.max_rows - n, static_cast<int64_t>(queue.size()));
  if (k <= 0) return;
  std::vector<DecodeRow> joining;
  std::vector<int64_t> tickets;
  for (int64_t j = 0; j < k; ++j) {
    tickets.push_back(queue.front().first);
    joining.push_back(std::move(queue.front().second));
    queue.pop_front();
  }
  std::vector<Prompt> prompts;
  for (auto& r : joining) prompts.push_back(std::move(r.prompt));
  const PaddedBatch pb = pad_prompts(model, prompts);
  const int64_t P = pb.embeds.size(1);
  KVCache tmp(model->config(), k, P, dtype, device);
  const at::Tensor h = model->hidden(pb.embeds, {pb.positions, pb.mask, &tmp});  // [k, P, C]
  const at::Tensor first = model->logits(h.select(1, P - 1));                    // [k, V]

  const int64_t at_slot = clock - P;  // >= 0: clock >= max_prompt >= P
  for (size_t l = 0; l < tmp.k.size(); ++l) {
    cache->k[l].narrow(0, n, k).narrow(2, at_slot, P).copy_(tmp.k[l]);
    cache->v[l].narrow(0, n, k).narrow(2, at_slot, P).copy_(tmp.v[l]);
  }
  at::Tensor valid = cache->key_valid.narrow(0, n, k);  // [k, T]
  valid.fill_(false);
  valid.narrow(1, at_slot, P).copy_(tmp.key_valid);
  for (int64_t j = 0; j < k; ++j) {
    Running r;
    r.ticket = tickets[j];
    r.next_pos = pb.next_pos[j];  // the prompt's length
    r.start = clock - r.next_pos;
    r.max_new = joining[j].max_new_tokens;
    r.stop = std::move(joining[j].stop_tokens);
    if (joining[j].no_repeat_ngram_size > 0)
      r.ban.emplace(joining[j].no_repeat_ngram_size, prompts[j].ids);
    rows.push_back(std::move(r));
  }
  logits = logits.defined() && n > 0 ? at::cat({logits, first}, 0) : first;
}

// Greedy choice and stop check for every running row, exactly as generate() does per row.
std::vector<FinishedRow> DecodeBatch::Impl::pick() {
  const int64_t n = static_cast<int64_t>(rows.size());
  std::vector<std::vector<int64_t>> banned(n);
  bool any_ban = false;
  for (int64_t i = 0; i < n; ++i) {
    if (rows[i].ban) {
      banned[i] = rows[i].ban->banned();
      any_ban = any_ban || !banned[i].empty();
    }
  }
  if (any_ban) ban_tokens(logits, banned);
  const at::Tensor next = sample(logits, SamplingParams{}, rng);  // [n] CPU
  const int64_t* ids = next.data_ptr<int64_t>();
  std::vector<FinishedRow> finished;
  std::vector<char> gone(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    Running& r = rows[i];
    if (cancelled.erase(r.ticket)) {
      gone[i] = 1;
      continue;
    }
    const int64_t id = ids[i];
    const bool stop = std::find(r.stop.begin(), r.stop.end(), id) != r.stop.end();
    if (!stop) {
      r.out.push_back(id);
      if (r.ban) r.ban->push(id);
      r.next_id = id;
    }
    if (stop || static_cast<int64_t>(r.out.size()) >= r.max_new) {
      finished.push_back({r.ticket, std::move(r.out)});
      gone[i] = 1;
    }
  }
  logits = at::Tensor();  // consumed
  remove_rows(gone);
  return finished;
}

// Rows that left make holes; the last running rows move into them, so that the running rows stay
// packed in [0, n). A move copies one row's live slots.
void DecodeBatch::Impl::remove_rows(const std::vector<char>& gone) {
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t kept = 0;
  for (char g : gone) kept += !g;
  std::vector<int64_t> holes, movers;
  for (int64_t i = 0; i < kept; ++i)
    if (gone[i]) holes.push_back(i);
  for (int64_t i = kept; i < n; ++i)
    if (!gone[i]) movers.push_back(i);
  for (size_t j = 0; j < holes.size(); ++j) {
    const int64_t from = movers[j], to = holes[j];
    const int64_t lo = rows[from].start, len = clock - lo;
    for (size_t l = 0; l < cache->k.size(); ++l) {
      cache->k[l][to].narrow(1, lo, len).copy_(cache->k[l][from].narrow(1, lo, len));
      cache->v[l][to].narrow(1, lo, len).copy_(cache->v[l][from].narrow(1, lo, len));
    }
    cache->key_valid[to].copy_(cache->key_valid[from]);
    rows[to] = std::move(rows[from]);
  }
  rows.resize(kept);
  if (kept < n) cache->key_valid.narrow(0, kept, n - kept).fill_(false);
}

// Moves every row's live slots down by `shift`; positions and masks are unchanged by it.
void DecodeBatch::Impl::shift_slots(int64_t shift) {
  const int64_t n = static_cast<int64_t>(rows.size()), live = clock - shift;
  for (size_t l = 0; l < cache->k.size(); ++l) {
    for (at::Tensor* t : {&cache->k[l], &cache->v[l]}) {
      at::Tensor rows_n = t->narrow(0, 0, n);
      rows_n.narrow(2, 0, live).copy_(rows_n.narrow(2, shift, live).clone());
    }
  }
  at::Tensor valid = cache->key_valid.narrow(0, 0, n);
  valid.narrow(1, 0, live).copy_(valid.narrow(1, shift, live).clone());
  valid.narrow(1, live, cache->max_len() - live).fill_(false);
  for (auto& r : rows) r.start -= shift;
  clock = live;
}

// Before a step: the clock's slot must exist. The oldest row's first slot becomes slot 0 (never
// leaving fewer than max_prompt slots below the clock, where rows join), and when that leaves
// the cache more than half full, it doubles, up to twice the longest row, which always fits.
void DecodeBatch::Impl::make_room() {
  if (clock < cache->max_len()) return;
  const int64_t shift = std::min(lowest_start(), clock - opt.max_prompt);
  if (shift > 0) shift_slots(shift);
  while ((clock >= cache->max_len() || 2 * clock > cache->max_len()) &&
         cache->max_len() < hard_slots) {
    allocate(std::min(hard_slots, 2 * cache->max_len()));
  }
  C3_CHECK(clock < cache->max_len(), "DecodeBatch: no cache slot for the step (clock {}, {} slots)",
           clock, cache->max_len());
}

// One decode step for the running rows; their logits are the next pick's.
void DecodeBatch::Impl::forward() {
  make_room();
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t B = use_graphs ? bucket(n, opt.max_rows) : n;
  std::vector<int64_t> ids(n), pos(n);
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = rows[i].next_id;
    pos[i] = rows[i].next_pos;
  }
  ids_buf.narrow(0, 0, n).copy_(upload(at::tensor(ids, at::kLong).view({n, 1}), device));
  pos_buf.narrow(0, 0, n).copy_(upload(at::tensor(pos, at::kLong).view({n, 1}), device));
  cache->slot.fill_(clock);
  if (use_graphs) {
    // A window from slot 0 rounded up: few shapes, and the fused attention kernel applies.
    cache->attend_start = 0;
    cache->attend_len = std::min(cache->max_len(), (clock / kWindow + 1) * kWindow);
  } else {
    // Exactly the slots some row uses.
    cache->attend_start = lowest_start();
    cache->attend_len = clock + 1;
  }
  KVCache view = cache->first_rows(B);
  const at::Tensor step_ids = ids_buf.narrow(0, 0, B), step_pos = pos_buf.narrow(0, 0, B);
  auto run_step = [&]() {
    return model->logits(
        model->hidden(model->embed(step_ids), {step_pos, at::Tensor(), &view}).select(1, 0));
  };
  at::Tensor out;  // [B, V]
  if (use_graphs) {
    StepGraph& g = graphs[{B, cache->attend_len}];
    if (!g.captured()) g.capture(run_step);
    out = g.replay();
  } else {
    out = run_step();
  }
  logits = out.narrow(0, 0, n);
  ++clock;
  for (auto& r : rows) ++r.next_pos;
}

DecodeBatch::DecodeBatch(Qwen2ForCausalLM model, const DecodeBatchOptions& opt)
    : impl_(std::make_unique<Impl>()) {
  C3_CHECK(opt.max_rows >= 1, "DecodeBatch: max_rows must be >= 1, got {}", opt.max_rows);
  C3_CHECK(opt.max_prompt >= 1, "DecodeBatch: max_prompt must be >= 1, got {}", opt.max_prompt);
  C3_CHECK(opt.max_new_tokens >= 1, "DecodeBatch: max_new_tokens must be >= 1, got {}",
           opt.max_new_tokens);
  Impl& s = *impl_;
  s.model = std::move(model);
  s.opt = opt;
  const at::Tensor& table = s.model->model->embed_tokens->weight;
  s.device = table.device();
  s.dtype = table.scalar_type();
  s.use_graphs = opt.cuda_graphs && StepGraph::available(s.device);
  s.hard_slots = round_up(2 * (opt.max_prompt + opt.max_new_tokens), kWindow);
  const int64_t first = opt.initial_slots > 0 ? opt.initial_slots
                                              : round_up(2 * opt.max_prompt + 2 * kWindow, kWindow);
  s.allocate(std::min(s.hard_slots, std::max(first, opt.max_prompt + 1)));
  s.clock = opt.max_prompt;
  const auto lopt = at::TensorOptions(at::kLong).device(s.device);
  s.ids_buf = at::zeros({opt.max_rows, 1}, lopt);
  s.pos_buf = at::zeros({opt.max_rows, 1}, lopt);
}

DecodeBatch::~DecodeBatch() = default;

int64_t DecodeBatch::add(DecodeRow row) {
  Impl& s = *impl_;
  const Qwen2Config& mc = s.model->config();
  check_prompt(row.prompt, 0, mc, row.no_repeat_ngram_size > 0);
  const int64_t P = row.prompt.embeds.defined() ? row.prompt.embeds.size(0)
                                                : static_cast<int64_t>(row.prompt.ids.size());
  C3_CHECK(P <= s.opt.max_prompt, "DecodeBatch: a prompt of {} tokens is longer than max_prompt "
           "{}", P, s.opt.max_prompt);
  C3_CHECK(row.max_new_tokens >= 0 && row.max_new_tokens <= s.opt.max_new_tokens,
           "DecodeBatch: max_new_tokens {} is outside [0, {}]", row.max_new_tokens,
           s.opt.max_new_tokens);
  C3_CHECK(row.no_repeat_ngram_size >= 0, "no_repeat_ngram_size must be >= 0, got {}",
           row.no_repeat_ngram_size);
  const int64_t ticket = s.next_ticket++;
  if (row.max_new_tokens == 0) {
    s.done_early.push_back({ticket, {}});  // generate() returns nothing for it either
  } else {
    s.queue.emplace_back(ticket, std::move(row));
  }
  return ticket;
}

void DecodeBatch::cancel(int64_t ticket) {
  Impl& s = *impl_;
  for (auto it = s.queue.begin(); it != s.queue.end(); ++it) {
    if (it->first == ticket) {
      s.queue.erase(it);
      return;
    }
  }
  for (auto it = s.done_early.begin(); it != s.done_early.end(); ++it) {
    if (it->ticket == ticket) {
      s.done_early.erase(it);
      return;
    }
  }
  for (const auto& r : s.rows) {
    if (r.ticket == ticket) s.cancelled.insert(ticket);  // leaves at the next pick
  }
}

std::vector<FinishedRow> DecodeBatch::step() {
  Impl& s = *impl_;
  torch::NoGradGuard no_grad;
  SmallModelThreads threads(s.model->model->embed_tokens->weight, s.model->config().hidden_size);
  std::vector<FinishedRow> finished = std::move(s.done_early);
  s.done_early.clear();
  s.join();
  if (s.rows.empty()) return finished;
  for (auto& f : s.pick()) finished.push_back(std::move(f));
  if (s.rows.empty()) {
    s.clock = s.opt.max_prompt;  // an empty batch starts over at the bottom of the cache
    s.cancelled.clear();
    return finished;
  }
  s.forward();
  return finished;
}

int64_t DecodeBatch::running() const { return static_cast<int64_t>(impl_->rows.size()); }
int64_t DecodeBatch::queued() const {
  return static_cast<int64_t>(impl_->queue.size() + impl_->done_early.size());
}
int64_t DecodeBatch::max_rows() const { return impl_->opt.max_rows; }
int64_t DecodeBatch::cache_slots() const { return impl_->cache->max_len(); }

}  // namespace c3::model
