// Documents of any length: stream text in blocks, chunk it, compress chunk batches into a .c3
// file; and back, from a .c3 file to text, batch by batch.
#pragma once
#include <cstdint>
#include <functional>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "c3/chunker.h"
#include "c3/latent_file.h"

namespace c3::cascade {

struct CompressOptions {
  int64_t max_passage_tokens = 0;  // 0 = the model's (config c3_max_passage_tokens, 1280)
  int64_t batch_size = 8;          // chunks compressed per forward pass
  std::string dtype = "BF16";      // of the stored latents
  size_t block_bytes = 4 << 20;    // input read per block (bounds memory for huge inputs)
  bool progress = true;
};

struct CompressResult {
  int64_t tokens = 0, chars = 0, bytes = 0, chunks = 0;
};

// Receives each batch of compressed chunks: latents [n, L, C], the chunks' token ids and their
// source byte lengths.
using LatentSink = std::function<void(const at::Tensor& latents,
                                      const std::vector<std::vector<int32_t>>& chunk_ids,
                                      const std::vector<int64_t>& chunk_bytes)>;

// The chunk size in tokens: `requested`, or the model's own (c3_max_passage_tokens) when 0.
// Throws when it is below 8.
int64_t chunk_size(const LoadedC3& m, int64_t requested);

// Reads all of `in` block by block (bounded memory) and cuts it into chunks of at most
// `max_tokens` tokens, handing each to `sink` in order. Errors: invalid UTF-8 (naming the byte
// offset), empty input, whitespace only, only special tokens. The result has no chunks' bytes.
CompressResult chunk_stream(const tokenizer::BpeTokenizer& tok, std::istream& in,
                            const std::string& in_name, int64_t max_tokens,
                            const CompressOptions& opt, const std::function<void(Chunk&&)>& sink);

// Reads all of `in` block by block (bounded memory), chunks and compresses it (chunk_stream's
// errors).
CompressResult compress_stream(LoadedC3& m, std::istream& in, const std::string& in_name,
                               const CompressOptions& opt, const LatentSink& sink);

// What a .c3 file made by `m` records before its chunks: the model's fingerprint, tokenizer
// hash, shape and `dtype` ("BF16" | "F32").
LatentMeta latent_meta(const LoadedC3& m, const std::string& dtype);

// compress_stream into a .c3 file, written atomically.
CompressResult compress_to_file(LoadedC3& m, std::istream& in, const std::string& in_name,
                                const std::string& out_path, const CompressOptions& opt);

// compress_stream into the bytes of a .c3 file, in memory: the bytes compress_to_file writes.
std::string compress_to_bytes(LoadedC3& m, const std::string& text, const std::string& name,
                              const CompressOptions& opt, CompressResult* result = nullptr);

struct DecompressStreamOptions {
  int64_t batch_size = 8;
  DecompressOptions decode;
  bool progress = true;
};

// Decompresses every chunk of `f` in order, writing the joined text to `out` as it goes.
// Returns the generated ids per chunk (stop token excluded).
std::vector<std::vector<int64_t>> decompress_to_stream(LoadedC3& m, const LatentFile& f,
                                                       std::ostream& out,
                                                       const DecompressStreamOptions& opt);

}  // namespace c3::cascade
