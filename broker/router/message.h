#pragma once
// An application message inside the broker: what a PUBLISH carried, after topic
// alias resolution. Immutable once built and shared by every session it is
// delivered to (std::shared_ptr<const Message> crosses worker threads).

#include <cstdint>
#include <memory>
#include <string>

#include "broker/codec/packets.h"

namespace gannet::router {

struct Message {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  // MQTT 5 properties passed through to subscribers (payload format, content type,
  // response topic, correlation data, user properties); null when there are none,
  // so 3.1.1 traffic does not pay for them. Topic alias and subscription ids are
  // per delivery and never stored here.
  std::shared_ptr<const codec::Properties> properties;
  // Monotonic deadline (base::monotonicMs) after which the message is dropped;
  // 0 when it never expires (MQTT 5 message expiry interval).
  int64_t expiry_deadline_ms = 0;
  // Session that published it (0 for the broker itself: $SYS, wills keep theirs),
  // for the MQTT 5 no-local option.
  uint64_t publisher_session_id = 0;
  // Retained messages in a cluster: when and where it was written (hybrid
  // logical clock stamp, node id), for last-writer-wins between nodes; 0 otherwise.
  uint64_t hlc = 0;
  uint32_t origin_node = 0;
};

using MessagePtr = std::shared_ptr<const Message>;

}  // namespace gannet::router
