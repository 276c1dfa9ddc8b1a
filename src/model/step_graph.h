// A CUDA graph of one decode step. Launching ~1,300 small kernels one by one from the host cost
// more than running them at batch 1 (the paper-size decoder did 55 tokens/s); replaying a
// captured graph launches them all at once. Built only against CUDA LibTorch (C3_HAVE_CUDA);
// elsewhere available() is false and the caller runs the step eagerly.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <utility>

namespace c3::model {

class StepGraph {
 public:
  StepGraph();
  ~StepGraph();
  StepGraph(StepGraph&&) noexcept;
  StepGraph& operator=(StepGraph&&) noexcept;

  // Whether this build can capture graphs on `device`.
  static bool available(at::Device device);
  // A memory pool that graphs replayed one at a time can share (new_pool()); it lives while a
  // graph captured into it does.
  using PoolId = std::pair<unsigned long long, unsigned long long>;
  static PoolId new_pool();

  struct CaptureOptions {
    // Allocate from this pool (new_pool()): graphs replayed one at a time share it. Unset, the
    // graph gets a pool of its own.
    const PoolId* pool = nullptr;
    // Run `step` once eagerly first, which sets up cuBLAS, the autograd threads and the
    // allocator; its result is returned. Without it the new graph is replayed once instead and
    // its output returned: a later graph of the same process needs no warm-up, and skipping it
    // keeps the warm-up's memory out of the ordinary allocator pool.
    bool warm_up = true;
    // After the warm-up, hand the allocator's cached blocks back to the device, so that the
    // graph's own pool can take that memory (a training step's warm-up caches as much as the
    // graph then needs again).
    bool release_cache = false;
  };
  // Captures `step` on the process's capture stream and returns the result of its first run (the
  // warm-up's or the first replay's: the capture itself runs nothing). Every tensor `step` reads
  // or writes must keep its storage for the graph's life; the captured result becomes the graph's
  // output.
  at::Tensor capture(const std::function<at::Tensor()>& step, const CaptureOptions& o);
  at::Tensor capture(const std::function<at::Tensor()>& step) { return capture(step, CaptureOptions()); }
  bool captured() const;
  // Replays the captured step on the current stream and returns its output (the same storage
  // every time: read it before the next replay).
  const at::Tensor& replay();
  // Frees the captured graph and its share of the pool; captured() is false again.
  void release();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace c3::model
