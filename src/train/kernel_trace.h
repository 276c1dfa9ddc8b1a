// C3_TRAIN_TRACE=trace.json: a Chrome trace (CPU ops and CUDA kernels, via LibTorch's Kineto
// profiler) of a few steady-state training steps, for finding where the GPU time goes.
// Needs LibTorch >= 2 built with CUDA; elsewhere start() says so and does nothing.
#pragma once
#include <memory>
#include <string>

namespace c3::train {

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

}  // namespace c3::train
