// The physical limits of the card a benchmark runs on (peak dense bf16 FLOP/s and memory
// bandwidth), found from the device name the CUDA runtime reports, so that the speed bench puts
// each figure beside its own card's ceiling.
//
// Figures (vendor datasheets; dense, i.e. half the "with sparsity" numbers):
//   H200 (SXM, "NVIDIA H200"):               989 TFLOP/s bf16, 4.8 TB/s HBM3e
//   H100 SXM ("NVIDIA H100 80GB HBM3"):      989 TFLOP/s bf16, 3.35 TB/s HBM3
//   H100 PCIe ("NVIDIA H100 PCIe"):          756 TFLOP/s bf16, 2.0 TB/s HBM2e
// The H200 has the H100 SXM's GH100 compute and faster memory. Any other name is "unknown", and
// the H200's figures are assumed (the card this project measures on); the report says so.
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace c3::eval {

struct PhysicalLimits {
  std::string card = "unknown";  // "H200", "H100 SXM", "H100 PCIe" or "unknown"
  std::string device_name;       // as the runtime reports it; "" without a CUDA device
  bool known = false;            // false: the figures below are assumed, not the card's
  double flops = 989e12;         // dense bf16 FLOP/s
  double bandwidth = 4.8e12;     // bytes/s
  // One line for reports: "H200: 989 TFLOP/s dense bf16, 4.8 TB/s", or for an unknown card
  // "unknown card 'NAME': assumed 989 TFLOP/s dense bf16, 4.8 TB/s (an H200's)".
  std::string describe() const;
};

// The limits for a device name (case-insensitive; "" = no CUDA device).
PhysicalLimits limits_for_device(const std::string& device_name);

// The name of CUDA device `d` (at::cuda device properties); "" for other devices or in builds
// without CUDA.
std::string cuda_device_name(at::Device d);

}  // namespace c3::eval
