// StepGraph: capture once, replay per token (see step_graph.h).
#include "model/step_graph.h"

#include "util/error.h"

#include <map>
#include <mutex>

#ifdef C3_HAVE_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
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

#ifdef C3_HAVE_CUDA
namespace {

// One side stream per device for every capture: what a warm-up set up on it (cuBLAS workspaces,
// the autograd engine's stream state) serves the later captures too.
c10::cuda::CUDAStream capture_stream() {
  static std::mutex mu;
  static std::map<c10::DeviceIndex, c10::cuda::CUDAStream> streams;
  std::lock_guard<std::mutex> lock(mu);
  const c10::DeviceIndex d = c10::cuda::current_device();
  auto it = streams.find(d);
  if (it == streams.end()) it = streams.emplace(d, c10::cuda::getStreamFromPool(false, d)).first;
  return it->second;
}

}  // namespace
#endif

at::Tensor StepGraph::capture(const std::function<at::Tensor()>& step, const CaptureOptions& o) {
#ifdef C3_HAVE_CUDA
  C3_CHECK(!impl_->captured, "StepGraph::capture: already captured");
  // Capture must run on a side stream.
  torch::cuda::synchronize();
  c10::cuda::CUDAStream stream = capture_stream();
  at::Tensor first;
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    if (o.warm_up) {
      first = step();
      stream.synchronize();
      if (o.release_cache) c10::cuda::CUDACachingAllocator::emptyCache();
    }
    if (o.pool) {
      impl_->graph.capture_begin(*o.pool);
    } else {
      impl_->graph.capture_begin();
    }
    impl_->out = step();
    impl_->graph.capture_end();
  }
  torch::cuda::synchronize();
  impl_->captured = true;
  if (!o.warm_up) first = replay();
  return first;
#else
  (void)step;
  (void)o;
  c3::fail("StepGraph: this build has no CUDA (configure against CUDA LibTorch with -DC3_CUDA=ON)");
#endif
}

StepGraph::PoolId StepGraph::new_pool() {
#ifdef C3_HAVE_CUDA
  return at::cuda::graph_pool_handle();
#else
  c3::fail("StepGraph: this build has no CUDA (configure against CUDA LibTorch with -DC3_CUDA=ON)");
#endif
}

void StepGraph::release() { impl_ = std::make_unique<Impl>(); }

const at::Tensor& StepGraph::replay() {
#ifdef C3_HAVE_CUDA
  C3_CHECK(impl_->captured, "StepGraph::replay: nothing captured");
  impl_->graph.replay();
#endif
  return impl_->out;
}

}  // namespace c3::model
