#pragma once
// Internal to the codec: MQTT 5 property blocks (§2.2.2). Which properties a block
// may hold depends on where it sits: a packet type, or the will properties of a
// CONNECT (§2.2.2.2, Table 2-4).

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "broker/codec/packets.h"
#include "broker/codec/wire.h"

namespace gannet::codec::props {

// Where a property block sits: a PacketType value (1..15), or kWill for the will
// properties in a CONNECT payload (§3.1.3.2).
inline constexpr uint8_t kWill = 0;
inline constexpr uint8_t contextOf(PacketType type) { return static_cast<uint8_t>(type); }

// Reads a Property Length and the block it announces into `out` (which must be
// empty). Rejects with kMalformedPacket a block that runs past the packet, an
// identifier not allowed in `context` or a value of the wrong shape; with
// kProtocolError a duplicate of a property that may appear once or a value the
// property does not allow (0 where 0 is forbidden, a byte that must be 0 or 1);
// with kTopicAliasInvalid a Topic Alias of 0 (§3.3.4).
absl::Status read(wire::Reader& reader, uint8_t context, Properties& out);

// The bytes of the property block for `context` without its Property Length.
// Properties `context` may not carry are left out, so the encoder never emits a
// packet the decoder would reject.
size_t size(const Properties& p, uint8_t context);

// Writes the block measured by size(): Property Length, then the properties in
// identifier order (user properties in their own order).
void write(wire::Writer& w, const Properties& p, uint8_t context, size_t block_size);

}  // namespace gannet::codec::props
