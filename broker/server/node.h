#pragma once
// A whole Gannet node: the workers and what they share (router, retained
// messages, session registry, configuration), the metrics endpoint and the $SYS
// publisher. Used by cmd/gannet and by tests that want a node in-process.
//
// Created and started on the main thread; stop() is thread-safe (signal handlers
// reach it through a self-pipe in main).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "broker/handlers/config.h"
#include "broker/net/tls.h"
#include "broker/router/retained_index.h"
#include "broker/router/topic_router.h"
#include "broker/server/admission.h"
#include "broker/server/durable.h"
#include "broker/server/session_registry.h"
#include "broker/server/worker.h"
#include "cluster/cluster_node.h"
#include "storage/session_store.h"

namespace prometheus {
class Exposer;
}

namespace gannet::server {

class MetricsCollector;
class NodeSpool;
class ReplicaStores;
class Replicator;

struct NodeOptions {
  uint32_t node_id = 1;
  std::string mqtt_listen = "0.0.0.0:1883";
  // More client listeners (docs/security.md): empty = off. mqtts and wss need `tls`.
  std::string mqtts_listen;
  std::string ws_listen;
  std::string wss_listen;
  net::TlsOptions tls;
  // Files reloaded on SIGHUP (Node::reload); empty: none.
  std::string password_file;
  std::string acl_file;
  std::string data_dir = "./data";
  // --fsync: false = a commit returns once the WAL is written (survives kill -9);
  // true = once it is fsync'ed (survives power loss).
  bool fsync = false;
  // --journal_segment_bytes: size at which a worker's inflight journal starts a
  // new file (docs/storage.md, "The inflight journal").
  uint64_t journal_segment_bytes = uint64_t{64} << 20;
  std::string metrics_listen;  // empty: no metrics endpoint
  uint32_t workers = 0;        // 0: one per core
  uint32_t sys_interval_s = 5; // 0: no $SYS topics
  handlers::BrokerConfig broker;
  // Cluster (docs/architecture.md, "Cluster"): empty cluster_listen = one node.
  std::string cluster_listen;
  std::vector<cluster::PeerAddress> peers;
  std::string cluster_secret;
  std::optional<cluster::TlsMaterial> cluster_tls;  // mutual TLS on the cluster port
  cluster::MembershipTimeouts cluster_timeouts;
  // --mqtt_advertise: the MQTT address clients reach this node at (Server
  // Reference of a draining peer); empty: --mqtt_listen.
  std::string mqtt_advertise;
  // --drain_timeout: how long a drain may take before the node stops anyway.
  int64_t drain_timeout_ms = 30000;
  // --cluster_spool_max_messages: messages kept on disk per peer whose link is down.
  uint64_t cluster_spool_max_messages = 1000000;
  // --replication_factor: nodes that hold each persistent session (this one
  // included); 1 = no replication.
  uint32_t replication_factor = 2;
};

// Counters summed over workers.
struct NodeTotals {
  uint64_t connections_current = 0;  // all protocol versions
  uint64_t connections[handlers::kListenerCount][handlers::kProtocolCount] = {};
  uint64_t connections_accepted[handlers::kListenerCount] = {};
  uint64_t connects_refused[static_cast<int>(handlers::ConnectRefusal::kCount)] = {};
  uint64_t messages_received[3] = {0, 0, 0};
  uint64_t messages_sent[3] = {0, 0, 0};
  uint64_t message_bytes_received[3] = {0, 0, 0};
  uint64_t message_bytes_sent[3] = {0, 0, 0};
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t dropped[static_cast<int>(handlers::DropReason::kCount)] = {};
  uint64_t protocol_errors = 0;
  uint64_t connections_rejected[static_cast<int>(handlers::ConnectionRejection::kCount)] = {};
  uint64_t limit_refusals[static_cast<int>(handlers::LimitRefusal::kCount)] = {};
  uint64_t sessions = 0;            // connected and offline
  uint64_t sessions_connected = 0;  // with a client connected (= connections_current)
  uint64_t inflight_messages = 0;   // the workers' last measurements (about 1 s old)
  uint64_t queued_messages = 0;
  uint64_t queued_bytes = 0;
  uint64_t store_commits = 0;
  base::HistogramSnapshot store_commit_duration;
  uint64_t store_commit_failures = 0;
  uint64_t messages_stored = 0;
  uint64_t journal_records_moved = 0;
  uint64_t journal_disk_bytes = 0;
  uint64_t publishes_failed_store = 0;
  uint64_t forwards_spooled = 0;
  uint64_t forwards_kept = 0;  // kept on disk for peers now
  uint64_t drain_handed_over = 0;
};

class Node {
 public:
  explicit Node(NodeOptions options);
  ~Node();

  // Prepares the data directory, opens the store in <data_dir>/store and reloads
  // persistent sessions, their subscriptions and the retained messages, binds the
  // listeners, starts the workers.
  absl::Status start();
  // Thread-safe: asks every worker to stop.
  void stop();
  // Blocks until every worker has stopped.
  void wait();

  uint16_t mqttPort() const { return mqtt_port_; }
  // The bound port of a client listener by name (mqtt, mqtts, ws, wss); 0: none.
  uint16_t listenerPort(const std::string& name) const;

  // Thread-safe (SIGHUP): reads the TLS certificate and key, the password file
  // (and the ACL file) again. New connections use the new certificate; those
  // connected keep their TLS session. A file that fails to load changes
  // nothing (the error says which); the others are still reloaded.
  absl::Status reload();
  std::optional<uint16_t> metricsPort() const { return metrics_port_; }

  const NodeOptions& options() const { return options_; }
  const handlers::BrokerConfig& config() const { return options_.broker; }
  router::TopicRouter& router() { return router_; }
  router::RetainedIndex& retained() { return retained_; }
  SessionRegistry& registry() { return registry_; }
  // The durable store; null before start(). Thread-safe (commit from any worker).
  storage::SessionStore* store() { return store_.get(); }
  // The durable message path's shared bookkeeping (valid after start()).
  MessageIds& messageIds() { return *message_ids_; }
  MessageRefs& messageRefs() { return message_refs_; }
  DurableSessions& durableSessions() { return durable_sessions_; }
  Worker& worker(uint32_t i) { return *workers_[i]; }
  // Any thread: sends messages to node `node` of the cluster; false when there
  // is no cluster or the link to that node is down.
  bool forwardToNode(uint32_t node, cluster::PackedForwards batch);
  // Any thread (cluster only, else no-ops): stamps a retained message published
  // here; replicates one stored here to the other nodes.
  void stampRetained(router::Message& message);
  // Cluster: sets or clears `message` in the retained index if it is the newest
  // write of its topic by (hlc, origin node); false: superseded.
  bool setRetainedIfNewest(const router::MessagePtr& message);
  void replicateRetained(const router::MessagePtr& message);
  // Any thread: tells node `node` its forwarded messages are committed here.
  void ackForwards(uint32_t node, uint32_t worker, std::vector<uint64_t> tokens,
                   cluster::ForwardStatus status);
  // --- session takeover between nodes (docs/architecture.md, "Session ownership") ---
  bool clustered() const { return cluster_ != nullptr; }
  // The cluster layer (null on a single node), for metrics: membership, link stats.
  cluster::ClusterNode* cluster() { return cluster_.get(); }
  // Any thread: the route filters learnt from each peer (in --peers order; 0
  // for a peer whose routes are gone or not known yet), and how many of them
  // are shared ($share/...). They are subscriptions of that node in the router.
  struct PeerRoutes {
    uint32_t peer = 0;
    uint64_t filters = 0;
    uint64_t shared = 0;
  };
  std::vector<PeerRoutes> remoteRoutes();
  // Messages for peers whose link is down; null on a single node.
  NodeSpool* spool() { return spool_.get(); }
  // Session replication (docs/architecture.md, "Session replication"): where
  // this node's sessions are replicated to (null: nowhere: one node, or
  // --replication_factor=1), and the replicas it keeps for other nodes (null
  // on a single node).
  Replicator* replicator() { return replicator_.get(); }
  ReplicaStores* replicaStores() { return replica_stores_.get(); }
  // --- node crash (docs/architecture.md, "Node crash") ---
  // Any thread: `client_id`'s session was restored at startup and it is not yet
  // known whether another node took it over while this one was down; it no
  // longer counts as such after this call.
  bool takeUnverified(const std::string& client_id);
  // --- ownership by consensus (docs/architecture.md, "Ownership by consensus") ---
  // Any thread: this node reaches a majority of the cluster (always on one node).
  bool hasQuorum() { return cluster_ == nullptr || cluster_->hasQuorum(); }
  // Any thread: see cluster::ClusterNode::decideOwners.
  void decideOwners(std::vector<std::string> keys, cluster::OwnershipOp op, uint32_t from,
                    std::vector<uint32_t> released, cluster::ClusterNode::OwnershipDone done) {
    cluster_->decideOwners(std::move(keys), op, from, std::move(released), std::move(done));
  }
  // Worker 0's tick: a lost majority disconnects persistent clients; a regained
  // one checks the owners of the sessions here.
  void tickQuorum();
  // Worker 0's tick: gives up waiting for the peers' word on the restored
  // sessions after a while (keeps them).
  void tickReconciliation(int64_t now_ms);
  // Any thread: session `session_id` here was taken over from dead node `owner`
  // (messages kept for that node elsewhere are delivered to it).
  void noteAdopted(uint32_t owner, uint64_t session_id);
  bool adoptedFrom(uint32_t owner, uint64_t session_id);
  // Any thread: a hybrid-logical-clock stamp ordering a connect's session claim.
  uint64_t claimStamp();
  // Any thread: asks the other nodes for their session of `client_id` (see
  // cluster::ClusterNode::claimSession; `done` runs on a cluster thread).
  void claimSession(const std::string& client_id, uint64_t stamp, bool pull,
                    cluster::ClusterNode::ClaimDone done);
  void answerClaim(uint32_t node, uint64_t request_id, cluster::SessionAnswer answer);
  void confirmHandover(uint32_t node, const std::string& client_id, uint64_t handover_id);
  void appendToSession(uint32_t node, const std::string& client_id, uint64_t handover_id,
                       std::string transfer);
  // A handed-over session's filter stops (starts again) counting as this node's
  // route, while its subscription stays in the router.
  void routeRemoved(const std::string& filter);
  void routeAdded(const std::string& filter);
  // Asks node `node` to take over this node's session of `client_id` (drain).
  void pullSession(uint32_t node, const std::string& client_id);
  // Any thread but a worker's (the admin API's, kick.cc): disconnects the
  // client of `client_id` connected here and, with `end_session`, ends its
  // session here, on the worker that holds it; waits for it up to `timeout_ms`
  // (Unavailable after that; shorter than gannetctl's deadline, 5 s).
  absl::StatusOr<cluster::KickOutcome> kick(const std::string& client_id, bool end_session,
                                            int64_t timeout_ms = 3000);
  // Thread-safe: starts draining (cluster only; false if it already is, or
  // there is no cluster). The node stops by itself when done: drained().
  bool requestDrain();
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  // The drain is over (sessions handed over, or its timeout passed): stop().
  bool drained() const { return drained_.load(std::memory_order_relaxed); }
  // Sessions still on this node while it drains (0 when it does not).
  uint64_t drainRemaining() const { return drain_remaining_.load(std::memory_order_relaxed); }
  // A cluster-wide unique id for a session handed over from this node.
  uint64_t nextHandoverId() { return next_handover_id_.fetch_add(1, std::memory_order_relaxed); }
  // The worker a client id's session goes to when none holds it yet (restored
  // at startup, or arriving from another node).
  uint32_t homeWorker(const std::string& client_id) const {
    return static_cast<uint32_t>(std::hash<std::string>{}(client_id) % workers_.size());
  }
  uint32_t workerCount() const { return static_cast<uint32_t>(workers_.size()); }
  uint64_t nextSessionId() { return next_session_id_.fetch_add(1, std::memory_order_relaxed); }
  int64_t startedAtMs() const { return started_ms_; }

  NodeTotals totals() const;
  // Re-measures the store's disk use about once a second (worker 0's thread) and
  // sets storeFull() when it is over --max_disk_bytes.
  void checkDiskUse(int64_t now_ms);
  bool storeFull() const { return store_full_.load(std::memory_order_relaxed); }
  // Worker 0's tick: about once a second, samples resident memory against
  // --max_memory_bytes and forgets idle per-address admission state.
  void tickLimits(int64_t now_ms);
  // Connection limits at accept and the overload state (docs/security.md,
  // "Limits"); shared by the workers, thread-safe.
  Admission& admission() { return admission_; }
  const Admission& admission() const { return admission_; }
  // Publishes the $SYS/broker/... topics through `w` (called on worker 0's thread).
  void publishSys(Worker& w);

 private:
  absl::Status prepareDataDir();
  absl::Status startMetrics();
  absl::Status createCluster();  // before loadStore(): routes of restored sessions count
  absl::Status startCluster();
  void noteRetained(const router::Message& message);  // a retained message loaded
  absl::Status openStore();
  // Moves what the inflight journals held into the store and removes them.
  absl::Status recoverJournal();
  std::string journalDir() const;
  // Restores what openStore() found: sessions onto workers (not yet started),
  // their subscriptions into the router, retained messages into the index.
  absl::Status loadStore();

  NodeOptions options_;
  Admission admission_{options_.broker};  // (after options_)
  router::TopicRouter router_;
  router::RetainedIndex retained_;
  SessionRegistry registry_;
  // Declared before the workers: they commit into it until they are destroyed.
  std::unique_ptr<storage::SessionStore> store_;
  // What the cluster layer reports of this node (connections, routes).
  class ClusterHostImpl;
  std::unique_ptr<ClusterHostImpl> cluster_host_;
  std::unique_ptr<cluster::ClusterNode> cluster_;
  // Messages for peers whose link is down (cluster only; destroyed first).
  std::unique_ptr<NodeSpool> spool_;
  std::unique_ptr<Replicator> replicator_;
  std::unique_ptr<ReplicaStores> replica_stores_;
  // A peer reported the replicas it holds: take over a dead node's sessions,
  // or learn what became of this node's own from before its restart.
  void onPeerReplicas(uint32_t node, std::vector<cluster::ReplicaState> replicas);
  // Node `node` died: if this node holds its replica (and is the one to take
  // over), its sessions become this node's (on promote_threads_).
  void maybePromote(uint32_t node);
  // Node `node` died: true when its routes stay until its sessions' new node
  // reports (routes_kept_).
  bool keepRoutesOfDead(uint32_t node);
  void dropRoutesOf(uint32_t node);
 public:
  // This node took over dead node `owner`'s sessions: what it kept for that
  // node is delivered to them here, and that node's routes go.
  void promotedHere(uint32_t owner);
 private:
  void promote(uint32_t node);
  // Restored sessions no longer in doubt: dropped (taken over elsewhere) or kept.
  void resolveRestored(bool taken_over, const std::string& why);
  std::string epochFile() const;
  uint64_t previous_epoch_ = 0;
  // Worker 0's thread: no majority reached now (true at start: the first
  // majority checks the owners of the restored sessions), and one was reached
  // since the start.
  bool quorum_lost_ = true;
  bool quorum_seen_ = false;  // this node's replication epoch before the restart
  std::mutex reconcile_mu_;
  bool reconciling_ = false;
  absl::flat_hash_set<std::string> unverified_;
  absl::flat_hash_map<uint32_t, std::vector<cluster::ReplicaState>> peer_replicas_;
  std::mutex promote_mu_;
  std::vector<std::thread> promote_threads_;
  absl::flat_hash_set<uint32_t> promoting_;
  absl::flat_hash_set<std::pair<uint32_t, uint64_t>> adopted_;  // under promote_mu_
  // Dead nodes whose routes stay until the node taking over their sessions
  // reports it did (forwards meanwhile are kept for them, then redirected):
  // node → when to drop them anyway (monotonic ms).
  absl::flat_hash_map<uint32_t, int64_t> routes_kept_;  // under promote_mu_
  std::unique_ptr<MessageIds> message_ids_;
  MessageRefs message_refs_;
  DurableSessions durable_sessions_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<uint64_t> next_session_id_{1};
  std::atomic<uint64_t> next_handover_id_{1};  // seeded from the wall clock at start()
  // Draining (Node::drain on drain_thread_).
  void drain();
  std::atomic<bool> draining_{false};
  std::atomic<bool> drained_{false};
  std::atomic<uint64_t> drain_remaining_{0};  // set by drain()
  std::atomic<bool> stop_requested_{false};
  std::thread drain_thread_;
  uint16_t mqtt_port_ = 0;
  std::vector<std::pair<std::string, uint16_t>> listener_ports_;
  // The TLS context new connections of mqtts / wss use (swapped by reload()).
  std::atomic<std::shared_ptr<const net::TlsContext>> tls_;
  absl::Status startClientListeners(const net::HostPort& mqtt_addr);
  // Returns once every worker has run what was posted to it before (at most
  // 10 s per worker): a reload is in effect when it is logged.
  void waitForWorkers();
  uint16_t cluster_port_ = 0;
  std::optional<uint16_t> metrics_port_;
  int64_t started_ms_ = 0;
  int lock_fd_ = -1;
  std::atomic<bool> store_full_{false};
  int64_t next_limits_tick_ms_ = 0;  // worker 0's thread (tickLimits)
  int64_t next_disk_check_ms_ = 0;  // worker 0's thread only
  std::shared_ptr<MetricsCollector> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace gannet::server
