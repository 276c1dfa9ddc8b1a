// Warmup + cosine learning-rate schedule.
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace c3::train {

double LrSchedule::at(int64_t step) const {
  const double floor = max_lr * min_lr_ratio;
  if (step < warmup_steps) return max_lr * static_cast<double>(step + 1) / warmup_steps;
  if (step >= total_steps) return floor;
  const double span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = static_cast<double>(step - warmup_steps) / span;
  return floor + 0.5 * (max_lr - floor) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace c3::train
