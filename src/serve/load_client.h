// A load generator for `c3 serve`: N concurrent clients, each sending M requests one after
// another over its own keep-alive connection; every answer is counted, none is dropped.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace c3::serve {

struct LoadOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string route = "/v1/roundtrip";
  int64_t clients = 1;
  int64_t requests = 8;             // per client
  std::vector<std::string> bodies;  // JSON bodies; client c's request r sends bodies[(c*M + r) % n]
  double timeout_s = 600;           // per request
};

struct LoadResult {
  int64_t sent = 0, ok = 0;
  std::map<int, int64_t> by_status;  // HTTP status (0 = no answer: connection failed) -> count
  std::vector<double> latency_s;     // of the 200s
  int64_t tokens = 0;                // sum of the answers' "tokens" fields
  double wall_s = 0;
  double requests_per_s() const { return wall_s > 0 ? double(ok) / wall_s : 0; }
  double tokens_per_s() const { return wall_s > 0 ? double(tokens) / wall_s : 0; }
  double percentile(double p) const;  // of latency_s, p in [0, 100]
  std::string first_error;            // the first non-200 answer's body, for the report
};

LoadResult run_load(const LoadOptions& opt);

}  // namespace c3::serve
