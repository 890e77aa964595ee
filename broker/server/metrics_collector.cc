#include "broker/server/metrics_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "base/clock.h"
#include "base/histogram.h"
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

void addHistogram(MetricFamily& f, const base::HistogramSnapshot& h) {
  ClientMetric m;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < base::kLatencyBucketBounds.size(); ++i) {
    cumulative += h.buckets[i];
    m.histogram.bucket.push_back({cumulative, base::kLatencyBucketBounds[i]});
  }
  cumulative += h.buckets.back();
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(h.sum_ns) / 1e9;
  f.metric.push_back(std::move(m));
}

// --- the process, from /proc/self ---

// Resident memory in bytes, from /proc/self/statm.
double residentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

// User + system CPU seconds, from /proc/self/stat (fields 14 and 15, in clock ticks).
double cpuSeconds() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  // Field 2 (the command name) is in parentheses and may hold spaces: count
  // fields from the last ')'.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 1));
  std::string skip;
  for (int field = 3; field <= 13; ++field) rest >> skip;
  unsigned long long utime = 0, stime = 0;
  rest >> utime >> stime;
  const long ticks = sysconf(_SC_CLK_TCK);
  return ticks > 0 ? static_cast<double>(utime + stime) / static_cast<double>(ticks) : 0;
}

// Entries of /proc/self/fd, the one listing them left out.
double openFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  const std::string own = std::to_string(dirfd(dir));
  double n = 0;
  while (const dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name != "." && name != ".." && name != own) ++n;
  }
  closedir(dir);
  return n;
}

double maxFds() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  return r.rlim_cur == RLIM_INFINITY ? std::numeric_limits<double>::infinity()
                                     : static_cast<double>(r.rlim_cur);
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
  auto by_qos = [&](const char* name, const char* help, const uint64_t (&values)[3]) {
    MetricFamily f = family(name, help, MetricType::Counter);
    for (int q = 0; q < 3; ++q) addValue(f, d(values[q]), {{"qos", std::to_string(q)}});
    out.push_back(std::move(f));
  };

  // --- connections ---
  {
    auto f = family("gannet_connections",
                    "MQTT clients connected now (CONNECT accepted), by listener and MQTT protocol "
                    "version",
                    MetricType::Gauge);
    for (int l = 0; l < handlers::kListenerCount; ++l) {
      for (int p = 0; p < handlers::kProtocolCount; ++p) {
        addValue(f, d(t.connections[l][p]),
                 {{"listener", handlers::listenerName(l)}, {"protocol", handlers::protocolName(p)}});
      }
    }
    out.push_back(std::move(f));
  }
  {
    auto f = family("gannet_connections_accepted_total",
                    "Network connections accepted, by listener (before their CONNECT)",
                    MetricType::Counter);
    for (int l = 0; l < handlers::kListenerCount; ++l) {
      addValue(f, d(t.connections_accepted[l]), {{"listener", handlers::listenerName(l)}});
    }
    out.push_back(std::move(f));
  }
  {
    auto f = family("gannet_connects_refused_total",
                    "CONNECTs this node refused with an error CONNACK, by reason",
                    MetricType::Counter);
    for (int r = 0; r < static_cast<int>(handlers::ConnectRefusal::kCount); ++r) {
      addValue(f, d(t.connects_refused[r]),
               {{"reason", handlers::connectRefusalName(static_cast<handlers::ConnectRefusal>(r))}});
    }
    out.push_back(std::move(f));
  }

  // --- limits (docs/security.md, "Limits") ---
  {
    auto f = family("gannet_connections_rejected_total",
                    "Connections turned away by a limit before they became MQTT connections, by "
                    "reason (max_connections, max_connections_per_ip, connect_rate: closed at "
                    "accept; overload: CONNACK 0x89; connect_timeout: no CONNECT in time)",
                    MetricType::Counter);
    for (int r = 0; r < static_cast<int>(handlers::ConnectionRejection::kCount); ++r) {
      addValue(f, d(t.connections_rejected[r]),
               {{"reason", handlers::connectionRejectionName(
                               static_cast<handlers::ConnectionRejection>(r))}});
    }
    out.push_back(std::move(f));
  }
  {
    auto f = family("gannet_limit_refusals_total",
                    "Packets of connected clients refused by a per-client limit, by the limit's "
                    "flag",
                    MetricType::Counter);
    for (int r = 0; r < static_cast<int>(handlers::LimitRefusal::kCount); ++r) {
      addValue(f, d(t.limit_refusals[r]),
               {{"limit", handlers::limitRefusalName(static_cast<handlers::LimitRefusal>(r))}});
    }
    out.push_back(std::move(f));
  }
  single("gannet_overloaded",
         "1 while the node is overloaded (resident memory over --max_memory_bytes) and refuses "
         "new connections, else 0",
         MetricType::Gauge, node_.admission().overloaded() ? 1.0 : 0.0);

  // --- messages ---
  by_qos("gannet_messages_received_total", "PUBLISH messages received from clients, by QoS",
         t.messages_received);
  by_qos("gannet_messages_sent_total",
         "PUBLISH messages sent to clients (resends after a reconnect included), by the QoS sent",
         t.messages_sent);
  by_qos("gannet_message_bytes_received_total",
         "Payload bytes of the PUBLISH messages received from clients, by QoS",
         t.message_bytes_received);
  by_qos("gannet_message_bytes_sent_total",
         "Payload bytes of the PUBLISH messages sent to clients, by the QoS sent",
         t.message_bytes_sent);
  single("gannet_received_bytes_total",
         "Bytes of all MQTT packets received from clients (headers and payloads)",
         MetricType::Counter, d(t.bytes_received));
  single("gannet_sent_bytes_total", "Bytes of all MQTT packets sent to clients (headers and payloads)",
         MetricType::Counter, d(t.bytes_sent));
  {
    auto f = family("gannet_messages_dropped_total",
                    "Messages not delivered to a subscriber (or published to no one), by reason",
                    MetricType::Counter);
    for (int r = 0; r < static_cast<int>(handlers::DropReason::kCount); ++r) {
      addValue(f, d(t.dropped[r]),
               {{"reason", handlers::dropReasonName(static_cast<handlers::DropReason>(r))}});
    }
    out.push_back(std::move(f));
  }
  single("gannet_protocol_errors_total",
         "Client connections closed because the client sent a malformed packet or broke the "
         "MQTT protocol",
         MetricType::Counter, d(t.protocol_errors));

  // --- sessions, subscriptions, queues ---
  {
    auto f = family("gannet_sessions",
                    "MQTT sessions on this node: connected (their client is connected here) or "
                    "offline (persistent sessions waiting for their client)",
                    MetricType::Gauge);
    addValue(f, d(t.sessions_connected), {{"state", "connected"}});
    addValue(f, d(t.sessions - t.sessions_connected), {{"state", "offline"}});
    out.push_back(std::move(f));
  }
  {
    // The router holds the other nodes' routes as subscriptions too: they are
    // gannet_cluster_routes, not subscriptions of this node's clients.
    uint64_t remote = 0, remote_shared = 0;
    for (const Node::PeerRoutes& r : node_.remoteRoutes()) {
      remote += r.filters;
      remote_shared += r.shared;
    }
    const uint64_t all = node_.router().subscriptionCount();
    const uint64_t shared = node_.router().sharedSubscriptionCount();
    single("gannet_subscriptions",
           "Subscriptions of the sessions on this node (shared subscriptions included)",
           MetricType::Gauge, d(all >= remote ? all - remote : 0));
    single("gannet_shared_subscriptions",
           "Shared subscriptions ($share/GROUP/FILTER) of the sessions on this node",
           MetricType::Gauge, d(shared >= remote_shared ? shared - remote_shared : 0));
  }
  single("gannet_retained_messages", "Retained messages held (one per topic)", MetricType::Gauge,
         d(node_.retained().size()));
  single("gannet_inflight_messages",
         "QoS 1 and 2 messages sent to clients and not yet acknowledged by them (measured about "
         "once a second)",
         MetricType::Gauge, d(t.inflight_messages));
  single("gannet_queued_messages",
         "QoS 1 and 2 messages waiting in session queues (in memory and on disk) for clients that "
         "are offline or have their window full (measured about once a second)",
         MetricType::Gauge, d(t.queued_messages));
  single("gannet_queued_bytes",
         "Topic and payload bytes of the queued messages (what --max_queued_bytes bounds per "
         "session; measured about once a second)",
         MetricType::Gauge, d(t.queued_bytes));

  // --- storage ---
  single("gannet_store_commits_total",
         "Batches of changes written to the store (at most one per worker per event-loop "
         "iteration)",
         MetricType::Counter, d(t.store_commits));
  single("gannet_store_commit_failures_total",
         "Store writes that failed (disk full, I/O error); what they held was not acknowledged",
         MetricType::Counter, d(t.store_commit_failures));
  {
    auto f = family("gannet_store_commit_duration_seconds",
                    "Time to write one batch of changes to disk (inflight journal and store), "
                    "which QoS 1/2 acknowledgements wait for",
                    MetricType::Histogram);
    addHistogram(f, t.store_commit_duration);
    out.push_back(std::move(f));
  }
  if (storage::SessionStore* store = node_.store()) {
    single("gannet_store_disk_bytes",
           "Bytes the store uses on disk (DATA_DIR/store: sessions, queues, retained messages)",
           MetricType::Gauge, d(store->approximateDiskBytes()));
  }
  single("gannet_journal_disk_bytes",
         "Bytes of the workers' inflight journal files (DATA_DIR/journal)", MetricType::Gauge,
         d(t.journal_disk_bytes));
  single("gannet_messages_stored_total",
         "QoS 1 and 2 messages written to disk for persistent sessions (once each, however many "
         "sessions get them)",
         MetricType::Counter, d(t.messages_stored));
  single("gannet_publishes_failed_store_total",
         "QoS 1 and 2 publishes refused (0x97/0x80) or whose client was disconnected because "
         "they could not be stored",
         MetricType::Counter, d(t.publishes_failed_store));
  single("gannet_journal_records_moved_total",
         "Unacknowledged inflight messages moved from old journal files into the store (clients "
         "slow to acknowledge)",
         MetricType::Counter, d(t.journal_records_moved));

  // --- cluster ---
  single("gannet_cluster_messages_kept_total",
         "Messages for another node kept on disk because its link was down (sent when it is back)",
         MetricType::Counter, d(t.forwards_spooled));
  single("gannet_cluster_messages_kept",
         "Messages kept on disk for other nodes now, not yet sent and acknowledged",
         MetricType::Gauge, d(t.forwards_kept));
  if (cluster::ClusterNode* cluster = node_.cluster()) {
    auto up = family("gannet_cluster_peer_up",
                     "1 while this node hears from the peer node (alive), 0 while it is suspect, "
                     "dead or not reached yet",
                     MetricType::Gauge);
    auto peers = family("gannet_cluster_peers",
                        "Peer nodes in each membership state, as this node sees them",
                        MetricType::Gauge);
    uint64_t by_state[4] = {};  // indexed by cluster::MemberState
    for (const cluster::MemberView& v : cluster->membership().snapshot()) {
      addValue(up, v.state == cluster::MemberState::kAlive ? 1.0 : 0.0,
               {{"peer", std::to_string(v.peer.id)}});
      ++by_state[static_cast<int>(v.state)];
    }
    for (cluster::MemberState s : {cluster::MemberState::kAlive, cluster::MemberState::kSuspect,
                                   cluster::MemberState::kDead, cluster::MemberState::kUnreachable}) {
      addValue(peers, d(by_state[static_cast<int>(s)]),
               {{"state", std::string(cluster::memberStateName(s))}});
    }
    out.push_back(std::move(up));
    out.push_back(std::move(peers));

    const cluster::LinkStats links = cluster->linkStats();
    auto forwarded = family("gannet_cluster_forwarded_messages_total",
                            "Messages published on this node and sent to the peer node for its "
                            "subscribers (once per node, however many subscribers)",
                            MetricType::Counter);
    auto received = family("gannet_cluster_received_messages_total",
                           "Messages the peer node forwarded to this node for its subscribers",
                           MetricType::Counter);
    for (const cluster::PeerLinkStats& p : links.peers) {
      addValue(forwarded, d(p.forwarded), {{"peer", std::to_string(p.peer)}});
      addValue(received, d(p.received), {{"peer", std::to_string(p.peer)}});
    }
    out.push_back(std::move(forwarded));
    out.push_back(std::move(received));
    auto duration = family("gannet_cluster_forward_duration_seconds",
                           "Time from sending QoS 1/2 messages to another node until it confirmed "
                           "it stored them (what the publisher's PUBACK waits for)",
                           MetricType::Histogram);
    addHistogram(duration, links.forward_duration);
    out.push_back(std::move(duration));
    auto routes = family("gannet_cluster_routes",
                         "Topic filters the peer node's clients subscribe to, as known here "
                         "(publishes matching them are forwarded there)",
                         MetricType::Gauge);
    for (const Node::PeerRoutes& r : node_.remoteRoutes()) {
      addValue(routes, d(r.filters), {{"peer", std::to_string(r.peer)}});
    }
    out.push_back(std::move(routes));
  }
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

  // --- drain ---
  const bool draining = node_.draining();
  single("gannet_draining",
         "1 while this node drains (hands its sessions over before it stops), else 0",
         MetricType::Gauge, draining ? 1.0 : 0.0);
  single("gannet_drain_sessions_remaining",
         "Sessions still on this node while it drains, to be handed over (0 when not draining)",
         MetricType::Gauge, draining ? d(node_.drainRemaining()) : 0.0);
  single("gannet_drain_sessions_handed_over_total",
         "Sessions this node handed over to other nodes while draining (stored there)",
         MetricType::Counter, d(t.drain_handed_over));

  // --- process ---
  single("gannet_process_cpu_seconds_total", "CPU time the gannet process used (user + system)",
         MetricType::Counter, cpuSeconds());
  single("gannet_process_resident_memory_bytes", "Memory the gannet process holds in RAM (resident)",
         MetricType::Gauge, residentBytes());
  single("gannet_process_open_fds",
         "File descriptors the gannet process has open (client and cluster sockets, files)",
         MetricType::Gauge, openFds());
  single("gannet_process_max_fds",
         "Most file descriptors the process may open (ulimit -n): each client connection takes one",
         MetricType::Gauge, maxFds());
  single("gannet_uptime_seconds", "Seconds since the node started", MetricType::Gauge,
         static_cast<double>(base::monotonicMs() - node_.startedAtMs()) / 1000.0);
  return out;
}

}  // namespace gannet::server
