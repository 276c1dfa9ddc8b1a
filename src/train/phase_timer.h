// Where a training step's time goes (C3_TRAIN_PROFILE=1): data, forward, backward, all-reduce,
// optimizer, sync. Each mark() waits for the device, so profiled steps are slower than normal
// ones; the shares are what matters.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace c3::train {

class PhaseTimer {
 public:
  PhaseTimer(at::Device device, bool on) : device_(device), on_(on) {}
  void start();                         // a step begins
  void mark(const std::string& phase);  // the time since the last mark goes to `phase`
  void keep();                          // count the step just timed (not a warm-up step)
  bool on() const { return on_; }
  nlohmann::json report() const;  // {"event": "profile", "steps", "ms_per_step": {phase: ms}}

 private:
  using Clock = std::chrono::steady_clock;
  void sync();
  at::Device device_;
  bool on_;
  Clock::time_point last_;
  std::map<std::string, double> cur_, total_;
  int64_t steps_ = 0;
};

}  // namespace c3::train
