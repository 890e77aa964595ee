#pragma once
// SessionStore: the durable state of one node (persistent sessions, their
// subscriptions, inflight windows, offline queues, retained messages, meta).
// Backend-neutral: the broker sees this interface and proto/records.proto only;
// the one implementation is storage/rocksdb/ (RocksDbSessionStore).
//
// Ownership and threads: one store per node, owned by the Node, opened before the
// workers start and closed after they stop. commit() and readQueue() are called
// from every worker thread concurrently; load() once, at startup, before any
// commit. Every method is thread-safe.
//
// The group-commit contract (docs/storage.md): a worker collects the durable
// changes of one loop iteration in a WriteSet and commits it once at the end of
// the iteration; PUBACK/PUBREC of the QoS >= 1 publishes in it are sent only
// after commit() returned OK. commit() is all-or-nothing.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/records.pb.h"
#include "storage/io_hooks.h"
#include "storage/table.h"
#include "storage/write_set.h"

namespace gannet::storage {

// The format written by this code (MetaRecord.format_version).
inline constexpr uint32_t kFormatVersion = 1;

struct StoreOptions {
  std::string data_dir = "./data";
  // --fsync: false = a commit returns once the WAL is written to the OS (survives
  // kill -9); true = once the WAL is fsync'ed (survives power loss).
  bool sync = false;
  // Wall clock in ms since the Unix epoch; expiry decisions use it. Null = the
  // system clock. Tests inject one.
  std::function<int64_t()> wall_clock_ms;
  // Fault injection and I/O accounting (tests, benchmarks); null in production.
  std::shared_ptr<IoHooks> io_hooks;
};

// One offline-queue entry as read back for a reconnecting client.
struct QueuedMessage {
  enum class State : uint8_t {
    kOk,       // `message` holds the message
    kExpired,  // its expiry has passed: drop it (the message record may be gone)
    kMissing,  // the message record is gone but not expired: a lost reference
  };
  uint64_t sequence = 0;
  State state = State::kOk;
  records::QueueEntryRecord entry;
  records::MessageRecord message;  // valid when state == kOk
  // The message was embedded in the entry (it had no record of its own: there
  // is no reference to drop when the entry goes).
  bool embedded = false;
};

// What load() found of one session's offline queue.
struct QueueSummary {
  uint64_t first_sequence = 0;  // lowest sequence present
  uint64_t last_sequence = 0;   // highest sequence present
  uint64_t count = 0;           // entries (expired ones included: they still take space)
  uint64_t bytes = 0;           // sum of QueueEntryRecord.message_bytes
};

// Receives the durable state at startup. Called on the thread that calls load(),
// in this order: meta, sessions, subscriptions, inflight, awaiting-PUBREL ids,
// retained messages, queue summaries, message reference counts. Within a kind,
// entries of one client are consecutive and in key order (queue in sequence
// order, inflight and PUBREL ids by packet id).
class LoadVisitor {
 public:
  virtual ~LoadVisitor() = default;
  virtual void onMeta(records::MetaRecord meta) {}
  virtual void onSession(records::SessionRecord session) {}
  virtual void onSubscription(std::string_view client_id, std::string_view filter,
                              records::SubscriptionRecord subscription) {}
  // For an inflight entry that references a stored message, `message` is that
  // message (or null when it is gone); for an embedded one, it is the embedded one.
  virtual void onInflight(std::string_view client_id, uint16_t packet_id,
                          records::InflightRecord inflight,
                          const records::MessageRecord* message) {}
  virtual void onAwaitingPubrel(std::string_view client_id, uint16_t packet_id) {}
  virtual void onRetained(std::string_view topic, records::MessageRecord message) {}
  // Cluster: an owner register's acceptor state (key: client id).
  virtual void onOwnership(std::string_view client_id, records::OwnershipRecord record) {}
  virtual void onQueue(std::string_view client_id, const QueueSummary& summary) {}
  // How many unexpired queue entries and inflight entries reference a stored
  // message: the broker's in-memory refcount for it.
  virtual void onMessageReferences(uint64_t message_id, uint32_t references) {}
};

struct LoadStats {
  uint64_t sessions = 0;
  uint64_t subscriptions = 0;
  uint64_t inflight = 0;
  uint64_t awaiting_pubrel = 0;
  uint64_t retained = 0;
  uint64_t queue_entries = 0;
  uint64_t messages = 0;
  // Message records that nothing referenced (e.g. left by a crash between two
  // workers' commits); load() deletes them.
  uint64_t orphan_messages_deleted = 0;
  // Unexpired references to message records that do not exist.
  uint64_t dangling_references = 0;
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // Writes `batch` atomically (all or nothing), honouring StoreOptions::sync.
  // Errors: ResourceExhausted when the disk is full (MQTT 5 reason 0x97),
  // Unavailable for other I/O errors, DataLoss for corruption. After a failed
  // commit nothing of the batch is written; later commits try to recover the
  // store (see docs/storage.md) and fail until the cause is gone.
  virtual absl::Status commit(WriteSet&& batch) = 0;

  // Streams the state listed in LoadVisitor to `visitor`. Deletes orphan
  // messages (see LoadStats). Offline queues are summarised, not loaded.
  virtual absl::StatusOr<LoadStats> load(LoadVisitor& visitor) = 0;

  // Up to `max_entries` entries of `client_id`'s queue with sequence >=
  // `from_sequence`, in sequence order, joined with their messages.
  virtual absl::StatusOr<std::vector<QueuedMessage>> readQueue(std::string_view client_id,
                                                               uint64_t from_sequence,
                                                               size_t max_entries) = 0;

  // Cluster: up to `max_entries` messages kept for node `node` with sequence >=
  // `from_sequence`, in sequence order (expired ones included: the caller
  // drops them).
  virtual absl::StatusOr<std::vector<std::pair<uint64_t, records::MessageRecord>>> readNodeQueue(
      uint32_t node, uint64_t from_sequence, size_t max_entries) = 0;

  // Bytes the store takes on disk (all files of the data directory), for the
  // store-wide disk limit. Cheap enough to call once a second, not per message.
  virtual uint64_t approximateDiskBytes() = 0;

  // Whether a session record of `client_id` exists (one point lookup).
  virtual absl::StatusOr<bool> hasSession(std::string_view client_id) = 0;

  // Exact number of records in `table` (a full scan: tests and diagnostics).
  virtual absl::StatusOr<uint64_t> countKeys(Table table) = 0;

  // Flushes memory to disk files and compacts everything, applying deletes and
  // expiry (tests, `gannetctl compact`). Slow; not for the data path.
  virtual absl::Status compact() = 0;
};

}  // namespace gannet::storage
