// One text through the cascade and back, in memory: compress (chunked as `c3 compress` does),
// decompress every chunk, and score the result against the source. The CLI's `roundtrip`, the
// service and the Python module all call this.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "c3/document_codec.h"

namespace c3::eval {

struct RoundtripOptions {
  int64_t batch_size = 8;          // chunks per forward pass (compress and decompress)
  int64_t max_passage_tokens = 0;  // chunk size; 0 = the model's c3_max_passage_tokens
  cascade::DecompressOptions decode;
};

struct RoundtripResult {
  std::string text;          // the regenerated text, chunks joined
  std::vector<int64_t> ids;  // generated ids, chunks joined (stop tokens excluded)
  int64_t tokens = 0;        // source tokens
  int64_t chunks = 0;
  int64_t latents = 0;       // chunks x L
  double ratio = 0;          // tokens / latents
  double char_precision = 0;
  bool exact_match = false;
  double seconds = 0;        // wall time of compress + decompress

  // {text, ids, tokens, chunks, latents, ratio, char_precision, exact_match, seconds}: the
  // fields of `c3 roundtrip --json`.
  nlohmann::json to_json() const;
};

// `name` labels the text in error messages (a file name, "stdin", a request). Errors as
// compress_stream's: empty text, invalid UTF-8 with its byte offset.
RoundtripResult roundtrip_text(cascade::LoadedC3& m, const std::string& text,
                               const std::string& name, const RoundtripOptions& opt);

}  // namespace c3::eval
