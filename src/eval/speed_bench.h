// Speed of the cascade: compress / decompress throughput, prefill latency and peak memory, each the
// median of several timed runs after a warm-up, with the physical limits of the card beside them
// (device_limits.h).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "eval/device_limits.h"

namespace c3::eval {

// One measured step. `seconds` is the median wall time of one call.
struct BenchRow {
  std::string step;  // "compress" | "decompress" | "prefill"
  int64_t batch = 0;
  int64_t ngram = 0;            // decompress: no_repeat_ngram_size (prefill/compress: 0)
  double seconds = 0;           // median per call
  double min_seconds = 0;       // fastest call
  double passages_per_s = 0;    // rows per second
  double tokens_per_s = 0;      // compress: passage tokens in; decompress: generated tokens out;
                                // prefill: decoder prompt tokens
  int64_t peak_bytes = -1;      // CUDA: caching allocator's peak during this step; -1 on the CPU
};

struct SpeedBenchOptions {
  int64_t batch = 16;            // the large batch (batch 1 is always measured too)
  int64_t passage_tokens = 1024;  // random non-special ids per passage
  int64_t new_tokens = 128;      // generated per row (stop disabled)
  int64_t repeats = 5;           // timed runs per figure; the figure is their median
  int64_t warmup = 1;            // untimed runs before them
  std::vector<int64_t> ngram_sizes = {0, 20};  // no_repeat_ngram_size values for decompress
  uint64_t seed = 0;
  // Non-empty: after the timed runs, one more call of each step is traced (Kineto, CUDA builds
  // of LibTorch >= 2) to <trace_prefix>-<step>-b<batch>[-ngram<n>].json.
  std::string trace_prefix;
  std::function<void(const BenchRow&)> on_row;  // called as each row is measured (progress)
};

struct BenchReport {
  nlohmann::json meta;  // model, device, dtype, shapes, parameter counts, options
  std::vector<BenchRow> rows;
  // The n-gram ban's cost per (batch, ngram > 0): the median over repeats of t_ban / t_0 - 1,
  // each pair timed back to back (the variants are interleaved, so drift cancels).
  struct BanCost {
    int64_t batch = 0, ngram = 0;
    double median_ratio_minus_1 = 0;
  };
  std::vector<BanCost> ban_costs;
  int64_t peak_allocated_bytes = -1;  // CUDA: whole-run peak of allocated memory
  int64_t peak_reserved_bytes = -1;   // CUDA: whole-run peak of reserved (cached) memory
  int64_t max_rss_bytes = 0;          // process max resident set size (getrusage)
  // Limits at these shapes: encoder FLOPs per token (2 x non-embedding params; attention left
  // out) and decoder bytes read per decode step (every weight once, KV cache left out).
  double encoder_flops_per_token = 0;
  double decoder_bytes_per_step = 0;
  PhysicalLimits limits;  // of the device the bench ran on (an H200's assumed if unknown)
  double compress_limit_tokens_per_s() const { return limits.flops / encoder_flops_per_token; }
  double decode_floor_tokens_per_s() const { return limits.bandwidth / decoder_bytes_per_step; }
};

// Builds a cascade from two Qwen2 configs and a tokenizer (file or folder) without re-initialising the weights (the
// modules' construction-time random values are fine for speed). Parameters are created directly
// in `dtype` (the default dtype is switched while constructing) and then moved to `device`, so
// paper sizes take seconds, not minutes. Vocabularies smaller than the tokenizer's are grown.
cascade::C3Model random_init_cascade(const model::Qwen2Config& encoder,
                                     const model::Qwen2Config& decoder, int64_t latents,
                                     const std::string& tokenizer, at::ScalarType dtype,
                                     at::Device device);

// Runs every measurement on `m` (in eval mode, under no-grad). `meta` is copied into the report.
BenchReport run_speed_bench(cascade::C3Model& m, const SpeedBenchOptions& o,
                            const nlohmann::json& meta = nlohmann::json::object());

// The report as JSON: {"meta", "rows": [...], "memory", "limits"}.
nlohmann::json bench_report_json(const BenchReport& r);
// A fixed-width table for stdout, with the card's limits beside the measured figures.
std::string render_bench_table(const BenchReport& r);

// Greedy ids of compress + decompress of `text` (as one passage), for parity against
// bench/hf_reference.py: {"context_ids", "encoder_input_ids", "prompt_ids", "latent_len",
// "output_ids", "no_repeat_ngram_size", "max_new_tokens", "dtype", "device"}.
nlohmann::json dump_greedy_ids(cascade::C3Model& m, const std::string& text,
                               int64_t max_new_tokens, int64_t no_repeat_ngram_size);

// Median of a non-empty list.
double median(std::vector<double> v);

}  // namespace c3::eval
