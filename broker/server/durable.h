#pragma once
// Node-wide bookkeeping of the durable QoS >= 1 data path (docs/storage.md,
// "Broker integration"): who may write a message id, how many durable
// references a stored message still has, and the client ids of the sessions
// that are in the store. All three are shared by every worker; thread-safe.

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/records.pb.h"
#include "storage/session_store.h"

namespace gannet::server {

// Allocates node-wide message ids. Ids are handed to workers in blocks; each
// block is first recorded in the store (MetaRecord.next_message_id, committed on
// its own before any id of it is used), so that ids never repeat across restarts
// and every id of this run is above every id already on disk.
class MessageIds {
 public:
  static constexpr uint64_t kBlock = 1 << 16;

  // `meta`: the store's meta record as loaded. `store` may be null (tests).
  MessageIds(storage::SessionStore* store, records::MetaRecord meta);

  // The first id of this run: every queue entry on disk at startup is below it.
  uint64_t firstOfRun() const { return first_of_run_; }

  // Reserves a block: [first, end). Fails when the store cannot record it.
  absl::StatusOr<std::pair<uint64_t, uint64_t>> reserveBlock();

 private:
  storage::SessionStore* store_;
  absl::Mutex mu_;
  records::MetaRecord meta_;  // next_message_id = end of the last reserved block
  uint64_t first_of_run_;
};

// Durable references to stored messages that more than one session holds. A
// message stored for exactly one session is never entered: its one holder
// deletes it when done. Sharded by id.
class MessageRefs {
 public:
  // `id` now has `count` (>= 2) references.
  void set(uint64_t id, uint32_t count);
  // Drops one reference; true when it was the last (the caller deletes the
  // message record in its batch).
  bool release(uint64_t id);
  size_t size() const;

 private:
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<uint64_t, uint32_t> refs;
  };
  static constexpr size_t kShards = 16;
  Shard& shard(uint64_t id) { return shards_[(id * 0x9E3779B97F4A7C15ull) >> 60]; }
  std::array<Shard, kShards> shards_;
};

// Client ids of the sessions in the store, by in-memory session id: a worker
// writing a queue entry for a durable session on another worker finds its key
// here. Entries are added when a session is first stored and removed when it
// leaves the store.
class DurableSessions {
 public:
  void add(uint64_t session_id, std::shared_ptr<const std::string> client_id);
  void remove(uint64_t session_id);
  // Null when the session is not (or no longer) durable.
  std::shared_ptr<const std::string> find(uint64_t session_id) const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<const std::string>> by_session_;
};

}  // namespace gannet::server
