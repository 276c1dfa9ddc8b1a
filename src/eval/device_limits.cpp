// The card's limits from its name, and the name from the CUDA runtime.
#include "eval/device_limits.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#ifdef C3_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace c3::eval {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

std::string PhysicalLimits::describe() const {
  const std::string figures =
      fmt::format("{:.0f} TFLOP/s dense bf16, {:.3g} TB/s", flops / 1e12, bandwidth / 1e12);
  if (known) return card + ": " + figures;
  const std::string which =
      device_name.empty() ? "no CUDA device" : "unknown card '" + device_name + "'";
  return which + ": assumed " + figures + " (an H200's)";
}

PhysicalLimits limits_for_device(const std::string& device_name) {
  PhysicalLimits l;
  l.device_name = device_name;
  const std::string n = lower(device_name);
  // Other variants (H200 NVL, H100 NVL, ...) have other clocks or memory: left unknown.
  if (has(n, "h200") && !has(n, "nvl")) {
    l.card = "H200";
    l.flops = 989e12;
    l.bandwidth = 4.8e12;
    l.known = true;
  } else if (has(n, "h100") && (has(n, "sxm") || has(n, "hbm3"))) {
    l.card = "H100 SXM";
    l.flops = 989e12;
    l.bandwidth = 3.35e12;
    l.known = true;
  } else if (has(n, "h100") && has(n, "pcie")) {
    l.card = "H100 PCIe";
    l.flops = 756e12;
    l.bandwidth = 2.0e12;
    l.known = true;
  }
  return l;
}

std::string cuda_device_name(at::Device d) {
#ifdef C3_HAVE_CUDA
  if (d.is_cuda()) {
    const auto idx = static_cast<c10::DeviceIndex>(d.has_index() ? d.index() : 0);
    return at::cuda::getDeviceProperties(idx)->name;
  }
#else
  (void)d;
#endif
  return "";
}

}  // namespace c3::eval
