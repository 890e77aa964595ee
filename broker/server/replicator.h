#pragma once
// Replicator: where this node's persistent-session changes are replicated to
// (docs/architecture.md, "Session replication"), and which of its batches every
// replica node has stored.
//
// The replica nodes are the first --replication_factor - 1 peers after this
// node in ring order (by node id) whose link is up and that are not draining;
// a replica node stays one while its link does. Whenever the set changes the
// epoch changes (a fresh number), and every worker's next batch is a snapshot
// of its sessions; batches of an older epoch are never acknowledged. Epoch 0:
// no node to replicate to (the changes stay on this node only).
//
// Thread-safe: workers send, cluster threads acknowledge and report links.

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace gannet::cluster {
class ClusterNode;
}

namespace gannet::server {

class Replicator {
 public:
  struct Callbacks {
    // Batch `sequence` of worker `worker` is stored on every replica node (or
    // one could not store it: `status`).
    std::function<void(uint32_t worker, uint64_t epoch, uint64_t sequence, absl::Status status)>
        replicated;
    // The epoch changed: every worker sends a snapshot next.
    std::function<void()> epoch_changed;
    // A new epoch is about to be used (called before any batch of it is sent):
    // kept on disk, so that after a crash this node can ask what became of it.
    std::function<void(uint64_t epoch)> persist_epoch;
  };
  Replicator(uint32_t node_id, uint32_t factor, std::vector<uint32_t> peers, Callbacks callbacks);

  // Before any other call.
  void setCluster(cluster::ClusterNode* cluster) { cluster_ = cluster; }
  uint32_t factor() const { return factor_; }

  uint64_t epoch() const;
  std::vector<uint32_t> targets() const;
  // Sends a batch of `epoch` to every replica node. Its sequence number, or 0
  // when `epoch` is not the current one (nothing sent: a snapshot is due).
  uint64_t send(uint32_t worker, uint64_t epoch, bool snapshot, std::string operations);
  // Node `node` answered batch (`epoch`, `worker`, `sequence`).
  void onAck(uint32_t node, uint64_t epoch, uint32_t worker, uint64_t sequence, bool ok);
  // The link to `node` came up or was lost: choose the replica nodes again.
  void onLinkChanged(uint32_t node, bool up);
  // Chooses the replica nodes again (e.g. one started draining).
  void reconsider();

  uint64_t epochChanges() const;

  // Held: no replica nodes are chosen and what workers commit waits (this node
  // restarted and has not yet learnt whether its sessions were taken over).
  void setHeld(bool held);
  bool held() const;

 private:
  // Under mu_: the replica nodes to use now.
  std::vector<uint32_t> chooseLocked(uint32_t lost) const;

  const uint32_t node_id_;
  const uint32_t factor_;
  std::vector<uint32_t> ring_;  // the peers in ring order after this node
  const Callbacks callbacks_;
  cluster::ClusterNode* cluster_ = nullptr;
  mutable std::mutex mu_;
  uint64_t epoch_ = 0;
  uint64_t epoch_counter_ = 0;
  uint64_t epoch_changes_ = 0;
  bool held_ = false;
  std::vector<uint32_t> targets_;
  absl::flat_hash_map<uint32_t, uint64_t> next_sequence_;  // per worker, this epoch
  struct Pending {
    uint64_t sequence = 0;
    std::vector<uint32_t> waiting;  // replica nodes yet to answer
    bool failed = false;
  };
  // Per worker, in sequence order: batches not yet stored everywhere. An ack
  // of a sequence covers the ones before it (batches are merged on the link).
  absl::flat_hash_map<uint32_t, std::deque<Pending>> pending_;
};

}  // namespace gannet::server
