#include "broker/codec/properties.h"

#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "broker/codec/decoder.h"
#include "broker/codec/errors.h"

namespace gannet::codec::props {
namespace {

constexpr uint16_t bit(PacketType t) { return uint16_t{1} << static_cast<int>(t); }
constexpr uint16_t kWillBit = uint16_t{1} << kWill;
constexpr uint16_t kConnect = bit(PacketType::kConnect);
constexpr uint16_t kConnack = bit(PacketType::kConnack);
constexpr uint16_t kPublish = bit(PacketType::kPublish);
constexpr uint16_t kPubAcks = bit(PacketType::kPuback) | bit(PacketType::kPubrec) |
                              bit(PacketType::kPubrel) | bit(PacketType::kPubcomp);
constexpr uint16_t kSubscribe = bit(PacketType::kSubscribe);
constexpr uint16_t kSuback = bit(PacketType::kSuback);
constexpr uint16_t kUnsubscribe = bit(PacketType::kUnsubscribe);
constexpr uint16_t kUnsuback = bit(PacketType::kUnsuback);
constexpr uint16_t kDisconnect = bit(PacketType::kDisconnect);
constexpr uint16_t kAuth = bit(PacketType::kAuth);

enum Id : uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQos = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
  kIdLimit,
};

// MQTT 5 §2.2.2.2 Table 2-4: the packets (and will properties) each property may
// appear in. Zero marks an identifier the specification does not define.
constexpr auto kAllowed = [] {
  struct Table {
    uint16_t mask[kIdLimit] = {};
  } t;
  t.mask[kPayloadFormatIndicator] = kPublish | kWillBit;
  t.mask[kMessageExpiryInterval] = kPublish | kWillBit;
  t.mask[kContentType] = kPublish | kWillBit;
  t.mask[kResponseTopic] = kPublish | kWillBit;
  t.mask[kCorrelationData] = kPublish | kWillBit;
  t.mask[kSubscriptionIdentifier] = kPublish | kSubscribe;
  t.mask[kSessionExpiryInterval] = kConnect | kConnack | kDisconnect;
  t.mask[kAssignedClientIdentifier] = kConnack;
  t.mask[kServerKeepAlive] = kConnack;
  t.mask[kAuthenticationMethod] = kConnect | kConnack | kAuth;
  t.mask[kAuthenticationData] = kConnect | kConnack | kAuth;
  t.mask[kRequestProblemInformation] = kConnect;
  t.mask[kWillDelayInterval] = kWillBit;
  t.mask[kRequestResponseInformation] = kConnect;
  t.mask[kResponseInformation] = kConnack;
  t.mask[kServerReference] = kConnack | kDisconnect;
  t.mask[kReasonString] = kConnack | kPubAcks | kSuback | kUnsuback | kDisconnect | kAuth;
  t.mask[kReceiveMaximum] = kConnect | kConnack;
  t.mask[kTopicAliasMaximum] = kConnect | kConnack;
  t.mask[kTopicAlias] = kPublish;
  t.mask[kMaximumQos] = kConnack;
  t.mask[kRetainAvailable] = kConnack;
  t.mask[kUserProperty] = kConnect | kConnack | kPublish | kWillBit | kPubAcks | kSubscribe |
                          kSuback | kUnsubscribe | kUnsuback | kDisconnect | kAuth;
  t.mask[kMaximumPacketSize] = kConnect | kConnack;
  t.mask[kWildcardSubscriptionAvailable] = kConnack;
  t.mask[kSubscriptionIdentifierAvailable] = kConnack;
  t.mask[kSharedSubscriptionAvailable] = kConnack;
  return t;
}();

constexpr bool allowed(uint8_t id, uint16_t context_bit) {
  return (kAllowed.mask[id] & context_bit) != 0;
}

absl::Status duplicate(const char* name) {
  // Every single-instance property says so in its own section, e.g. §3.1.2.11.2:
  // "It is a Protocol Error to include the Session Expiry Interval more than once."
  return protocolError(absl::StrCat("duplicate property: ", name));
}

absl::Status readOnce(wire::Reader& r, std::optional<uint8_t>& field, const char* name,
                      bool zero_or_one) {
  if (field.has_value()) return duplicate(name);
  uint8_t v = 0;
  RETURN_IF_ERROR(r.readU8(v, name));
  // §3.1.2.11.6/7, §3.2.2.3.4/5/11/12/13, §3.3.2.3.2: these bytes are 0 or 1; any
  // other value is a Protocol Error.
  if (zero_or_one && v > 1) return protocolError(absl::StrCat(name, " must be 0 or 1"));
  field = v;
  return absl::OkStatus();
}

absl::Status readOnce(wire::Reader& r, std::optional<uint16_t>& field, const char* name,
                      bool non_zero) {
  if (field.has_value()) return duplicate(name);
  uint16_t v = 0;
  RETURN_IF_ERROR(r.readU16(v, name));
  if (non_zero && v == 0) return protocolError(absl::StrCat(name, " of 0"));
  field = v;
  return absl::OkStatus();
}

absl::Status readOnce(wire::Reader& r, std::optional<uint32_t>& field, const char* name,
                      bool non_zero) {
  if (field.has_value()) return duplicate(name);
  uint32_t v = 0;
  RETURN_IF_ERROR(r.readU32(v, name));
  if (non_zero && v == 0) return protocolError(absl::StrCat(name, " of 0"));
  field = v;
  return absl::OkStatus();
}

enum class Text { kUtf8, kBinary };

absl::Status readOnce(wire::Reader& r, std::optional<std::string>& field, const char* name,
                      Text text) {
  if (field.has_value()) return duplicate(name);
  std::string_view v;
  RETURN_IF_ERROR(text == Text::kUtf8 ? r.readUtf8(v, name) : r.readBinary(v, name));
  field.emplace(v);
  return absl::OkStatus();
}

// Calls the sink once per property `context_bit` may carry, in identifier order.
// size() and write() share it, so what is measured is exactly what is written.
template <typename Sink>
void visit(const Properties& p, uint16_t context_bit, Sink& sink) {
  auto on = [context_bit](uint8_t id) { return allowed(id, context_bit); };
  if (p.payload_format_indicator && on(kPayloadFormatIndicator)) {
    sink.byte(kPayloadFormatIndicator, *p.payload_format_indicator);
  }
  if (p.message_expiry_interval && on(kMessageExpiryInterval)) {
    sink.u32(kMessageExpiryInterval, *p.message_expiry_interval);
  }
  if (p.content_type && on(kContentType)) sink.str(kContentType, *p.content_type);
  if (p.response_topic && on(kResponseTopic)) sink.str(kResponseTopic, *p.response_topic);
  if (p.correlation_data && on(kCorrelationData)) {
    sink.str(kCorrelationData, *p.correlation_data);
  }
  if (on(kSubscriptionIdentifier)) {
    for (uint32_t id : p.subscription_identifiers) sink.varInt(kSubscriptionIdentifier, id);
  }
  if (p.session_expiry_interval && on(kSessionExpiryInterval)) {
    sink.u32(kSessionExpiryInterval, *p.session_expiry_interval);
  }
  if (p.assigned_client_identifier && on(kAssignedClientIdentifier)) {
    sink.str(kAssignedClientIdentifier, *p.assigned_client_identifier);
  }
  if (p.server_keep_alive && on(kServerKeepAlive)) {
    sink.u16(kServerKeepAlive, *p.server_keep_alive);
  }
  if (p.authentication_method && on(kAuthenticationMethod)) {
    sink.str(kAuthenticationMethod, *p.authentication_method);
  }
  if (p.authentication_data && on(kAuthenticationData)) {
    sink.str(kAuthenticationData, *p.authentication_data);
  }
  if (p.request_problem_information && on(kRequestProblemInformation)) {
    sink.byte(kRequestProblemInformation, *p.request_problem_information);
  }
  if (p.will_delay_interval && on(kWillDelayInterval)) {
    sink.u32(kWillDelayInterval, *p.will_delay_interval);
  }
  if (p.request_response_information && on(kRequestResponseInformation)) {
    sink.byte(kRequestResponseInformation, *p.request_response_information);
  }
  if (p.response_information && on(kResponseInformation)) {
    sink.str(kResponseInformation, *p.response_information);
  }
  if (p.server_reference && on(kServerReference)) {
    sink.str(kServerReference, *p.server_reference);
  }
  if (p.reason_string && on(kReasonString)) sink.str(kReasonString, *p.reason_string);
  if (p.receive_maximum && on(kReceiveMaximum)) sink.u16(kReceiveMaximum, *p.receive_maximum);
  if (p.topic_alias_maximum && on(kTopicAliasMaximum)) {
    sink.u16(kTopicAliasMaximum, *p.topic_alias_maximum);
  }
  if (p.topic_alias && on(kTopicAlias)) sink.u16(kTopicAlias, *p.topic_alias);
  if (p.maximum_qos && on(kMaximumQos)) sink.byte(kMaximumQos, *p.maximum_qos);
  if (p.retain_available && on(kRetainAvailable)) {
    sink.byte(kRetainAvailable, *p.retain_available);
  }
  if (on(kUserProperty)) {
    for (const UserProperty& up : p.user_properties) sink.pair(kUserProperty, up.key, up.value);
  }
  if (p.maximum_packet_size && on(kMaximumPacketSize)) {
    sink.u32(kMaximumPacketSize, *p.maximum_packet_size);
  }
  if (p.wildcard_subscription_available && on(kWildcardSubscriptionAvailable)) {
    sink.byte(kWildcardSubscriptionAvailable, *p.wildcard_subscription_available);
  }
  if (p.subscription_identifier_available && on(kSubscriptionIdentifierAvailable)) {
    sink.byte(kSubscriptionIdentifierAvailable, *p.subscription_identifier_available);
  }
  if (p.shared_subscription_available && on(kSharedSubscriptionAvailable)) {
    sink.byte(kSharedSubscriptionAvailable, *p.shared_subscription_available);
  }
}

// Every identifier is below 0x80, so it takes one byte.
struct SizeSink {
  size_t n = 0;
  void byte(uint8_t, uint8_t) { n += 2; }
  void u16(uint8_t, uint16_t) { n += 3; }
  void u32(uint8_t, uint32_t) { n += 5; }
  void varInt(uint8_t, uint32_t v) { n += 1 + wire::varIntSize(v); }
  void str(uint8_t, const std::string& s) { n += 3 + s.size(); }
  void pair(uint8_t, const std::string& k, const std::string& v) { n += 5 + k.size() + v.size(); }
};

struct WriteSink {
  wire::Writer& w;
  void byte(uint8_t id, uint8_t v) {
    w.u8(id);
    w.u8(v);
  }
  void u16(uint8_t id, uint16_t v) {
    w.u8(id);
    w.u16(v);
  }
  void u32(uint8_t id, uint32_t v) {
    w.u8(id);
    w.u32(v);
  }
  void varInt(uint8_t id, uint32_t v) {
    w.u8(id);
    w.varInt(v);
  }
  void str(uint8_t id, const std::string& s) {
    w.u8(id);
    w.lengthPrefixed(s);
  }
  void pair(uint8_t id, const std::string& k, const std::string& v) {
    w.u8(id);
    w.lengthPrefixed(k);
    w.lengthPrefixed(v);
  }
};

}  // namespace

absl::Status read(wire::Reader& reader, uint8_t context, Properties& out) {
  const uint16_t context_bit = uint16_t{1} << context;
  uint32_t length = 0;
  RETURN_IF_ERROR(reader.readVarInt(length, "property length"));
  // §2.2.2.1: the block may not run past the packet.
  wire::Reader r{std::string_view{}};
  RETURN_IF_ERROR(reader.readBlock(length, r, "properties"));

  while (!r.empty()) {
    uint32_t id = 0;
    RETURN_IF_ERROR(r.readVarInt(id, "property identifier"));
    // §2.2.2.2: "A Control Packet which contains an Identifier which is not valid
    // for its packet type ... is a Malformed Packet."
    if (id >= kIdLimit || !allowed(static_cast<uint8_t>(id), context_bit)) {
      return malformed(absl::StrCat("property 0x", absl::Hex(id), " not allowed here"));
    }
    switch (id) {
      case kPayloadFormatIndicator:
        RETURN_IF_ERROR(readOnce(r, out.payload_format_indicator, "payload format indicator",
                                 /*zero_or_one=*/true));
        break;
      case kMessageExpiryInterval:
        RETURN_IF_ERROR(readOnce(r, out.message_expiry_interval, "message expiry interval",
                                 /*non_zero=*/false));
        break;
      case kContentType:
        RETURN_IF_ERROR(readOnce(r, out.content_type, "content type", Text::kUtf8));
        break;
      case kResponseTopic:
        RETURN_IF_ERROR(readOnce(r, out.response_topic, "response topic", Text::kUtf8));
        // §3.3.2.3.5: a Topic Name, so non-empty and without wildcards
        // [MQTT-3.3.2-14]. It parses, so this is a Protocol Error (§1.2).
        if (!isValidTopicName(*out.response_topic)) {
          return protocolError("response topic is not a valid topic name");
        }
        break;
      case kCorrelationData:
        RETURN_IF_ERROR(readOnce(r, out.correlation_data, "correlation data", Text::kBinary));
        break;
      case kSubscriptionIdentifier: {
        // §3.8.2.1.2: once in SUBSCRIBE; §3.3.2.3.8: a PUBLISH carries one per
        // matching subscription.
        if (context_bit == kSubscribe && !out.subscription_identifiers.empty()) {
          return duplicate("subscription identifier");
        }
        uint32_t v = 0;
        RETURN_IF_ERROR(r.readVarInt(v, "subscription identifier"));
        // §3.8.2.1.2 / §3.3.2.3.8: 1..268,435,455; 0 is a Protocol Error.
        if (v == 0) return protocolError("subscription identifier of 0");
        out.subscription_identifiers.push_back(v);
        break;
      }
      case kSessionExpiryInterval:
        RETURN_IF_ERROR(readOnce(r, out.session_expiry_interval, "session expiry interval",
                                 /*non_zero=*/false));
        break;
      case kAssignedClientIdentifier:
        RETURN_IF_ERROR(
            readOnce(r, out.assigned_client_identifier, "assigned client identifier", Text::kUtf8));
        break;
      case kServerKeepAlive:
        RETURN_IF_ERROR(readOnce(r, out.server_keep_alive, "server keep alive",
                                 /*non_zero=*/false));
        break;
      case kAuthenticationMethod:
        RETURN_IF_ERROR(
            readOnce(r, out.authentication_method, "authentication method", Text::kUtf8));
        break;
      case kAuthenticationData:
        RETURN_IF_ERROR(readOnce(r, out.authentication_data, "authentication data", Text::kBinary));
        break;
      case kRequestProblemInformation:
        RETURN_IF_ERROR(readOnce(r, out.request_problem_information, "request problem information",
                                 /*zero_or_one=*/true));
        break;
      case kWillDelayInterval:
        RETURN_IF_ERROR(readOnce(r, out.will_delay_interval, "will delay interval",
                                 /*non_zero=*/false));
        break;
      case kRequestResponseInformation:
        RETURN_IF_ERROR(readOnce(r, out.request_response_information,
                                 "request response information", /*zero_or_one=*/true));
        break;
      case kResponseInformation:
        RETURN_IF_ERROR(readOnce(r, out.response_information, "response information", Text::kUtf8));
        break;
      case kServerReference:
        RETURN_IF_ERROR(readOnce(r, out.server_reference, "server reference", Text::kUtf8));
        break;
      case kReasonString:
        RETURN_IF_ERROR(readOnce(r, out.reason_string, "reason string", Text::kUtf8));
        break;
      case kReceiveMaximum:
        // §3.1.2.11.3 / §3.2.2.3.3: "It is a Protocol Error to include the Receive
        // Maximum value more than once or for it to have the value 0."
        RETURN_IF_ERROR(readOnce(r, out.receive_maximum, "receive maximum",
                                 /*non_zero=*/true));
        break;
      case kTopicAliasMaximum:
        RETURN_IF_ERROR(readOnce(r, out.topic_alias_maximum, "topic alias maximum",
                                 /*non_zero=*/false));
        break;
      case kTopicAlias: {
        if (out.topic_alias.has_value()) return duplicate("topic alias");
        uint16_t v = 0;
        RETURN_IF_ERROR(r.readU16(v, "topic alias"));
        // §3.3.4: "A Topic Alias value of 0 ... is a Protocol Error, the receiver
        // uses DISCONNECT with Reason Code of 0x94 (Topic Alias invalid)."
        if (v == 0) return codecError(ReasonCode::kTopicAliasInvalid, "topic alias of 0");
        out.topic_alias = v;
        break;
      }
      case kMaximumQos:
        RETURN_IF_ERROR(readOnce(r, out.maximum_qos, "maximum QoS", /*zero_or_one=*/true));
        break;
      case kRetainAvailable:
        RETURN_IF_ERROR(readOnce(r, out.retain_available, "retain available",
                                 /*zero_or_one=*/true));
        break;
      case kUserProperty: {
        // §3.1.2.11.8: may appear more than once; order is kept.
        std::string_view key, value;
        RETURN_IF_ERROR(r.readUtf8(key, "user property name"));
        RETURN_IF_ERROR(r.readUtf8(value, "user property value"));
        out.user_properties.push_back(UserProperty{std::string(key), std::string(value)});
        break;
      }
      case kMaximumPacketSize:
        // §3.1.2.11.4 / §3.2.2.3.6: 0 is a Protocol Error.
        RETURN_IF_ERROR(readOnce(r, out.maximum_packet_size, "maximum packet size",
                                 /*non_zero=*/true));
        break;
      case kWildcardSubscriptionAvailable:
        RETURN_IF_ERROR(readOnce(r, out.wildcard_subscription_available,
                                 "wildcard subscription available", /*zero_or_one=*/true));
        break;
      case kSubscriptionIdentifierAvailable:
        RETURN_IF_ERROR(readOnce(r, out.subscription_identifier_available,
                                 "subscription identifier available", /*zero_or_one=*/true));
        break;
      case kSharedSubscriptionAvailable:
        RETURN_IF_ERROR(readOnce(r, out.shared_subscription_available,
                                 "shared subscription available", /*zero_or_one=*/true));
        break;
      default:  // unreachable: kAllowed is zero for every other identifier
        return malformed("unknown property");
    }
  }
  // §3.1.2.11.10 / §3.2.2.3.17 / §3.15.2.2.3: "It is a Protocol Error to include
  // Authentication Data if there is no Authentication Method."
  if (out.authentication_data.has_value() && !out.authentication_method.has_value()) {
    return protocolError("authentication data without authentication method");
  }
  return absl::OkStatus();
}

size_t size(const Properties& p, uint8_t context) {
  SizeSink sink;
  visit(p, uint16_t{1} << context, sink);
  return sink.n;
}

void write(wire::Writer& w, const Properties& p, uint8_t context, size_t block_size) {
  w.varInt(static_cast<uint32_t>(block_size));
  WriteSink sink{w};
  visit(p, uint16_t{1} << context, sink);
}

}  // namespace gannet::codec::props
