// Shared CLI helpers.
#include "cli/cli_common.h"

#include <torch/cuda.h>

#include <cstdlib>
#include <filesystem>

#include "util/error.h"

#ifndef C3_SOURCE_DIR
#define C3_SOURCE_DIR "."
#endif

namespace c3::cli {

at::Device parse_device(const std::string& s) {
  if (s == "cpu") return at::kCPU;
  if (s.rfind("cuda", 0) == 0) {
    C3_CHECK(torch::cuda::is_available(),
             "--device {}: CUDA is not available (this LibTorch is CPU-only or no GPU is visible); "
             "use --device cpu", s);
    try {
      return at::Device(s);
    } catch (const std::exception&) {
      fail("--device '{}': expected cpu, cuda or cuda:N", s);
    }
  }
  fail("--device '{}': expected cpu, cuda or cuda:N", s);
}

at::ScalarType parse_dtype(const std::string& s, const at::Device& d) {
  if (s == "f32" || s == "fp32" || s == "float32") return at::kFloat;
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  if (s == "auto") return d.is_cuda() ? at::kBFloat16 : at::kFloat;
  fail("--dtype '{}': expected f32, bf16 or auto", s);
}

std::string default_model_dir() {
  if (const char* e = std::getenv("C3_MODEL"); e && *e) return e;
  return (std::filesystem::path(C3_SOURCE_DIR) / "models" / "c3-small").string();
}

}  // namespace c3::cli
