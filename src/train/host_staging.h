// Host memory for checkpoint snapshots, reserved once per run and reused by every checkpoint.
//
// A checkpoint's pause in training is the copy of weights and optimizer state to the host. Taken
// tensor by tensor from LibTorch's pinned allocator, the first one also paid for page-locking the
// memory: at paper size (55.6 GB) the first pause took 47.8 s on an H100 (2026-12-05), and that
// allocator rounds each block up to a power of two. This reserves the whole snapshot's size in
// one mapping on a background thread while training starts (pages touched by several threads,
// then page-locked for the device's copies), so a pause is only the copies themselves.
//
// The writer must be done with one snapshot before the next reuses the memory: TrainRun::save()
// waits for the checkpoint in flight before it starts the next snapshot (begin()).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <thread>

namespace c3::train {

class HostStaging {
 public:
  // pin: page-lock the memory for asynchronous device copies (builds with CUDA only).
  explicit HostStaging(bool pin);
  ~HostStaging();  // waits for a reservation in flight, then unlocks and unmaps
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;

  // Starts reserving `bytes` on a background thread, touching its pages with `threads` threads;
  // `device_index` is the CUDA device whose context page-locks it (-1: none). Where the host
  // lacks the memory (more than half of MemAvailable) or a step fails, nothing is reserved and
  // note() says why; snapshots then allocate as before. The accessors below are valid after
  // begin().
  void reserve_async(int64_t bytes, int threads, int device_index);
  // Starts a snapshot: waits for the reservation, and everything taken before is free again.
  void begin();
  // A contiguous CPU tensor of `sizes` and `dtype` in the reserved memory (256-byte aligned), or
  // an undefined tensor when none is reserved or it is full (the caller allocates as before).
  at::Tensor take(at::IntArrayRef sizes, at::ScalarType dtype);

  int64_t reserved_bytes() const { return bytes_; }
  int64_t used_bytes() const { return used_; }
  int64_t overflow_bytes() const { return overflow_; }  // asked for this snapshot but not there
  double reserve_seconds() const { return reserve_s_; }
  const std::string& note() const { return note_; }  // why nothing was reserved, or ""

 private:
  void reserve(int64_t bytes, int threads, int device_index);
  void wait();
  void release();

  bool pin_;
  bool pinned_ = false;
  std::thread thread_;
  char* base_ = nullptr;
  int64_t bytes_ = 0, used_ = 0, overflow_ = 0;
  double reserve_s_ = 0;
  std::string note_;
};

// While alive, host_copy() (checkpoint_file.h) takes its buffers from `staging` (null: none).
class HostStagingScope {
 public:
  explicit HostStagingScope(HostStaging* staging);
  ~HostStagingScope();
  HostStagingScope(const HostStagingScope&) = delete;
  HostStagingScope& operator=(const HostStagingScope&) = delete;

 private:
  HostStaging* previous_;
};

HostStaging* current_host_staging();

// C3_CKPT_STAGING: unset = on for CUDA runs, "0" = off, "1" = on for any device (tests).
bool host_staging_wanted(bool cuda);

}  // namespace c3::train
