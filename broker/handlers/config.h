#pragma once
// The limits and options the MQTT engine obeys. Filled from flags by cmd/gannet
// (see docs/configuration.md); read-only once the node runs, shared by workers.

#include <cstdint>
#include <memory>

#include "broker/auth/acl.h"
#include "broker/auth/enhanced_auth.h"
#include "broker/auth/password_file.h"

namespace gannet::handlers {

struct BrokerConfig {
  uint32_t max_packet_size = 1 << 20;       // bytes; larger packets are refused (0x95)
  uint32_t max_queued_messages = 1000;      // per session: QoS>=1 waiting to be sent
  uint64_t max_queued_bytes = 0;            // per session: topic + payload bytes; 0 = no limit
  // What a full queue does with one more message: refuse it (the default, as
  // Mosquitto does) or drop the oldest queued one to make room.
  enum class QueueOverflow : uint8_t { kRefuseNewest, kDropOldest };
  QueueOverflow queue_overflow = QueueOverflow::kRefuseNewest;
  uint16_t max_inflight_messages = 20;      // outgoing QoS>=1 window (3.1.1; MQTT 5 cap)
  uint16_t receive_maximum = 100;           // announced to MQTT 5 clients (incoming window)
  uint16_t topic_alias_maximum = 10;        // announced to MQTT 5 clients
  uint16_t max_keepalive = 65535;           // seconds; MQTT 5 clients get Server Keep Alive
  uint32_t connect_timeout_ms = 10000;      // close sockets that send no CONNECT
  uint64_t max_connection_buffer_bytes = 1 << 20;  // outgoing buffer bound per connection
  uint32_t max_session_expiry = 0xFFFFFFFF; // seconds; caps the client's request
  bool retain_available = true;
  uint64_t max_disk_bytes = 0;              // store-wide limit on disk use; 0 = none
  // Limits and overload protection (docs/security.md, "Limits"); 0 = off.
  // At accept, before anything is read (server::Admission):
  uint32_t max_connections = 0;             // per node
  uint32_t max_connections_per_ip = 0;      // per source address
  uint32_t max_connect_rate_per_ip = 0;     // new connections / s per address (burst the same)
  // Overload: RSS over it refuses new CONNECTs (0x89 / 3) until it is back under 90%.
  uint64_t max_memory_bytes = 0;
  // Per client, in the handlers (broker/handlers/limits.h):
  uint32_t max_topic_length = 65535;        // bytes of a topic name / filter (65535: off)
  uint32_t max_topic_levels = 0;            // levels of a topic name / filter
  uint32_t max_subscriptions_per_client = 0;
  uint32_t max_publish_rate = 0;            // PUBLISHes / s per client (burst the same)
  // Whether a PUBLISH is checked at all: the hot path pays one branch when off.
  bool publishLimits() const {
    return max_topic_length < 65535 || max_topic_levels != 0 || max_publish_rate != 0;
  }
  // --password_file: the users who may connect (null: no password file).
  std::shared_ptr<const auth::PasswordFile> passwords;
  // --allow_anonymous: a CONNECT without a user name is accepted.
  bool allow_anonymous = true;
  // --acl_file: what each client may publish, receive and subscribe to (null:
  // no ACL, everything is allowed). Handlers read it only through
  // BrokerContext::acl() (which a reload may point elsewhere).
  std::shared_ptr<const auth::Acl> acl;
  // MQTT 5 enhanced authentication (auth/enhanced_auth.h); null: none offered
  // (a CONNECT with an Authentication Method gets 0x8C).
  std::shared_ptr<const auth::EnhancedAuth> enhanced_auth;
  // --tls_use_identity_as_username: on TLS listeners, the verified client
  // certificate's subject CN is the user name (no password is checked).
  bool tls_identity_as_username = false;
};

}  // namespace gannet::handlers
