// c3.Cascade: a loaded checkpoint (encoder, decoder, tokenizer, fingerprint) and the calls
// that run it: compress, decompress, roundtrip. One call runs at a time per Cascade, without the
// GIL: the model's caches and CUDA graphs belong to one caller at once.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "c3/document_codec.h"
#include "eval/roundtrip.h"
#include "eval/verified_compress.h"
#include "latents.h"

namespace c3::python {

class Cascade {
 public:
  static std::shared_ptr<Cascade> load(const std::string& path, at::Device device,
                                       at::ScalarType dtype);

  // Each text chunked as `c3 compress` chunks it; errors name the text as texts[i].
  std::vector<Latents> compress(const std::vector<std::string>& texts,
                                const cascade::CompressOptions& opt);
  // Each document's text, as `c3 decompress` writes it; refuses latents of another model.
  std::vector<std::string> decompress(const std::vector<Latents>& latents,
                                      const cascade::DecompressStreamOptions& opt);
  // eval::roundtrip_text of each text: what `c3 roundtrip --json` prints.
  std::vector<eval::RoundtripResult> roundtrip(const std::vector<std::string>& texts,
                                               const eval::RoundtripOptions& opt);

  // `text` into a .c3 file at `path`, atomically: as `c3 compress` writes it, or with `verify`
  // as `c3 compress --min-precision` does (each chunk decoded and checked, eval/verified_compress.h).
  // Without `verify` the result counts every chunk as a latent chunk.
  eval::VerifiedResult compress_file(const std::string& text, const std::string& path,
                                     const cascade::CompressOptions& opt,
                                     const eval::VerifyOptions* verify);
  // The text of a .c3 file read by cascade::read_latents, as `c3 decompress` writes it: chunks
  // stored as plain tokens included. Refuses a file of another model (`path` names it).
  std::string decompress_file(const cascade::LatentFile& f, const std::string& path,
                              const cascade::DecompressStreamOptions& opt);

  cascade::LoadedC3& loaded() { return m_; }
  std::mutex& mutex() { return mu_; }

 private:
  explicit Cascade(cascade::LoadedC3 m) : m_(std::move(m)) {}
  cascade::LoadedC3 m_;
  std::mutex mu_;
};

}  // namespace c3::python
