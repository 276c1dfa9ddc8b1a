// Host -> device copies that don't stall the GPU. A copy from pageable memory waits for every
// kernel already queued on the stream (PyTorch syncs the stream after it), so each small id
// tensor uploaded mid-step drained the pipeline. Staging through pinned memory makes the copy
// asynchronous; the caching host allocator keeps the staging buffer alive until it completes.
#pragma once
#include <ATen/ATen.h>

namespace c3::model {

inline at::Tensor upload(const at::Tensor& host, at::Device device) {
  if (!device.is_cuda()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

}  // namespace c3::model
