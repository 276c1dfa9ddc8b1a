// The engine loop: inbox -> encoder pass -> (a beam chunk) -> (a step) -> decode step -> answers.
#include "serve/scheduler.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <future>

#include "model/decode_batch.h"
#include "util/error.h"

namespace c3::serve {

// One request inside the engine. Only the engine thread touches its counters; the caller waits
// on `done` and may set `abandoned`.
struct Scheduler::Job {
  explicit Job(Work w) : work(std::move(w)) {
    n = work.kind == WorkKind::kDecompress ? work.latents.size(0)
                                           : static_cast<int64_t>(work.chunks.size());
    lat.resize(n);
    ids.resize(n);
  }
  Work work;
  int64_t n = 0;
  int64_t encoded = 0;    // chunks through the encoder (compress, roundtrip)
  int64_t to_decode = 0;  // chunks handed to the decoder
  int64_t decoded = 0;    // chunks whose ids are in
  std::vector<at::Tensor> lat;  // per chunk [1, L, C]: compress keeps them, a round trip until
                                // the chunk joins the decoder
  std::vector<std::vector<int64_t>> ids;
  bool stepping = true;        // steps: more remain
  std::exception_ptr failed;  // steps: what a step threw (this request fails alone)
  std::promise<WorkResult> done;
  std::atomic<bool> abandoned{false};

  bool steps() const { return work.kind == WorkKind::kSteps; }
  bool decodes() const {
    return work.kind == WorkKind::kDecompress || work.kind == WorkKind::kRoundtrip;
  }
  bool beams() const { return decodes() && work.decode.num_beams > 1; }
  int64_t ready() const { return work.kind == WorkKind::kDecompress ? n : encoded; }
  bool can_decode() const { return decodes() && to_decode < ready(); }
  bool complete() const {
    if (steps()) return !stepping;
    return decodes() ? decoded == n : encoded == n;
  }
  bool encodes() const { return work.kind != WorkKind::kDecompress && encoded < n; }

  // Chunk i's latents [1, L, C] on the model's device, and its decoding options.
  at::Tensor latent(int64_t i, const at::Tensor& like) {
    if (work.kind == WorkKind::kDecompress)
      return work.latents.narrow(0, i, 1).to(like.device(), like.scalar_type());
    return std::move(lat[i]);  // the decoder is the last to need it
  }
  cascade::DecompressOptions options(int64_t i) const {
    cascade::DecompressOptions o = work.decode;
    o.source_tokens = {work.source_tokens.at(i)};
    return o;
  }
};

Scheduler::Scheduler(cascade::LoadedC3& m, const SchedulerOptions& opt, Metrics* metrics)
    : m_(m), opt_(opt), metrics_(metrics) {
  C3_CHECK(opt.max_batch >= 1 && opt.encode_batch >= 1 && opt.max_queue >= 1,
           "scheduler: --max-batch ({}), --encode-batch ({}) and --max-queue ({}) must be >= 1",
           opt.max_batch, opt.encode_batch, opt.max_queue);
  batch_ = std::make_unique<model::DecodeBatch>(m.model->decoder, batch_options());
  engine_ = std::thread([this] { loop(); });
}

model::DecodeBatchOptions Scheduler::batch_options() const {
  model::DecodeBatchOptions bo;
  bo.max_rows = opt_.max_batch;
  bo.max_prompt = static_cast<int64_t>(m_.model->prompt_ids().size());
  bo.max_new_tokens = opt_.max_new_tokens;
  bo.cuda_graphs = opt_.cuda_graphs;
  return bo;
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  engine_.join();
}

WorkResult Scheduler::run(Work work, double timeout_s) {
  C3_CHECK(work.kind != WorkKind::kSteps || work.step, "scheduler: steps without a step function");
  if (work.kind != WorkKind::kCompress && work.kind != WorkKind::kSteps) {
    const size_t n = work.kind == WorkKind::kDecompress ? work.latents.size(0) : work.chunks.size();
    C3_CHECK(work.source_tokens.size() == n, "scheduler: {} source lengths for {} chunks",
             work.source_tokens.size(), n);
  }
  auto job = std::make_shared<Job>(std::move(work));
  std::future<WorkResult> result = job->done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_ || stop_) throw Unavailable("the server is shutting down; retry on another");
    if (accepted_ >= opt_.max_queue)
      throw Overloaded(fmt::format("the server is busy: {} requests are queued or running "
                                   "(--max-queue); retry later", accepted_));
    ++accepted_;
    inbox_.push_back(job);
  }
  wake_.notify_one();
  const auto wait = std::chrono::duration<double>(timeout_s);
  if (result.wait_for(wait) != std::future_status::ready) {
    job->abandoned = true;
    wake_.notify_one();
    throw Unavailable(fmt::format("the request did not finish within {} s (--request-timeout); "
                                  "the server is overloaded or the text is long: retry later, "
                                  "send less, or raise --request-timeout", timeout_s));
  }
  return result.get();
}

void Scheduler::stop_accepting() {
  std::lock_guard<std::mutex> lock(mu_);
  draining_ = true;
}

void Scheduler::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  draining_ = true;
  drained_.wait(lock, [&] { return accepted_ == 0; });
}

int64_t Scheduler::accepted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return accepted_;
}

int64_t Scheduler::running_rows() const { return running_rows_.load(); }

void Scheduler::release(int64_t n) {
  if (n == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepted_ -= n;
  }
  drained_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// The engine thread

void Scheduler::loop() {
  std::vector<std::shared_ptr<Job>> active;  // arrival order
  bool stop = false;
  while (!stop) {
    take_inbox(active, stop);
    if (stop) break;
    drop_abandoned(active);
    try {
      torch::NoGradGuard no_grad;
      encode_some(active);
      beam_one(active);
      step_one(active);
      decode_step(active);
    } catch (...) {
      // The batch's state is unknown after a failed step: every request in it fails alike.
      fail_all(active, std::current_exception());
    }
    finish_done(active);
  }
  fail_all(active, std::make_exception_ptr(Unavailable("the server is shutting down")));
  std::deque<std::shared_ptr<Job>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(inbox_);
  }
  release(static_cast<int64_t>(left.size()));
  for (auto& job : left)
    job->done.set_exception(std::make_exception_ptr(Unavailable("the server is shutting down")));
}

// Waits for work when there is none, then moves new requests to the active list.
void Scheduler::take_inbox(std::vector<std::shared_ptr<Job>>& active, bool& stop) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait(lock, [&] { return stop_ || !inbox_.empty() || !active.empty(); });
  stop = stop_;
  while (!inbox_.empty()) {
    active.push_back(std::move(inbox_.front()));
    inbox_.pop_front();
  }
}

void Scheduler::drop_abandoned(std::vector<std::shared_ptr<Job>>& active) {
  int64_t dropped = 0;
  for (auto it = active.begin(); it != active.end();) {
    if (!(*it)->abandoned) {
      ++it;
      continue;
    }
    for (auto r = rows_.begin(); r != rows_.end();) {
      if (r->second.job == *it) {
        batch_->cancel(r->first);
        r = rows_.erase(r);
      } else {
        ++r;
      }
    }
    it = active.erase(it);
    ++dropped;
  }
  release(dropped);
}

// One encoder pass over up to encode_batch chunks, taken round-robin over the requests.
void Scheduler::encode_some(std::vector<std::shared_ptr<Job>>& active) {
  int64_t waiting = 0;  // round-trip chunks encoded, not yet decoding
  for (const auto& job : active)
    if (job->work.kind == WorkKind::kRoundtrip) waiting += job->encoded - job->to_decode;
  std::vector<std::pair<Job*, int64_t>> picked;
  std::vector<int64_t> next(active.size());
  for (size_t j = 0; j < active.size(); ++j) next[j] = active[j]->encoded;
  for (bool more = true; more && static_cast<int64_t>(picked.size()) < opt_.encode_batch;) {
    more = false;
    for (size_t j = 0; j < active.size(); ++j) {
      Job& job = *active[j];
      if (static_cast<int64_t>(picked.size()) >= opt_.encode_batch) break;
      if (job.work.kind == WorkKind::kDecompress || job.steps() || next[j] >= job.n) continue;
      const bool roundtrip = job.work.kind == WorkKind::kRoundtrip;
      if (roundtrip && waiting >= opt_.max_batch) continue;
      picked.emplace_back(&job, next[j]++);
      waiting += roundtrip;
      more = true;
    }
  }
  if (picked.empty()) return;
  std::vector<std::vector<int32_t>> contexts;
  int64_t tokens = 0;
  for (auto& [job, i] : picked) {
    contexts.push_back(job->work.chunks[i]);
    tokens += static_cast<int64_t>(contexts.back().size());
  }
  const at::Tensor lat = m_.model->compress(contexts);  // [b, L, C]
  for (size_t k = 0; k < picked.size(); ++k) {
    auto& [job, i] = picked[k];
    at::Tensor row = lat.narrow(0, static_cast<int64_t>(k), 1);
    job->lat[i] = job->work.kind == WorkKind::kCompress ? row.cpu() : row;
    ++job->encoded;  // chunks of one request are picked in order
  }
  if (metrics_) {
    metrics_->encode_pass(static_cast<int64_t>(picked.size()));
    metrics_->tokens_in(tokens);
  }
}

// Beam search runs outside the batch, one chunk per engine turn.
void Scheduler::beam_one(std::vector<std::shared_ptr<Job>>& active) {
  for (auto& job : active) {
    if (!job->beams() || !job->can_decode()) continue;
    const int64_t i = job->to_decode++;
    job->ids[i] = m_.model->decompress(job->latent(i, m_.model->Q->weight), job->options(i))[0];
    ++job->decoded;
    if (metrics_) metrics_->tokens_out(static_cast<int64_t>(job->ids[i].size()));
    return;
  }
}

// One step of one stepping request, round-robin over them. Its failure is its own: a step touches
// no state of the batch.
void Scheduler::step_one(std::vector<std::shared_ptr<Job>>& active) {
  std::vector<Job*> stepping;
  for (auto& job : active)
    if (job->steps() && job->stepping) stepping.push_back(job.get());
  if (stepping.empty()) return;
  Job& job = *stepping[static_cast<size_t>(step_turn_++) % stepping.size()];
  try {
    job.stepping = job.work.step();
  } catch (...) {
    job.failed = std::current_exception();
    job.stepping = false;
  }
}

// Free rows take ready chunks round-robin over the requests, then the batch steps once.
void Scheduler::decode_step(std::vector<std::shared_ptr<Job>>& active) {
  for (bool more = true; more;) {
    more = false;
    for (auto& job : active) {
      if (batch_->running() + batch_->queued() >= opt_.max_batch) break;
      if (job->beams() || !job->can_decode()) continue;
      const int64_t i = job->to_decode++;
      auto rows = m_.model->decode_rows(job->latent(i, m_.model->Q->weight), job->options(i));
      rows_.push_back({batch_->add(std::move(rows[0])), {job, i}});
      more = true;
    }
  }
  if (batch_->idle()) return;
  std::vector<model::FinishedRow> finished = batch_->step();
  running_rows_ = batch_->running();
  int64_t out_tokens = 0;
  for (auto& f : finished) {
    auto it = std::find_if(rows_.begin(), rows_.end(), [&](auto& r) { return r.first == f.ticket; });
    if (it == rows_.end()) continue;  // cancelled meanwhile
    Job& job = *it->second.job;
    out_tokens += static_cast<int64_t>(f.ids.size());
    job.ids[it->second.chunk] = std::move(f.ids);
    ++job.decoded;
    rows_.erase(it);
  }
  if (metrics_) {
    metrics_->decode_step(batch_->running() + static_cast<int64_t>(finished.size()));
    metrics_->tokens_out(out_tokens);
  }
}

// Answers the finished requests. They stop counting as accepted before their callers wake, so
// that a caller holding its answer never sees itself still queued.
void Scheduler::finish_done(std::vector<std::shared_ptr<Job>>& active) {
  std::vector<std::shared_ptr<Job>> done;
  for (auto it = active.begin(); it != active.end();) {
    if ((*it)->complete()) {
      done.push_back(std::move(*it));
      it = active.erase(it);
    } else {
      ++it;
    }
  }
  release(static_cast<int64_t>(done.size()));
  for (auto& job : done) {
    if (job->failed) {
      job->done.set_exception(job->failed);
      continue;
    }
    WorkResult r;
    if (job->work.kind == WorkKind::kCompress) {
      r.latents = job->n > 0 ? at::cat(job->lat, 0) : at::Tensor();
    } else {
      r.ids = std::move(job->ids);
    }
    job->done.set_value(std::move(r));
  }
}

void Scheduler::fail_all(std::vector<std::shared_ptr<Job>>& active, std::exception_ptr e) {
  release(static_cast<int64_t>(active.size()));
  for (auto& job : active) job->done.set_exception(e);
  for (auto& r : rows_) batch_->cancel(r.first);
  rows_.clear();
  // A fresh batch: the old one may have failed inside a step.
  if (!active.empty()) batch_ = std::make_unique<model::DecodeBatch>(m_.model->decoder, batch_options());
  active.clear();
}

}  // namespace c3::serve
