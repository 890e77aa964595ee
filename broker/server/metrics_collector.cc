#include "broker/server/metrics_collector.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "base/clock.h"
#include "broker/server/node.h"
#include "broker/server/replica_stores.h"
#include "broker/server/replicator.h"

namespace gannet::server {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void addValue(MetricFamily& f, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  f.metric.push_back(std::move(m));
}

// Resident memory in bytes, from /proc/self/statm.
double residentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace

std::vector<MetricFamily> MetricsCollector::Collect() const {
  NodeTotals t = node_.totals();
  std::vector<MetricFamily> out;
  // One sample without labels.
  auto single = [&out](const char* name, const char* help, MetricType type, double v) {
    MetricFamily f = family(name, help, type);
    addValue(f, v);
    out.push_back(std::move(f));
  };
  auto d = [](uint64_t v) { return static_cast<double>(v); };

  single("gannet_connections", "MQTT connections currently open (after CONNACK)",
         MetricType::Gauge, d(t.connections_current));
  single("gannet_connections_accepted_total", "TCP connections accepted", MetricType::Counter,
         d(t.connections_accepted));
  single("gannet_sessions", "Sessions held (connected and offline)", MetricType::Gauge,
         d(t.sessions));

  auto received = family("gannet_messages_received_total",
                         "PUBLISH packets received from clients, by QoS", MetricType::Counter);
  auto sent = family("gannet_messages_sent_total", "PUBLISH packets sent to clients, by QoS",
                     MetricType::Counter);
  for (int q = 0; q < 3; ++q) {
    addValue(received, d(t.messages_received[q]), {{"qos", std::to_string(q)}});
    addValue(sent, d(t.messages_sent[q]), {{"qos", std::to_string(q)}});
  }
  out.push_back(std::move(received));
  out.push_back(std::move(sent));

  single("gannet_received_bytes_total", "Bytes of MQTT packets received", MetricType::Counter,
         d(t.bytes_received));
  single("gannet_sent_bytes_total", "Bytes of MQTT packets sent", MetricType::Counter,
         d(t.bytes_sent));

  auto dropped = family("gannet_messages_dropped_total", "Messages not delivered, by reason",
                        MetricType::Counter);
  for (int r = 0; r < static_cast<int>(handlers::DropReason::kCount); ++r) {
    addValue(dropped, d(t.dropped[r]),
             {{"reason", handlers::dropReasonName(static_cast<handlers::DropReason>(r))}});
  }
  out.push_back(std::move(dropped));

  single("gannet_protocol_errors_total",
         "Connections closed for malformed packets or protocol errors", MetricType::Counter,
         d(t.protocol_errors));
  single("gannet_store_commits_total", "Batches committed to the store (one per loop iteration with changes)",
         MetricType::Counter, d(t.store_commits));
  single("gannet_store_commit_failures_total", "Store commits that failed (disk full, I/O error)",
         MetricType::Counter, d(t.store_commit_failures));
  single("gannet_messages_stored_total",
         "QoS >= 1 messages written to the store for persistent sessions (once each)",
         MetricType::Counter, d(t.messages_stored));
  single("gannet_publishes_failed_store_total",
         "QoS >= 1 publishes answered 0x97/0x80 or closed because their commit failed",
         MetricType::Counter, d(t.publishes_failed_store));
  single("gannet_journal_disk_bytes",
         "Bytes of the workers' inflight journal files (DATA_DIR/journal)", MetricType::Gauge,
         d(t.journal_disk_bytes));
  single("gannet_journal_records_moved_total",
         "Unacknowledged inflight records moved from old journal files into the store",
         MetricType::Counter, d(t.journal_records_moved));
  single("gannet_draining",
         "1 while this node drains (hands its sessions over before it stops), else 0",
         MetricType::Gauge, node_.draining() ? 1.0 : 0.0);
  single("gannet_cluster_messages_kept_total",
         "Messages for another node kept on disk because its link was down (sent when it is back)",
         MetricType::Counter, d(t.forwards_spooled));
  single("gannet_cluster_messages_kept",
         "Messages kept on disk for other nodes now, not yet sent and acknowledged",
         MetricType::Gauge, d(t.forwards_kept));
  if (Replicator* r = node_.replicator()) {
    single("gannet_replication_nodes",
           "Nodes this node's persistent sessions are replicated to now (--replication_factor - 1 "
           "when all is well; fewer: under-replicated)",
           MetricType::Gauge, d(r->targets().size()));
    single("gannet_replication_epochs_total",
           "Times the replica nodes changed (each costs every worker a snapshot)",
           MetricType::Counter, d(r->epochChanges()));
  }
  if (ReplicaStores* stores = node_.replicaStores()) {
    auto sessions = family("gannet_replica_sessions",
                           "Persistent sessions of another node held here as its replica",
                           MetricType::Gauge);
    auto queued = family("gannet_replica_messages",
                         "Queued and inflight messages of another node's sessions held here",
                         MetricType::Gauge);
    for (const ReplicaStores::Held& h : stores->held(/*count=*/true)) {
      addValue(sessions, d(h.sessions), {{"owner", std::to_string(h.owner)}});
      addValue(queued, d(h.messages), {{"owner", std::to_string(h.owner)}});
    }
    out.push_back(std::move(sessions));
    out.push_back(std::move(queued));
  }
  single("gannet_subscriptions", "Subscriptions in the router (shared included)",
         MetricType::Gauge, d(node_.router().subscriptionCount()));
  single("gannet_retained_messages", "Retained messages held", MetricType::Gauge,
         d(node_.retained().size()));
  single("gannet_uptime_seconds", "Seconds since the node started", MetricType::Gauge,
         static_cast<double>(base::monotonicMs() - node_.startedAtMs()) / 1000.0);
  single("gannet_process_resident_memory_bytes", "Resident memory of the process",
         MetricType::Gauge, residentBytes());
  return out;
}

}  // namespace gannet::server
