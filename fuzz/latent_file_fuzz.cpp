// libFuzzer target: read_latents (the .c3 reader) on arbitrary bytes.
#include <cstdint>

#include "c3/latent_file.h"
#include "fuzz/fuzz_util.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = c3::fuzz::scratch_file(data, size, ".c3");
  try {
    auto f = c3::cascade::read_latents(path);
    if (f.latents.numel() <= (1 << 16)) (void)f.latents.to(at::kFloat).sum();
    if (f.plain_tokens.defined()) (void)f.plain_tokens.sum();
    c3::cascade::check_latents_match(f, path, f.meta.model_fingerprint, f.meta.latent_len,
                                      f.meta.hidden);
  } catch (const c3::Error&) {
  }
  return 0;
}
