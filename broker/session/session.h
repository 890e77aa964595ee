#pragma once
// The state of one MQTT session (§4.1): what must outlive a network connection.
//
// Owned by a Worker (its session table); lives on that worker's thread for its
// whole life. A session never moves between workers: a reconnecting client's
// connection is moved to the session's worker instead. The session holds no
// socket; the connected client (if any) is referenced by `client`.

#include <cstdint>
#include <vector>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "broker/codec/packets.h"
#include "broker/router/message.h"
#include "broker/router/topic_router.h"

namespace gannet::session {

using SubscriptionIds = absl::InlinedVector<uint32_t, 2>;

// A message on its way to this session's client, with the per-delivery facts.
struct OutboundMessage {
  router::MessagePtr message;
  uint8_t qos = 0;      // granted: min(publish QoS, subscription QoS)
  bool retain = false;  // the RETAIN flag to send
  // The ACL lets the session read it already (its subscription's filter is
  // wholly readable, or it was checked): deliver() does not check it again.
  bool read_checked = false;
  SubscriptionIds subscription_ids;
  // --- durability (docs/storage.md, "the QoS >= 1 data path") ---
  // Non-zero when this delivery is durable: a node-wide message id, which is also
  // the sequence of its entry in this session's stored queue.
  uint64_t stored_id = 0;
  // A MessageRecord is stored under stored_id, shared with the message's other
  // durable deliveries (MessageRefs counts them); false: the message is embedded
  // in the queue entry / inflight record, as for a message with one durable target.
  bool stored_record = false;
  // The queue entry is written (false: the delivery is being made in the
  // publisher's iteration, which writes an entry or an inflight record for it).
  bool queue_entry_written = false;
};

// FIFO of outbound messages. A vector with a moving head rather than std::deque:
// an empty std::deque allocates ~600 bytes, too much for an idle session.
class MessageQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  const OutboundMessage& front() const { return items_[head_]; }
  void push_back(OutboundMessage m) { items_.push_back(std::move(m)); }
  OutboundMessage pop_front() {
    OutboundMessage m = std::move(items_[head_++]);
    if (head_ == items_.size()) {
      items_.clear();
      head_ = 0;
      if (items_.capacity() > 1024) items_.shrink_to_fit();
    } else if (head_ >= 1024 && head_ * 2 >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<ptrdiff_t>(head_));
      head_ = 0;
    }
    return m;
  }
  template <typename F>
  void forEach(F&& fn) {
    for (size_t i = head_; i < items_.size(); ++i) fn(items_[i]);
  }
  void clear() {
    items_.clear();
    items_.shrink_to_fit();
    head_ = 0;
  }

 private:
  std::vector<OutboundMessage> items_;
  size_t head_ = 0;
};

// A QoS 1/2 PUBLISH sent to the client and not yet completed (§4.3).
struct InflightMessage {
  OutboundMessage out;
  uint64_t sequence = 0;  // send order, for retransmission in order (§4.6)
  bool pubrec_received = false;  // QoS 2: PUBREL sent, waiting for PUBCOMP
  // Sent on an earlier connection and not yet resent on this one: waits for a
  // slot in the client's window (MQTT 5 Receive Maximum, §3.3.4).
  bool resend_pending = false;
  // An inflight record of it is on disk: in the worker's journal segment
  // `journal_segment`, or (0) in the store.
  bool stored = false;
  uint32_t journal_segment = 0;
};

// The part of a restored session's offline queue still on disk: entries with a
// sequence below the first message id of this run of the node. They come before
// everything queued since, and are read in chunks as the client's window frees.
struct DiskBacklog {
  uint64_t next_sequence = 0;  // the first entry not read yet is at or after this
  uint64_t count = 0;          // entries not read yet
  uint64_t bytes = 0;          // their topic + payload bytes
  bool empty() const { return count == 0; }
};

constexpr uint32_t kNeverExpires = std::numeric_limits<uint32_t>::max();

class Session {
 public:
  Session(uint64_t id, std::string client_id) : id_(id), client_id_(std::move(client_id)) {}

  uint64_t id() const { return id_; }
  const std::string& clientId() const { return client_id_; }
  // The user name of the session's last CONNECT (none: anonymous), for the
  // ACL checks, which apply while the session is offline too.
  std::optional<std::string> username;

  // --- lifetime ---
  // Seconds the session outlives its connection: 0 = ends with it (clean session),
  // kNeverExpires = forever (3.1.1 cleanSession=0, or MQTT 5 0xFFFFFFFF).
  uint32_t expiry_interval = 0;
  codec::ProtocolVersion version = codec::ProtocolVersion::kV311;
  // Monotonic ms at which an offline session expires; 0 while connected.
  int64_t expires_at_ms = 0;
  // The connected client, or null while offline. Opaque to the session.
  void* client = nullptr;
  // True while the store holds a record of this session (set by the worker that
  // owns it; clean sessions never have one).
  bool stored = false;

  // Cluster: handed over to another node as this id (which deletes it here once
  // that node confirms it stored it); 0 = not.
  uint64_t handed_over = 0;
  uint32_t handed_over_to = 0;      // the node
  int64_t handed_over_at = 0;       // monotonic ms of the handover
  size_t handed_over_queued = 0;    // entries of `queue` already sent there
  bool handover_confirmed = false;  // that node stored everything sent so far
  // Monotonic ms until which this copy stays after the handover was confirmed
  // (publishes routed here by peers that do not know the new owner's routes
  // yet follow the session); 0: not yet confirmed.
  int64_t handover_grace_until = 0;
  bool handover_final = false;      // the last append after the grace time is sent
  // Its subscriptions no longer count as this node's routes (the peers route
  // to the new owner); they stay in the router to catch what is in flight.
  bool routes_detached = false;

  // --- will (§3.1.2.5, MQTT 5 §3.1.3.2.2) ---
  // Held by pointer: a Will with its properties is ~600 bytes, and most sessions
  // have none (idle connections must stay small).
  std::unique_ptr<codec::Will> will;
  int64_t will_due_ms = 0;  // a delayed will waiting to be published; 0 = none

  // --- subscriptions: filter as subscribed (shared filters included) → options ---
  absl::flat_hash_map<std::string, router::SubscriptionOptions> subscriptions;

  // --- outbound QoS 1/2 ---
  // Allocates a packet id not in flight. Returns 0 when all 65535 are in use.
  uint16_t nextPacketId();
  absl::flat_hash_map<uint16_t, InflightMessage> inflight;
  uint64_t next_sequence = 1;
  // Packet ids to resend after a reconnect, in their original order (§4.4), and
  // how many of the inflight entries still wait for that resend.
  std::vector<uint16_t> resend_order;
  size_t resend_next = 0;
  size_t resend_pending = 0;
  // Stored inflight records completed in this loop iteration and not deleted yet:
  // the run of send sequences [inflight_done_from, inflight_done_to), deleted
  // with one range delete at the end of the iteration (0, 0: none).
  uint64_t inflight_done_from = 0;
  uint64_t inflight_done_to = 0;
  // The same for records in the worker's journal (one Done operation).
  uint64_t journal_done_from = 0;
  uint64_t journal_done_to = 0;
  // Inflight entries actually on the current connection (counted against the window).
  size_t onWire() const { return inflight.size() - resend_pending; }
  // Messages waiting for a free inflight slot, or for the client to come back, in
  // this order: the disk backlog of a restored session (read into `backlog` a
  // chunk at a time), then `queue`.
  DiskBacklog disk_backlog;
  MessageQueue backlog;
  MessageQueue queue;
  size_t queued_bytes = 0;  // topic + payload bytes of all three
  size_t queuedCount() const { return disk_backlog.count + backlog.size() + queue.size(); }
  bool hasQueued() const { return !disk_backlog.empty() || !backlog.empty() || !queue.empty(); }

  // --- inbound QoS 2 (§4.3.3): packet ids received and PUBREC'd, awaiting PUBREL ---
  absl::flat_hash_set<uint16_t> awaiting_pubrel;

  void enqueue(OutboundMessage m) {
    queued_bytes += m.message->payload.size() + m.message->topic.size();
    queue.push_back(std::move(m));
  }
  // The oldest queued message. The caller refills `backlog` from disk first when
  // it is empty and the disk backlog is not (hasQueuedInMemory() tells).
  bool hasQueuedInMemory() const { return !backlog.empty() || (disk_backlog.empty() && !queue.empty()); }
  OutboundMessage dequeue() {
    OutboundMessage m = backlog.empty() ? queue.pop_front() : backlog.pop_front();
    queued_bytes -= m.message->payload.size() + m.message->topic.size();
    return m;
  }

 private:
  uint64_t id_;
  std::string client_id_;
  uint16_t last_packet_id_ = 0;
};

}  // namespace gannet::session
