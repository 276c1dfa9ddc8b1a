// A Chrome trace (CPU ops and CUDA kernels, via LibTorch's Kineto profiler) of a stretch of work,
// for finding where the GPU time goes: c3 train's C3_TRAIN_TRACE, c3 bench's --trace.
// Needs LibTorch >= 2 built with CUDA; elsewhere start() says so and does nothing.
#pragma once
#include <memory>
#include <string>

namespace c3::model {

class KernelTrace {
 public:
  KernelTrace();
  ~KernelTrace();
  void start();                          // begins recording
  void stop(const std::string& path);    // ends recording and writes the trace
  bool running() const { return running_; }

 private:
  bool running_ = false;
};

}  // namespace c3::model
