// base::LatencyHistogram: which bucket an observation lands in (the `le` bound is
// inclusive, as in Prometheus), the sum, and merging snapshots.

#include "base/histogram.h"

#include <gtest/gtest.h>

namespace gannet::base {
namespace {

size_t bucketOf(const HistogramSnapshot& s) {
  for (size_t i = 0; i < s.buckets.size(); ++i) {
    if (s.buckets[i] != 0) return i;
  }
  return s.buckets.size();
}

TEST(LatencyHistogram, ObservationGoesToTheFirstBucketWhoseBoundItDoesNotExceed) {
  struct Case {
    int64_t ns;
    size_t bucket;
  } cases[] = {
      {0, 0},            {100'000, 0},          // le=0.0001 includes 100 µs
      {100'001, 1},      {250'000, 1},          // le=0.00025
      {1'000'000, 3},                           // 1 ms: le=0.001
      {10'000'000'000, 15},                     // 10 s: the last finite bound
      {10'000'000'001, 16},                     // slower: +Inf
      {-5, 0},                                  // a clock step back counts as 0
  };
  for (const Case& c : cases) {
    LatencyHistogram h;
    h.record(c.ns);
    EXPECT_EQ(bucketOf(h.snapshot()), c.bucket) << c.ns << " ns";
    EXPECT_EQ(h.snapshot().count(), 1u);
  }
}

TEST(LatencyHistogram, SumAndCountAddUpAndSnapshotsMerge) {
  LatencyHistogram a, b;
  a.record(2'000'000);
  a.record(3'000'000);
  b.recordShared(5'000'000'000);
  HistogramSnapshot s = a.snapshot();
  EXPECT_EQ(s.count(), 2u);
  EXPECT_EQ(s.sum_ns, 5'000'000u);
  s.add(b.snapshot());
  EXPECT_EQ(s.count(), 3u);
  EXPECT_EQ(s.sum_ns, 5'005'000'000u);
  EXPECT_EQ(s.buckets[14], 1u);  // 5 s: le=5
}

}  // namespace
}  // namespace gannet::base
