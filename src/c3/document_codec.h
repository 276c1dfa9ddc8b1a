// Documents of any length: stream text in blocks, chunk it, compress chunk batches into a .c3
// file; and back, from a .c3 file to text, batch by batch.
#pragma once
#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
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

// Receives each chunk of the input in order with its text (a view into the current block).
using ChunkSink = std::function<void(const Chunk& chunk, std::string_view text)>;

// The chunk size in tokens: `requested`, or the model's own (c3_max_passage_tokens) when 0.
// Throws when it is below 8.
int64_t chunk_size(const LoadedC3& m, int64_t requested);

// Reads all of `in` block by block (bounded memory) and cuts it into chunks of at most
// `max_tokens` tokens, handing each to `sink` in order. Errors: invalid UTF-8 (naming the byte
// offset), empty input, whitespace only, only special tokens. Returns the totals (chunks,
// tokens, chars, bytes).
CompressResult read_chunks(const tokenizer::BpeTokenizer& tok, std::istream& in,
                           const std::string& in_name, int64_t max_tokens, size_t block_bytes,
                           bool progress, const ChunkSink& sink);

// Reads all of `in` block by block (bounded memory), chunks and compresses it (read_chunks'
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

// Greedy (or beam) decoding of stored latents [n, L, C] of chunks with `tokens` source tokens
// each: exactly what decompress_to_stream does per batch, so a precision measured through it
// is the one decompression gives.
std::vector<std::vector<int64_t>> decode_latents(LoadedC3& m, const at::Tensor& latents,
                                                 const std::vector<int64_t>& tokens,
                                                 const DecompressOptions& opt);

// Rounds latents to their stored dtype ("BF16" | "F32") and back to the model's: what a chunk's
// latents are after a trip through a .c3 file.
at::Tensor as_stored(const at::Tensor& latents, const std::string& dtype);

// Decompression options from a verified file's recorded settings.
DecompressOptions decompress_options(const VerifiedDecode& d);

// The settings `d` with the device and weight dtype ("BF16" | "F32") that `m` decodes with: what
// a verified file records.
VerifiedDecode recorded_decode(const DecompressOptions& d, const LoadedC3& m);

// "device/dtype (recorded cpu F32, now cuda:0 BF16)" when `m` decodes on another device or in
// another dtype than `rec` was measured with; "" when they are the same.
std::string device_change(const VerifiedDecode& rec, const LoadedC3& m);

// Decode settings a caller gives over a verified file's recorded ones (c3 decompress's flags,
// Python's keywords, the service's fields), each under the name the caller knows it by; a value
// left unset keeps the recorded one.
template <typename T>
struct GivenSetting {
  std::string name;
  std::optional<T> value;
};
struct DecodeOverrides {
  GivenSetting<int64_t> beams{"beams", {}};
  GivenSetting<int64_t> no_repeat_ngram{"no_repeat_ngram", {}};
  GivenSetting<int64_t> max_new_tokens{"max_new_tokens", {}};
  GivenSetting<double> length_cap{"length_cap", {}};
  GivenSetting<bool> stop{"stop", {}};  // stop at <|im_end|>
};

// The settings `rec` records with `given` over them. `warnings` receives, for each given value
// that differs from the recorded one and for a device or dtype change, a line like
// "length_cap (recorded 1.5, now 2): the recorded precision holds for the recorded settings only".
DecompressOptions decode_over_recorded(const VerifiedDecode& rec, const DecodeOverrides& given,
                                       const LoadedC3& m, std::vector<std::string>* warnings);

// One chunk of a .c3 file as stored: row `latent_row` of the file's latents, or (version 2)
// plain token ids.
struct StoredChunk {
  bool plain = false;
  int64_t latent_row = -1;   // latent chunks
  std::vector<int64_t> ids;  // plain chunks
};

// The chunks of `f` in file order. Plain chunks' ids are checked against the tokenizer's `vocab`
// (a damaged file, or one made with another tokenizer, fails here).
std::vector<StoredChunk> stored_chunks(const LatentFile& f, int64_t vocab);

struct DecompressStreamOptions {
  int64_t batch_size = 8;
  DecompressOptions decode;
  bool progress = true;
};

// Decompresses every chunk of `f` in order, writing the joined text to `out` as it goes; chunks
// stored as plain token ids (version 2) come back as those ids. Returns the ids per chunk (stop
// token excluded).
std::vector<std::vector<int64_t>> decompress_to_stream(LoadedC3& m, const LatentFile& f,
                                                       std::ostream& out,
                                                       const DecompressStreamOptions& opt);

}  // namespace c3::cascade
