// The learning-rate schedule: linear warmup, then cosine decay to a floor.
#pragma once
#include <cstdint>

namespace c3::train {

struct LrSchedule {
  double max_lr = 1e-3;
  double min_lr_ratio = 0.1;  // the floor, as a fraction of max_lr
  int64_t warmup_steps = 100;
  int64_t total_steps = 1000;

  // 1. steps [0, warmup): lr rises linearly from max_lr/warmup to max_lr;
  // 2. steps [warmup, total): cosine from max_lr down to min_lr_ratio * max_lr;
  // 3. past total: the floor.
  double at(int64_t step) const;
};

}  // namespace c3::train
