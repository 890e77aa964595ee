#pragma once
// One worker thread: an epoll loop, its listener socket (SO_REUSEPORT), the
// clients accepted on it and the sessions that live on it.
//
// Owned by the Node. Everything but the cross-thread entry points (deliverBatch,
// adopt, stop) runs on the worker's own thread (before start(), the Node also
// calls createSession() from the main thread to restore stored sessions).
// Messages for sessions on other workers are batched per target worker during an iteration and handed over at
// its end through the target's inbox (one lock + one eventfd wake per batch).

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "broker/handlers/client.h"
#include "broker/handlers/context.h"
#include "broker/net/connection.h"
#include "broker/net/event_loop.h"
#include "broker/net/listener.h"
#include "broker/server/records.h"
#include "cluster/cluster_node.h"
#include "storage/journal.h"
#include "storage/write_set.h"

namespace gannet::server {

class Node;

// A message for a session on another worker.
struct RemoteDelivery {
  uint64_t session_id = 0;
  session::OutboundMessage out;
  // For a durable delivery (out.stored_id != 0): the client id its queue entry
  // was written under, so that the target can delete the entry if the session
  // is gone or no longer durable when the delivery arrives.
  std::shared_ptr<const std::string> client_id;
  // Nonzero: the publisher's ack waits until this delivery is durable on the
  // target worker, which confirms it to worker `ack_worker` after its commit.
  uint64_t ack_token = 0;
  uint32_t ack_worker = 0;
  bool forwarded = false;  // another node forwarded the message here
};

class Worker : public handlers::BrokerContext {
 public:
  Worker(Node& node, uint32_t index);
  ~Worker() override;

  absl::Status init();
  // The layers (TLS, WebSocket) a listener's connections get; thread-safe
  // (every worker calls it). Empty function: plain MQTT over TCP.
  using LayerFactory = std::function<std::vector<std::unique_ptr<net::StreamLayer>>()>;
  // Binds one of this worker's listener sockets (`name`: mqtt, mqtts, ws or
  // wss). Call before start().
  absl::StatusOr<uint16_t> listen(const net::HostPort& addr, std::string name = "mqtt",
                                  LayerFactory layers = {});
  void start();
  // Thread-safe: closes the listener, disconnects clients (MQTT 5: 0x8B server
  // shutting down) and stops the loop.
  void stop();
  void join();

  // Thread-safe: queues deliveries for sessions on this worker.
  void deliverBatch(std::vector<RemoteDelivery>&& batch);
  // Thread-safe: deliveries with these ack tokens (RemoteDelivery::ack_token)
  // were committed by another worker (`status`: how its commit went).
  void confirmDurable(std::vector<uint64_t> tokens, absl::Status status);
  // On this worker's thread: messages another node forwarded here; delivered to
  // local subscribers only.
  // (Packed: cluster/forward_codec.h.)
  // `on_behalf_of`: kept for that dead node, for the sessions taken over from it
  // only (proto ForwardBatch.on_behalf_of).
  void deliverForwarded(uint32_t from_node, std::string packed, uint32_t on_behalf_of = 0);
  // Thread-safe: takes over a socket migrated from another worker.
  void adopt(net::Connection::Detached&& d, std::string peer, std::string listener);
  // Thread-safe: the password file CONNECTs are checked against from now on
  // (Node::reload on SIGHUP).
  void setPasswords(std::shared_ptr<const auth::PasswordFile> passwords);
  // Thread-safe: the ACL from now on (Node::reload on SIGHUP); every session's
  // subscriptions are checked against it again.
  void setAcl(std::shared_ptr<const auth::Acl> acl);
  // Thread-safe: runs `fn` on this worker's thread.
  void post(std::function<void()> fn) { loop_.post(std::move(fn)); }

  // --- handlers::BrokerContext ---
  const auth::PasswordFile* passwords() const override { return passwords_.get(); }
  const handlers::BrokerConfig& config() const override;
  // The node's ACL (null: none). Only this accessor reads it for the handlers,
  // so that a reload (SIGHUP) needs to change only the Worker.
  const auth::Acl* acl() const override { return acl_.get(); }
  router::TopicRouter& router() override;
  router::RetainedIndex& retained() override;
  handlers::WorkerStats& stats() override { return stats_; }
  uint32_t workerIndex() const override { return index_; }
  int64_t now() const override { return loop_.now(); }
  size_t match(const router::MessagePtr& message) override;
  void deliverMatched(const router::MessagePtr& message) override;
  uint32_t claimClientId(const std::string& client_id) override;
  session::Session* findSession(const std::string& client_id) override;
  session::Session& createSession(const std::string& client_id) override;
  void endSession(session::Session& session) override;
  void migrate(handlers::Client& client, uint32_t worker) override;
  std::string assignClientId() override;
  bool storeFull() const override;
  bool overloaded() const override;
  void clientClosed(handlers::Client& client) override;
  void persistSession(session::Session& session) override;
  void persistSubscription(const session::Session& session, const std::string& filter,
                           const router::SubscriptionOptions& options) override;
  void forgetSubscription(const session::Session& session, const std::string& filter) override;
  void persistRetained(const router::MessagePtr& message) override;
  void forgetRetained(const std::string& topic) override;
  void stampRetained(router::Message& message) override;
  bool setRetained(const router::MessagePtr& message) override;
  void replicateRetained(const router::MessagePtr& message) override;
  // On this worker's thread: retained messages (or clears: empty payload)
  // another node wrote, newer than this node's and already in the index (the
  // Node decided): into the store, not replicated.
  void persistReplicatedRetained(const std::vector<router::MessagePtr>& messages);
  void commitDurable() override { commitWrites(); }
  Durability persistMatched(const router::MessagePtr& message, session::Session* publisher,
                            uint16_t packet_id) override;
  void discardMatched() override;
  void ackAfterCommit(handlers::Client& client, const codec::PubAckPacket& ack) override;
  void persistInflight(session::Session& session, uint16_t packet_id,
                       session::InflightMessage& in) override;
  void forgetInflight(session::Session& session, uint16_t packet_id,
                      session::InflightMessage& in) override;
  void forgetQueued(session::Session& session, session::OutboundMessage& out) override;
  void persistQueued(session::Session& session, session::OutboundMessage& out) override;
  void forgetAwaitingPubrel(session::Session& session, uint16_t packet_id) override;
  void refillBacklog(session::Session& session) override;

  // --- session takeover between nodes (takeover.cc; docs/architecture.md,
  // "Session ownership") ---
  bool claimInCluster(handlers::Client& client, codec::ConnectPacket& connect) override;
  void cancelHandover(session::Session& s) override;
  // On this worker's thread: node `node` claims the session of `client_id` for a
  // connect there (ordered by (stamp, node) against a connect in progress here).
  void onSessionClaim(uint32_t node, uint64_t request_id, const std::string& client_id,
                      uint64_t stamp, bool pull);
  // On this worker's thread: the session handed over as `handover_id` is stored
  // on the node that claimed it: it ends here.
  void onHandoverDone(const std::string& client_id, uint64_t handover_id);
  // On this worker's thread: messages node `node` queued for a session it handed
  // over here as `handover_id`, after the handover.
  void onSessionAppend(uint32_t node, const std::string& client_id, uint64_t handover_id,
                       const std::string& transfer);
  // On this worker's thread: draining node `from_node` asks this node to take
  // over its session of `client_id` (a claim without a client).
  void pullSession(uint32_t from_node, const std::string& client_id);
  // On this worker's thread (kick.cc, gannetctl kick): disconnects the client
  // of `client_id` if it is connected here (MQTT 5: 0x98, will published) and,
  // with `end_session`, ends its session.
  cluster::KickOutcome kick(const std::string& client_id, bool end_session);
  // --- draining this node (Node::drain) ---
  // On this worker's thread: no new connections.
  void stopAccepting();
  // On this worker's thread: disconnects the clients (MQTT 5: 0x9C with the
  // MQTT address of the peer that takes their session) and asks the peers to
  // take over every session here (each to the peer its client id hashes to).
  void handOver(const std::vector<std::pair<uint32_t, std::string>>& targets,
                bool disconnect_clients);

  // --- session replication (replication.cc; docs/architecture.md, "Session
  // replication") ---
  // On this worker's thread: this worker's batch `sequence` of `epoch` is stored
  // on every replica node (or not: `status`).
  void onReplicated(uint64_t epoch, uint64_t sequence, const absl::Status& status);

  // On this worker's thread: a session of a node that died, taken over from
  // this node's replica of it; `promotion` is released once it is committed
  // (and replicated).
  void adoptPromoted(uint32_t owner, const records::SessionTransfer& t,
                     std::shared_ptr<void> promotion);
  // On this worker's thread: sessions restored at startup that another node
  // took over while this one was down: they end here (no will: it went there).
  void dropStale(const std::vector<std::string>& client_ids);
  // On this worker's thread: this node no longer reaches a majority: clients
  // with persistent sessions are disconnected (MQTT 5: 0x9C, use another server).
  void onQuorumLost();
  // On this worker's thread: a majority is reachable again: each persistent
  // session here is checked against the cluster's decision on its owner, and
  // ends here if another node owns it now.
  void verifyOwnership();
  // Asks again for the sessions whose owner no majority decided yet (onTick).
  void verifyPending();

  const handlers::WorkerStats& stats() const { return stats_; }
  // Before start(): the journal this worker writes its inflight records to
  // (null: none, everything goes to the store).
  void setJournal(std::unique_ptr<storage::Journal> journal) { journal_ = std::move(journal); }
  // Any thread: bytes of this worker's journal files.
  uint64_t journalDiskBytes() const { return journal_ ? journal_->diskBytes() : 0; }

 private:
  // Session takeover (takeover.cc).
  // Claims `client_id`'s session from the other nodes for `client` (null: a
  // pull, nobody waiting) and its CONNECT.
  void startClaim(const std::string& client_id, handlers::Client* client,
                  codec::ConnectPacket connect);
  static constexpr int kMaxClaimRounds = 3;
  // How long a connect waits for a node to take its session over from a dead one.
  static constexpr int64_t kPendingClaimMs = 15000;
  static constexpr int64_t kTickMs = 250;
  void retryPendingClaims();
  // Imports the sessions of `answers` (unless `clean_start`) and confirms them
  // after the commit.
  void importAnswers(const std::string& client_id, bool clean_start,
                     std::vector<cluster::SessionAnswer>& answers);
  void onClaimAnswered(const std::string& client_id, uint64_t stamp,
                       std::vector<cluster::SessionAnswer> answers);
  // The consensus on a persistent session's owner (after its claim's answers).
  void onOwnershipDecided(const std::string& client_id, uint64_t stamp,
                          std::vector<cluster::SessionAnswer> answers,
                          const cluster::OwnershipResult& result);
  // Imports what the claim brought and lets the connect go on.
  void finishClaim(const std::string& client_id, std::vector<cluster::SessionAnswer>& answers);
  records::SessionTransfer exportSession(session::Session& s);
  // Sends what was queued for a handed-over session since it was sent last
  // (SessionAppend); false when nothing was.
  bool sendLateMessages(session::Session& s);
  // Ends handed-over sessions whose grace time passed with nothing late.
  void tickMovingSessions();
  // Withdraws (or announces again) the session's filters as this node's routes,
  // leaving its subscriptions in the router.
  void detachRoutes(session::Session& s, bool detach);
  static constexpr int64_t kHandoverGraceMs = 500;
  // Adds what another node handed over to this worker's session of that client
  // id (created if there is none) and records it all in this iteration's batch.
  void importSession(const records::SessionTransfer& transfer);

  // Session replication (replication.cc).
  // After this iteration's commit: sends what it changed of persistent sessions
  // (or a snapshot of them all, in a new epoch) to the replica nodes.
  void replicateIteration(const absl::Status& commit_status);
  // Runs `fn` once what this worker committed so far is on every replica node
  // (at once when nothing waits for one), with how that went.
  using AfterReplicated = std::function<void(const absl::Status&)>;
  void whenReplicated(AfterReplicated fn);
  // Every persistent session of this worker as WriteSet operations (messages
  // embedded), for a new epoch's first batch.
  void snapshotSessions(storage::WriteSet& out);
  bool replicating() const { return replicating_; }
  // The inflight record of `in` for the replicas: its message embedded, so that
  // a replica never depends on a message record (MessageRefs) of this node.
  void replicateInflight(const session::Session& s, uint16_t packet_id,
                         const session::InflightMessage& in);
  void replicateInflightDone(const session::Session& s, uint64_t from, uint64_t to) {
    if (replicating_) replica_set_.deleteInflightRange(s.clientId(), from, to);
  }
  // Mirrors write_set_'s session tables into replica_set_ (after each reset).
  void mirrorWrites();
  // Runs `fn` after this iteration's commit is on every replica node.
  void afterCommit(AfterReplicated fn);

  void addClient(int fd, std::string peer, const std::string& listener,
                 net::Connection::Detached state);
  void onIterationEnd();
  // Before the commit: forwards for peers whose link is down (or with older
  // messages kept) go into the store's node queue instead (NodeSpool).
  void spoolForwards();
  void onTick();
  void drainInbox();
  // Fills match_scratch_ (local destinations only with `local_only`).
  size_t matchInto(const router::MessagePtr& message, bool local_only, bool shared_groups = true);
  // `forwarded`: the message came from another node (deliverForwarded).
  void deliverLocal(uint64_t session_id, session::OutboundMessage&& out,
                    const std::shared_ptr<const std::string>& client_id, bool forwarded);
  // Commits write_set_ (group commit: once per iteration, before the output),
  // then sends or fails the acks held for it.
  void commitWrites();
  // Sends (or fails) the held acks at the front that are ready: committed here
  // and confirmed by every other worker they wait for. In order (§4.6).
  void releaseReadyAcks();
  // The monotonic (loop) and wall clocks of this iteration, for stored times.
  Clocks iterationClocks();
  // Writes the range deletes of the inflight runs completed in this iteration.
  void flushInflightDone();
  // After a successful commit: moves inflight records that stayed in old journal
  // segments into the store, and removes journal files no longer needed.
  void maintainJournal();

  // A message id for a stored message; 0 when the store cannot reserve one.
  uint64_t nextMessageId();
  // Drops one durable reference to a stored message; deletes it with the last.
  void releaseMessage(session::OutboundMessage& out);
  // The session leaves the store (expiry 0 now, or it ends): its disk backlog is
  // read into memory, every durable reference released, its records deleted.
  void dropDurability(session::Session& s, bool update_router);
  // The session's stored record as of now.
  records::SessionRecord sessionRecord(const session::Session& s);
  // Marks the session's subscriptions in the router as durable or not.
  void setRouterDurable(session::Session& s, bool durable);

  Node& node_;
  const uint32_t index_;
  net::EventLoop loop_;
  net::FlushList flush_list_;
  std::vector<std::unique_ptr<net::Listener>> listeners_;
  std::shared_ptr<const auth::PasswordFile> passwords_;  // this thread's copies
  std::shared_ptr<const auth::Acl> acl_;
  std::thread thread_;
  handlers::WorkerStats stats_;

  absl::flat_hash_map<handlers::Client*, std::unique_ptr<handlers::Client>> clients_;
  std::vector<handlers::Client*> closed_clients_;
  std::vector<handlers::Client*> migrating_clients_;
  // Connection limits (worker_limits.cc, server::Admission). Admits a socket
  // just accepted; false: over a limit, counted and closed.
  bool admitAccepted(int fd);
  // The admission slots of migrating clients (only with connection limits
  // set), released if the socket closes before it reaches its new worker.
  void noteMigratingSlot(handlers::Client& client);
  void releaseClosedMigrating();
  struct MigratingSlot {
    handlers::Client* client;
    int fd;
    uint64_t slot;
  };
  std::vector<MigratingSlot> migrating_slots_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<session::Session>> sessions_;
  absl::flat_hash_map<std::string, session::Session*> sessions_by_client_id_;

  std::vector<router::Delivery> match_scratch_;
  bool delivering_forwarded_ = false;  // deliverMatched() of a forwarded message
  // Per entry of match_scratch_ after persistMatched(): its stored id (0: not
  // durable), whether the message is shared, and the client id of the entry.
  struct StoredDelivery {
    uint64_t id = 0;
    bool durable = false;        // to a persistent session
    bool local = false;          // on this worker: its entry is written when delivered
    bool record = false;         // a MessageRecord is stored (several targets)
    bool entry_written = false;  // the publisher wrote its queue entry (other worker)
    bool confirm = false;        // other worker: it writes it and confirms (ack token)
    std::shared_ptr<const std::string> client_id;  // other worker's session
  };
  std::vector<StoredDelivery> match_stored_;
  // PUBACK / PUBREC waiting for commits: this worker's (of the iteration that
  // held it) and the other workers' that got durable deliveries of the publish.
  // Held acks get consecutive tokens: held_acks_[i] has held_base_token_ + i.
  struct HeldAck {
    handlers::Client* client;  // null once the client is gone
    codec::PacketType type;
    uint16_t packet_id;
    codec::ReasonCode reason_code;
    bool committed = false;     // this worker's commit is done
    uint32_t remote_pending = 0;  // confirmations still to come
    absl::StatusCode failure = absl::StatusCode::kOk;  // the first failed commit
    std::string reason;  // reason string (rare)
  };
  std::deque<HeldAck> held_acks_;
  uint64_t held_base_token_ = 1;
  bool releasing_acks_ = false;
  // Set by persistMatched() for the ack that follows it: its token, and how many
  // deliveries to other workers it waits for.
  uint64_t publish_ack_token_ = 0;
  uint32_t publish_remote_confirms_ = 0;
  // Ack tokens of deliveries from other workers handled in this iteration, per
  // source worker: confirmed after this iteration's commit.
  std::vector<std::vector<uint64_t>> confirms_;
  absl::Status last_commit_status_;
  // Sessions with a run of completed inflight records to delete (session ids).
  std::vector<uint64_t> completed_inflight_;
  // This worker's block of message ids: [next_message_id_, message_id_end_).
  uint64_t next_message_id_ = 0;
  uint64_t message_id_end_ = 0;
  uint64_t failed_commits_unlogged_ = 0;
  Clocks clocks_;
  int64_t next_commit_error_log_ms_ = 0;
  std::vector<std::vector<RemoteDelivery>> outgoing_;  // per target worker
  // Messages for other nodes of the cluster, per node id, sent at iteration end.
  absl::flat_hash_map<uint32_t, cluster::PackedForwards> forwards_;
  // Ack tokens of forwarded messages handled in this iteration, per (sending
  // node, its worker): acknowledged to it after this iteration's commit.
  absl::flat_hash_map<std::pair<uint32_t, uint32_t>, std::vector<uint64_t>> forward_acks_;
  // CONNECTs waiting for the other nodes' answers to their session claim, by
  // client id, with the claims of other nodes that wait for them to complete.
  struct PendingConnect {
    uint64_t stamp = 0;
    handlers::Client* client = nullptr;  // null once it closed
    codec::ConnectPacket connect;
    bool pull = false;  // no client: taking over a draining node's session
    int rounds = 0;     // claims asked again (a holder had just handed it on)
    int64_t started_ms = 0;
    int64_t retry_at_ms = 0;  // a node answered PENDING: ask again then (0: not)
    bool deciding = false;    // its owner is being decided by consensus
    struct Deferred {
      uint32_t node;
      uint64_t request_id;
      uint64_t stamp;
      bool pull;
    };
    std::vector<Deferred> deferred;
  };
  absl::flat_hash_map<std::string, PendingConnect> pending_connects_;
  // Sessions imported in this iteration: (node, client id, handover id),
  // confirmed to the node that handed them over after the commit.
  struct HandoverConfirm {
    uint32_t node;
    std::string client_id;
    uint64_t handover_id;
  };
  std::vector<HandoverConfirm> handover_confirms_;
  // Client ids of sessions handed over and confirmed, kept for the grace time.
  std::vector<std::string> moving_sessions_;
  // Forwards written to the node queue in this iteration (reported to the
  // NodeSpool after the commit), and the ack tokens they held.
  struct Spooled {
    uint32_t node;
    uint64_t first;
    size_t count;
  };
  std::vector<Spooled> spooled_;
  std::vector<uint64_t> spooled_tokens_;
  std::mutex inbox_mu_;
  std::vector<RemoteDelivery> inbox_;
  uint64_t assigned_ids_ = 0;
  // The durable changes of the current loop iteration (docs/storage.md).
  storage::WriteSet write_set_;
  // Session replication: on (a cluster with --replication_factor >= 2); the
  // changes of this iteration for the replica nodes; the epoch of the last
  // snapshot sent; what waits for batches sent (sequence 0: for the next
  // snapshot), oldest first.
  bool replicating_ = false;
  storage::WriteSet replica_set_;
  uint64_t replica_epoch_ = 0;
  struct Replicating {
    uint64_t sequence = 0;
    std::vector<AfterReplicated> actions;
  };
  std::deque<Replicating> replicating_batches_;
  std::vector<AfterReplicated> after_commit_;  // of this iteration
  // Sessions whose owner is to be read (verifyOwnership), and one read running.
  std::vector<std::string> to_verify_;
  bool verifying_ = false;
  // Inflight records of this worker's persistent sessions, written before
  // write_set_ at each commit (docs/storage.md, "The inflight journal").
  std::unique_ptr<storage::Journal> journal_;
  std::string record_scratch_;  // a serialised record on its way into the journal
  int64_t next_evict_ms_ = 0;   // after a failed eviction: when to try again
  int64_t next_gauges_ms_ = 0;  // when onTick measures the session gauges next
};

}  // namespace gannet::server
