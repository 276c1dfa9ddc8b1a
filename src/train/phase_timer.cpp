// Per-phase step timing for C3_TRAIN_PROFILE=1 (see phase_timer.h).
#include "train/phase_timer.h"

#include <torch/cuda.h>

namespace c3::train {

void PhaseTimer::start() {
  if (!on_) return;
  sync();
  last_ = Clock::now();
  cur_.clear();
}

void PhaseTimer::mark(const std::string& phase) {
  if (!on_) return;
  sync();
  const auto now = Clock::now();
  cur_[phase] += std::chrono::duration<double>(now - last_).count();
  last_ = now;
}

void PhaseTimer::keep() {
  if (!on_) return;
  for (auto& [k, v] : cur_) total_[k] += v;
  ++steps_;
}

nlohmann::json PhaseTimer::report() const {
  nlohmann::json j = {{"event", "profile"}, {"steps", steps_}};
  for (auto& [k, v] : total_) j["ms_per_step"][k] = steps_ ? 1e3 * v / steps_ : 0.0;
  return j;
}

void PhaseTimer::sync() {
  if (device_.is_cuda()) torch::cuda::synchronize();
}

}  // namespace c3::train
