// The batching scheduler: one engine thread owns the model and, in a loop, runs one encoder pass
// over waiting chunks of all requests, then one step of the continuous decode batch
// (model::DecodeBatch), which chunks of any request join at the next step and leave when they
// stop. Requests wait in a bounded queue; callers block in run() until theirs is done. The HTTP
// layer stays thin, and tests drive this class without sockets (llama.cpp's server keeps one
// task queue and steps every active slot; vLLM schedules the same way at a larger scale).
//
// Order: chunks are taken round-robin over requests in arrival order, for the encoder and for
// free decode rows alike, so that a long document does not hold up short requests behind it.
// A round trip's chunks are encoded only while fewer than max_batch of them wait for a decode row,
// which bounds the latents held. Beam search (beams > 1) runs outside the batch: one chunk at a
// time between two decode steps, through C3ModelImpl::decompress, pausing the batch meanwhile.
// So does work that comes in steps (verified compression: one batch of chunks encoded, decoded
// and scored per step): one step per engine turn, taken round-robin over such requests.
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "c3/c3_model.h"
#include "serve/metrics.h"

namespace c3::serve {

struct SchedulerOptions {
  int64_t max_batch = 16;         // decode rows stepped together (chunks of any requests)
  int64_t encode_batch = 8;       // chunks per encoder pass
  int64_t max_queue = 64;         // requests accepted and unfinished; more are refused
  int64_t max_new_tokens = 4096;  // the largest per-chunk budget a request may ask for
  bool cuda_graphs = true;
};

enum class WorkKind { kCompress, kDecompress, kRoundtrip, kSteps };

// One request's work.
struct Work {
  WorkKind kind = WorkKind::kCompress;
  std::vector<std::vector<int32_t>> chunks;  // compress, roundtrip: each chunk's token ids
  at::Tensor latents;                        // decompress: [n, L, C]
  std::vector<int64_t> source_tokens;        // decompress, roundtrip: per chunk (length cap)
  cascade::DecompressOptions decode;         // decompress, roundtrip
  // steps: runs one step on the engine thread and says whether more remain. It owns what it
  // works on: a request that times out leaves it to the engine, which drops it after its step.
  std::function<bool()> step;
};

struct WorkResult {
  at::Tensor latents;                     // compress: [n, L, C] on the CPU, the model's dtype
  std::vector<std::vector<int64_t>> ids;  // decompress, roundtrip: per chunk, no stop token
};

// The queue is full (HTTP 429): retry later.
class Overloaded : public std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The server is draining (HTTP 503), or the request ran past its deadline (also 503).
class Unavailable : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Scheduler {
 public:
  // `m` must outlive the scheduler; `metrics` (optional) too.
  Scheduler(cascade::LoadedC3& m, const SchedulerOptions& opt, Metrics* metrics = nullptr);
  ~Scheduler();  // work still queued fails with Unavailable
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `work` and waits for it. Throws Overloaded when max_queue requests are in already,
  // Unavailable after drain() or when `timeout_s` passes first (the work is then dropped: its
  // rows leave the batch), and whatever the model threw (c3::Error, c10::Error).
  WorkResult run(Work work, double timeout_s);
  // Refuses new work from now on (run() throws Unavailable).
  void stop_accepting();
  // stop_accepting(), then returns once the accepted work is done.
  void drain();
  int64_t accepted() const;      // requests accepted and not finished
  int64_t running_rows() const;  // rows in the decode batch after the last step

 private:
  struct Job;
  void loop();
  void take_inbox(std::vector<std::shared_ptr<Job>>& active, bool& stop);
  void drop_abandoned(std::vector<std::shared_ptr<Job>>& active);
  void encode_some(std::vector<std::shared_ptr<Job>>& active);
  void beam_one(std::vector<std::shared_ptr<Job>>& active);
  void step_one(std::vector<std::shared_ptr<Job>>& active);
  void decode_step(std::vector<std::shared_ptr<Job>>& active);
  void finish_done(std::vector<std::shared_ptr<Job>>& active);
  void fail_all(std::vector<std::shared_ptr<Job>>& active, std::exception_ptr e);
  void release(int64_t n);
  model::DecodeBatchOptions batch_options() const;

  cascade::LoadedC3& m_;
  SchedulerOptions opt_;
  Metrics* metrics_;
  std::unique_ptr<model::DecodeBatch> batch_;
  struct RowOwner {
    std::shared_ptr<Job> job;
    int64_t chunk;
  };
  std::vector<std::pair<int64_t, RowOwner>> rows_;  // decode ticket -> its chunk

  mutable std::mutex mu_;
  std::condition_variable wake_;     // the engine: new work, an abandoned request, stop
  std::condition_variable drained_;  // drain(): accepted_ reached 0
  std::deque<std::shared_ptr<Job>> inbox_;
  int64_t accepted_ = 0;
  bool draining_ = false, stop_ = false;
  std::atomic<int64_t> running_rows_{0};
  int64_t step_turn_ = 0;  // engine only: which stepping request steps next
  std::thread engine_;
};

}  // namespace c3::serve
