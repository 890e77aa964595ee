#pragma once
// The per-client limits the packet handlers apply (docs/security.md,
// "Limits"): --max_topic_length and --max_topic_levels on PUBLISH topics and
// SUBSCRIBE filters, --max_subscriptions_per_client, --max_publish_rate.
// Every refusal is counted in WorkerStats::limit_refusals by its limit.
//
// Functions only: the state they need (a client's publish token bucket) lives
// in the Client, on its worker's thread. Nothing here allocates on the publish
// path; handlePublish calls in only when BrokerConfig::publishLimits().

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "broker/codec/packets.h"
#include "broker/handlers/config.h"
#include "broker/handlers/stats.h"
#include "broker/session/session.h"

namespace gannet::handlers {

class Client;

// Levels of a topic name or filter: one more than its '/' separators.
uint32_t topicLevels(std::string_view topic);

// The topic limit `topic` breaks, if any. `levels_of` is what the levels are
// counted in (a shared subscription's filter without "$share/GROUP/").
std::optional<LimitRefusal> topicOverLimits(const BrokerConfig& config, std::string_view topic,
                                            std::string_view levels_of);

// PUBLISH (its topic alias resolved): true when `p` is refused by a limit and
// must not be routed. It was answered as docs/security.md says: MQTT 5
// PUBACK / PUBREC 0x90 Topic Name invalid (topic limits) or 0x96 Message rate
// too high (rate), QoS 0 dropped; 3.1.1 acknowledged and dropped for the topic
// limits (resending could never succeed), the connection closed for a QoS >= 1
// publish over the rate (never a false PUBACK: the client keeps it and resends
// after reconnecting), QoS 0 dropped.
bool refusedByPublishLimits(Client& client, const codec::PublishPacket& p);

// SUBSCRIBE: the failure reason code for one valid `filter` (`levels_of` as
// above) refused by a limit, or 0 when it passes. MQTT 5: 0x8F Topic Filter
// invalid (topic limits), 0x97 Quota exceeded (--max_subscriptions_per_client:
// a filter the session does not have yet while it has that many); 3.1.1: 0x80.
// CONNECT while the node is overloaded: CONNACK 0x89 Server busy (3.1.1:
// return code 3 Server unavailable), then close. Counted as a refused
// CONNECT (server_busy) and a rejected connection (overload); logged at most
// once a second per worker, with how many were refused since.
absl::Status refuseOverloaded(Client& client, const codec::ConnectPacket& p);

uint8_t refusedFilter(Client& client, const session::Session& s, const std::string& filter,
                      std::string_view levels_of);

}  // namespace gannet::handlers
