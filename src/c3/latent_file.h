// .c3 latent files: safetensors with one tensor "latents" [n_chunks, L, C_dec] (bf16 or f32) and
// __metadata__ describing where the latents came from and how to turn them back into text.
// Version 2 (written only when used; chunk_records.h) may store some chunks as plain token ids
// instead (tensor "plain_tokens" [n] I32, the plain chunks' ids in chunk order; "latents" then
// holds the other chunks only) and records the precision each chunk was verified at.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "c3/chunk_records.h"

namespace c3::cascade {

constexpr const char* kLatentFormat = "c3-latents";
constexpr int kLatentFormatVersion = 2;  // the newest this c3 reads; it writes 1 when it can

struct LatentMeta {
  std::string model_fingerprint;  // XXH3-128 of the model's configs and weights
  std::string tokenizer_hash;     // XXH3-128 of tokenizer.json (or qwen.tiktoken)
  int64_t latent_len = 0;         // L
  int64_t hidden = 0;             // C_dec
  std::string dtype = "BF16";     // BF16 | F32
  int64_t source_tokens = 0, source_chars = 0, source_bytes = 0;
  std::vector<int64_t> chunk_bytes;   // byte length of each chunk's source text
  std::vector<int64_t> chunk_tokens;  // token count of each chunk
  ChunkRecords records;               // version 2: plain chunks, verified precisions
  int format_version = 1;             // as read (the writer picks it)
};

// Streams latents chunk by chunk into a side file, then assembles header + data into `path`
// atomically in finish(). Memory stays bounded by one batch. A writer made without a path keeps
// the chunks in memory instead and hands back the file's bytes (the service sends them as base64).
class LatentWriter {
 public:
  LatentWriter(std::string path, LatentMeta meta);
  explicit LatentWriter(LatentMeta meta);  // in memory: finish_bytes()
  ~LatentWriter();  // removes the side file if finish() was not reached
  LatentWriter(const LatentWriter&) = delete;
  LatentWriter& operator=(const LatentWriter&) = delete;
  void append(const at::Tensor& latents, const std::vector<int64_t>& chunk_bytes,
              const std::vector<int64_t>& chunk_tokens);  // [n, L, C]
  // Version 2: one chunk with the char precision measured for it (set_verification must then be
  // called before finish), as latents [L, C] or as its plain token ids.
  void append_verified(const at::Tensor& latents, int64_t bytes, int64_t tokens, double precision);
  void append_plain(const std::vector<int32_t>& ids, int64_t bytes, double precision);
  void set_verification(const Verification& v);
  void set_source(int64_t tokens, int64_t chars, int64_t bytes);
  void finish();               // writes the file at `path`
  std::string finish_bytes();  // in memory: the bytes finish() would have written

 private:
  struct Spool;  // where chunk data waits for finish: a side file, or memory
  std::unique_ptr<Spool> spool(const char* what) const;
  void write(std::ostream& out);

  std::string path_;  // "" = in memory
  LatentMeta meta_;
  std::unique_ptr<Spool> side_;
  std::unique_ptr<Spool> plain_side_;  // plain chunks' ids, int32, opened on the first one
  int64_t n_chunks_ = 0, n_latent_ = 0, n_plain_tokens_ = 0;
  bool done_ = false;
};

struct LatentFile {
  LatentMeta meta;
  at::Tensor latents;       // [n_latent_chunks, L, C] on CPU, zero-copy view when aligned
  at::Tensor plain_tokens;  // [n] int32, the plain chunks' ids in order; empty in version 1
};

// Reads and validates a .c3 file; errors name the file and the field.
LatentFile read_latents(const std::string& path);

// In memory (the service sends .c3 files as base64): the exact bytes that LatentWriter writes for
// `latents` [n, L, C] (stored as meta.dtype), meta's chunk lists and source counts, and the reader
// of such bytes, which validates them as read_latents does (errors name `name`).
std::string latent_file_bytes(const LatentMeta& meta, const at::Tensor& latents);
LatentFile parse_latents(std::string bytes, const std::string& name);

// Refuses (c3::Error naming both fingerprints) latents made by another model.
void check_latents_match(const LatentFile& f, const std::string& path,
                         const std::string& model_fingerprint, int64_t latent_len, int64_t hidden);

}  // namespace c3::cascade
