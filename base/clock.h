#pragma once
// Clocks. Monotonic time drives timers and expiry; wall time is only for display.

#include <chrono>
#include <cstdint>

namespace gannet::base {

// Milliseconds on a monotonic clock (arbitrary epoch). Cheap: vDSO, no syscall.
inline int64_t monotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Nanoseconds on the same monotonic clock, for measuring short durations.
inline int64_t monotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Seconds since the Unix epoch.
inline int64_t wallSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace gannet::base
