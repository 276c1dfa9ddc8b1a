// The load generator: one httplib::Client per client thread, latencies of every answer.
#include "serve/load_client.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "util/error.h"  // fmt too

namespace c3::serve {

double LoadResult::percentile(double p) const {
  if (latency_s.empty()) return 0;
  std::vector<double> v = latency_s;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const size_t i = static_cast<size_t>(std::clamp(rank, 1.0, static_cast<double>(v.size()))) - 1;
  return v[i];
}

LoadResult run_load(const LoadOptions& opt) {
  C3_CHECK(opt.clients >= 1 && opt.requests >= 1, "serve-bench: --clients and --requests must be "
           ">= 1");
  C3_CHECK(!opt.bodies.empty(), "serve-bench: no request bodies");
  LoadResult total;
  std::mutex mu;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int64_t c = 0; c < opt.clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli(opt.host, opt.port);
      cli.set_keep_alive(true);
      const auto secs = static_cast<time_t>(std::ceil(opt.timeout_s));
      cli.set_read_timeout(secs, 0);
      cli.set_write_timeout(secs, 0);
      LoadResult mine;
      for (int64_t r = 0; r < opt.requests; ++r) {
        const std::string& body = opt.bodies[(c * opt.requests + r) % opt.bodies.size()];
        const auto s0 = std::chrono::steady_clock::now();
        auto res = cli.Post(opt.route, body, "application/json");
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
        ++mine.sent;
        const int status = res ? res->status : 0;
        ++mine.by_status[status];
        if (status == 200) {
          ++mine.ok;
          mine.latency_s.push_back(s);
          const auto j = nlohmann::json::parse(res->body, nullptr, false);
          if (j.is_object() && j.contains("tokens") && j["tokens"].is_number_integer())
            mine.tokens += j["tokens"].get<int64_t>();
        } else if (mine.first_error.empty()) {
          // Which request of the connection failed, and after how long, tells a server-side
          // close of an idle keep-alive connection from a lost request.
          mine.first_error = fmt::format(
              "client {} request {} after {:.3f} s: {}", c, r, s,
              res ? res->body.substr(0, 300) : httplib::to_string(res.error()));
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      total.sent += mine.sent;
      total.ok += mine.ok;
      total.tokens += mine.tokens;
      for (auto [k, n] : mine.by_status) total.by_status[k] += n;
      total.latency_s.insert(total.latency_s.end(), mine.latency_s.begin(), mine.latency_s.end());
      if (total.first_error.empty()) total.first_error = mine.first_error;
    });
  }
  for (auto& t : threads) t.join();
  total.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return total;
}

}  // namespace c3::serve
