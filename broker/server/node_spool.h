#pragma once
// NodeSpool: messages for a peer whose cluster link is down, kept in the store
// (its node queue, one per peer) and sent when the link is back: in order,
// before anything newer for that peer (docs/architecture.md, "Forwarding").
//
// Workers decide per loop iteration: while a peer's link is down, or older
// messages for it still wait here, its forwards are written to the store in the
// worker's batch (reserve() before, committed() after the commit) and the
// publishers' acks wait for that commit only (the message is durable here). A
// drain thread reads what is committed, in sequence order, sends it on the
// link in chunks and deletes a chunk once the peer acknowledged all of it
// (after a lost link or a timeout the chunk is sent again: at least once).
//
// Thread-safe. Owned by the Node; exists only in a cluster.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <string>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "cluster/cluster_node.h"
#include "storage/session_store.h"

namespace gannet::server {

class NodeSpool {
 public:
  // The ForwardAck worker id that routes acks of spooled messages here.
  static constexpr uint32_t kAckWorker = 0xFFFFFFFEu;
  static constexpr size_t kChunk = 1000;

  NodeSpool(storage::SessionStore& store, cluster::ClusterNode& cluster, uint64_t max_per_node,
            int64_t ack_timeout_ms);
  ~NodeSpool();
  NodeSpool(const NodeSpool&) = delete;
  NodeSpool& operator=(const NodeSpool&) = delete;

  // Before start(): counts what the store keeps for each of `peers` (kept
  // across restarts) and continues its sequences.
  absl::Status load(const std::vector<uint32_t>& peers);
  void start();
  void stop();

  // Messages for `node` go here now: its link is down, or older ones wait here.
  bool mustSpool(uint32_t node);
  // Reserves the sequences [*first, *first + n) for messages to `node`, which
  // the caller writes (WriteSet::putNodeQueue) in its next commit and then
  // reports with committed(). False when that would exceed the bound.
  bool reserve(uint32_t node, size_t n, uint64_t* first);
  void committed(uint32_t node, uint64_t first, size_t n, bool ok);
  // The peer acknowledged spooled messages sent to it (or they failed).
  void onAck(const std::vector<uint64_t>& sequences, bool ok);

  // Messages kept for all peers (metrics).
  uint64_t kept();

  // Node `from` died and node `to` took over its sessions: what is kept for
  // `from` goes to `to` (for those sessions only) from now on; `to` may be this
  // node (`local` delivers it here). Ends once nothing is kept for `from`.
  void redirect(uint32_t from, uint32_t to);
  using LocalDelivery = std::function<void(std::string packed, uint32_t on_behalf_of)>;
  void setLocalDelivery(uint32_t self, LocalDelivery local) {
    self_ = self;
    local_ = std::move(local);
  }

 private:
  struct Peer {
    uint64_t count = 0;      // reserved or stored, not deleted yet
    uint64_t next_read = 0;  // the first sequence not sent and acknowledged yet
    std::map<uint64_t, size_t> uncommitted;  // reserved, not committed: first → n
    bool logged = false;     // "keeping messages for node N" said
    uint32_t redirect_to = 0;  // its sessions' new node (it died); 0: none
  };
  void run();
  // Sends one chunk to `node` and deletes it once acknowledged. True: progress.
  bool drainOnce(uint32_t node);

  storage::SessionStore& store_;
  cluster::ClusterNode& cluster_;
  const uint64_t max_per_node_;
  const int64_t ack_timeout_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  absl::flat_hash_map<uint32_t, Peer> peers_;
  uint64_t next_sequence_ = 1;
  absl::flat_hash_set<uint64_t> awaiting_;  // the chunk in flight
  bool chunk_failed_ = false;
  bool wake_ = false;
  bool stopping_ = false;
  int64_t next_error_log_ms_ = 0;
  std::thread thread_;
  uint32_t self_ = 0;
  LocalDelivery local_;
};

}  // namespace gannet::server
