#pragma once
// The codec's error vocabulary. A failed absl::Status carries the MQTT reason code
// it maps to as a payload; reasonCodeOf() is the one place a Status becomes a
// CONNACK / DISCONNECT reason code.

#include <string_view>

#include "absl/status/status.h"
#include "broker/codec/packets.h"

namespace gannet::codec {

// A failed status that maps to `code`. The message is for logs and reason strings.
absl::Status codecError(ReasonCode code, std::string_view message);
inline absl::Status malformed(std::string_view m) {
  return codecError(ReasonCode::kMalformedPacket, m);
}
inline absl::Status protocolError(std::string_view m) {
  return codecError(ReasonCode::kProtocolError, m);
}

// The reason code a failed status maps to; kUnspecifiedError when it carries none,
// kSuccess for an OK status.
ReasonCode reasonCodeOf(const absl::Status& status);

// MQTT 3.1.1 §3.2.2.3 CONNACK return code for an MQTT 5 reason code:
// 1 unacceptable protocol version, 2 identifier rejected, 3 server unavailable,
// 4 bad user name or password, 5 not authorized.
uint8_t connackReturnCodeV3(ReasonCode code);

}  // namespace gannet::codec
