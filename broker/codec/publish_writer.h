#pragma once
// The outgoing PUBLISH fast path: encodes one delivery of a stored message straight
// into a connection's output, without building a PublishPacket (no copy of topic
// or payload per subscriber). Per-delivery facts (packet id, subscription ids,
// topic alias, remaining expiry) are given separately from the shared message.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "broker/codec/packets.h"

namespace gannet::codec {

struct PublishView {
  std::string_view topic;  // empty when only the alias is sent (MQTT 5)
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;
  // The message's pass-through properties (may be null). Only payload format,
  // content type, response topic, correlation data and user properties are taken.
  const Properties* properties = nullptr;
  uint32_t message_expiry = 0;  // seconds left; 0 = no expiry property
  std::span<const uint32_t> subscription_ids;
  uint16_t topic_alias = 0;     // 0 = none
};

// Appends the PUBLISH to `out`. Returns the number of bytes appended.
size_t writePublish(const PublishView& p, ProtocolVersion version, std::string& out);

}  // namespace gannet::codec
