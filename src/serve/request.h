// The service's requests: JSON bodies parsed and checked into typed requests. Every refusal is a
// BadRequest carrying the HTTP status and a message that names the field and says what to send.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "c3/chunker.h"
#include "c3/document_codec.h"
#include "c3/latent_file.h"
#include "eval/verified_compress.h"

namespace c3::serve {

class BadRequest : public std::runtime_error {
 public:
  BadRequest(int status, const std::string& message)
      : std::runtime_error(message), status(status) {}
  int status;
};

// What a request may ask for, set by the server's flags and the model.
struct RequestLimits {
  int64_t max_new_tokens = 4096;    // per chunk
  int64_t max_beams = 8;
  int64_t max_chunk_tokens = 4096;  // longest chunk the encoder may read
  int64_t max_chunks = 1024;        // per request
};

// Decoding fields shared by /v1/decompress, /v1/roundtrip and verified /v1/compress, with
// `c3 decompress`'s defaults: no_repeat_ngram (20), max_new_tokens (4096, at most the server's),
// length_cap (1.5), beams (1), stop (true: stop a chunk at <|im_end|>).
//
// /v1/compress   {"text", "chunk_tokens"?, "latent_dtype"? ("bf16" | "f32"),
//                 "min_precision"? (0..1: verified), "verify_floor"?, decoding fields? (verified)}
// /v1/decompress {"latents" (base64 of a .c3 file), decoding fields?}
// /v1/roundtrip  {"text", "chunk_tokens"?, decoding fields?}
struct TextRequest {
  std::vector<cascade::Chunk> chunks;     // the text cut as `c3 compress` cuts it
  std::vector<std::string> chunk_texts;   // verified compress only: each chunk's text
  std::string text;
  int64_t tokens = 0, chars = 0;
  std::string latent_dtype = "BF16";          // compress only
  std::optional<eval::VerifyOptions> verify;  // compress with min_precision
  cascade::DecompressOptions decode;          // roundtrip only
};

struct LatentRequest {
  cascade::LatentFile file;
  std::vector<cascade::StoredChunk> chunks;  // in file order: latent rows and plain ids
  std::vector<int64_t> latent_tokens;        // source tokens of each latent chunk (length cap)
  cascade::DecompressOptions decode;  // a verified file's recorded settings, fields over them
  std::vector<std::string> warnings;  // where those differ from the recorded ones
};

TextRequest parse_compress(const std::string& body, const cascade::LoadedC3& m,
                           const RequestLimits& limits);
TextRequest parse_roundtrip(const std::string& body, const cascade::LoadedC3& m,
                            const RequestLimits& limits);
// Also refuses latents made by another model than `m`. A verified file decodes with the settings
// it records (`c3 decompress` does too); fields given override them, with a warning each.
LatentRequest parse_decompress(const std::string& body, const cascade::LoadedC3& m,
                               const RequestLimits& limits);

}  // namespace c3::serve
