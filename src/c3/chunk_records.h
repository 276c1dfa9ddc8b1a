// What version 2 of the .c3 format adds to a file's metadata: how each chunk is stored (as
// latents, or as plain token ids), the char precision each chunk was measured at when the file
// was written, and the decode settings of that measurement (c3 compress --min-precision).
//
// Metadata keys (values are strings, as safetensors requires):
//   chunk_storage    JSON list, one per chunk: "latents" | "tokens"
//   chunk_precision  JSON list, one number in [0, 1] per chunk (only with "verification")
//   verification     JSON object: {"min_precision", "floor_tokens", "decode": {"max_new_tokens",
//                    "no_repeat_ngram_size", "stop_at_im_end", "length_cap", "num_beams",
//                    "device", "dtype"}}
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace c3::cascade {

// The decode settings the precisions were measured with; c3 decompress uses them by default.
// Device and dtype are recorded too: another device or dtype rounds differently, and a rounding
// difference can flip a near-tie of greedy decoding.
struct VerifiedDecode {
  int64_t max_new_tokens = 4096;
  int64_t no_repeat_ngram_size = 20;
  bool stop_at_im_end = true;
  double length_cap = 1.5;
  int64_t num_beams = 1;
  std::string device = "cpu";
  std::string dtype = "F32";
};

struct Verification {
  double min_precision = 1.0;  // the bar every latent chunk was re-encoded until it met
  int64_t floor_tokens = 0;    // chunks were not cut below this; a failing one went plain
  VerifiedDecode decode;
};

struct ChunkRecords {
  std::vector<uint8_t> plain;     // per chunk: 1 = stored as token ids; empty in version 1
  std::vector<double> precision;  // per chunk: measured char precision; empty = not measured
  std::optional<Verification> verification;  // present exactly when `precision` is

  // Version 2 is written only when used, so unverified files stay readable by older c3.
  bool needs_v2() const;
  int64_t n_plain() const;
  double lowest_precision() const;  // of the measured chunks; 1 when none was measured
};

// Adds the keys above for `n_chunks` chunks (checks that the lists have that length).
void put_chunk_records(const ChunkRecords& r, int64_t n_chunks,
                       std::map<std::string, std::string>& md);

// Reads them back from a version-2 file; every error names `path`, the key and what is wrong.
ChunkRecords read_chunk_records(const std::map<std::string, std::string>& md, int64_t n_chunks,
                                const std::string& path);

}  // namespace c3::cascade
