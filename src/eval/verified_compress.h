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
#include <string>

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
};

// Reads `in` (as compress_stream does, same errors) and writes a verified .c3 file, atomically.
VerifiedResult compress_verified_to_file(cascade::LoadedC3& m, std::istream& in,
                                         const std::string& in_name, const std::string& out_path,
                                         const cascade::CompressOptions& opt,
                                         const VerifyOptions& v);

}  // namespace c3::eval
