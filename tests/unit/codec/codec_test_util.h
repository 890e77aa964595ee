#pragma once
// Helpers for the codec tests: packets written as readable byte specs, and the
// checks every packet goes through (exact encoding, decoding, byte-at-a-time
// framing).

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"
#include "broker/codec/errors.h"
#include "broker/codec/packets.h"

namespace gannet::codec::testing {

inline constexpr ProtocolVersion kV31 = ProtocolVersion::kV31;
inline constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;
inline constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

// Bytes from a spec of space-separated tokens: hex digits in pairs ("30", "0A0B")
// and 'quoted text' taken as raw bytes (it may contain spaces).
std::string B(std::string_view spec);

// "30 0A 00 03 ..." for failure messages.
std::string hex(std::string_view bytes);

// Frames `bytes` with peekFrame(), which must find exactly one whole packet, and
// decodes it.
absl::StatusOr<Packet> decodeFrame(std::string_view bytes, ProtocolVersion version);

std::string encodeToBytes(const Packet& packet, ProtocolVersion version);

// The fixed header for a body: `first_byte`, the remaining length, then `body`.
std::string frame(uint8_t first_byte, std::string_view body);

// Encodes `packet` and expects exactly `bytes`; decodes `bytes` and expects
// `packet`; feeds `bytes` one at a time through peekFrame() and expects the
// header to appear exactly when its last byte arrives and the packet to be
// complete exactly at the last byte.
void expectRoundTrip(const Packet& packet, ProtocolVersion version, std::string_view bytes);

// Decodes `bytes` (one whole frame) and expects it to fail with `reason`.
void expectRejected(std::string_view bytes, ProtocolVersion version, ReasonCode reason);

}  // namespace gannet::codec::testing
