#include "broker/codec/encoder.h"

#include <string_view>
#include <variant>

#include "base/assert.h"
#include "broker/codec/properties.h"
#include "broker/codec/wire.h"

// Every packet is encoded in one pass: its remaining length is computed from the
// fields first, the output grows once by the exact size, and the bytes are written
// in place. Callers own the validity of what they hand in (strings of at most 65,535
// bytes, packet ids non-zero where needed, a topic or a topic alias); the encoder
// only drops what the peer's version cannot carry.
//
// CONNECT is encoded for `version` like every other packet (protocol name and
// level included); ConnectPacket::version is what the decoder read and is not
// consulted here.

namespace gannet::codec {
namespace {

using wire::Writer;

bool isV5(ProtocolVersion v) { return v == ProtocolVersion::kV5; }

uint8_t firstByte(PacketType type, uint8_t flags) {
  return static_cast<uint8_t>(static_cast<uint8_t>(type) << 4 | flags);
}

// A property block with its length prefix.
size_t blockSize(size_t props) { return wire::varIntSize(static_cast<uint32_t>(props)) + props; }

// Appends the fixed header and a body of exactly `body` bytes written by `fn`.
template <typename Fn>
void emit(std::string& out, uint8_t first_byte, size_t body, Fn&& fn) {
  GANNET_ASSERT(body <= wire::kMaxVarInt, "packet exceeds the maximum remaining length");
  const size_t start = out.size();
  out.resize(start + 1 + wire::varIntSize(static_cast<uint32_t>(body)) + body);
  Writer w(out.data() + start);
  w.u8(first_byte);
  w.varInt(static_cast<uint32_t>(body));
  fn(w);
  GANNET_ASSERT(w.position() == out.data() + out.size(), "encoded size differs from computed");
}

void encodeConnect(const ConnectPacket& p, ProtocolVersion version, std::string& out) {
  const bool v5 = isV5(version);
  // §3.1.2.1: "MQTT"; MQTT 3.1 used "MQIsdp" with level 3.
  const std::string_view name = version == ProtocolVersion::kV31 ? "MQIsdp" : "MQTT";
  const uint8_t connect = props::contextOf(PacketType::kConnect);
  const size_t props = v5 ? props::size(p.properties, connect) : 0;
  const size_t will_props = v5 && p.will ? props::size(p.will->properties, props::kWill) : 0;

  size_t body = 2 + name.size() + 1 + 1 + 2 + 2 + p.client_id.size();
  if (v5) body += blockSize(props);
  if (p.will) {
    body += 2 + p.will->topic.size() + 2 + p.will->payload.size();
    if (v5) body += blockSize(will_props);
  }
  if (p.username) body += 2 + p.username->size();
  if (p.password) body += 2 + p.password->size();

  // §3.1.2.3 Figure 3-4.
  uint8_t flags = p.clean_start ? 0x02 : 0x00;
  if (p.will) {
    flags |= 0x04 | static_cast<uint8_t>((p.will->qos & 0x03) << 3);
    if (p.will->retain) flags |= 0x20;
  }
  if (p.password) flags |= 0x40;
  if (p.username) flags |= 0x80;

  emit(out, firstByte(PacketType::kConnect, 0), body, [&](Writer& w) {
    w.lengthPrefixed(name);
    w.u8(static_cast<uint8_t>(version));
    w.u8(flags);
    w.u16(p.keep_alive);
    if (v5) props::write(w, p.properties, connect, props);
    w.lengthPrefixed(p.client_id);
    if (p.will) {
      if (v5) props::write(w, p.will->properties, props::kWill, will_props);
      w.lengthPrefixed(p.will->topic);
      w.lengthPrefixed(p.will->payload);
    }
    if (p.username) w.lengthPrefixed(*p.username);
    if (p.password) w.lengthPrefixed(*p.password);
  });
}

void encodeConnack(const ConnackPacket& p, ProtocolVersion version, std::string& out) {
  const bool v5 = isV5(version);
  const uint8_t connack = props::contextOf(PacketType::kConnack);
  const size_t props = v5 ? props::size(p.properties, connack) : 0;
  const size_t body = 2 + (v5 ? blockSize(props) : 0);
  // MQTT 3.1 had no Session Present flag: its first byte is unused.
  const bool session_present = p.session_present && version != ProtocolVersion::kV31;
  emit(out, firstByte(PacketType::kConnack, 0), body, [&](Writer& w) {
    w.u8(session_present ? 0x01 : 0x00);
    // 3.1/3.1.1: the return code as given (see connackReturnCodeV3 in errors.h).
    w.u8(p.reason_code);
    if (v5) props::write(w, p.properties, connack, props);
  });
}

void encodeSubscribe(const SubscribePacket& p, ProtocolVersion version, std::string& out) {
  const bool v5 = isV5(version);
  const uint8_t subscribe = props::contextOf(PacketType::kSubscribe);
  const size_t props = v5 ? props::size(p.properties, subscribe) : 0;
  size_t body = 2 + (v5 ? blockSize(props) : 0);
  for (const SubscriptionRequest& s : p.subscriptions) body += 2 + s.filter.size() + 1;
  // §3.8.1: flags 0,0,1,0.
  emit(out, firstByte(PacketType::kSubscribe, 0x02), body, [&](Writer& w) {
    w.u16(p.packet_id);
    if (v5) props::write(w, p.properties, subscribe, props);
    for (const SubscriptionRequest& s : p.subscriptions) {
      w.lengthPrefixed(s.filter);
      uint8_t options = s.qos & 0x03;
      // §3.8.3.1 Figure 3-21; 3.1/3.1.1 have the QoS bits only.
      if (v5) {
        if (s.no_local) options |= 0x04;
        if (s.retain_as_published) options |= 0x08;
        options |= static_cast<uint8_t>((s.retain_handling & 0x03) << 4);
      }
      w.u8(options);
    }
  });
}

void encodeSuback(const SubackPacket& p, ProtocolVersion version, std::string& out) {
  const bool v5 = isV5(version);
  const uint8_t suback = props::contextOf(PacketType::kSuback);
  const size_t props = v5 ? props::size(p.properties, suback) : 0;
  const size_t body = 2 + (v5 ? blockSize(props) : 0) + p.reason_codes.size();
  emit(out, firstByte(PacketType::kSuback, 0), body, [&](Writer& w) {
    w.u16(p.packet_id);
    if (v5) props::write(w, p.properties, suback, props);
    for (uint8_t rc : p.reason_codes) {
      // 3.1.1 §3.9.3: granted QoS 0, 1, 2 or 0x80 Failure; every MQTT 5 refusal
      // reads as Failure.
      w.u8(v5 || rc <= 0x02 ? rc : 0x80);
    }
  });
}

void encodeUnsubscribe(const UnsubscribePacket& p, ProtocolVersion version, std::string& out) {
  const bool v5 = isV5(version);
  const uint8_t unsubscribe = props::contextOf(PacketType::kUnsubscribe);
  const size_t props = v5 ? props::size(p.properties, unsubscribe) : 0;
  size_t body = 2 + (v5 ? blockSize(props) : 0);
  for (const std::string& f : p.filters) body += 2 + f.size();
  // §3.10.1: flags 0,0,1,0.
  emit(out, firstByte(PacketType::kUnsubscribe, 0x02), body, [&](Writer& w) {
    w.u16(p.packet_id);
    if (v5) props::write(w, p.properties, unsubscribe, props);
    for (const std::string& f : p.filters) w.lengthPrefixed(f);
  });
}

void encodeUnsuback(const UnsubackPacket& p, ProtocolVersion version, std::string& out) {
  const bool v5 = isV5(version);
  const uint8_t unsuback = props::contextOf(PacketType::kUnsuback);
  // 3.1.1 §3.11: the packet identifier only.
  const size_t props = v5 ? props::size(p.properties, unsuback) : 0;
  const size_t body = 2 + (v5 ? blockSize(props) + p.reason_codes.size() : 0);
  emit(out, firstByte(PacketType::kUnsuback, 0), body, [&](Writer& w) {
    w.u16(p.packet_id);
    if (!v5) return;
    props::write(w, p.properties, unsuback, props);
    for (uint8_t rc : p.reason_codes) w.u8(rc);
  });
}

void encodeEmpty(PacketType type, std::string& out) {
  out.push_back(static_cast<char>(firstByte(type, 0)));
  out.push_back('\0');
}

void encodeDisconnect(const DisconnectPacket& p, ProtocolVersion version, std::string& out) {
  const uint8_t disconnect = props::contextOf(PacketType::kDisconnect);
  const size_t props = isV5(version) ? props::size(p.properties, disconnect) : 0;
  // 3.1.1 §3.14: no variable header. MQTT 5 §3.14.2.1: the reason code may be left
  // out for Normal disconnection without properties.
  if (!isV5(version) || (props == 0 && p.reason_code == ReasonCode::kSuccess)) {
    encodeEmpty(PacketType::kDisconnect, out);
    return;
  }
  // §3.14.2.2.1: with no properties the Property Length may be left out too.
  const size_t body = 1 + (props == 0 ? 0 : blockSize(props));
  emit(out, firstByte(PacketType::kDisconnect, 0), body, [&](Writer& w) {
    w.u8(static_cast<uint8_t>(p.reason_code));
    if (props != 0) props::write(w, p.properties, disconnect, props);
  });
}

void encodeAuth(const AuthPacket& p, ProtocolVersion version, std::string& out) {
  // AUTH exists only in MQTT 5; there is nothing to send to an older peer.
  if (!isV5(version)) return;
  const uint8_t auth = props::contextOf(PacketType::kAuth);
  const size_t props = props::size(p.properties, auth);
  // §3.15.2.1: Success without properties may be sent as a bare fixed header;
  // otherwise the reason code and the property length are both present.
  if (props == 0 && p.reason_code == ReasonCode::kSuccess) {
    encodeEmpty(PacketType::kAuth, out);
    return;
  }
  emit(out, firstByte(PacketType::kAuth, 0), 1 + blockSize(props), [&](Writer& w) {
    w.u8(static_cast<uint8_t>(p.reason_code));
    props::write(w, p.properties, auth, props);
  });
}

}  // namespace

int appendVarInt(uint32_t value, std::string& out) {
  GANNET_ASSERT(value <= wire::kMaxVarInt, "variable byte integer out of range");
  const int n = wire::varIntSize(value);
  const size_t start = out.size();
  out.resize(start + n);
  Writer w(out.data() + start);
  w.varInt(value);
  return n;
}

void encodePublish(const PublishPacket& p, ProtocolVersion version, std::string& out) {
  const bool v5 = isV5(version);
  const uint8_t publish = props::contextOf(PacketType::kPublish);
  const size_t props = v5 ? props::size(p.properties, publish) : 0;
  const size_t body =
      2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + (v5 ? blockSize(props) : 0) + p.payload.size();
  // §3.3.1: DUP, QoS, RETAIN in the flags nibble.
  const uint8_t flags =
      static_cast<uint8_t>((p.dup ? 0x08 : 0) | (p.qos & 0x03) << 1 | (p.retain ? 0x01 : 0));
  emit(out, firstByte(PacketType::kPublish, flags), body, [&](Writer& w) {
    w.lengthPrefixed(p.topic);
    if (p.qos > 0) w.u16(p.packet_id);
    if (v5) props::write(w, p.properties, publish, props);
    w.bytes(p.payload);
  });
}

void encodePubAck(const PubAckPacket& p, ProtocolVersion version, std::string& out) {
  // §3.6.1: PUBREL's flags are 0,0,1,0; the other three have 0.
  const uint8_t first = firstByte(p.type, p.type == PacketType::kPubrel ? 0x02 : 0x00);
  const auto rc = static_cast<uint8_t>(p.reason_code);
  const uint8_t context = props::contextOf(p.type);
  const size_t props = isV5(version) ? props::size(p.properties, context) : 0;
  // 3.1.1: the packet identifier only. MQTT 5 §3.4.2.1: the same short form when
  // the reason is Success and there are no properties; §3.4.2.2.1: a reason code
  // without a property length when there are none.
  const size_t body = !isV5(version) || (props == 0 && rc == 0) ? 2
                      : props == 0                              ? 3
                                                                : 3 + blockSize(props);
  emit(out, first, body, [&](Writer& w) {
    w.u16(p.packet_id);
    if (body >= 3) w.u8(rc);
    if (body > 3) props::write(w, p.properties, context, props);
  });
}

void encodeAck(PacketType type, uint16_t packet_id, ReasonCode reason_code, ProtocolVersion version,
               std::string& out) {
  const auto rc = static_cast<uint8_t>(reason_code);
  const bool with_rc = isV5(version) && rc != 0;  // as in encodePubAck, with no properties
  char bytes[5] = {static_cast<char>(firstByte(type, type == PacketType::kPubrel ? 0x02 : 0x00)),
                   static_cast<char>(with_rc ? 3 : 2), static_cast<char>(packet_id >> 8),
                   static_cast<char>(packet_id & 0xFF), static_cast<char>(rc)};
  out.append(bytes, with_rc ? 5 : 4);
}

void encode(const Packet& packet, ProtocolVersion version, std::string& out) {
  struct Visitor {
    ProtocolVersion version;
    std::string& out;
    void operator()(const ConnectPacket& p) { encodeConnect(p, version, out); }
    void operator()(const ConnackPacket& p) { encodeConnack(p, version, out); }
    void operator()(const PublishPacket& p) { encodePublish(p, version, out); }
    void operator()(const PubAckPacket& p) { encodePubAck(p, version, out); }
    void operator()(const SubscribePacket& p) { encodeSubscribe(p, version, out); }
    void operator()(const SubackPacket& p) { encodeSuback(p, version, out); }
    void operator()(const UnsubscribePacket& p) { encodeUnsubscribe(p, version, out); }
    void operator()(const UnsubackPacket& p) { encodeUnsuback(p, version, out); }
    void operator()(const PingreqPacket&) { encodeEmpty(PacketType::kPingreq, out); }
    void operator()(const PingrespPacket&) { encodeEmpty(PacketType::kPingresp, out); }
    void operator()(const DisconnectPacket& p) { encodeDisconnect(p, version, out); }
    void operator()(const AuthPacket& p) { encodeAuth(p, version, out); }
  };
  std::visit(Visitor{version, out}, packet);
}

}  // namespace gannet::codec
