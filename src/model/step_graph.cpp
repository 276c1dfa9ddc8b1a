// StepGraph: capture once, replay per token (see step_graph.h).
#include "model/step_graph.h"

#include "util/error.h"

#ifdef C3_HAVE_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

namespace c3::model {

struct StepGraph::Impl {
#ifdef C3_HAVE_CUDA
  at::cuda::CUDAGraph graph;
#endif
  at::Tensor out;
  bool captured = false;
};

StepGraph::StepGraph() : impl_(std::make_unique<Impl>()) {}
StepGraph::~StepGraph() = default;
StepGraph::StepGraph(StepGraph&&) noexcept = default;
StepGraph& StepGraph::operator=(StepGraph&&) noexcept = default;

bool StepGraph::available(at::Device device) {
#ifdef C3_HAVE_CUDA
  return device.is_cuda();
#else
  return false;
#endif
}

bool StepGraph::captured() const { return impl_->captured; }

at::Tensor StepGraph::capture(const std::function<at::Tensor()>& step,
                              const StepGraph* share_pool_with) {
#ifdef C3_HAVE_CUDA
  C3_CHECK(!impl_->captured, "StepGraph::capture: already captured");
  C3_CHECK(!share_pool_with || share_pool_with->captured(),
           "StepGraph::capture: the graph to share a pool with is not captured");
  // Capture must run on a side stream; the warm-up there sets up cuBLAS and the allocator.
  torch::cuda::synchronize();
  c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
  at::Tensor warm;
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    warm = step();
    stream.synchronize();
    if (share_pool_with) {
      impl_->graph.capture_begin(share_pool_with->impl_->graph.pool());
    } else {
      impl_->graph.capture_begin();
    }
    impl_->out = step();
    impl_->graph.capture_end();
  }
  torch::cuda::synchronize();
  impl_->captured = true;
  return warm;
#else
  (void)step;
  (void)share_pool_with;
  c3::fail("StepGraph: this build has no CUDA (configure against CUDA LibTorch with -DC3_CUDA=ON)");
#endif
}

const at::Tensor& StepGraph::replay() {
#ifdef C3_HAVE_CUDA
  C3_CHECK(impl_->captured, "StepGraph::replay: nothing captured");
  impl_->graph.replay();
#endif
  return impl_->out;
}

}  // namespace c3::model
