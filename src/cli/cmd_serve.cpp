// c3 serve: keeps a model loaded and serves compress / decompress / roundtrip over HTTP/JSON with
// continuous batching (src/serve). SIGTERM or SIGINT: stop accepting, finish what is in flight,
// exit 0.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/model_flags.h"
#include "eval/speed_bench.h"
#include "serve/server.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"

namespace c3::cli {
namespace {

namespace fs = std::filesystem;

// The signal handler may only write to a pipe; a thread reads it and shuts the server down.
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int) {
  const int saved = errno;
  const char c = 's';
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &c, 1);
  errno = saved;
}

void install_stop_signals() {
  C3_CHECK(::pipe2(g_signal_pipe, O_CLOEXEC) == 0, "c3 serve: cannot create a pipe for signals");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server
}

struct ServeFlags {
  serve::ServerOptions opt;
  int64_t max_new_tokens = 0;  // 0 = 4096, or less where the decoder's positions end
  bool no_cuda_graphs = false;
  void add(CLI::App* app) {
    app->add_option("--host", opt.host, "address to listen on")->capture_default_str();
    app->add_option("--port", opt.port, "port to listen on (0 = any free one; the chosen port "
                    "is printed)")->capture_default_str()->check(CLI::Range(0, 65535));
    app->add_option("--decode-batch", opt.scheduler.max_batch,
                    "chunks decoded together: rows of the continuous batch")
        ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1024}));
    app->add_option("--max-queue", opt.scheduler.max_queue,
                    "requests accepted and unfinished (queued or running); more get 429")
        ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000}));
    app->add_option("--max-body-bytes", opt.max_body_bytes,
                    "largest request body; larger ones get 413")
        ->capture_default_str()->check(CLI::Range(size_t{64}, size_t{1} << 34));
    app->add_option("--request-timeout", opt.request_timeout_s,
                    "seconds a request may take, queueing included; then it gets 503")
        ->capture_default_str()->check(CLI::PositiveNumber);
    app->add_option("--max-chunks", opt.limits.max_chunks,
                    "most chunks one request may hold; more get 413")
        ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
    app->add_option("--max-new-tokens", max_new_tokens,
                    "most tokens a request may ask per chunk (max_new_tokens); 0 = 4096, or less "
                    "where the decoder's positions end")
        ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
    app->add_option("--max-beams", opt.limits.max_beams, "most beams a request may ask")
        ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{64}));
    app->add_option("--http-threads", opt.http_threads,
                    "connections served at once (0 = --max-queue + 16)")
        ->capture_default_str()->check(CLI::Range(0, 100000));
    app->add_flag("--no-cuda-graphs", no_cuda_graphs, "run the decode steps eagerly on CUDA");
    app->add_flag("--access-log", opt.access_log, "print one line per request on stderr");
  }
};

// Limits that follow from the model: chunks must fit the encoder's positions, generated tokens
// the decoder's.
void fit_limits(ServeFlags& f, const cascade::LoadedC3& m) {
  const int64_t P = static_cast<int64_t>(m.model->prompt_ids().size());
  const int64_t dec_room = m.model->config.decoder.max_position_embeddings - P;
  const int64_t enc_room =
      m.model->config.encoder.max_position_embeddings - m.model->latent_len() - 2;
  C3_CHECK(dec_room >= 1 && enc_room >= 8, "the model's max_position_embeddings leave no room "
           "for text (decoder {}, encoder {})", dec_room, enc_room);
  const int64_t want = f.max_new_tokens > 0 ? f.max_new_tokens : std::min<int64_t>(4096, dec_room);
  C3_CHECK(want <= dec_room, "--max-new-tokens {} + the {}-token prompt exceed the decoder's "
           "max_position_embeddings {}; use at most {}", want, P,
           m.model->config.decoder.max_position_embeddings, dec_room);
  f.opt.limits.max_new_tokens = want;
  f.opt.limits.max_chunk_tokens = enc_room;
  f.opt.scheduler.max_new_tokens = want;
  f.opt.scheduler.cuda_graphs = !f.no_cuda_graphs;
}

// A cascade of random weights, as `c3 bench --random-init` builds it; its fingerprint covers the
// shapes, so that latents from another shape are refused.
cascade::LoadedC3 random_cascade(const std::vector<std::string>& args, const std::string& tok_json,
                                 const ModelFlags& mf) {
  const auto enc = model::Qwen2Config::from_file(args[0]);
  const auto dec = model::Qwen2Config::from_file(args[1]);
  int64_t L = 0;
  try {
    L = std::stoll(args[2]);
  } catch (const std::exception&) {
    fail("--random-init: L must be an integer, got '{}'", args[2]);
  }
  const at::Device d = parse_device(mf.device);
  cascade::LoadedC3 m;
  m.model = eval::random_init_cascade(enc, dec, L, tok_json, parse_dtype(mf.dtype, d), d);
  m.tok = std::make_shared<tokenizer::BpeTokenizer>(tokenizer::BpeTokenizer::from_file(tok_json));
  Hasher h;
  h.update(read_file(args[0]));
  h.update(read_file(args[1]));
  h.update(args[2]);
  m.fingerprint = "random-init-" + h.hex();
  m.dir = "random-init " + args[0] + " " + args[1] + " L=" + args[2];
  return m;
}

void setup_serve(CLI::App& root) {
  auto* app = root.add_subcommand(
      "serve", "Serve compress / decompress / roundtrip over HTTP/JSON with continuous batching "
               "(see docs/serve.md)");
  static ModelFlags mf;
  static ServeFlags sf;
  static std::vector<std::string> random_init;
  static std::string tokenizer = (fs::path(default_model_dir()) / "tokenizer.json").string();
  mf.add(app);
  sf.add(app);
  app->add_option("--random-init", random_init,
                  "ENC_CONFIG DEC_CONFIG L: serve a cascade of these Qwen2 shapes with random "
                  "weights instead of --model (load tests at the paper's size)")
      ->expected(3);
  app->add_option("--tokenizer", tokenizer, "tokenizer.json for --random-init")
      ->capture_default_str();
  app->callback([&]() {
    install_stop_signals();  // before any thread starts, so that none misses the handler
    cascade::LoadedC3 m = random_init.empty() ? mf.load() : random_cascade(random_init, tokenizer, mf);
    sf.opt.scheduler.encode_batch = mf.batch;
    fit_limits(sf, m);
    serve::Server server(m, sf.opt);
    std::thread watcher([&server] {
      char c = 0;
      while (::read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
      }
      if (c == 's') {
        std::fprintf(stderr, "c3 serve: stopping: no new requests; finishing %lld in flight\n",
                     static_cast<long long>(server.scheduler().accepted()));
        server.shutdown();
      }
    });
    std::printf("c3 serve: %s (%s, %s) listening on http://%s:%d\n", m.dir.c_str(),
                mf.device.c_str(), c10::toString(m.model->Q->weight.scalar_type()),
                sf.opt.host.c_str(), server.port());
    std::fflush(stdout);
    server.serve();
    const char quit = 'q';  // wakes the watcher when serve() ended without a signal
    [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &quit, 1);
    watcher.join();
    std::fprintf(stderr, "c3 serve: stopped\n");
  });
}

}  // namespace

C3_REGISTER_COMMAND("serve", setup_serve);

}  // namespace c3::cli
