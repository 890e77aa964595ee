#pragma once
// Packets → bytes. Appends to a caller-owned buffer so a connection can coalesce
// many packets into one write. Encodes only what `version` can carry: properties,
// reason codes on acks and DISCONNECT/AUTH are dropped for 3.1/3.1.1.

#include <string>

#include "broker/codec/packets.h"

namespace gannet::codec {

// Appends the encoding of `packet` for a peer speaking `version` to `out`.
void encode(const Packet& packet, ProtocolVersion version, std::string& out);

// The same for the types the data path sends most, without the variant.
void encodePublish(const PublishPacket& packet, ProtocolVersion version, std::string& out);
void encodePubAck(const PubAckPacket& packet, ProtocolVersion version, std::string& out);
// PUBACK / PUBREC / PUBREL / PUBCOMP without properties: the bytes encodePubAck
// writes for it, without building the packet (one per QoS >= 1 message).
void encodeAck(PacketType type, uint16_t packet_id, ReasonCode reason_code, ProtocolVersion version,
               std::string& out);

// Appends a variable byte integer (§1.5.5). Returns the number of bytes written.
int appendVarInt(uint32_t value, std::string& out);

}  // namespace gannet::codec
