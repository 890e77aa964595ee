#pragma once
// A hybrid logical clock (Kulkarni et al., 2014): timestamps that follow the
// wall clock but never go backwards and always order an event after what it has
// seen from other nodes. Used for last-writer-wins of retained messages across
// the cluster. A stamp is (wall ms << 16) | logical counter.
//
// Thread-safe.

#include <cstdint>
#include <functional>
#include <mutex>

namespace gannet::cluster {

class HybridClock {
 public:
  // `wall_ms`: ms since the Unix epoch; the system clock when null (tests inject).
  explicit HybridClock(std::function<int64_t()> wall_ms = nullptr);

  // A stamp for a local event, after every stamp this clock gave or observed.
  uint64_t now();
  // A stamp from another node: later local stamps come after it.
  void observe(uint64_t remote);

  static uint64_t physicalMs(uint64_t stamp) { return stamp >> 16; }

 private:
  std::function<int64_t()> wall_ms_;
  std::mutex mu_;
  uint64_t last_ = 0;
};

}  // namespace gannet::cluster
