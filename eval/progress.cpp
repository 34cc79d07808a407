#include "eval/progress.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>

namespace fisheval {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

Progress::Progress(std::string task, int64_t total, bool enabled, double interval_seconds)
    : task_(std::move(task)), total_(total), enabled_(enabled), interval_(interval_seconds),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& what) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool last = done >= total_;
  if (printed_ && !last && std::chrono::duration<double>(now - last_).count() < interval_) return;
  last_ = now;
  printed_ = true;
  const double t = elapsed();
  const double left = done > 0 ? t / done * (total_ - done) : NAN;
  std::fprintf(stderr, "%s\n",
               fmt::format("[{}] {}/{} ({:.0f}%) {} | elapsed {} | left ~{}", task_, done, total_,
                           total_ > 0 ? 100.0 * done / total_ : 100.0, what, format_duration(t), format_duration(left))
                   .c_str());
  std::fflush(stderr);
}

void Progress::message(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace fisheval
