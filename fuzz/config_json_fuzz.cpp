// libFuzzer target: JsonFile::load + Qwen2Config::from_json on arbitrary config.json bytes.
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "io/hf_config.h"
#include "model/qwen2_config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = c3::fuzz::scratch_file(data, size, ".config.json");
  try {
    auto cfg = c3::model::Qwen2Config::from_json(c3::io::JsonFile::load(path));
    (void)cfg.head_dim();
    (void)cfg.n_params();
  } catch (const c3::Error&) {
  }
  return 0;
}
