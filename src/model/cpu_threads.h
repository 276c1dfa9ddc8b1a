// One intra-op thread while a small model runs on the CPU. Its forward passes are hundreds of
// tiny ops, and OpenMP's fork/join per op costs more than a second thread saves; when another
// process holds a core, every op waits for it (2-core box, c3-small, 970-token round trip:
// 2.8 s on one thread, 17.8 s on two). Restores the previous count on scope exit.
#pragma once
#include <ATen/Parallel.h>
#include <ATen/Tensor.h>

#include <algorithm>
#include <cstdlib>

namespace c3::model {

class SmallModelThreads {
 public:
  // C3_SMALL_MODEL_THREADS=N overrides the count (e.g. 2 on an idle machine).
  SmallModelThreads(const at::Tensor& weight, int64_t hidden_size)
      : on_(weight.is_cpu() && hidden_size <= 1024), saved_(at::get_num_threads()) {
    const char* env = std::getenv("C3_SMALL_MODEL_THREADS");
    const int n = env ? std::max(1, std::atoi(env)) : 1;
    on_ = on_ && n != saved_;
    if (on_) at::set_num_threads(n);
  }
  ~SmallModelThreads() {
    if (on_) at::set_num_threads(saved_);
  }
  SmallModelThreads(const SmallModelThreads&) = delete;
  SmallModelThreads& operator=(const SmallModelThreads&) = delete;

 private:
  bool on_;
  int saved_;
};

}  // namespace c3::model
