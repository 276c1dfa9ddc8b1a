// tokenizer_bench: c3's encoding throughput on a JSONL(.xz) file, on 1 thread and on all threads.
//
//   tokenizer_bench TOKENIZER.json TEXTS.jsonl[.xz] [--threads 1,16] [--repeat 3]
//                   [--dump-ids IDS.jsonl]
//
// Prints one JSON line per thread count (MB/s and tokens/s; see tokenizer/encode_bench.h).
// --dump-ids writes {"ids": [...]} per text, in order, for scripts/device/check_tokenizer_hf.py.
// It is a plain program rather than a Google Benchmark one because it needs only the tokenizer
// and util layers: it links statically with one g++ line (scripts/device/bench_tokenizer_hf.py
// shows it) and so runs on the device, whose image lacks our Debian libraries.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/encode_bench.h"
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
  if (pos.size() != 2) {
    std::fprintf(stderr, "usage: tokenizer_bench TOKENIZER.json TEXTS.jsonl[.xz] "
                         "[--threads 1,16] [--repeat 3] [--dump-ids IDS.jsonl]\n");
    return 2;
  }
  if (threads.empty()) threads = {1, static_cast<int>(std::thread::hardware_concurrency())};
  try {
    auto tok = c3::tokenizer::BpeTokenizer::from_file(pos[0]);
    auto texts = c3::tokenizer::read_texts(pos[1]);
    if (!dump.empty()) {
      c3::write_file_atomic(dump, [&](std::ostream& os) {
        for (const auto& t : texts) os << nlohmann::json({{"ids", tok.encode(t)}}).dump() << '\n';
      });
    }
    for (int n : threads) {
      auto r = c3::tokenizer::bench_encode(tok, texts, n, repeat);
      std::printf("{\"impl\": \"c3\", \"tokenizer\": %s, \"file\": %s, %s\n",
                  nlohmann::json(pos[0]).dump().c_str(), nlohmann::json(pos[1]).dump().c_str(),
                  r.json().c_str() + 1);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
