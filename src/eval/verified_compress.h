// Verified compression (c3 compress --min-precision P): each chunk is decoded right after it is
// encoded and its char precision measured against its source; a chunk below P is cut in halves
// and tried again, down to a floor below which it is stored as plain token ids. The .c3 file
// (format version 2) records the precision each chunk really has and the decode settings used.
//
// It lives in the eval layer because it measures fidelity (text_metrics.h); the c3 layer below
// only stores what it is given (latent_file.h, chunk_records.h).
#pragma once
#include <cstdint>
#include <istream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "c3/chunker.h"
#include "c3/document_codec.h"

namespace c3::eval {

struct VerifyOptions {
  double min_precision = 1.0;  // P: every chunk kept as latents reaches this char precision
  int64_t floor_tokens = 0;    // halves shorter than this are not tried (0 = L, the latent count:
                               // below it, plain tokens take fewer slots than the latents)
  cascade::DecompressOptions decode;  // how the check decodes, and so how decompress will
};

struct VerifiedResult {
  cascade::CompressResult source;  // the input's tokens, chars, bytes and first-cut chunks
  int64_t latent_chunks = 0, plain_chunks = 0, plain_tokens = 0;
  int64_t encodes = 0;            // chunks encoded and decoded, halves included
  double lowest_precision = 1.0;  // of the stored chunks, plain ones included
  // Compression ratio counting each plain token as one slot, like a latent:
  // source tokens / (latent_chunks * L + plain_tokens).
  double ratio(int64_t L) const;
  // What `c3 compress` reports, as Python's compress_file and the service's /v1/compress return
  // it: tokens, chars, bytes, chunks, latent_chunks, plain_chunks, plain_tokens, slots, ratio,
  // verified, min_precision and lowest_precision (null unless `verify`), encodes.
  nlohmann::ordered_json to_json(int64_t L, const VerifyOptions* verify) const;
  // An unverified compression in these terms: every chunk latents, each encoded once.
  static VerifiedResult unverified(const cascade::CompressResult& source);
};

// Verified compression a batch at a time, for callers that interleave it with other work (the
// service runs one step per engine turn). Chunks are settled in groups of opt.batch_size, in order:
// a group is tried whole, then the halves of its failures, level by level, each level in batches
// of opt.batch_size, and written when every piece of it is settled.
class VerifiedCompressor {
 public:
  // Writes the file to `out_path` at finish(), atomically, or keeps it in memory (bytes()) when
  // `out_path` is "". Throws on min_precision outside [0, 1], a negative floor or batch size < 1.
  VerifiedCompressor(cascade::LoadedC3& m, const cascade::CompressOptions& opt,
                     const VerifyOptions& v, const std::string& out_path);
  ~VerifiedCompressor();
  VerifiedCompressor(const VerifiedCompressor&) = delete;
  VerifiedCompressor& operator=(const VerifiedCompressor&) = delete;

  // The next chunk of the input, as read_chunks cuts it.
  void add(const cascade::Chunk& c, std::string_view text);
  int64_t waiting() const;  // chunks added whose group has not started
  // Encodes, decodes and scores one batch, if any is left; returns whether work remains.
  bool step();
  // After the last step: records the decode settings and `source`'s totals, and writes the file.
  VerifiedResult finish(const cascade::CompressResult& source);
  const std::string& bytes() const;  // the file, for an in-memory compressor after finish()

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Reads `in` (as compress_stream does, same errors) and writes a verified .c3 file, atomically.
VerifiedResult compress_verified_to_file(cascade::LoadedC3& m, std::istream& in,
                                         const std::string& in_name, const std::string& out_path,
                                         const cascade::CompressOptions& opt,
                                         const VerifyOptions& v);

}  // namespace c3::eval
