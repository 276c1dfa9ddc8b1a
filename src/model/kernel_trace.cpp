#include "model/kernel_trace.h"

#include <torch/version.h>

#include <cstdio>

#if TORCH_VERSION_MAJOR >= 2 && defined(C3_HAVE_CUDA)
#include <torch/csrc/autograd/profiler_kineto.h>
#define C3_KINETO 1
#endif

namespace c3::model {

KernelTrace::KernelTrace() = default;
KernelTrace::~KernelTrace() = default;

void KernelTrace::start() {
#ifdef C3_KINETO
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  const torch::profiler::impl::ProfilerConfig cfg(torch::profiler::impl::ProfilerState::KINETO);
  const std::set<ActivityType> acts{ActivityType::CPU, ActivityType::CUDA};
  prof::prepareProfiler(cfg, acts);
  prof::enableProfiler(cfg, acts);
  running_ = true;
#else
  std::fprintf(stderr, "c3: a kernel trace needs LibTorch >= 2 with CUDA; no trace\n");
#endif
}

void KernelTrace::stop(const std::string& path) {
#ifdef C3_KINETO
  if (!running_) return;
  auto result = torch::autograd::profiler::disableProfiler();
  running_ = false;
  result->save(path);
  std::fprintf(stderr, "c3: kernel trace written to %s\n", path.c_str());
#else
  (void)path;
#endif
}

}  // namespace c3::model
