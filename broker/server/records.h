#pragma once
// The one place where broker state becomes proto/records.proto records and back:
// session::Session ↔ SessionRecord, codec::Will ↔ WillRecord,
// router::Message ↔ MessageRecord, router::SubscriptionOptions ↔ SubscriptionRecord.
//
// In memory, deadlines are monotonic ms (the event loop's clock); on disk they are
// wall-clock ms since the Unix epoch, so that they mean the same after a restart.
// Clocks carries one reading of both, taken together, to convert between them.
// Pure functions, no I/O; used by the Worker (writes) and the Node (load).

#include <cstdint>
#include <span>
#include <string>

#include "broker/codec/packets.h"
#include "broker/router/message.h"
#include "broker/router/topic_router.h"
#include "broker/session/session.h"
#include "cluster/cluster_node.h"
#include "proto/records.pb.h"

namespace gannet::server {

struct Clocks {
  int64_t mono_ms = 0;  // base::monotonicMs() / EventLoop::now()
  int64_t wall_ms = 0;  // ms since the Unix epoch

  static Clocks now();
  // 0 stays 0 ("none") both ways.
  int64_t toWall(int64_t mono) const { return mono == 0 ? 0 : mono - mono_ms + wall_ms; }
  int64_t toMono(int64_t wall) const { return wall == 0 ? 0 : wall - wall_ms + mono_ms; }
};

// A persistent session as stored. A connected session is written with
// last_seen_ms = 0 (connected now); an offline one with the time it went offline.
records::SessionRecord toSessionRecord(const session::Session& s, const Clocks& clocks,
                                       int64_t last_seen_wall_ms);

records::WillRecord toWillRecord(const codec::Will& will);
codec::Will fromWillRecord(const records::WillRecord& record);

records::MessageRecord toMessageRecord(const router::Message& m, const Clocks& clocks);
// publisher_session_id is 0: in-memory session ids do not survive a restart.
router::MessagePtr fromMessageRecord(const records::MessageRecord& record, const Clocks& clocks);

// Appends to `out` the serialised records::InflightRecord of `in`, sent with
// `packet_id`: the bytes AppendToString() gives for the record Worker builds
// (embedded message without publisher_client_id, or message id, or PUBREC
// state), written directly because this runs once per durable delivery.
void appendInflightRecord(std::string& out, uint16_t packet_id, const session::InflightMessage& in,
                          const Clocks& clocks);

// A message as it travels to another node (forwarded or retained): topic,
// payload, QoS, retain flag, MQTT 5 properties as serialised
// records.MessageProperties, expiry left at monotonic `now_ms`.
void toWire(const router::Message& m, int64_t now_ms, cluster::WireMessage& out);
// Back, with its expiry counted from `now_ms`; properties that do not parse are dropped.
std::shared_ptr<router::Message> fromWire(cluster::WireMessage&& w, int64_t now_ms);

// A message forwarded to another node (cluster/forward_codec.h), appended to
// the batch for that node, with the expiry left at monotonic `now_ms`; and a
// forwarded message received, with its expiry counted from `now_ms`.
// `shared_groups`: the receiver serves its $share groups too (ForwardView).
void appendForward(const router::Message& m, int64_t now_ms, uint32_t ack_worker,
                   uint64_t ack_token, bool shared_groups, cluster::PackedForwards& out);
router::MessagePtr fromForward(const cluster::ForwardView& f, int64_t now_ms);

// A forwarded message kept on disk while the link to its node is down (the
// store's node queue), and back into a batch for that node with `ack_token`
// (and NodeSpool::kAckWorker); false when it expired meanwhile.
records::MessageRecord toSpoolRecord(const cluster::ForwardView& f, const Clocks& clocks);
bool appendSpooled(const records::MessageRecord& r, const Clocks& clocks, uint32_t ack_worker,
                   uint64_t ack_token, cluster::PackedForwards& out);

// A message as stored for deliveries (no publisher, no retained bookkeeping).
records::MessageRecord storedMessage(const router::Message& m, const Clocks& clocks);
// The queue entry of a durable delivery with message id `id`; the message is
// embedded unless it has a record of its own (`record`).
records::QueueEntryRecord queueEntry(const router::Message& m, uint64_t id, bool record,
                                     uint8_t qos, bool retain, std::span<const uint32_t> sub_ids,
                                     const Clocks& clocks);

records::SubscriptionRecord toSubscriptionRecord(const router::SubscriptionOptions& options);
router::SubscriptionOptions fromSubscriptionRecord(const records::SubscriptionRecord& record);

}  // namespace gannet::server
