// Shared by the serve tests: the shipped model (loaded once per binary), texts, and the CLI's own
// answers for them (eval::roundtrip_text, compress_to_bytes) to compare the service against.
#pragma once
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "c3/chunker.h"
#include "c3/document_codec.h"
#include "eval/roundtrip.h"
#include "serve/scheduler.h"
#include "testdata.h"

namespace c3::test {

inline std::string small_model_dir() {
  return (source_dir() / "models" / "c3-small").string();
}

// One copy of c3-small (fp32, CPU) for every test of the binary.
inline cascade::LoadedC3& small_model() {
  static cascade::LoadedC3 m = cascade::load_c3(small_model_dir(), at::kFloat, at::kCPU);
  return m;
}

// Short texts of different lengths; the last one makes several chunks at chunk_tokens 24.
inline std::vector<std::string> serve_texts() {
  return {"\"The first thing I've got to do,\" said Alice to herself.",
          "I think that will be the best plan.",
          "Alice wandered about in the wood, looking for her way into that lovely garden.",
          "The second thing is to find my way into that lovely garden.\n\nAnd to grow to my "
          "right size again; that will be the best plan, she thought."};
}

// The CLI's round trip of `text` (`c3 roundtrip --json`), with `chunk_tokens` as its flag.
inline eval::RoundtripResult cli_roundtrip(const std::string& text, int64_t chunk_tokens = 0) {
  eval::RoundtripOptions o;
  o.max_passage_tokens = chunk_tokens;
  return eval::roundtrip_text(small_model(), text, "test", o);
}

// The scheduler's work for a round trip of `text`, chunked as the CLI chunks it.
inline serve::Work roundtrip_work(const std::string& text, int64_t chunk_tokens = 0) {
  serve::Work w;
  w.kind = serve::WorkKind::kRoundtrip;
  cascade::CompressOptions co;
  co.progress = false;
  std::istringstream in(text);
  cascade::read_chunks(*small_model().tok, in, "test",
                       cascade::chunk_size(small_model(), chunk_tokens), co.block_bytes,
                       co.progress, [&](const cascade::Chunk& c, std::string_view) {
                         w.source_tokens.push_back(static_cast<int64_t>(c.ids.size()));
                         w.chunks.push_back(c.ids);
                       });
  return w;
}

// A round trip that keeps the engine busy for hundreds of decode steps: no stop token, no length
// cap, `tokens` generated.
inline serve::Work busy_work(int64_t tokens) {
  serve::Work w = roundtrip_work(serve_texts()[0]);
  w.decode.stop_at_im_end = false;
  w.decode.length_cap = 0;
  w.decode.max_new_tokens = tokens;
  return w;
}

inline std::string joined_text(const std::vector<std::vector<int64_t>>& ids) {
  std::string s;
  for (const auto& row : ids) s += small_model().tok->decode(std::vector<int32_t>(row.begin(), row.end()));
  return s;
}

// Polls `done` every 2 ms for up to 60 s (the condition is reached in milliseconds; the bound
// only turns a bug into a failure instead of a hang).
inline bool eventually(const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return done();
}

}  // namespace c3::test
