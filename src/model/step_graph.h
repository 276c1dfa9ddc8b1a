// A CUDA graph of one decode step. Launching ~1,300 small kernels one by one from the host cost
// more than running them at batch 1 (the paper-size decoder did 55 tokens/s); replaying a
// captured graph launches them all at once. Built only against CUDA LibTorch (C3_HAVE_CUDA);
// elsewhere available() is false and the caller runs the step eagerly.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <memory>

namespace c3::model {

class StepGraph {
 public:
  StepGraph();
  ~StepGraph();
  StepGraph(StepGraph&&) noexcept;
  StepGraph& operator=(StepGraph&&) noexcept;

  // Whether this build can capture graphs on `device`.
  static bool available(at::Device device);
  // Runs `step` once (warm-up, on a side stream), then captures it; returns the warm-up's result
  // (the capture runs nothing). Every tensor `step` reads or writes must keep its storage for the
  // graph's life; the captured result becomes the graph's output. With `share_pool_with`, this
  // graph allocates from that graph's memory pool: graphs replayed one at a time share it.
  at::Tensor capture(const std::function<at::Tensor()>& step,
                     const StepGraph* share_pool_with = nullptr);
  bool captured() const;
  // Replays the captured step on the current stream and returns its output (the same storage
  // every time: read it before the next replay).
  const at::Tensor& replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace c3::model
