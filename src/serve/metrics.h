// The service's counters and histograms, rendered in the Prometheus text format for /metrics.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace c3::serve {

// A cumulative histogram over fixed upper bounds (Prometheus `le` buckets, +Inf implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // `name{labels,le="..."} count` lines, then _sum and _count. `labels` is "" or `k="v",`.
  void render(std::string& out, const std::string& name, const std::string& labels) const;
  int64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bound, not cumulative; the last one is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  // One answered request: its route ("/v1/compress"), HTTP status and wall time.
  void request(const std::string& route, int status, double seconds);
  void tokens_in(int64_t n);   // source tokens the encoder read
  void tokens_out(int64_t n);  // tokens the decoder generated
  void decode_step(int64_t rows);    // one decode step over this many rows
  void encode_pass(int64_t chunks);  // one encoder pass over this many chunks
  // Gauges read at render time (queue depth, running rows), by name.
  void gauge(const std::string& name, const std::string& help, std::function<double()> read);

  // Everything, in the Prometheus text exposition format (version 0.0.4).
  std::string render() const;
  // For tests: requests counted for (route, status).
  int64_t requests(const std::string& route, int status) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, Histogram> latency_;  // by route
  int64_t tokens_in_ = 0, tokens_out_ = 0;
  Histogram decode_rows_, encode_chunks_;
  struct Gauge {
    std::string name, help;
    std::function<double()> read;
  };
  std::vector<Gauge> gauges_;
};

}  // namespace c3::serve
