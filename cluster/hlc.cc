#include "cluster/hlc.h"

#include <algorithm>
#include <chrono>

namespace gannet::cluster {

HybridClock::HybridClock(std::function<int64_t()> wall_ms) : wall_ms_(std::move(wall_ms)) {
  if (!wall_ms_) {
    wall_ms_ = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
}

uint64_t HybridClock::now() {
  const uint64_t physical = static_cast<uint64_t>(std::max<int64_t>(0, wall_ms_())) << 16;
  std::lock_guard lock(mu_);
  // The wall clock if it moved on; otherwise one more than the last stamp (the
  // logical part counts events within a millisecond, or while the wall clock
  // lags behind what was observed).
  last_ = std::max(physical, last_ + 1);
  return last_;
}

void HybridClock::observe(uint64_t remote) {
  std::lock_guard lock(mu_);
  last_ = std::max(last_, remote);
}

}  // namespace gannet::cluster
