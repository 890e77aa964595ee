#pragma once
// ReplicaStores: the copies this node keeps of other nodes' persistent sessions
// (docs/architecture.md, "Session replication"). One store per owner node, in
// <data_dir>/replicas/node-N (a SessionStore like the node's own, written with
// the owner's WriteSet operations as they arrive; inflight records in a journal
// beside it, storage::ReplicaInflight), with the owner's replication epoch in
// its EPOCH file. A batch of a newer epoch that is a snapshot empties
// the store first; batches of an older epoch are refused.
//
// Thread-safe: batches of one owner arrive in order on one cluster thread;
// metrics read from another.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/records.pb.h"
#include "storage/replica_inflight.h"
#include "storage/session_store.h"

namespace gannet::server {

class ReplicaStores {
 public:
  // `journal_segment_bytes`: of each replica's inflight journal (--journal_segment_bytes).
  ReplicaStores(std::string dir, bool fsync, uint64_t journal_segment_bytes)
      : dir_(std::move(dir)), fsync_(fsync), journal_segment_bytes_(journal_segment_bytes) {}

  // At startup: opens the replicas on disk (kept from before a restart).
  void openExisting();

  // Stores owner `owner`'s batch (proto ReplicaBatch). FailedPrecondition: of
  // an epoch older than the one held, or a new epoch that does not start with a
  // snapshot; InvalidArgument: malformed; else the store's error.
  absl::Status apply(uint32_t owner, uint64_t epoch, bool snapshot, std::string operations);

  // Taking over a dead owner's sessions (docs/architecture.md, "Node crash"):
  // everything held of `owner`, one SessionTransfer per session (messages
  // embedded), and the epoch it is of. Nothing held: epoch 0.
  struct Contents {
    uint64_t epoch = 0;
    std::vector<records::SessionTransfer> sessions;
  };
  absl::StatusOr<Contents> read(uint32_t owner);
  // The sessions of `owner` at `epoch` live on as this node's own: the replica
  // goes, and "promoted" is reported for that epoch from now on (kept on disk).
  void promoted(uint32_t owner, uint64_t epoch);
  // What this node reports in its heartbeats (cluster::ReplicaState).
  struct State {
    uint32_t owner;
    uint64_t epoch;
    bool promoted;
  };
  std::vector<State> states();
  // The owner whose replica (not promoted) holds a session of `client_id`; 0: none.
  uint32_t ownerHolding(const std::string& client_id);

  struct Held {
    uint32_t owner = 0;
    uint64_t epoch = 0;
    uint64_t batches = 0;  // applied since this node started
    uint64_t sessions = 0;  // session records in it (counted on request)
    uint64_t messages = 0;  // queue entries and inflight records (counted on request)
  };
  // What is held per owner (`count`: scans each store for the counts).
  std::vector<Held> held(bool count);

 private:
  struct Replica {
    std::mutex mu;
    uint64_t epoch = 0;
    uint64_t batches = 0;
    std::unique_ptr<storage::SessionStore> store;
    std::unique_ptr<storage::ReplicaInflight> inflight;  // its inflight records (with store)
  };
  Replica& replicaOf(uint32_t owner);
  std::string dirOf(uint32_t owner) const;
  storage::StoreOptions storeOptions(const std::string& dir) const;
  // Under r.mu: opens what is on disk for `owner` (once).
  absl::Status open(uint32_t owner, Replica& r);
  absl::StatusOr<std::unique_ptr<storage::ReplicaInflight>> openInflight(
      const std::string& dir, storage::SessionStore* store) const;
  // Under r.mu: an empty store for `owner` at `epoch`.
  absl::Status reset(uint32_t owner, Replica& r, uint64_t epoch);

  const std::string dir_;
  const bool fsync_;
  const uint64_t journal_segment_bytes_;
  std::mutex mu_;
  absl::flat_hash_map<uint32_t, std::unique_ptr<Replica>> replicas_;
  absl::flat_hash_map<uint32_t, uint64_t> promoted_;  // owner → epoch (under mu_)
};

}  // namespace gannet::server
