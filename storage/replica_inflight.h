#pragma once
// ReplicaInflight: the inflight records of one replica (another node's
// persistent sessions kept here, docs/architecture.md "Session replication"),
// held the way the owner holds its own: in an append-only Journal, not as
// RocksDB keys.
//
// An inflight record lives from a delivery until the client acknowledges it,
// usually a few milliseconds; as RocksDB keys every one costs a memtable
// insert, a range tombstone and the WAL's checksum on the replica's side of
// the link, on the path of every QoS >= 1 acknowledgement. Here it costs an
// append to a buffer and one write() per batch, and in memory only its
// sequence and segment (the records are read back from the files when they
// are needed, which is rare). Records still live after about two journal
// segments move into the replica's store (as the owner's do), so the files
// stay small.
//
// A batch's inflight operations go to the journal (apply(), then commit()),
// everything else to the store; deletes of records that were moved to the
// store go to both. read-side users first call moveAllToStore(): the store then
// holds everything.
//
// Single-threaded: the caller (ReplicaStores, under its replica's mutex)
// serialises every call. Files: the Journal's, in `dir`.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/journal.h"
#include "storage/session_store.h"
#include "storage/write_set.h"

namespace gannet::storage {

class ReplicaInflight {
 public:
  // Moves what a journal left in `dir` (a restart) into `store`, then starts an
  // empty journal there. `store` must outlive this object.
  static absl::StatusOr<std::unique_ptr<ReplicaInflight>> open(std::string dir, bool sync,
                                                               uint64_t segment_bytes,
                                                               SessionStore* store);

  // Splits a batch: inflight operations into the journal's buffer, the rest
  // (and deletes of records held in the store) appended to `to_store`.
  // InvalidArgument: an inflight key that does not parse (nothing applied after it).
  absl::Status apply(const WriteSet& batch, WriteSet* to_store);
  // Writes the buffered operations (one frame). Call before committing
  // `to_store`, as the owner does: a record moving from the queue into inflight
  // is in the journal before it leaves the queue.
  absl::Status commit();
  // Moves records held since before the previous segment into the store and
  // removes journal files nothing lives in any more.
  absl::Status maintain();
  // Every live record into the store (before the store is read).
  absl::Status moveAllToStore();

  // Live records in the journal.
  uint64_t size() const { return live_; }

 private:
  ReplicaInflight(std::string dir, SessionStore* store, std::unique_ptr<Journal> journal,
                  bool store_has_inflight)
      : dir_(std::move(dir)),
        store_(store),
        journal_(std::move(journal)),
        store_may_hold_all_(store_has_inflight) {}
  struct Entry {
    uint32_t segment = 0;   // the journal segment of its newest version; 0: none
    bool in_store = false;  // a version was moved to the store
  };
  struct Client {
    uint64_t id = 0;  // the journal's session id for this client
    absl::btree_map<uint64_t, Entry> entries;  // by sequence
  };
  // Moves live records of segments <= `through` (0: all) into the store, read
  // back from the journal's files.
  absl::Status moveToStore(uint32_t through);

  const std::string dir_;
  SessionStore* const store_;
  std::unique_ptr<Journal> journal_;
  // The store was opened with inflight records in it whose keys are not known
  // here: every delete goes to it too.
  const bool store_may_hold_all_;
  // The client of `client_id` (created when missing and `create`; else null).
  Client* clientOf(std::string_view client_id, bool create);

  absl::node_hash_map<std::string, Client> clients_;  // nodes stay put: last_ points into one
  const std::string* last_id_ = nullptr;
  Client* last_ = nullptr;
  uint64_t next_id_ = 1;
  uint64_t live_ = 0;
};

}  // namespace gannet::storage
