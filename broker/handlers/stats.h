#pragma once
// Per-worker counters. Written only by the owning worker (relaxed atomics, so the
// hot path pays one uncontended add); summed over workers when /metrics or $SYS is
// read. Never a label per client or topic.

#include <atomic>
#include <cstdint>
#include <string_view>

#include "base/histogram.h"
#include "broker/codec/packets.h"

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
  kNotAuthorized,    // refused by the ACL: a PUBLISH or will not allowed, a delivery not readable
  kCount,
};
const char* dropReasonName(DropReason r);

// Why a CONNECT was answered with a refusing CONNACK (the label of
// gannet_connects_refused_total).
enum class ConnectRefusal : uint8_t {
  kUnsupportedProtocolVersion = 0,
  kClientIdentifierNotValid,
  kBadUsernameOrPassword,
  kNotAuthorized,
  kServerUnavailable,
  kServerBusy,
  kQuotaExceeded,
  kOther,
  kCount,
};
const char* connectRefusalName(ConnectRefusal r);
// The one mapping of a refusing CONNACK's reason code (MQTT 5 code; a 3.1.1
// return code is derived from it) to the refusal it counts as.
ConnectRefusal connectRefusalOf(codec::ReasonCode rc);

// Why a connection was turned away by a limit before it became an MQTT
// connection (the label of gannet_connections_rejected_total,
// docs/security.md "Limits"). The first three close the socket at accept,
// before anything is read; overload answers the CONNECT with 0x89 / 3.
enum class ConnectionRejection : uint8_t {
  kMaxConnections = 0,    // --max_connections on this node
  kMaxConnectionsPerIp,   // --max_connections_per_ip from one source address
  kConnectRate,           // --max_connect_rate_per_ip
  kOverload,              // the node is overloaded (--max_memory_bytes)
  kConnectTimeout,        // no complete CONNECT within --connect_timeout
  kCount,
};
const char* connectionRejectionName(ConnectionRejection r);

// A per-client limit that refused a packet (the label of
// gannet_limit_refusals_total, docs/security.md "Limits").
enum class LimitRefusal : uint8_t {
  kMaxPacketSize = 0,          // a packet over --max_packet_size: connection closed (0x95)
  kMaxTopicLength,             // a PUBLISH topic / SUBSCRIBE filter over --max_topic_length
  kMaxTopicLevels,             // ... with more levels than --max_topic_levels
  kMaxSubscriptionsPerClient,  // a new filter over --max_subscriptions_per_client
  kMaxPublishRate,             // a PUBLISH over --max_publish_rate
  kCount,
};
const char* limitRefusalName(LimitRefusal r);

// MQTT protocol versions as metric labels: index 0 "3.1", 1 "3.1.1", 2 "5".
inline constexpr int kProtocolCount = 3;
inline int protocolIndex(codec::ProtocolVersion v) {
  switch (v) {
    case codec::ProtocolVersion::kV31: return 0;
    case codec::ProtocolVersion::kV311: return 1;
    case codec::ProtocolVersion::kV5: return 2;
  }
  return 1;
}
const char* protocolName(int index);

// Client listeners as metric labels: index 0 "mqtt", 1 "mqtts", 2 "ws", 3 "wss"
// (net::Connection::listener() names).
inline constexpr int kListenerCount = 4;
int listenerIndex(std::string_view name);
const char* listenerName(int index);

struct Counter {
  std::atomic<uint64_t> v{0};
  void add(uint64_t n = 1) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

// A value the owning worker sets (from a scan of its sessions, at most once a second).
struct Gauge {
  std::atomic<uint64_t> v{0};
  void set(uint64_t n) { v.store(n, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

struct WorkerStats {
  Counter connections_accepted[kListenerCount];  // by listener
  // MQTT connections by listener and protocol version: opened (CONNACK sent)
  // and closed; the difference is how many are open now.
  Counter connections_opened[kListenerCount][kProtocolCount];
  Counter connections_closed[kListenerCount][kProtocolCount];
  Counter connects_refused[static_cast<int>(ConnectRefusal::kCount)];
  Counter messages_received[3];     // by QoS
  Counter messages_sent[3];
  Counter message_bytes_received[3];  // payload bytes of those PUBLISHes, by QoS
  Counter message_bytes_sent[3];
  Counter bytes_received;
  Counter bytes_sent;
  Counter dropped[static_cast<int>(DropReason::kCount)];
  Counter protocol_errors;          // connections closed for malformed input / protocol errors
  Counter connections_rejected[static_cast<int>(ConnectionRejection::kCount)];
  Counter limit_refusals[static_cast<int>(LimitRefusal::kCount)];
  Counter sessions_current_inc;
  Counter sessions_current_dec;
  // The store (durable QoS >= 1 path, persistent sessions, retained messages).
  Counter store_commits;            // batches committed (one per iteration with changes)
  Counter store_commit_failures;
  base::LatencyHistogram store_commit_duration;  // journal + store commit of one batch
  Counter messages_stored;          // QoS >= 1 messages written for persistent sessions
  Counter journal_records_moved;    // inflight records moved from the journal into the store
  Counter publishes_failed_store;   // acks turned into 0x97/0x80 or a close by a failed commit
  Counter forwards_spooled;         // cluster: messages kept on disk for a peer whose link was down
  Counter drain_handed_over;        // sessions handed over (and confirmed) while the node drains
  // Measured by the worker from its sessions about once a second (onTick).
  Gauge inflight_messages;          // outbound QoS >= 1 sent and not yet acknowledged
  Gauge queued_messages;            // waiting in session queues (memory and disk)
  Gauge queued_bytes;               // their topic + payload bytes

  void drop(DropReason r, uint64_t n = 1) { dropped[static_cast<int>(r)].add(n); }
  void rejected(ConnectionRejection r) { connections_rejected[static_cast<int>(r)].add(); }
  void limited(LimitRefusal r) { limit_refusals[static_cast<int>(r)].add(); }
  void refused(codec::ReasonCode rc) { connects_refused[static_cast<int>(connectRefusalOf(rc))].add(); }
};

}  // namespace gannet::handlers
