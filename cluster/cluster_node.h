#pragma once
// ClusterNode: this node's membership in a cluster over gRPC (docs/architecture.md,
// "Cluster"). It serves the Cluster and Admin services on --cluster_listen, dials
// every peer in --peers (one long-lived Link stream each, re-dialled with backoff
// and re-resolved on every attempt), authenticates both directions with the
// shared secret, exchanges heartbeats, and keeps each peer alive / suspect / dead.
//
// Knows nothing of MQTT: what it reports of this node comes from a ClusterHost.
//
// Threads: gRPC's server threads (one per inbound stream), one dialer thread and
// one reader thread per peer, one monitor thread. start() and stop() from the
// owner's thread; stop() joins everything. The host is called from these threads.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "base/histogram.h"
#include "cluster/forward_codec.h"
#include "cluster/membership.h"
#include "cluster/ownership.h"
#include "cluster/tls.h"

namespace grpc {
class Server;
class ClientContext;
}  // namespace grpc

namespace gannet::clusterpb {
class Heartbeat;
class LinkMessage;
class RouteUpdate;
class ForwardAck;
class SessionHandover;
}  // namespace gannet::clusterpb

namespace gannet::cluster {

// A message as it travels between nodes, as plain values.
struct WireMessage {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  std::string properties;    // serialised records.MessageProperties; empty: none
  int64_t expiry_in_ms = 0;  // 0 = none
};

// A retained message set or cleared somewhere in the cluster (proto RetainedEntry;
// `retain` is implied).
struct RetainedEntry : WireMessage {
  bool cleared = false;
  uint64_t hlc = 0;
  uint32_t origin_node = 0;
};

// A peer's answer to a session claim (proto SessionHandover).
struct SessionAnswer {
  enum class Kind : uint8_t {
    kNone,         // it has no session of that client id
    kSession,      // `session` (a serialised records.SessionTransfer)
    kNewerClaim,   // a newer connect of that client id is in progress there
    kUnavailable,  // it did not answer: its link was lost, or it timed out
    kMoved,        // it handed the session to node `moved_to` moments ago
    kPending,      // it is about to take the session over from a dead node: ask again
  };
  uint32_t node = 0;
  Kind kind = Kind::kNone;
  std::string session;
  uint64_t handover_id = 0;  // kSession: to confirm with confirmHandover()
  uint32_t moved_to = 0;     // kMoved
};

// How the receiver stored forwarded messages (ForwardAck.status).
enum class ForwardStatus : uint8_t { kOk = 0, kFull = 1, kError = 2 };

// What the links to the peers carried, for the node's metrics
// (ClusterNode::linkStats()).
struct PeerLinkStats {
  uint32_t peer = 0;
  uint64_t forwarded = 0;  // messages written on the link to that peer
  uint64_t received = 0;   // messages that peer forwarded to this node
};
struct LinkStats {
  std::vector<PeerLinkStats> peers;  // every peer of --peers, in that order
  // One observation per ForwardAck: from writing the oldest of the forwards it
  // acknowledges to the peer until the ack arrived here. (Only QoS >= 1
  // forwards from clients are acknowledged; QoS 0 ones are not timed.)
  base::HistogramSnapshot forward_duration;
};

// What ClusterHost::kick did on this node (proto adminpb.KickReply).
struct KickOutcome {
  bool connected = false;      // the client was connected here and is disconnected
  bool session_found = false;  // this node held its session
  bool session_ended = false;  // and it ended
};

// What the node running the cluster layer tells it, and is told by it.
// Thread-safe: called from the cluster's threads.
class ClusterHost {
 public:
  virtual ~ClusterHost() = default;
  virtual uint64_t connections() = 0;  // MQTT connections on this node
  virtual uint64_t sessions() = 0;     // sessions on this node
  virtual bool draining() = 0;         // handing its sessions over before it stops
  // gannetctl drain: start draining (false: it already is). `sessions`: how
  // many it has to hand over.
  virtual bool startDrain(uint64_t* sessions) = 0;
  // gannetctl kick: disconnects the client with `client_id` if it is connected
  // here and, with `end_session`, ends its session here. Blocks the calling
  // (gRPC) thread until done; Unavailable when it did not finish in time.
  virtual absl::StatusOr<KickOutcome> kick(const std::string& client_id, bool end_session) = 0;
  // Node `node` is draining and asks this node to take over its session of
  // `client_id` (claim it like a connect, without a client).
  virtual void onSessionPull(uint32_t node, std::string client_id) = 0;
  // Node `node`'s route table: a whole snapshot (replaces what it had) or a delta.
  // Calls for one node never overlap and stale ones are filtered out.
  virtual void onRoutes(uint32_t node, bool snapshot, std::vector<std::string> add,
                        std::vector<std::string> remove) = 0;
  // Messages node `node` forwarded here, in its order, packed
  // (cluster/forward_codec.h): deliver them locally.
  // (`on_behalf_of`: see proto ForwardBatch.)
  virtual void onForward(uint32_t node, std::string packed, uint32_t on_behalf_of) = 0;
  // Node `node` is dead: drop its routes.
  virtual void onPeerDead(uint32_t node) = 0;
  // Forwarded messages with these ack tokens (of worker `worker` here) are
  // durable on the receiving node (kOk), or will never be acknowledged: it
  // could not store them, or the link was lost or the node died before it
  // answered (the publisher must not get a success ack for them).
  virtual void onForwardAck(uint32_t worker, std::vector<uint64_t> tokens,
                            ForwardStatus status) = 0;
  // Retained messages from another node (changes, or all it has on a new link):
  // keep each one that is newer than what this node has for its topic.
  virtual void onRetained(std::vector<RetainedEntry> entries) = 0;
  // Every retained message of this node (sent to a peer on every new link).
  virtual std::vector<RetainedEntry> retainedSnapshot() = 0;
  // A client connected to node `node` claims its session (ordered by (stamp,
  // node)): answer with ClusterNode::answerClaim(node, request_id, ...).
  virtual void onSessionClaim(uint32_t node, uint64_t request_id, std::string client_id,
                              uint64_t stamp, bool pull) = 0;
  // The session handed over as `handover_id` is stored on the node that claimed
  // it: delete this node's copy (after sending what was queued since).
  virtual void onHandoverDone(std::string client_id, uint64_t handover_id) = 0;
  // Node `node` sends messages queued for a session it handed over here
  // (serialised records.SessionTransfer): append them, then confirmHandover().
  virtual void onSessionAppend(uint32_t node, std::string client_id, uint64_t handover_id,
                               std::string transfer) = 0;
  // Session replication (proto ReplicaBatch): node `node`'s changes to keep for
  // it. True: stored (answered with a ReplicaAck on the stream the batch came
  // on). Batches of one node come in order, on one thread.
  virtual bool onReplicaBatch(uint32_t node, uint64_t epoch, uint32_t worker, uint64_t sequence,
                              bool snapshot, std::string operations) = 0;
  // Node `node` stored (ok) or could not store this node's batch.
  virtual void onReplicaAck(uint32_t node, uint64_t epoch, uint32_t worker, uint64_t sequence,
                            bool ok) = 0;
  // The link to node `node` came up or was lost (what this node sends it).
  virtual void onLinkChanged(uint32_t node, bool up) = 0;
  // What this node reports of the replicas it holds (every heartbeat).
  virtual std::vector<ReplicaState> replicaStates() = 0;
  // Node `node` reported the replicas it holds (every heartbeat from it).
  virtual void onPeerReplicas(uint32_t node, std::vector<ReplicaState> replicas) = 0;
};

struct ClusterOptions {
  uint32_t node_id = 1;
  std::string listen;  // HOST:PORT for the Cluster and Admin services (port 0: any)
  std::vector<PeerAddress> peers;
  std::string secret;  // shared by every node; never sent
  MembershipTimeouts timeouts;
  std::string mqtt_address;  // reported to peers and gannetctl
  // Mutual TLS on the cluster port (links and Admin); none: plaintext.
  std::optional<TlsMaterial> tls;
};

class ClusterNode {
 public:
  ClusterNode(ClusterOptions options, ClusterHost& host);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // Before start(): the MQTT address reported to peers and gannetctl (once the
  // MQTT listener is bound: with port 0 in --mqtt_listen the port is known then).
  void setMqttAddress(std::string address) { mqtt_address_ = std::move(address); }
  // Binds the listener and starts dialling the peers. Returns the bound port.
  absl::StatusOr<uint16_t> start();
  void stop();

  // Thread-safe: a local session subscribed to / unsubscribed from `filter`
  // (counted; the peers hear of the first and the last).
  void localRouteAdded(std::string_view filter);
  void localRouteRemoved(std::string_view filter);
  // Thread-safe: sends `messages` to node `node`, after what was sent to it
  // before. Up to kMaxPendingForwards messages wait to be written, also while
  // the link is re-established; false when they cannot (over that bound, the
  // node is dead or unknown): nothing of them is sent.
  static constexpr size_t kMaxPendingForwards = 100000;
  // `on_behalf_of`: messages kept for that dead node, for the sessions `node`
  // took over from it (proto ForwardBatch.on_behalf_of).
  bool forward(uint32_t node, PackedForwards batch, uint32_t on_behalf_of = 0);
  // Thread-safe: tells node `node` that its forwarded messages with these tokens
  // (of its worker `worker`) were committed here (or failed to be).
  void ackForwards(uint32_t node, uint32_t worker, std::vector<uint64_t> tokens,
                   ForwardStatus status);
  // Thread-safe: a retained message set or cleared on this node, to every peer
  // whose link is up (the others get all retained messages on their next link).
  void replicateRetained(const RetainedEntry& entry);

  // Thread-safe: asks every peer whose link is up for its session of
  // `client_id` (a client connected here with that id). `done` gets one answer
  // per peer asked (kUnavailable for one whose link is lost or that does not
  // answer within the dead timeout), on a cluster thread, or at once on this
  // thread when no peer is up.
  using ClaimDone = std::function<void(std::vector<SessionAnswer>)>;
  // `pull`: no client waits (see proto SessionClaim.pull).
  void claimSession(const std::string& client_id, uint64_t stamp, bool pull, ClaimDone done);
  // Thread-safe: the answer to node `node`'s claim `request_id` (see onSessionClaim).
  void answerClaim(uint32_t node, uint64_t request_id, SessionAnswer answer);
  // Thread-safe: the session node `node` handed over as `handover_id` is stored here.
  void confirmHandover(uint32_t node, const std::string& client_id, uint64_t handover_id);
  // Thread-safe: asks node `node` to take over this node's session of `client_id`.
  void pullSession(uint32_t node, const std::string& client_id);
  // Thread-safe: forwards and acks not yet written or acknowledged on the links
  // that are up (a draining node waits for them).
  size_t pendingOutbound();
  // Thread-safe: the peers whose link is up and that are not draining, with
  // their MQTT addresses (where a draining node sends its sessions and clients).
  std::vector<std::pair<uint32_t, std::string>> takeoverPeers();
  // Thread-safe: messages queued here for a session handed over to `node`.
  void appendToSession(uint32_t node, const std::string& client_id, uint64_t handover_id,
                       std::string transfer);

  // Thread-safe: replication (proto ReplicaBatch / ReplicaAck). False: the link
  // to `node` is not up (the batch is not sent; its epoch is over).
  bool sendReplica(uint32_t node, uint64_t epoch, uint32_t worker, uint64_t sequence,
                   bool snapshot, std::string operations);

  // Thread-safe: the link to node `node` is up (handshake done, not lost).
  bool linkLive(uint32_t node);
  // Thread-safe: counts of what the links carried (metrics; cheap: one lock
  // per peer).
  LinkStats linkStats();

  // --- ownership of client ids by consensus (ownership_rounds.cc) ---
  // Before start(): the registers this node stored as an acceptor, and how to
  // store changes (synchronously, before answering).
  void loadOwnership(std::vector<std::pair<std::string, OwnerRecord>> records,
                     std::function<void(const std::vector<std::pair<std::string, OwnerRecord>>&)>
                         persist);
  // Thread-safe: decides the owner of each of `keys` (see OwnershipOp; `from`
  // for kTake; `released`: the nodes that answered this node's claim for
  // them). `done` gets one result per key, on a cluster thread or at once.
  using OwnershipDone = std::function<void(std::vector<OwnershipResult>)>;
  void decideOwners(std::vector<std::string> keys, OwnershipOp op, uint32_t from,
                    std::vector<uint32_t> released, OwnershipDone done);
  // Thread-safe: this node hears from a majority of the cluster (itself
  // included) within the suspect timeout: it may serve persistent sessions.
  bool hasQuorum();
  size_t clusterSize() const { return options_.peers.size() + 1; }

  uint64_t incarnation() const { return incarnation_; }
  Membership& membership() { return membership_; }

 private:
  class LinkService;
  class AdminService;
  struct Dialer {
    PeerAddress peer;
    std::thread thread;
    std::mutex mu;
    grpc::ClientContext* context = nullptr;  // the current attempt, for cancel
    int64_t attempt_started_ms = 0;          // 0 once the handshake is done
    std::string last_error;                  // logged once per change
    // While the link is up (under routes_mu_ and mu): what to send next.
    bool live = false;
    uint64_t epoch = 0;  // of the current link's route snapshot
    // Route updates (only while live) and forwards (also while the link is
    // being re-established, up to kMaxPendingForwards messages).
    std::vector<clusterpb::LinkMessage> outbox;
    size_t pending_forwards = 0;
    // The ack tokens of the forwards in the outbox.
    std::vector<std::pair<uint32_t, uint64_t>> outbox_acks;
    // Forwards written on the current link whose ForwardAck has not come:
    // (worker, token) → when it was written (base::monotonicNs, for the
    // forward duration). Failed back to the host when the link is lost.
    absl::flat_hash_map<std::pair<uint32_t, uint64_t>, int64_t> unacked;
    uint64_t forwarded = 0;                // messages written to the peer (metrics)
    std::atomic<uint64_t> received{0};     // messages it forwarded here (metrics)
    bool retry_now = false;  // the peer dialled us: dial it back without waiting
    std::condition_variable cv;  // outbox, stop, link lost
    // Replica batches, per worker (while live): at most kReplicaBatchesInFlight
    // are on their way at a time; what the worker sends meanwhile merges into
    // `held`, sent when a ReplicaAck comes. Under load a batch covers about half
    // a round trip's worth of changes (fewer, larger batches, while the link
    // still carries one as the other is answered); idle, each goes at once.
    struct ReplicaFlow {
      uint64_t epoch = 0;
      std::deque<uint64_t> in_flight;  // sequences of the batches on their way
      std::unique_ptr<clusterpb::LinkMessage> held;
    };
    static constexpr size_t kReplicaBatchesInFlight = 2;
    absl::flat_hash_map<uint32_t, ReplicaFlow> replica_flows;
  };
  // Under d.mu: the ack of (epoch, worker, sequence) came; sends what was held.
  void replicaAnswered(Dialer& d, uint64_t epoch, uint32_t worker, uint64_t sequence);
  Dialer* dialerFor(uint32_t node);
  // Distinct filters this node's sessions subscribe to (its routes).
  uint64_t routeCount();
  void applyRoutes(uint32_t node, const clusterpb::RouteUpdate& update);
  void applyForwardAck(uint32_t node, const clusterpb::ForwardAck& ack);
  // Reports the (worker, token) pairs as failed to the host, grouped by worker.
  void failTokens(const std::vector<std::pair<uint32_t, uint64_t>>& tokens);
  void enqueueRouteChange(const std::string& filter, bool added);
  // Queues `m` for node `node` (kept while its link is re-established). False:
  // no such peer.
  bool send(uint32_t node, clusterpb::LinkMessage m);
  void applyHandover(uint32_t node, clusterpb::SessionHandover& handover);
  // Node `node` will not answer the claims waiting for it (link lost, dead), or
  // (node 0) claims older than `expire_before_ms` are given up.
  void giveUpClaims(uint32_t node, int64_t expire_before_ms);

  void dial(Dialer& d);
  // What this node says of itself on every link.
  clusterpb::Heartbeat heartbeat();
  void monitor();
  // Cancels the current attempt of `d` (under d.mu).
  void cancel(Dialer& d);

  const ClusterOptions options_;
  ClusterHost& host_;
  std::string mqtt_address_;  // set before start(), read-only after
  const uint64_t incarnation_;
  Membership membership_;
  std::unique_ptr<LinkService> link_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<Dialer>> dialers_;
  std::atomic<bool> dialers_ready_{false};  // dialers_ is filled (start()): linkStats() reads it
  base::LatencyHistogram forward_duration_;  // ForwardAck after the write (recordShared)
  std::thread monitor_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::atomic<bool> stopping_{false};
  // Local route counts (filter → local subscriptions), and the per-link
  // snapshot/delta hand-over: routes_mu_ before any Dialer::mu.
  std::mutex routes_mu_;
  absl::flat_hash_map<std::string, uint64_t> local_routes_;
  uint64_t links_opened_ = 0;
  // Inbound route updates: newest epoch per node; held while the host applies one.
  std::mutex routes_in_mu_;
  absl::flat_hash_map<uint32_t, uint64_t> route_epochs_;
  // Ownership rounds this node proposes (ownership_rounds.cc).
  struct OwnershipRound;
  void startRound(std::shared_ptr<OwnershipRound> round);
  void roundAnswered(uint32_t node, uint64_t request_id, const clusterpb::LinkMessage& m);
  void advanceRound(std::shared_ptr<OwnershipRound> round);  // under rounds_mu_ released
  void giveUpRounds(uint32_t node, int64_t expire_before_ms);
  void answerPrepare(uint32_t node, const clusterpb::LinkMessage& m);
  void answerAccept(uint32_t node, const clusterpb::LinkMessage& m);
  std::unique_ptr<OwnershipAcceptor> acceptor_;
  std::mutex rounds_mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<OwnershipRound>> rounds_;
  uint64_t next_round_id_ = 1;
  uint64_t max_ballot_seen_ = 0;
  // Session claims of this node's connects waiting for answers.
  struct PendingClaim {
    absl::flat_hash_set<uint32_t> waiting;  // peers still to answer
    std::vector<SessionAnswer> answers;
    ClaimDone done;
    int64_t started_ms = 0;
  };
  std::mutex claims_mu_;
  absl::flat_hash_map<uint64_t, PendingClaim> claims_;
  uint64_t next_claim_id_ = 1;
};

}  // namespace gannet::cluster
