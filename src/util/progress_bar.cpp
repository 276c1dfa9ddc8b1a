// Progress bar: rate over the whole run so far, ETA from that rate.
#include "util/progress_bar.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace c3 {

namespace {
std::string human(double x) {
  if (x >= 1e9) return fmt::format("{:.2f}G", x / 1e9);
  if (x >= 1e6) return fmt::format("{:.2f}M", x / 1e6);
  if (x >= 1e4) return fmt::format("{:.1f}k", x / 1e3);
  return fmt::format("{:.0f}", x);
}
std::string hms(double s) {
  if (s < 0 || s > 1e7) return "?";
  int t = static_cast<int>(s + 0.5);
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
                   : fmt::format("{:02}:{:02}", t / 60, t % 60);
}
}  // namespace

bool ProgressBar::enabled() { return std::getenv("C3_NO_PROGRESS") == nullptr; }

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::add(int64_t n) { set(done_ + n); }

void ProgressBar::set(int64_t done) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ > std::chrono::milliseconds(100)) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::set_postfix(std::string s) { postfix_ = std::move(s); }

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void ProgressBar::draw(bool final) {
  if (!enabled()) return;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = secs > 0 ? done_ / secs : 0;
  std::string line;
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / total_);
    int width = 24, fill = static_cast<int>(frac * width);
    line = fmt::format("{} [{}{}] {:3.0f}% {}/{} {}/s {} ETA {}", label_, std::string(fill, '#'),
                       std::string(width - fill, '.'), frac * 100, human(done_), human(total_),
                       unit_, human(rate), rate > 0 ? hms((total_ - done_) / rate) : "?");
  } else {
    line = fmt::format("{} {} {} {}/s {}", label_, human(done_), unit_, human(rate), unit_);
  }
  line += fmt::format(" [{}]", hms(secs));
  if (!postfix_.empty()) line += " " + postfix_;
  // On a terminal redraw in place; in a log file print only the final line.
  bool tty = ::isatty(2);
  if (tty)
    std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final ? "\n" : "");
  else if (final)
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace c3
