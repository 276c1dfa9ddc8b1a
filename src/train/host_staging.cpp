// Reserved host memory for checkpoint snapshots (see host_staging.h).
#include "train/host_staging.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#ifdef C3_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace c3::train {

namespace {

constexpr int64_t kAlign = 256;
thread_local HostStaging* g_current = nullptr;

int64_t round_up(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

// /proc/meminfo's MemAvailable in bytes; 0 where it cannot be read.
int64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

}  // namespace

HostStaging::HostStaging(bool pin) : pin_(pin) {}

HostStaging::~HostStaging() {
  wait();
  release();
}

void HostStaging::reserve_async(int64_t bytes, int threads, int device_index) {
  wait();
  release();
  thread_ =
      std::thread([this, bytes, threads, device_index] { reserve(bytes, threads, device_index); });
}

void HostStaging::wait() {
  if (thread_.joinable()) thread_.join();
}

void HostStaging::begin() {
  wait();
  used_ = 0;
  overflow_ = 0;
}

at::Tensor HostStaging::take(at::IntArrayRef sizes, at::ScalarType dtype) {
  int64_t n = static_cast<int64_t>(c10::elementSize(dtype));
  for (int64_t s : sizes) n *= s;
  const int64_t at = round_up(used_, kAlign);
  if (base_ == nullptr || at + n > bytes_) {
    overflow_ += n;
    return {};
  }
  used_ = at + n;
  return at::from_blob(base_ + at, sizes, at::TensorOptions().dtype(dtype).device(at::kCPU));
}

void HostStaging::reserve(int64_t bytes, int threads, int device_index) {
  const auto t0 = std::chrono::steady_clock::now();
  bytes = round_up(std::max<int64_t>(bytes, kAlign), 2 << 20);
  const int64_t avail = mem_available_bytes();
  if (avail > 0 && bytes > avail / 2) {
    note_ =
        fmt::format("not reserved: {:.1f} GB asked, {:.1f} GB available", bytes / 1e9, avail / 1e9);
    return;
  }
  void* p = ::mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    note_ = fmt::format("not reserved: mmap of {:.1f} GB: {}", bytes / 1e9, std::strerror(errno));
    return;
  }
  char* base = static_cast<char*>(p);
  ::madvise(p, static_cast<size_t>(bytes), MADV_HUGEPAGE);  // fewer pages to fault in and lock
  ::madvise(p, static_cast<size_t>(bytes), MADV_DONTFORK);  // a child process never shares it
  // Fault every page in now, in parallel: page-locking (and a first copy) would otherwise take
  // them one by one on a single thread.
  const int n = std::max(1, threads);
  const int64_t per = round_up((bytes + n - 1) / n, 2 << 20);
  std::vector<std::thread> pool;
  for (int64_t b = 0; b < bytes; b += per)
    pool.emplace_back([base, b, len = std::min(per, bytes - b)] { std::memset(base + b, 0, len); });
  for (auto& t : pool) t.join();
#ifdef C3_HAVE_CUDA
  if (pin_) {
    // The training device's context, not device 0's (which this thread would otherwise get).
    if (device_index >= 0) cudaSetDevice(device_index);
    const cudaError_t e = cudaHostRegister(p, static_cast<size_t>(bytes), cudaHostRegisterPortable);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // clear it: training's own CUDA calls must not see it
      ::munmap(p, static_cast<size_t>(bytes));
      note_ = fmt::format("not reserved: page-locking {:.1f} GB: {}", bytes / 1e9,
                          cudaGetErrorString(e));
      return;
    }
    pinned_ = true;
  }
#endif
  base_ = base;
  bytes_ = bytes;
  reserve_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void HostStaging::release() {
  if (base_ == nullptr) return;
#ifdef C3_HAVE_CUDA
  if (pinned_) (void)cudaHostUnregister(base_);
#endif
  ::munmap(base_, static_cast<size_t>(bytes_));
  base_ = nullptr;
  bytes_ = used_ = 0;
  pinned_ = false;
}

HostStagingScope::HostStagingScope(HostStaging* staging) : previous_(g_current) {
  g_current = staging;
}
HostStagingScope::~HostStagingScope() { g_current = previous_; }

HostStaging* current_host_staging() { return g_current; }

bool host_staging_wanted(bool cuda) {
  const char* e = std::getenv("C3_CKPT_STAGING");
  if (e == nullptr || *e == '\0') return cuda;
  return std::string(e) != "0";
}

}  // namespace c3::train
