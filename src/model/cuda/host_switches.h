// Host-side facts the kernels' launchers decide by: the environment switches that turn a kernel
// path on or off, and attributes of the current device. Free of torch headers (nvcc compiles the
// launchers); callers keep the answers in statics, read once per process.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>

namespace c3::model::fused::cuda {

// An environment switch: "0" turns off a path that is on by default, "1" turns on one that is off.
inline bool env_switch(const char* name, bool default_on) {
  const char* e = std::getenv(name);
  if (!e) return default_on;
  return default_on ? std::strcmp(e, "0") != 0 : std::strcmp(e, "1") == 0;
}

// An attribute of the current device, or 0 where it cannot be read.
inline int current_device_attribute(cudaDeviceAttr attribute) {
  int device = 0, value = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&value, attribute, device) != cudaSuccess)
    return 0;
  return value;
}

}  // namespace c3::model::fused::cuda
