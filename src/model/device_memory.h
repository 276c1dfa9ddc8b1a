// The CUDA caching allocator's view of a device's memory, for choices that depend on it (whether a
// training step's graph fits) and for the peaks that benchmarks report. Zeros on the CPU and in
// builds without CUDA.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace c3::model {

struct DeviceMemory {
  int64_t total_bytes = 0;           // the device's memory
  int64_t free_bytes = 0;            // free in the driver + held unused by the allocator
  int64_t allocated_bytes = 0;       // in tensors now
  int64_t peak_allocated_bytes = 0;  // the most in tensors since reset_device_peak
  int64_t peak_reserved_bytes = 0;   // the most the allocator held since reset_device_peak
};

DeviceMemory device_memory(at::Device device);
void reset_device_peak(at::Device device);

}  // namespace c3::model
