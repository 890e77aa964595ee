#pragma once
// A latency histogram with fixed buckets, for metrics (Prometheus histograms:
// cumulative counts per `le` bound, a sum and a count, built at scrape time from
// a Snapshot).
//
// Recording costs a short scan of 16 bounds and two relaxed atomic adds; no
// lock, no allocation. record() is for a histogram written by one thread only
// (a worker's own: a relaxed load and store, like handlers::Counter);
// recordShared() for one several threads write (atomic read-modify-write).
// snapshot() may be called from any thread (it may see an observation's bucket
// before its sum: harmless for metrics).

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace gannet::base {

// Upper bounds of the buckets in seconds, 100 µs to 10 s; a last bucket (+Inf)
// takes what is slower.
inline constexpr std::array<double, 16> kLatencyBucketBounds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,   2.5,    5.0,   10.0};

struct HistogramSnapshot {
  // Observations per bucket (not cumulative); the last one is +Inf.
  std::array<uint64_t, kLatencyBucketBounds.size() + 1> buckets{};
  uint64_t sum_ns = 0;

  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t b : buckets) n += b;
    return n;
  }
  void add(const HistogramSnapshot& o) {
    for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += o.buckets[i];
    sum_ns += o.sum_ns;
  }
};

class LatencyHistogram {
 public:
  // One writer thread only.
  void record(int64_t ns) {
    const size_t i = bucketOf(ns);
    buckets_[i].store(buckets_[i].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sum_ns_.store(sum_ns_.load(std::memory_order_relaxed) + clamp(ns), std::memory_order_relaxed);
  }
  // Any number of writer threads.
  void recordShared(int64_t ns) {
    buckets_[bucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(clamp(ns), std::memory_order_relaxed);
  }
  HistogramSnapshot snapshot() const {
    HistogramSnapshot s;
    for (size_t i = 0; i < buckets_.size(); ++i) s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static uint64_t clamp(int64_t ns) { return ns < 0 ? 0 : static_cast<uint64_t>(ns); }
  static size_t bucketOf(int64_t ns) {
    // Bounds in nanoseconds, exact for these values.
    static constexpr std::array<int64_t, kLatencyBucketBounds.size()> kBoundsNs = [] {
      std::array<int64_t, kLatencyBucketBounds.size()> b{};
      for (size_t i = 0; i < b.size(); ++i) {
        b[i] = static_cast<int64_t>(kLatencyBucketBounds[i] * 1e9 + 0.5);
      }
      return b;
    }();
    size_t i = 0;
    while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;
    return i;
  }

  std::array<std::atomic<uint64_t>, kLatencyBucketBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace gannet::base
