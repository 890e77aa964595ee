#include "broker/codec/decoder.h"

#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "broker/codec/errors.h"
#include "broker/codec/properties.h"
#include "broker/codec/wire.h"

// Which reason code a failure carries. Where the specification names one it is
// used and cited. Where it only says a sender MUST NOT do something, the definitions
// of §1.2 decide: a packet that "cannot be parsed" (lengths, encodings, reserved
// bits) is a Malformed Packet; one that parses but holds "data that is not allowed
// by the protocol" (a packet id of 0, a wildcard in a topic name) is a Protocol
// Error. Both close the connection (§4.13); only the DISCONNECT reason differs.

namespace gannet::codec {
namespace {

using wire::Reader;

bool isV5(ProtocolVersion v) { return v == ProtocolVersion::kV5; }

absl::Status expectEnd(const Reader& r, const char* packet) {
  if (r.empty()) return absl::OkStatus();
  // The remaining length says the packet is longer than its fields.
  return malformed(absl::StrCat(packet, ": ", r.remaining(), " bytes after the last field"));
}

// §2.2.1: SUBSCRIBE, UNSUBSCRIBE and PUBLISH with QoS > 0 carry a non-zero Packet
// Identifier [MQTT-2.2.1-3], and their acknowledgements echo it.
absl::Status readPacketId(Reader& r, uint16_t& id) {
  RETURN_IF_ERROR(r.readU16(id, "packet identifier"));
  if (id == 0) return protocolError("packet identifier of 0");
  return absl::OkStatus();
}

// MQTT 5 reason codes each packet may carry (§3.2.2.2, §3.4.2.1, §3.5.2.1,
// §3.6.2.1, §3.7.2.1, §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1). Anything else parses
// but is not allowed: a Protocol Error.
bool isValidReason(PacketType type, uint8_t rc) {
  switch (type) {
    case PacketType::kConnack:
      return rc == 0x00 || (rc >= 0x80 && rc <= 0x8A) || rc == 0x8C || rc == 0x90 || rc == 0x95 ||
             rc == 0x97 || (rc >= 0x99 && rc <= 0x9D) || rc == 0x9F;
    case PacketType::kPuback:
    case PacketType::kPubrec:
      return rc == 0x00 || rc == 0x10 || rc == 0x80 || rc == 0x83 || rc == 0x87 || rc == 0x90 ||
             rc == 0x91 || rc == 0x97 || rc == 0x99;
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return rc == 0x00 || rc == 0x92;
    case PacketType::kSuback:
      return rc <= 0x02 || rc == 0x80 || rc == 0x83 || rc == 0x87 || rc == 0x8F || rc == 0x91 ||
             rc == 0x97 || rc == 0x9E || rc == 0xA1 || rc == 0xA2;
    case PacketType::kUnsuback:
      return rc == 0x00 || rc == 0x11 || rc == 0x80 || rc == 0x83 || rc == 0x87 || rc == 0x8F ||
             rc == 0x91;
    case PacketType::kDisconnect:
      return rc == 0x00 || rc == 0x04 || (rc >= 0x80 && rc <= 0x83) || rc == 0x87 || rc == 0x89 ||
             rc == 0x8B || (rc >= 0x8D && rc <= 0x90) || (rc >= 0x93 && rc <= 0xA2);
    case PacketType::kAuth:
      return rc == 0x00 || rc == 0x18 || rc == 0x19;
    default:
      return false;
  }
}

absl::Status readReason(Reader& r, PacketType type, uint8_t& rc) {
  RETURN_IF_ERROR(r.readU8(rc, "reason code"));
  if (!isValidReason(type, rc)) {
    return protocolError(absl::StrCat("reason code 0x", absl::Hex(rc), " not allowed here"));
  }
  return absl::OkStatus();
}

// A SUBSCRIBE / UNSUBSCRIBE topic filter (§4.7), which may name a shared
// subscription "$share/{ShareName}/{filter}" (MQTT 5 §4.8.2): the ShareName is at
// least one character without '/', '+' or '#' [MQTT-4.8.2-1], followed by '/' and a
// Topic Filter [MQTT-4.8.2-2].
absl::Status checkFilter(std::string_view filter, bool& shared) {
  constexpr std::string_view kSharePrefix = "$share/";
  shared = filter.substr(0, kSharePrefix.size()) == kSharePrefix;
  if (shared) {
    std::string_view rest = filter.substr(kSharePrefix.size());
    const size_t slash = rest.find('/');
    if (slash == 0 || slash == std::string_view::npos) {
      return protocolError("shared subscription without a share name and filter");
    }
    if (rest.substr(0, slash).find_first_of("+#") != std::string_view::npos) {
      return protocolError("wildcard in a share name");
    }
    filter = rest.substr(slash + 1);
  }
  if (!isValidTopicFilter(filter)) return protocolError("invalid topic filter");
  return absl::OkStatus();
}

absl::Status decodeConnect(Reader& r, uint8_t flags, ConnectPacket& p) {
  // §3.1.2.1 / §3.1.2.2: "MQTT" with level 4 (3.1.1) or 5, or 3.1's "MQIsdp" with
  // level 3. A wrong name is not MQTT at all: malformed, closed without CONNACK
  // [MQTT-3.1.2-1]. A known name with another level gets 0x84 / return code 1.
  std::string_view name;
  uint8_t level = 0;
  RETURN_IF_ERROR(r.readBinary(name, "protocol name"));
  RETURN_IF_ERROR(r.readU8(level, "protocol level"));
  if (name == "MQTT" && (level == 4 || level == 5)) {
    p.version = static_cast<ProtocolVersion>(level);
  } else if (name == "MQIsdp" && level == 3) {
    p.version = ProtocolVersion::kV31;
  } else if (name != "MQTT" && name != "MQIsdp") {
    return malformed("CONNECT: unknown protocol name");
  } else {
    return codecError(ReasonCode::kUnsupportedProtocolVersion,
                      absl::StrCat("unsupported protocol level ", level));
  }
  const bool v5 = isV5(p.version);
  const bool v31 = p.version == ProtocolVersion::kV31;
  // §2.1.3: the CONNECT flags nibble is reserved as 0. MQTT 3.1 left it unused and
  // clients set QoS bits there, so 3.1 is not held to it.
  if (!v31 && flags != 0) return malformed("CONNECT: reserved fixed header flags set");

  uint8_t cf = 0;
  RETURN_IF_ERROR(r.readU8(cf, "connect flags"));
  // §3.1.2.3: "The Server MUST validate that the reserved flag in the CONNECT
  // packet is set to 0 [MQTT-3.1.2-3]. If the reserved flag is not 0 it is a
  // Malformed Packet." (3.1 did not reserve it.)
  if (!v31 && (cf & 0x01) != 0) return malformed("CONNECT: reserved connect flag set");
  const bool will = (cf & 0x04) != 0;
  const uint8_t will_qos = (cf >> 3) & 0x03;
  const bool will_retain = (cf & 0x20) != 0;
  const bool has_password = (cf & 0x40) != 0;
  const bool has_username = (cf & 0x80) != 0;
  p.clean_start = (cf & 0x02) != 0;
  // §3.1.2.6 / §3.1.2.7: without a will, Will QoS and Will Retain are 0
  // [MQTT-3.1.2-11] [MQTT-3.1.2-13].
  if (!will && (will_qos != 0 || will_retain)) {
    return malformed("CONNECT: will QoS or will retain set without the will flag");
  }
  // §3.1.2.6: "A value of 3 (0x03) is a Malformed Packet."
  if (will_qos == 3) return malformed("CONNECT: will QoS 3");
  // 3.1.1 §3.1.2.9: "If the User Name Flag is set to 0, the Password Flag MUST be
  // set to 0" [MQTT-3.1.2-22]. MQTT 5 dropped the rule (§3.1.2.9).
  if (!v5 && has_password && !has_username) {
    return protocolError("CONNECT: password flag without user name flag");
  }
  RETURN_IF_ERROR(r.readU16(p.keep_alive, "keep alive"));
  if (v5) RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kConnect), p.properties));

  std::string_view client_id;
  RETURN_IF_ERROR(r.readUtf8(client_id, "client identifier"));
  p.client_id.assign(client_id);

  if (will) {
    Will& w = p.will.emplace();
    w.qos = will_qos;
    w.retain = will_retain;
    if (v5) RETURN_IF_ERROR(props::read(r, props::kWill, w.properties));
    std::string_view topic, payload;
    RETURN_IF_ERROR(r.readUtf8(topic, "will topic"));
    // §3.1.3.3: the Will Topic is published like any PUBLISH topic, so it is a
    // Topic Name: non-empty, no wildcards.
    if (!isValidTopicName(topic)) return protocolError("CONNECT: invalid will topic");
    RETURN_IF_ERROR(r.readBinary(payload, "will payload"));
    w.topic.assign(topic);
    w.payload.assign(payload);
  }
  if (has_username) {
    std::string_view username;
    RETURN_IF_ERROR(r.readUtf8(username, "user name"));
    p.username.emplace(username);
  }
  if (has_password) {
    std::string_view password;
    RETURN_IF_ERROR(r.readBinary(password, "password"));
    p.password.emplace(password);
  }
  return expectEnd(r, "CONNECT");
}

absl::Status decodeConnack(Reader& r, ProtocolVersion v, ConnackPacket& p) {
  uint8_t ack_flags = 0;
  RETURN_IF_ERROR(r.readU8(ack_flags, "connect acknowledge flags"));
  RETURN_IF_ERROR(r.readU8(p.reason_code, "connect reason code"));
  if (v != ProtocolVersion::kV31) {
    // §3.2.2.1: bits 7-1 are reserved and set to 0 [MQTT-3.2.2-1]. (3.1 left the
    // whole byte unused and had no session present flag.)
    if ((ack_flags & 0xFE) != 0) return malformed("CONNACK: reserved flags set");
    p.session_present = (ack_flags & 0x01) != 0;
  }
  if (isV5(v)) {
    if (!isValidReason(PacketType::kConnack, p.reason_code)) {
      return protocolError("CONNACK: reason code not allowed");
    }
    RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kConnack), p.properties));
  } else if (p.reason_code > 5) {
    // 3.1.1 §3.2.2.3 Table 3.1: return codes 6-255 are reserved.
    return protocolError("CONNACK: reserved return code");
  }
  // 3.1.1 [MQTT-3.2.2-4] / 5 [MQTT-3.2.2-6]: a refusal has Session Present 0.
  if (p.session_present && p.reason_code != 0) {
    return protocolError("CONNACK: session present on a refused connection");
  }
  return expectEnd(r, "CONNACK");
}

absl::Status decodePublish(Reader& r, uint8_t flags, ProtocolVersion v, PublishPacket& p) {
  p.dup = (flags & 0x08) != 0;
  p.qos = (flags >> 1) & 0x03;
  p.retain = (flags & 0x01) != 0;
  // §3.3.1.2: "If a Server or Client receives a PUBLISH packet which has both QoS
  // bits set to 1 it is a Malformed Packet."
  if (p.qos == 3) return malformed("PUBLISH: QoS 3");
  // §3.3.1.1: "The DUP flag MUST be set to 0 for all QoS 0 messages"
  // [MQTT-3.3.1-2]: a bad fixed header flag.
  if (p.dup && p.qos == 0) return malformed("PUBLISH: DUP set on QoS 0");

  std::string_view topic;
  RETURN_IF_ERROR(r.readUtf8(topic, "topic name"));
  if (p.qos > 0) RETURN_IF_ERROR(readPacketId(r, p.packet_id));
  if (isV5(v)) {
    RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kPublish), p.properties));
  }

  if (topic.empty()) {
    // MQTT 5 §3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and
    // there is no Topic Alias." 3.1.1 has no aliases: every topic is non-empty
    // [MQTT-4.7.3-1].
    if (!p.properties.topic_alias.has_value()) return protocolError("PUBLISH: empty topic");
  } else if (topic.find_first_of("+#") != std::string_view::npos) {
    // §3.3.2.1: "The Topic Name in the PUBLISH packet MUST NOT contain wildcard
    // characters" [MQTT-3.3.2-2].
    return protocolError("PUBLISH: wildcard in topic name");
  }
  p.topic.assign(topic);
  // §3.3.3: the payload is the rest of the packet, possibly empty.
  const std::string_view payload = r.readRest();
  p.payload.assign(payload);
  return absl::OkStatus();
}

// PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4-§3.7).
absl::Status decodePubAck(Reader& r, PacketType type, ProtocolVersion v, PubAckPacket& p) {
  p.type = type;
  RETURN_IF_ERROR(readPacketId(r, p.packet_id));
  // 3.1.1: exactly the packet identifier (remaining length 2).
  if (!isV5(v) || r.empty()) return expectEnd(r, "PUBACK");
  // MQTT 5 §3.4.2.1: "The Reason Code and Property Length can be omitted if the
  // Reason Code is 0x00 (Success) and there are no Properties."
  uint8_t rc = 0;
  RETURN_IF_ERROR(readReason(r, type, rc));
  p.reason_code = static_cast<ReasonCode>(rc);
  // §3.4.2.2.1: "If the Remaining Length is less than 4 there is no Property
  // Length and the value of 0 is used."
  if (r.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(props::read(r, props::contextOf(type), p.properties));
  return expectEnd(r, "PUBACK");
}

absl::Status decodeSubscribe(Reader& r, ProtocolVersion v, SubscribePacket& p) {
  const bool v5 = isV5(v);
  RETURN_IF_ERROR(readPacketId(r, p.packet_id));
  if (v5) RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kSubscribe), p.properties));
  // §3.8.3: "The Payload MUST contain at least one Topic Filter and Subscription
  // Options pair [MQTT-3.8.3-2]. A SUBSCRIBE packet with no Payload is a Protocol
  // Error."
  if (r.empty()) return protocolError("SUBSCRIBE: no topic filters");
  while (!r.empty()) {
    std::string_view filter;
    uint8_t options = 0;
    RETURN_IF_ERROR(r.readUtf8(filter, "topic filter"));
    RETURN_IF_ERROR(r.readU8(options, "subscription options"));
    SubscriptionRequest& s = p.subscriptions.emplace_back();
    s.qos = options & 0x03;
    if (v5) {
      // §3.8.3.1: "The Server MUST treat a SUBSCRIBE packet as malformed if any of
      // Reserved bits in the Payload are non-zero [MQTT-3.8.3-5]."
      if ((options & 0xC0) != 0) return malformed("SUBSCRIBE: reserved option bits set");
      // §3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
      if (s.qos == 3) return protocolError("SUBSCRIBE: QoS 3");
      s.no_local = (options & 0x04) != 0;
      s.retain_as_published = (options & 0x08) != 0;
      s.retain_handling = (options >> 4) & 0x03;
      // §3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
      if (s.retain_handling == 3) return protocolError("SUBSCRIBE: retain handling 3");
    } else if ((options & 0xFC) != 0 || s.qos == 3) {
      // 3.1.1 §3.8.3.1: reserved bits non-zero or QoS not 0, 1 or 2 is malformed
      // [MQTT-3-8.3-4].
      return malformed("SUBSCRIBE: invalid requested QoS byte");
    }
    bool shared = false;
    RETURN_IF_ERROR(checkFilter(filter, shared));
    // §3.8.3.1: "It is a Protocol Error to set the No Local bit to 1 on a Shared
    // Subscription [MQTT-3.8.3-4]."
    if (shared && s.no_local) return protocolError("SUBSCRIBE: no local on a shared subscription");
    s.filter.assign(filter);
  }
  return absl::OkStatus();
}

absl::Status decodeSuback(Reader& r, ProtocolVersion v, SubackPacket& p) {
  const bool v5 = isV5(v);
  RETURN_IF_ERROR(readPacketId(r, p.packet_id));
  if (v5) RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kSuback), p.properties));
  // §3.9.3: one reason code per topic filter of the SUBSCRIBE, which has at least one.
  if (r.empty()) return protocolError("SUBACK: no reason codes");
  p.reason_codes.reserve(r.remaining());
  while (!r.empty()) {
    uint8_t rc = 0;
    RETURN_IF_ERROR(r.readU8(rc, "SUBACK reason code"));
    // 3.1.1 §3.9.3: 0x00, 0x01, 0x02 or 0x80 [MQTT-3.9.3-2].
    const bool valid = v5 ? isValidReason(PacketType::kSuback, rc) : (rc <= 2 || rc == 0x80);
    if (!valid) return protocolError("SUBACK: reason code not allowed");
    p.reason_codes.push_back(rc);
  }
  return absl::OkStatus();
}

absl::Status decodeUnsubscribe(Reader& r, ProtocolVersion v, UnsubscribePacket& p) {
  RETURN_IF_ERROR(readPacketId(r, p.packet_id));
  if (isV5(v)) {
    RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kUnsubscribe), p.properties));
  }
  // §3.10.3: "The Payload of an UNSUBSCRIBE packet MUST contain at least one Topic
  // Filter [MQTT-3.10.3-2]. An UNSUBSCRIBE packet with no Payload is a Protocol
  // Error."
  if (r.empty()) return protocolError("UNSUBSCRIBE: no topic filters");
  while (!r.empty()) {
    std::string_view filter;
    RETURN_IF_ERROR(r.readUtf8(filter, "topic filter"));
    bool shared = false;
    RETURN_IF_ERROR(checkFilter(filter, shared));
    p.filters.emplace_back(filter);
  }
  return absl::OkStatus();
}

absl::Status decodeUnsuback(Reader& r, ProtocolVersion v, UnsubackPacket& p) {
  RETURN_IF_ERROR(readPacketId(r, p.packet_id));
  // 3.1.1 §3.11: the packet identifier only.
  if (!isV5(v)) return expectEnd(r, "UNSUBACK");
  RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kUnsuback), p.properties));
  // §3.11.3: one reason code per topic filter of the UNSUBSCRIBE.
  if (r.empty()) return protocolError("UNSUBACK: no reason codes");
  p.reason_codes.reserve(r.remaining());
  while (!r.empty()) {
    uint8_t rc = 0;
    RETURN_IF_ERROR(readReason(r, PacketType::kUnsuback, rc));
    p.reason_codes.push_back(rc);
  }
  return absl::OkStatus();
}

absl::Status decodeDisconnect(Reader& r, ProtocolVersion v, DisconnectPacket& p) {
  // 3.1.1 §3.14: no variable header, no payload.
  if (!isV5(v) || r.empty()) return expectEnd(r, "DISCONNECT");
  // MQTT 5 §3.14.2.1: "If the Remaining Length is less than 1 the value of 0x00
  // (Normal disconnection) is used"; §3.14.2.2.1: "If the Remaining Length is less
  // than 2, a value of 0 is used" for the Property Length.
  uint8_t rc = 0;
  RETURN_IF_ERROR(readReason(r, PacketType::kDisconnect, rc));
  p.reason_code = static_cast<ReasonCode>(rc);
  if (r.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kDisconnect), p.properties));
  return expectEnd(r, "DISCONNECT");
}

absl::Status decodeAuth(Reader& r, AuthPacket& p) {
  // §3.15.2.1: "The Reason Code and Property Length can be omitted if the Reason
  // Code is 0x00 (Success) and there are no Properties. In this case the AUTH has a
  // Remaining Length of 0." Otherwise both are present.
  if (r.empty()) return absl::OkStatus();
  uint8_t rc = 0;
  RETURN_IF_ERROR(readReason(r, PacketType::kAuth, rc));
  p.reason_code = static_cast<ReasonCode>(rc);
  RETURN_IF_ERROR(props::read(r, props::contextOf(PacketType::kAuth), p.properties));
  return expectEnd(r, "AUTH");
}

// Builds the packet in place inside the returned StatusOr (one object, no move of
// the variant), then replaces it with the error if decoding fails.
template <typename T, typename Fn>
absl::StatusOr<Packet> decodeAs(Fn&& fn) {
  absl::StatusOr<Packet> result(absl::in_place, std::in_place_type<T>);
  absl::Status status = fn(std::get<T>(*result));
  if (!status.ok()) result = std::move(status);
  return result;
}

// §2.1.3 Table 2-2: the flags nibble each packet type must carry; -1 for PUBLISH
// (DUP, QoS, RETAIN: checked in decodePublish) and CONNECT (checked once its
// protocol level is known).
int requiredFlags(PacketType type) {
  switch (type) {
    case PacketType::kPublish:
    case PacketType::kConnect:
      return -1;
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      return 0x2;
    default:
      return 0x0;
  }
}

}  // namespace

absl::StatusOr<std::optional<FrameHeader>> peekFrame(std::string_view buffer) {
  const auto* p = reinterpret_cast<const uint8_t*>(buffer.data());
  // §2.1.4: the Remaining Length is a Variable Byte Integer in bytes 1..4.
  uint32_t value = 0;
  for (size_t i = 1; i <= 4; ++i) {
    if (i >= buffer.size()) return std::optional<FrameHeader>();
    const uint8_t b = p[i];
    value |= uint32_t{static_cast<uint8_t>(b & 0x7F)} << (7 * (i - 1));
    if ((b & 0x80) == 0) {
      // §1.5.5: "The encoded value MUST use the minimum number of bytes necessary
      // to represent the value" [MQTT-1.5.5-1].
      if (b == 0 && i > 1) return malformed("remaining length not in its shortest form");
      FrameHeader header;
      header.first_byte = p[0];
      header.remaining_length = value;
      header.header_length = static_cast<uint8_t>(i + 1);
      return std::optional<FrameHeader>(header);
    }
  }
  return malformed("remaining length longer than 4 bytes");
}

absl::StatusOr<Packet> decodePacket(const FrameHeader& header, std::string_view packet,
                                    ProtocolVersion version) {
  if (header.header_length < 2 || header.header_length > 5 ||
      packet.size() != header.totalLength()) {
    return malformed("packet bytes do not match the frame header");
  }
  Reader r(packet.substr(header.header_length));
  const PacketType type = header.type();
  const uint8_t flags = header.flags();
  const bool v5 = isV5(version);

  // §2.1.2: type 0 is reserved; 15 (AUTH) exists only in MQTT 5.
  if (type == PacketType{0} || (type == PacketType::kAuth && !v5)) {
    return malformed(absl::StrCat("reserved packet type ", static_cast<int>(type)));
  }
  // §2.1.3: "If invalid flags are received it is a Malformed Packet." MQTT 3.1
  // used the same nibble for DUP and QoS on every packet, so 3.1 peers are only
  // held to the PUBLISH rules.
  const int required = requiredFlags(type);
  if (required >= 0 && flags != required && version != ProtocolVersion::kV31) {
    return malformed(absl::StrCat("invalid fixed header flags 0x", absl::Hex(flags),
                                  " for packet type ", static_cast<int>(type)));
  }

  switch (type) {
    case PacketType::kConnect:
      return decodeAs<ConnectPacket>([&](ConnectPacket& p) { return decodeConnect(r, flags, p); });
    case PacketType::kConnack:
      return decodeAs<ConnackPacket>(
          [&](ConnackPacket& p) { return decodeConnack(r, version, p); });
    case PacketType::kPublish:
      return decodeAs<PublishPacket>(
          [&](PublishPacket& p) { return decodePublish(r, flags, version, p); });
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return decodeAs<PubAckPacket>(
          [&](PubAckPacket& p) { return decodePubAck(r, type, version, p); });
    case PacketType::kSubscribe:
      return decodeAs<SubscribePacket>(
          [&](SubscribePacket& p) { return decodeSubscribe(r, version, p); });
    case PacketType::kSuback:
      return decodeAs<SubackPacket>([&](SubackPacket& p) { return decodeSuback(r, version, p); });
    case PacketType::kUnsubscribe:
      return decodeAs<UnsubscribePacket>(
          [&](UnsubscribePacket& p) { return decodeUnsubscribe(r, version, p); });
    case PacketType::kUnsuback:
      return decodeAs<UnsubackPacket>(
          [&](UnsubackPacket& p) { return decodeUnsuback(r, version, p); });
    case PacketType::kPingreq:
      RETURN_IF_ERROR(expectEnd(r, "PINGREQ"));
      return Packet(PingreqPacket{});
    case PacketType::kPingresp:
      RETURN_IF_ERROR(expectEnd(r, "PINGRESP"));
      return Packet(PingrespPacket{});
    case PacketType::kDisconnect:
      return decodeAs<DisconnectPacket>(
          [&](DisconnectPacket& p) { return decodeDisconnect(r, version, p); });
    case PacketType::kAuth:
      return decodeAs<AuthPacket>([&](AuthPacket& p) { return decodeAuth(r, p); });
  }
  return malformed("unknown packet type");  // unreachable: the type is 4 bits
}

}  // namespace gannet::codec
