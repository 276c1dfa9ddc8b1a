// A one-line progress bar on stderr with count, rate and ETA, redrawn at most ~10 times a second.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace c3 {

class ProgressBar {
 public:
  // total = 0 means unknown (no bar, no ETA). `unit` names what is counted ("tok", "doc", "step").
  ProgressBar(std::string label, int64_t total, std::string unit = "it");
  ~ProgressBar();
  void add(int64_t n = 1);
  void set(int64_t done);
  void set_postfix(std::string s);  // e.g. "loss 2.31"
  void set_total(int64_t total) { total_ = total; }  // when the end becomes known (or moves)
  void finish();
  // Disabled when C3_NO_PROGRESS is set; also used by tests to keep logs clean.
  static bool enabled();

 private:
  void draw(bool final);
  std::string label_, unit_, postfix_;
  int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool finished_ = false;
};

}  // namespace c3
