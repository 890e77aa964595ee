#pragma once
// Per-worker counters. Written only by the owning worker (relaxed atomics, so the
// hot path pays one uncontended add); summed over workers when /metrics or $SYS is
// read. Never a label per client or topic.

#include <atomic>
#include <cstdint>

namespace gannet::handlers {

enum class DropReason : uint8_t {
  kQueueFull = 0,    // a session's queue was at --max_queued_messages
  kSlowConsumer,     // QoS 0 to a connection whose output is over its bound
  kExpired,          // MQTT 5 message expiry passed before delivery
  kTooLarge,         // over the client's Maximum Packet Size
  kNoSubscribers,    // published to a topic nobody subscribes to
  kOffline,          // QoS 0 for an offline session
  kStoreMissing,     // a stored queue entry whose message record is gone
  kNodeDown,         // for a subscriber on another node whose link is down
  kStoreFull,        // forwarded from another node, not storable (over --max_disk_bytes)
  kCount,
};
const char* dropReasonName(DropReason r);

struct Counter {
  std::atomic<uint64_t> v{0};
  void add(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

struct WorkerStats {
  Counter connections_accepted;
  Counter connections_current_inc;  // connected (CONNACK sent) minus closed: see below
  Counter connections_current_dec;
  Counter messages_received[3];     // by QoS
  Counter messages_sent[3];
  Counter bytes_received;
  Counter bytes_sent;
  Counter dropped[static_cast<int>(DropReason::kCount)];
  Counter protocol_errors;          // connections closed for malformed input / protocol errors
  Counter sessions_current_inc;
  Counter sessions_current_dec;
  // The store (durable QoS >= 1 path, persistent sessions, retained messages).
  Counter store_commits;            // batches committed (one per iteration with changes)
  Counter store_commit_failures;
  Counter messages_stored;          // QoS >= 1 messages written for persistent sessions
  Counter journal_records_moved;    // inflight records moved from the journal into the store
  Counter publishes_failed_store;   // acks turned into 0x97/0x80 or a close by a failed commit
  Counter forwards_spooled;         // cluster: messages kept on disk for a peer whose link was down

  void drop(DropReason r, uint64_t n = 1) { dropped[static_cast<int>(r)].add(n); }
};

}  // namespace gannet::handlers
