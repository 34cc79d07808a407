// Small numeric constants and helpers shared by every layer.
#pragma once
#include <chrono>
#include <limits>

namespace fisheval {

// The value of a measure that could not be computed (recorded, never dropped).
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Wall time since t0, in seconds.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace fisheval
