// libFuzzer target: SafetensorsFile::open on arbitrary bytes, then reads every tensor it accepts.
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = c3::fuzz::scratch_file(data, size, ".safetensors");
  try {
    auto f = c3::io::SafetensorsFile::open(path);
    for (const auto& t : f->tensors()) {
      auto [p, n] = f->bytes(t.name);
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < n; ++i) sink = sink ^ p[i];  // touch every byte: must be mapped
      if (t.numel() <= (1 << 16)) (void)f->tensor(t.name).sum();
    }
  } catch (const c3::Error&) {
  }
  return 0;
}
