// Multi-threaded encoding throughput with a barrier around each timed pass.
#include "tokenizer/encode_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <time.h>

#include <fmt/format.h>

#include "util/error.h"
#include "util/line_reader.h"

namespace c3::tokenizer {

namespace {

// All threads (workers and the timer) meet here before and after each pass.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lk(m_);
    const int64_t gen = gen_;
    if (++count_ == n_) {
      count_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lk, [&] { return gen_ != gen; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_, count_ = 0;
  int64_t gen_ = 0;
};

int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

std::string EncodeBenchResult::json() const {
  return fmt::format(
      "{{\"docs\": {}, \"bytes\": {}, \"tokens\": {}, \"threads\": {}, \"passes\": {}, "
      "\"cold_s\": {:.4f}, \"cold_mb_per_s\": {:.2f}, \"best_s\": {:.4f}, \"mb_per_s\": {:.2f}, "
      "\"tokens_per_s\": {:.0f}, \"cpu_s\": {:.4f}, \"cpu_mb_per_s\": {:.2f}, "
      "\"cold_cpu_s\": {:.4f}, \"cold_cpu_mb_per_s\": {:.2f}}}",
      docs, bytes, tokens, threads, passes, cold_s, cold_mb_per_s(), best_s, mb_per_s(),
      tokens_per_s(), cpu_s, cpu_mb_per_s(), cold_cpu_s, bytes / cold_cpu_s / 1e6);
}

EncodeBenchResult bench_encode(const BpeTokenizer& tok, const std::vector<std::string>& texts,
                               int threads, int passes) {
  C3_CHECK(!texts.empty(), "benchmark: no texts to encode");
  EncodeBenchResult r;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  r.threads = threads > 0 ? threads : cores;
  r.passes = std::max(1, passes);
  r.docs = static_cast<int64_t>(texts.size());
  for (const auto& t : texts) r.bytes += static_cast<int64_t>(t.size());

  Barrier barrier(r.threads + 1);
  std::atomic<size_t> next{0};
  std::atomic<int64_t> tokens{0}, cpu_ns{0};
  std::vector<std::string> errors(r.threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < r.threads; ++t) {
    workers.emplace_back([&, t] {
      std::vector<int32_t> ids;
      for (int p = 0; p < r.passes; ++p) {
        barrier.wait();
        const int64_t cpu0 = thread_cpu_ns();
        int64_t local = 0;
        for (size_t i; (i = next.fetch_add(1)) < texts.size();) {
          ids.clear();
          try {
            tok.encode_to(texts[i], ids);
          } catch (const std::exception& e) {
            errors[t] = e.what();
          }
          local += static_cast<int64_t>(ids.size());
        }
        tokens += local;
        cpu_ns += thread_cpu_ns() - cpu0;
        barrier.wait();
      }
    });
  }
  std::vector<double> secs, cpu;
  for (int p = 0; p < r.passes; ++p) {
    next = 0;
    tokens = 0;
    cpu_ns = 0;
    barrier.wait();
    auto t0 = std::chrono::steady_clock::now();
    barrier.wait();
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    r.tokens = tokens;
    cpu.push_back(cpu_ns * 1e-9);
  }
  for (auto& w : workers) w.join();
  for (const auto& e : errors) C3_CHECK(e.empty(), "benchmark: encoding failed: {}", e);
  r.cold_s = secs[0];
  r.best_s = r.passes > 1 ? *std::min_element(secs.begin() + 1, secs.end()) : r.cold_s;
  r.cpu_s = r.passes > 1 ? *std::min_element(cpu.begin() + 1, cpu.end()) : cpu[0];
  r.cold_cpu_s = cpu[0];
  return r;
}

std::vector<std::string> read_texts(const std::string& path) {
  CorpusReader reader({path});
  std::vector<std::string> texts;
  std::string t;
  while (reader.next(t)) texts.push_back(std::move(t));
  return texts;
}

}  // namespace c3::tokenizer
