// One intra-op thread while a small model runs on the CPU. Its forward passes are hundreds of
// tiny ops, and OpenMP's fork/join per op costs more than a second thread saves; when another
// process holds a core, every op waits for it (2-core box, c3-small, 970-token round trip:
// 2.8 s on one thread, 17.8 s on two). Restores the previous count on scope exit.
#pragma once
#include <ATen/Parallel.h>
#include <ATen/Tensor.h>

namespace c3::model {

class SmallModelThreads {
 public:
  SmallModelThreads(const at::Tensor& weight, int64_t hidden_size)
      : on_(weight.is_cpu() && hidden_size <= 1024 && at::get_num_threads() > 1),
        saved_(at::get_num_threads()) {
    if (on_) at::set_num_threads(1);
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
