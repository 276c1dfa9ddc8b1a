// Device memory facts from the CUDA caching allocator (device_memory.h).
#include "model/device_memory.h"

#include "io/torch_compat.h"

#ifdef C3_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace c3::model {

#ifdef C3_HAVE_CUDA
namespace {

c10::DeviceIndex index_of(at::Device d) {
  return d.has_index() ? d.index() : c10::cuda::current_device();
}

}  // namespace
#endif

DeviceMemory device_memory(at::Device device) {
  DeviceMemory m;
#ifdef C3_HAVE_CUDA
  if (!device.is_cuda()) return m;
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const c10::DeviceIndex idx = index_of(device);
  const auto s = alloc::getDeviceStats(idx);
  const size_t all = compat::kAllPoolsStat;
  m.allocated_bytes = s.allocated_bytes[all].current;
  m.peak_allocated_bytes = s.allocated_bytes[all].peak;
  m.peak_reserved_bytes = s.reserved_bytes[all].peak;
  size_t free = 0, total = 0;
  {
    c10::cuda::CUDAGuard guard(idx);
    C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  }
  m.total_bytes = static_cast<int64_t>(total);
  m.free_bytes = static_cast<int64_t>(free) + s.reserved_bytes[all].current - m.allocated_bytes;
#else
  (void)device;
#endif
  return m;
}

void reset_device_peak(at::Device device) {
#ifdef C3_HAVE_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(index_of(device));
#else
  (void)device;
#endif
}

}  // namespace c3::model
