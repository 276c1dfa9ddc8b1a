// Encoding throughput: one tokenizer, many texts, N threads, R passes (c3 tokenize --bench and
// bench/tokenizer_bench share it, so both report the same numbers).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/bpe_tokenizer.h"

namespace c3::tokenizer {

struct EncodeBenchResult {
  int64_t docs = 0, bytes = 0, tokens = 0;  // per pass
  int threads = 0, passes = 0;
  double cold_s = 0;  // the first pass: word caches start empty
  double best_s = 0;  // the fastest later pass (caches warm, as HF's stay warm); = cold_s if 1 pass
  double cpu_s = 0;   // CPU time of all workers in the pass with the least CPU time (warm):
                      // unlike wall time, barely moved by other programs on a busy machine
  double cold_cpu_s = 0;  // CPU time of the first pass (every word a cache miss)
  double mb_per_s() const { return bytes / best_s / 1e6; }
  double cold_mb_per_s() const { return bytes / cold_s / 1e6; }
  double tokens_per_s() const { return tokens / best_s; }
  double cpu_mb_per_s() const { return bytes / cpu_s / 1e6; }  // per busy core
  std::string json() const;  // one line, for logs and scripts
};

// Worker threads live across passes (per-thread caches persist). threads <= 0: all cores.
// Texts are handed out one at a time from a shared counter. An encoding error throws.
EncodeBenchResult bench_encode(const BpeTokenizer& tok, const std::vector<std::string>& texts,
                               int threads, int passes);

// Reads the "text" of every JSON line of a file (plain or .xz), for benchmarks.
std::vector<std::string> read_texts(const std::string& path);

}  // namespace c3::tokenizer
