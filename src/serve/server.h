// `c3 serve`: the HTTP/JSON face of the scheduler (cpp-httplib). Routes:
//   POST /v1/compress    {"text"}      -> {"latents" (base64 .c3 bytes), "chunks", "tokens", ...};
//                                         with "min_precision", verified (verified_compress.h)
//   POST /v1/decompress  {"latents"}   -> {"text", "tokens", "chunks", "plain_chunks", ...}; any
//                                         .c3 file, plain-token chunks included
//   POST /v1/roundtrip   {"text"}      -> the fields of `c3 roundtrip --json`
//   GET  /health                       -> {"status": "ok", ...} (503 "draining" while stopping)
//   GET  /metrics                      -> Prometheus text format
// Each request is parsed and checked on its connection's thread, then waits in the scheduler.
// Errors are JSON {"error": "what to fix", "status": N}. The server writes no files.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "c3/c3_model.h"
#include "serve/metrics.h"
#include "serve/request.h"
#include "serve/scheduler.h"

namespace httplib {
class Server;
}

namespace c3::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0 = any free port (see Server::port())
  size_t max_body_bytes = 1 << 20;   // larger bodies get 413
  double request_timeout_s = 300;    // a request still unfinished then gets 503
  int http_threads = 0;              // connections served at once; 0 = max_queue + 16
  bool access_log = false;           // one line per request on stderr
  RequestLimits limits;
  SchedulerOptions scheduler;
};

class Server {
 public:
  // Binds host:port (throws c3::Error when it cannot) and starts the scheduler's engine.
  Server(cascade::LoadedC3& m, const ServerOptions& opt);
  ~Server();  // shuts down; a thread in serve() must have returned first
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  // Serves until shutdown(); returns once every accepted request has been answered.
  void serve();
  // From any thread but a request's: stop accepting connections and new work, let the requests
  // in flight finish, and make serve() return. Idempotent.
  void shutdown();

  Scheduler& scheduler() { return *scheduler_; }
  Metrics& metrics() { return metrics_; }

 private:
  void add_routes();

  cascade::LoadedC3& m_;
  ServerOptions opt_;
  Metrics metrics_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
  std::mutex state_mu_;
  bool serving_ = false, shutting_down_ = false;
  std::atomic<bool> listen_returned_{false};
};

}  // namespace c3::serve
