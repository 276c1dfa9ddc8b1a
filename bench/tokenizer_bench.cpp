// tokenizer_bench: c3's encoding throughput on a JSONL(.xz) file, on 1 thread and on all threads.
//
//   tokenizer_bench TOKENIZER TEXTS.jsonl[.xz] [TOKENIZER2 ...] [--threads 1,16] [--repeat 3]
//                   [--dump-ids IDS.jsonl]
//
// TOKENIZER is a tokenizer.json, a qwen.tiktoken or a model folder. Prints one JSON line per
// tokenizer and thread count (MB/s and tokens/s; see tokenizer/encode_bench.h) plus the load
// time; several tokenizers (e.g. qwen.tiktoken and the tokenizer.json converted from it) are
// measured in the same run, one after the other, on the same texts.
// --dump-ids writes {"ids": [...]} per text, in order, for scripts/device/check_tokenizer_hf.py.
// It is a plain program rather than a Google Benchmark one because it needs only the tokenizer
// and util layers: it links statically with one g++ line (scripts/device/bench_tokenizer_hf.py
// shows it) and so runs on the device, whose image lacks our Debian libraries.
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/encode_bench.h"
#include "tokenizer/tokenizer_files.h"
#include "util/atomic_file.h"

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::vector<int> threads;
  int repeat = 3;
  std::string dump;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      std::string list = argv[++i];
      for (size_t p = 0; p < list.size();) {
        size_t q = list.find(',', p);
        threads.push_back(std::atoi(list.substr(p, q - p).c_str()));
        p = q == std::string::npos ? list.size() : q + 1;
      }
    } else if (a == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else if (a == "--dump-ids" && i + 1 < argc) {
      dump = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "tokenizer_bench: unknown flag %s\n", a.c_str());
      return 2;
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() < 2) {
    std::fprintf(stderr, "usage: tokenizer_bench TOKENIZER TEXTS.jsonl[.xz] [TOKENIZER2 ...] "
                         "[--threads 1,16] [--repeat 3] [--dump-ids IDS.jsonl]\n");
    return 2;
  }
  std::vector<std::string> tokenizers = {pos[0]};
  tokenizers.insert(tokenizers.end(), pos.begin() + 2, pos.end());
  if (threads.empty()) threads = {1, static_cast<int>(std::thread::hardware_concurrency())};
  try {
    auto texts = c3::tokenizer::read_texts(pos[1]);
    for (const std::string& path : tokenizers) {
      const auto t0 = std::chrono::steady_clock::now();
      const std::clock_t c0 = std::clock();  // loading is single-threaded: process CPU time
      auto tok = c3::tokenizer::load_tokenizer(path);
      const double load_cpu_s = double(std::clock() - c0) / CLOCKS_PER_SEC;
      const double load_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!dump.empty() && path == tokenizers[0]) {
        c3::write_file_atomic(dump, [&](std::ostream& os) {
          for (const auto& t : texts) os << nlohmann::json({{"ids", tok.encode(t)}}).dump() << '\n';
        });
      }
      for (int n : threads) {
        auto r = c3::tokenizer::bench_encode(tok, texts, n, repeat);
        std::printf("{\"impl\": \"c3\", \"tokenizer\": %s, \"file\": %s, \"load_s\": %.3f, "
                    "\"load_cpu_s\": %.3f, %s\n",
                    nlohmann::json(path).dump().c_str(), nlohmann::json(pos[1]).dump().c_str(),
                    load_s, load_cpu_s, r.json().c_str() + 1);
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
