// .c3 latent files: safetensors with one tensor "latents" [n_chunks, L, C_dec] (bf16 or f32) and
// __metadata__ describing where the latents came from and how to turn them back into text.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace c3::cascade {

constexpr const char* kLatentFormat = "c3-latents";
constexpr int kLatentFormatVersion = 1;

struct LatentMeta {
  std::string model_fingerprint;  // XXH3-128 of the model's configs and weights
  std::string tokenizer_hash;     // XXH3-128 of tokenizer.json (or qwen.tiktoken)
  int64_t latent_len = 0;         // L
  int64_t hidden = 0;             // C_dec
  std::string dtype = "BF16";     // BF16 | F32
  int64_t source_tokens = 0, source_chars = 0, source_bytes = 0;
  std::vector<int64_t> chunk_bytes;   // byte length of each chunk's source text
  std::vector<int64_t> chunk_tokens;  // token count of each chunk
};

// Streams latents chunk by chunk into a side file, then assembles header + data into `path`
// atomically in finish(). Memory stays bounded by one batch.
class LatentWriter {
 public:
  LatentWriter(std::string path, LatentMeta meta);
  ~LatentWriter();  // removes the side file if finish() was not reached
  void append(const at::Tensor& latents, const std::vector<int64_t>& chunk_bytes,
              const std::vector<int64_t>& chunk_tokens);  // [n, L, C]
  void set_source(int64_t tokens, int64_t chars, int64_t bytes);
  void finish();

 private:
  std::string path_, side_path_;
  LatentMeta meta_;
  FILE* side_ = nullptr;
  int64_t n_chunks_ = 0;
  bool done_ = false;
};

struct LatentFile {
  LatentMeta meta;
  at::Tensor latents;  // [n_chunks, L, C] on CPU, zero-copy view of the file when aligned
};

// Reads and validates a .c3 file; errors name the file and the field.
LatentFile read_latents(const std::string& path);

// In memory (the service sends .c3 files as base64): the exact bytes that LatentWriter writes for
// `latents` [n, L, C] (stored as meta.dtype) and meta's chunk lists, and the reader of such bytes,
// which validates them as read_latents does (errors name `name`).
std::string latent_file_bytes(const LatentMeta& meta, const at::Tensor& latents);
LatentFile parse_latents(std::string bytes, const std::string& name);

// Refuses (c3::Error naming both fingerprints) latents made by another model.
void check_latents_match(const LatentFile& f, const std::string& path,
                         const std::string& model_fingerprint, int64_t latent_len, int64_t hidden);

}  // namespace c3::cascade
