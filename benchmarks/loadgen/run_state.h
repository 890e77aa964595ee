#pragma once
// What the main thread and the worker threads share during one scenario run.
//
// Owned by the scenario's run function on the main thread; every worker holds a
// reference for the whole run. The main thread moves the phase forward; workers
// read it once per loop iteration. Counters have a single writer each (their
// worker), so they are bumped with a relaxed load+store, not a locked add: the
// main thread only samples them at window edges.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace gannet::loadgen {

enum class Phase : int {
  kSetup,    // connecting and subscribing
  kRun,      // publishers send; warm-up, nothing is recorded
  kMeasure,  // publishers send; latency samples are recorded
  kDrain,    // publishers stopped; subscribers receive what is left
  kStop,     // every client disconnects, workers exit
};

// One worker's counters, on its own cache line so workers do not share lines.
struct alignas(64) WorkerCounters {
  std::atomic<uint64_t> published{0};        // PUBLISH packets queued by publishers
  std::atomic<uint64_t> acked{0};            // PUBACKs received by publishers
  std::atomic<uint64_t> received{0};         // PUBLISH packets received by subscribers
  std::atomic<uint64_t> window_stalls{0};    // paced sends delayed by a full QoS 1 window
  std::atomic<uint64_t> protocol_errors{0};  // unexpected packets or packet ids
  std::atomic<uint64_t> cap_releases{0};     // --max_ahead written off after a stall
};

inline void bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

class RunState {
 public:
  std::atomic<Phase> phase{Phase::kSetup};
  // Monotonic ns at which publishing starts (the pacing origin); set before the
  // phase leaves kSetup.
  std::atomic<int64_t> start_ns{0};
  // Workers whose clients are all connected (and subscribed).
  std::atomic<int> ready_workers{0};

  // Records the first fatal error; later ones are dropped. Thread-safe.
  void fail(std::string message) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_.load(std::memory_order_relaxed)) {
      error_ = std::move(message);
      failed_.store(true, std::memory_order_release);
    }
  }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  std::string error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;
  std::string error_;
};

}  // namespace gannet::loadgen
