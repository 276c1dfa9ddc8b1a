// c3 bench: speed of compress / decompress / prefill on a checkpoint or a random-init cascade.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli/cli_common.h"
#include "cli/command.h"
#include "eval/speed_bench.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace c3::cli {
namespace {

void setup_bench(CLI::App& root) {
  auto* app = root.add_subcommand(
      "bench", "Measure compress/decompress throughput, prefill latency and peak memory");
  static std::string model, device = "cpu", dtype = "auto", json_out, dump_text;
  static std::string tokenizer = default_model_dir();
  static std::vector<std::string> random_init;
  static eval::SpeedBenchOptions o;
  static int64_t dump_ngram = 20;
  auto* m = app->add_option("--model", model, "C3 checkpoint folder");
  auto* ri = app->add_option("--random-init", random_init,
                             "ENC_CONFIG DEC_CONFIG L: a cascade of these Qwen2 shapes with random "
                             "weights (e.g. configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32)")
                 ->expected(3);
  m->excludes(ri);
  app->add_option("--tokenizer", tokenizer,
                  "tokenizer.json, qwen.tiktoken or a folder with one, for --random-init (needs "
                  "<img>, </img>, <imgpad>, <|im_start|>, <|im_end|>)")
      ->capture_default_str();
  app->add_option("--device", device, "cpu | cuda | cuda:N")->capture_default_str();
  app->add_option("--dtype", dtype, "f32 | bf16 | auto (bf16 on CUDA)")->capture_default_str();
  app->add_option("--batch", o.batch, "the large batch (batch 1 is measured too)")
      ->capture_default_str();
  app->add_option("--passage-tokens", o.passage_tokens, "random tokens per passage")
      ->capture_default_str();
  app->add_option("--new-tokens", o.new_tokens, "tokens generated per row (stop disabled)")
      ->capture_default_str();
  app->add_option("--repeats", o.repeats, "timed runs per figure (the median is reported)")
      ->capture_default_str();
  app->add_option("--warmup", o.warmup, "untimed runs before them")->capture_default_str();
  app->add_option("--ngrams", o.ngram_sizes, "no_repeat_ngram_size values to time decompress with")
      ->capture_default_str();
  app->add_option("--seed", o.seed, "seed of the random passages")->capture_default_str();
  app->add_option("--json", json_out, "write the report as JSON");
  app->add_option("--trace", o.trace_prefix,
                  "after timing, trace one more call of each step (Chrome JSON, Kineto; CUDA "
                  "LibTorch >= 2) to PREFIX-<step>-b<batch>[-ngram<n>].json");
  app->add_option("--dump-ids", dump_text,
                  "instead of timing: print JSON with the greedy ids of compress + decompress of "
                  "this text (parity check against bench/hf_reference.py)");
  app->add_option("--dump-ngram", dump_ngram, "no_repeat_ngram_size for --dump-ids")
      ->capture_default_str();
  app->callback([]() {
    const at::Device d = parse_device(device);
    const at::ScalarType dt = parse_dtype(dtype, d);
    cascade::C3Model net{nullptr};
    nlohmann::json meta = nlohmann::json::object();
    if (!random_init.empty()) {
      const auto enc = model::Qwen2Config::from_file(random_init[0]);
      const auto dec = model::Qwen2Config::from_file(random_init[1]);
      int64_t L = 0;
      try {
        L = std::stoll(random_init[2]);
      } catch (const std::exception&) {
        fail("--random-init: L must be an integer, got '{}'", random_init[2]);
      }
      auto t0 = std::chrono::steady_clock::now();
      net = eval::random_init_cascade(enc, dec, L, tokenizer, dt, d);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "random-init cascade built in %.1f s\n", s);
      meta["model"] = "random-init " + random_init[0] + " " + random_init[1] + " L=" + random_init[2];
      meta["build_seconds"] = s;
    } else {
      if (model.empty()) model = default_model_dir();
      cascade::LoadedC3 l = cascade::load_c3(model, dt, d);
      net = l.model;
      meta["model"] = model;
      meta["fingerprint"] = l.fingerprint;
    }
    if (!dump_text.empty()) {
      auto j = eval::dump_greedy_ids(net, dump_text, o.new_tokens, dump_ngram);
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return;
    }
    o.on_row = [](const eval::BenchRow& x) {
      std::fprintf(stderr, "  %-10s batch %3lld ngram %2lld: %10.2f ms %12.1f tok/s\n",
                   x.step.c_str(), (long long)x.batch, (long long)x.ngram, x.seconds * 1e3,
                   x.tokens_per_s);
    };
    eval::BenchReport r = eval::run_speed_bench(net, o, meta);
    std::cout << eval::render_bench_table(r) << std::flush;
    if (!json_out.empty()) write_file_atomic(json_out, eval::bench_report_json(r).dump(2) + "\n");
  });
}

}  // namespace

C3_REGISTER_COMMAND("bench", setup_bench);

}  // namespace c3::cli
