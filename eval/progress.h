// Progress of long work on stderr: what, how far, elapsed and estimated time left.
// Lines are rate-limited (one per `interval` seconds, plus the last).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace fisheval {

class Progress {
 public:
  Progress(std::string task, int64_t total, bool enabled = true, double interval_seconds = 1.0);
  // Marks `done` of `total` finished, with a short description of the current item.
  void update(int64_t done, const std::string& what);
  void message(const std::string& line);  // a line of its own (warnings, notes)
  double elapsed() const;

 private:
  std::string task_;
  int64_t total_;
  bool enabled_;
  double interval_;
  std::chrono::steady_clock::time_point start_, last_;
  bool printed_ = false;
};

std::string format_duration(double seconds);

}  // namespace fisheval
