#pragma once
// Bytes → packets. Pure functions, no I/O, no allocation beyond the packet's own
// strings. The connection layer calls peekFrame() on its buffered input until it
// has a whole packet, then decodePacket() on exactly that packet's bytes.

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "broker/codec/packets.h"

namespace gannet::codec {

// The fixed header of one packet (§2.1).
struct FrameHeader {
  uint8_t first_byte = 0;         // packet type << 4 | flags
  uint32_t remaining_length = 0;  // bytes after the fixed header
  uint8_t header_length = 0;      // 2..5: the first byte + the variable byte integer
  PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
  uint8_t flags() const { return first_byte & 0x0F; }
  size_t totalLength() const { return size_t{header_length} + remaining_length; }
};

// Looks at the start of `buffer`. Returns nullopt when more bytes are needed to know
// the packet's length (the header itself is incomplete), the header once it is
// complete (the body may still be incomplete: compare totalLength() with the buffer),
// or a malformed-packet error (a remaining length longer than 4 bytes, §1.5.5).
// Does not check the packet type or flags: decodePacket() does.
absl::StatusOr<std::optional<FrameHeader>> peekFrame(std::string_view buffer);

// Decodes one whole packet. `packet` is exactly header.totalLength() bytes: the fixed
// header followed by the body. `version` is the connection's protocol version; it is
// ignored for CONNECT, which carries its own. Enforces every rule a decoder can check
// alone: reserved flag bits (§2.1.3), packet ids non-zero where required, QoS 3,
// well-formed UTF-8 strings without U+0000 (§1.5.4), PUBLISH topic without wildcards,
// SUBSCRIBE/UNSUBSCRIBE with at least one filter, properties allowed for the packet
// type and not duplicated, lengths consistent with the remaining length. A failed
// status carries its reason code (see errors.h): kMalformedPacket or kProtocolError
// mostly; kUnsupportedProtocolVersion for an unknown CONNECT protocol level or name.
absl::StatusOr<Packet> decodePacket(const FrameHeader& header, std::string_view packet,
                                    ProtocolVersion version);

// Validation shared with the broker (topic filters come from SUBSCRIBE, names from
// PUBLISH and wills).
bool isValidUtf8(std::string_view s);     // §1.5.4: well-formed, no U+0000, no surrogates
bool isValidTopicName(std::string_view topic);     // non-empty, no '+' or '#'
bool isValidTopicFilter(std::string_view filter);  // non-empty; '#' last and alone in its
                                                   // level; '+' alone in its level

}  // namespace gannet::codec
