// The routes: parse and check on the connection's thread, run in the scheduler, answer in JSON.
#include "serve/server.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "c3/document_codec.h"
#include "eval/roundtrip.h"
#include "eval/text_metrics.h"
#include "eval/verified_compress.h"
#include "serve/base64.h"
#include "util/error.h"

namespace c3::serve {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const std::vector<std::string> kRoutes = {"/v1/compress", "/v1/decompress", "/v1/roundtrip",
                                          "/health", "/metrics"};

// httplib's ThreadPool queues accepted connections without bound. Here the acceptor waits
// while `max_waiting` connections already wait for a thread: a flood then fills the kernel's
// listen backlog, not this process's memory.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(size_t threads, size_t max_waiting) : max_waiting_(max_waiting) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    room_.wait(lock, [&] { return jobs_.size() < max_waiting_ || shutdown_; });
    jobs_.push_back(std::move(fn));
    lock.unlock();
    ready_.notify_one();
  }
  // Runs what is queued, then joins the threads.
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    ready_.notify_all();
    room_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ready_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;  // shutting down with nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      room_.notify_one();
      fn();
    }
  }
  size_t max_waiting_;
  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> jobs_;
  std::mutex mu_;
  std::condition_variable ready_, room_;
  bool shutdown_ = false;
};

// When this worker thread began reading its current request (for the latency histogram): the
// pre-routing hook and the logger run on the connection's thread, one request at a time.
thread_local Clock::time_point request_start;

std::string route_label(const std::string& path) {
  for (const auto& r : kRoutes)
    if (path == r) return r;
  return "other";
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  reply(res, status, {{"error", message}, {"status", status}});
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// /v1/compress: the chunks through the encoder passes, into the bytes of `c3 compress`'s file.
eval::VerifiedResult compress_latents(cascade::LoadedC3& m, Scheduler& s, TextRequest& r,
                                      const cascade::CompressResult& source, double timeout,
                                      std::string* file) {
  cascade::LatentMeta meta = cascade::latent_meta(m, r.latent_dtype);
  Work w;
  w.kind = WorkKind::kCompress;
  for (auto& c : r.chunks) {
    meta.chunk_bytes.push_back(c.byte_end - c.byte_begin);
    meta.chunk_tokens.push_back(static_cast<int64_t>(c.ids.size()));
    w.chunks.push_back(std::move(c.ids));
  }
  meta.source_tokens = source.tokens;
  meta.source_chars = source.chars;
  meta.source_bytes = source.bytes;
  *file = cascade::latent_file_bytes(meta, s.run(std::move(w), timeout).latents);
  return eval::VerifiedResult::unverified(source);
}

// /v1/compress with min_precision: outside the batch, one verification batch of `batch` pieces
// per engine turn (scheduler.h), checked through C3ModelImpl::decompress as `c3 compress
// --min-precision --batch` checks them; the step function owns the compressor, so a request that
// times out leaves nothing behind it.
eval::VerifiedResult compress_verified(cascade::LoadedC3& m, Scheduler& s, const TextRequest& r,
                                       const cascade::CompressResult& source, int64_t batch,
                                       double timeout, std::string* file) {
  cascade::CompressOptions co;
  co.batch_size = batch;
  co.dtype = r.latent_dtype;
  co.progress = false;
  auto vc = std::make_shared<eval::VerifiedCompressor>(m, co, *r.verify, "");
  for (size_t i = 0; i < r.chunks.size(); ++i) vc->add(r.chunks[i], r.chunk_texts[i]);
  Work w;
  w.kind = WorkKind::kSteps;
  w.step = [vc] { return vc->step(); };
  s.run(std::move(w), timeout);
  const eval::VerifiedResult res = vc->finish(source);
  *file = vc->bytes();
  return res;
}

}  // namespace

Server::Server(cascade::LoadedC3& m, const ServerOptions& opt) : m_(m), opt_(opt) {
  C3_CHECK(opt.request_timeout_s > 0, "--request-timeout must be > 0 seconds, got {}",
           opt.request_timeout_s);
  C3_CHECK(opt.max_body_bytes >= 64, "--max-body-bytes must be at least 64, got {}",
           opt.max_body_bytes);
  scheduler_ = std::make_unique<Scheduler>(m_, opt_.scheduler, &metrics_);
  metrics_.gauge("c3_queue_depth", "Requests accepted and not yet answered (queued or running).",
                 [this] { return static_cast<double>(scheduler_->accepted()); });
  metrics_.gauge("c3_decode_rows", "Rows in the running decode batch.",
                 [this] { return static_cast<double>(scheduler_->running_rows()); });

  http_ = std::make_unique<httplib::Server>();
  const size_t threads = opt.http_threads > 0 ? static_cast<size_t>(opt.http_threads)
                                              : static_cast<size_t>(opt.scheduler.max_queue + 16);
  http_->new_task_queue = [threads] { return new BoundedPool(threads, 2 * threads); };
  http_->set_payload_max_length(opt.max_body_bytes);
  http_->set_keep_alive_timeout(5);  // an idle keep-alive connection holds a thread this long
  http_->set_keep_alive_max_count(1000);
  // httplib's default, SO_REUSEPORT, would let a second server share a port in use and split its
  // traffic; SO_REUSEADDR only allows a restart over connections still in TIME_WAIT.
  int listen_fd = -1;  // the last socket made is the one that bound
  http_->set_socket_options([&listen_fd](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd = sock;
  });
  add_routes();
  port_ = opt.port == 0 ? http_->bind_to_any_port(opt.host)
                        : (http_->bind_to_port(opt.host, opt.port) ? opt.port : -1);
  C3_CHECK(port_ > 0, "cannot listen on {}:{}: the address is taken or not this host's. Choose "
           "another --port (0 = any free one) or --host.", opt.host, opt.port);
  // httplib 0.11 listens with a backlog of 5: 16 clients connecting at once overflowed it, and
  // a connection dropped there failed its first request after a second ("Read"). listen()
  // again takes the system's limit.
  C3_CHECK(listen_fd >= 0 && ::listen(listen_fd, SOMAXCONN) == 0,
           "cannot raise the listen backlog of {}:{}", opt.host, port_);
  http_->set_socket_options([](socket_t) {});  // the callback held a local
}

Server::~Server() {
  shutdown();
  scheduler_.reset();  // before the metrics its gauges read
}

void Server::serve() {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (shutting_down_) return;
    serving_ = true;
  }
  http_->listen_after_bind();
  listen_returned_ = true;
}

void Server::shutdown() {
  bool serving;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
    serving = serving_;
  }
  scheduler_->stop_accepting();  // requests from now on get 503
  if (!serving) return;
  // serve() may not have entered httplib's accept loop yet; stop() works once it has.
  while (!http_->is_running() && !listen_returned_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();  // closes the listening socket; serve() returns once in-flight requests are done
}

void Server::add_routes() {
  httplib::Server& h = *http_;
  const double timeout = opt_.request_timeout_s;

  // The three work routes share this frame: parse, run, answer; every failure becomes JSON.
  auto route = [this](const char* path, std::function<json(const std::string&)> work) {
    http_->Post(path, [this, work](const httplib::Request& req, httplib::Response& res) {
      try {
        reply(res, 200, work(req.body));
      } catch (const BadRequest& e) {
        reply_error(res, e.status, e.what());
      } catch (const Overloaded& e) {
        res.set_header("Retry-After", "1");
        reply_error(res, 429, e.what());
      } catch (const Unavailable& e) {
        res.set_header("Retry-After", "1");
        reply_error(res, 503, e.what());
      } catch (const std::exception& e) {
        reply_error(res, 500, std::string("internal error: ") + e.what());
      }
    });
    http_->Get(path, [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      reply_error(res, 405, "this route takes POST with a JSON body");
    });
  };

  route("/v1/compress", [this, timeout](const std::string& body) {
    const auto t0 = Clock::now();
    TextRequest r = parse_compress(body, m_, opt_.limits);
    const cascade::CompressResult source = {r.tokens, r.chars, static_cast<int64_t>(r.text.size()),
                                            static_cast<int64_t>(r.chunks.size())};
    std::string file;
    const eval::VerifiedResult res =
        r.verify ? compress_verified(m_, *scheduler_, r, source, opt_.scheduler.encode_batch,
                                     timeout, &file)
                 : compress_latents(m_, *scheduler_, r, source, timeout, &file);
    // The counts of `c3 compress` (Python's compress_file), then the file and its dtype.
    json j = res.to_json(m_.model->latent_len(), r.verify ? &*r.verify : nullptr);
    j["latents"] = base64_encode(file);
    j["latent_dtype"] = r.latent_dtype == "F32" ? "f32" : "bf16";
    j["seconds"] = seconds_since(t0);
    return j;
  });

  route("/v1/decompress", [this, timeout](const std::string& body) {
    const auto t0 = Clock::now();
    LatentRequest r = parse_decompress(body, m_, opt_.limits);
    Work w;  // the latent chunks; plain ones are their stored ids
    w.kind = WorkKind::kDecompress;
    w.latents = r.file.latents;
    w.source_tokens = r.latent_tokens;
    w.decode = r.decode;
    const WorkResult out = scheduler_->run(std::move(w), timeout);
    std::string text;
    int64_t tokens = 0;
    for (const cascade::StoredChunk& c : r.chunks) {
      const std::vector<int64_t>& ids = c.plain ? c.ids : out.ids.at(c.latent_row);
      text += m_.tok->decode(std::vector<int32_t>(ids.begin(), ids.end()));
      tokens += static_cast<int64_t>(ids.size());
    }
    const cascade::ChunkRecords& rec = r.file.meta.records;
    const bool verified = rec.verification.has_value();
    return json{{"text", text},
                {"tokens", tokens},
                {"chunks", static_cast<int64_t>(r.chunks.size())},
                {"plain_chunks", rec.n_plain()},
                {"verified", verified},
                {"min_precision", verified ? json(rec.verification->min_precision) : json()},
                {"lowest_precision", verified ? json(rec.lowest_precision()) : json()},
                {"warnings", r.warnings},
                {"seconds", seconds_since(t0)}};
  });

  route("/v1/roundtrip", [this, timeout](const std::string& body) {
    const auto t0 = Clock::now();
    TextRequest r = parse_roundtrip(body, m_, opt_.limits);
    Work w;
    w.kind = WorkKind::kRoundtrip;
    w.decode = r.decode;
    for (auto& c : r.chunks) {
      w.source_tokens.push_back(static_cast<int64_t>(c.ids.size()));
      w.chunks.push_back(std::move(c.ids));
    }
    const WorkResult out = scheduler_->run(std::move(w), timeout);
    // The fields and arithmetic of eval::roundtrip_text (`c3 roundtrip --json`).
    eval::RoundtripResult res;
    for (const auto& ids : out.ids) {
      res.text += m_.tok->decode(std::vector<int32_t>(ids.begin(), ids.end()));
      res.ids.insert(res.ids.end(), ids.begin(), ids.end());
    }
    res.tokens = r.tokens;
    res.chunks = static_cast<int64_t>(out.ids.size());
    res.latents = res.chunks * m_.model->latent_len();
    res.ratio = double(res.tokens) / double(res.latents);
    res.char_precision = eval::char_precision(res.text, r.text);
    res.exact_match = res.text == r.text;
    res.seconds = seconds_since(t0);
    return res.to_json();
  });

  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      stopping = shutting_down_;
    }
    reply(res, stopping ? 503 : 200,
          {{"status", stopping ? "draining" : "ok"},
           {"model", m_.dir},
           {"fingerprint", m_.fingerprint},
           {"latent_token_len", m_.model->latent_len()},
           {"queued", scheduler_->accepted()},
           {"running_rows", scheduler_->running_rows()}});
  });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(), "text/plain; version=0.0.4");
  });
  for (const char* path : {"/health", "/metrics"}) {
    h.Post(path, [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "GET");
      reply_error(res, 405, "this route takes GET");
    });
  }

  // Errors httplib answers itself (no route, body too large, malformed HTTP) get JSON too.
  h.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                   httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
    std::string message;
    if (res.status == 404) {
      message = "no route " + req.method + " " + req.path.substr(0, 100) +
                "; the routes are POST /v1/compress, POST /v1/decompress, POST /v1/roundtrip, "
                "GET /health and GET /metrics";
    } else if (res.status == 413 &&
               req.get_header_value("Content-Type") == "application/x-www-form-urlencoded") {
      // httplib caps form bodies at 8 KiB whatever the payload limit; curl -d sends that type.
      message = "a body sent as application/x-www-form-urlencoded (curl -d's default) may hold at "
                "most 8192 bytes; send it with Content-Type: application/json (curl -H "
                "'Content-Type: application/json')";
    } else if (res.status == 413) {
      message = fmt::format("the request body is larger than this server's --max-body-bytes "
                            "({} bytes); send the text in parts", opt_.max_body_bytes);
    } else {
      message = fmt::format("HTTP {}: the request could not be read as HTTP/1.1", res.status);
    }
    reply_error(res, res.status, message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  h.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    request_start = Clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  h.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double s = seconds_since(request_start);
    metrics_.request(route_label(req.path), res.status, s);
    if (opt_.access_log)
      std::fprintf(stderr, "%s %s %d %.3f s\n", req.method.c_str(), req.path.substr(0, 100).c_str(),
                   res.status, s);
  });
}

}  // namespace c3::serve
