#pragma once
// Prometheus metrics of a node, built at scrape time from the per-worker counters
// (the hot path only bumps plain per-worker counters; nothing is locked or
// shared per message). Names follow Prometheus conventions: `gannet_` prefix,
// `_total` counters, base units. No label per client or per topic.

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace gannet::server {

class Node;

class MetricsCollector : public prometheus::Collectable {
 public:
  explicit MetricsCollector(Node& node) : node_(node) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Node& node_;
};

}  // namespace gannet::server
