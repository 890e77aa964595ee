// MQTT 5 properties (§2.2.2): which packet may carry which property (Table 2-4,
// typed out again here independently of the codec's table), duplicates, and a full
// round trip of every property in every packet.

#include <map>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/unit/codec/codec_test_util.h"

namespace gannet::codec {
namespace {

using testing::B;
using testing::kV5;

enum class Context {
  kConnect,
  kWill,
  kConnack,
  kPublish,
  kPuback,
  kPubrec,
  kPubrel,
  kPubcomp,
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kDisconnect,
  kAuth,
};

const std::map<Context, std::set<int>>& allowedIds() {
  static const auto* kAllowed = new std::map<Context, std::set<int>>{
      {Context::kConnect, {0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27}},
      {Context::kWill, {0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26}},
      {Context::kConnack,
       {0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28,
        0x29, 0x2A}},
      {Context::kPublish, {0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26}},
      {Context::kPuback, {0x1F, 0x26}},
      {Context::kPubrec, {0x1F, 0x26}},
      {Context::kPubrel, {0x1F, 0x26}},
      {Context::kPubcomp, {0x1F, 0x26}},
      {Context::kSubscribe, {0x0B, 0x26}},
      {Context::kSuback, {0x1F, 0x26}},
      {Context::kUnsubscribe, {0x26}},
      {Context::kUnsuback, {0x1F, 0x26}},
      {Context::kDisconnect, {0x11, 0x1C, 0x1F, 0x26}},
      {Context::kAuth, {0x15, 0x16, 0x1F, 0x26}},
  };
  return *kAllowed;
}

// A value of the right shape for each identifier, valid wherever it is allowed.
std::string sampleValue(int id) {
  switch (id) {
    case 0x01:
    case 0x17:
    case 0x19:
    case 0x24:
    case 0x25:
    case 0x28:
    case 0x29:
    case 0x2A:
      return B("01");
    case 0x13:
    case 0x21:
    case 0x22:
    case 0x23:
      return B("00 01");
    case 0x02:
    case 0x11:
    case 0x18:
    case 0x27:
      return B("00 00 00 01");
    case 0x0B:
      return B("01");
    case 0x03:
    case 0x08:
    case 0x09:
    case 0x12:
    case 0x15:
    case 0x16:
    case 0x1A:
    case 0x1C:
    case 0x1F:
      return B("00 01 'a'");
    case 0x26:
      return B("00 01 'a' 00 01 'b'");
    default:
      return B("01");
  }
}

// A whole packet whose (only) property block is `props` (the properties without
// their length).
std::string packetWith(Context ctx, std::string_view props) {
  std::string block;
  appendVarInt(static_cast<uint32_t>(props.size()), block);
  block.append(props);
  auto f = [](uint8_t first, std::string body) { return testing::frame(first, body); };
  switch (ctx) {
    case Context::kConnect:
      return f(0x10, B("00 04 'MQTT' 05 02 00 0A") + block + B("00 01 'p'"));
    case Context::kWill:
      return f(0x10, B("00 04 'MQTT' 05 06 00 0A 00 00 01 'p'") + block + B("00 01 't' 00 01 'x'"));
    case Context::kConnack:
      return f(0x20, B("00 00") + block);
    case Context::kPublish:
      return f(0x30, B("00 01 't'") + block + "payload");
    case Context::kPuback:
      return f(0x40, B("00 01 00") + block);
    case Context::kPubrec:
      return f(0x50, B("00 01 00") + block);
    case Context::kPubrel:
      return f(0x62, B("00 01 00") + block);
    case Context::kPubcomp:
      return f(0x70, B("00 01 00") + block);
    case Context::kSubscribe:
      return f(0x82, B("00 01") + block + B("00 01 'p' 00"));
    case Context::kSuback:
      return f(0x90, B("00 01") + block + B("00"));
    case Context::kUnsubscribe:
      return f(0xA2, B("00 01") + block + B("00 01 'p'"));
    case Context::kUnsuback:
      return f(0xB0, B("00 01") + block + B("00"));
    case Context::kDisconnect:
      return f(0xE0, B("00") + block);
    case Context::kAuth:
      return f(0xF0, B("00") + block);
  }
  return {};
}

TEST(Properties, OnlyAllowedIdentifiersInEachPacket) {
  for (const auto& [ctx, allowed] : allowedIds()) {
    for (int id = 0; id <= 0x7F; ++id) {
      std::string props(1, static_cast<char>(id));
      props += sampleValue(id);
      const std::string bytes = packetWith(ctx, props);
      auto decoded = testing::decodeFrame(bytes, kV5);
      SCOPED_TRACE(::testing::Message() << "context " << static_cast<int>(ctx) << " id 0x"
                                        << std::hex << id << ": " << testing::hex(bytes));
      if (allowed.count(id) == 0) {
        // §2.2.2.2: an identifier not valid for the packet type: Malformed Packet.
        ASSERT_FALSE(decoded.ok());
        EXPECT_EQ(reasonCodeOf(decoded.status()), ReasonCode::kMalformedPacket);
      } else if (id == 0x16) {
        // Authentication Data without an Authentication Method.
        ASSERT_FALSE(decoded.ok());
        EXPECT_EQ(reasonCodeOf(decoded.status()), ReasonCode::kProtocolError);
      } else {
        EXPECT_TRUE(decoded.ok()) << decoded.status();
      }
    }
  }
}

TEST(Properties, MultiByteIdentifiersAreUnknown) {
  for (const char* id : {"80 01", "FF 7F", "80 80 01"}) {
    auto decoded = testing::decodeFrame(packetWith(Context::kPublish, B(id) + B("01")), kV5);
    ASSERT_FALSE(decoded.ok()) << id;
    EXPECT_EQ(reasonCodeOf(decoded.status()), ReasonCode::kMalformedPacket) << id;
  }
}

TEST(Properties, DuplicatesAreProtocolErrorsExceptRepeatableOnes) {
  for (const auto& [ctx, allowed] : allowedIds()) {
    for (int id : allowed) {
      std::string one(1, static_cast<char>(id));
      one += sampleValue(id);
      std::string props = one + one;
      if (id == 0x16) props = B("15 00 01 'm'") + props;  // give auth data its method
      auto decoded = testing::decodeFrame(packetWith(ctx, props), kV5);
      SCOPED_TRACE(::testing::Message()
                   << "context " << static_cast<int>(ctx) << " id 0x" << std::hex << id);
      // User Property may repeat anywhere (§3.1.2.11.8); Subscription Identifier
      // may repeat in PUBLISH (§3.3.2.3.8) but not in SUBSCRIBE (§3.8.2.1.2).
      if (id == 0x26 || (id == 0x0B && ctx == Context::kPublish)) {
        EXPECT_TRUE(decoded.ok()) << decoded.status();
      } else {
        ASSERT_FALSE(decoded.ok());
        EXPECT_EQ(reasonCodeOf(decoded.status()), ReasonCode::kProtocolError);
      }
    }
  }
}

Properties all() {
  Properties p;
  p.payload_format_indicator = 1;
  p.message_expiry_interval = 100;
  p.content_type = "ct";
  p.response_topic = "resp/t";
  p.correlation_data = std::string("\0cd", 3);
  p.subscription_identifiers = {42};
  p.session_expiry_interval = 200;
  p.assigned_client_identifier = "aci";
  p.server_keep_alive = 30;
  p.authentication_method = "am";
  p.authentication_data = std::string("\xFF\x00", 2);
  p.request_problem_information = 1;
  p.will_delay_interval = 5;
  p.request_response_information = 1;
  p.response_information = "ri";
  p.server_reference = "sr";
  p.reason_string = "rs";
  p.receive_maximum = 10;
  p.topic_alias_maximum = 11;
  p.topic_alias = 12;
  p.maximum_qos = 1;
  p.retain_available = 1;
  p.user_properties = {{"k", "v"}, {"k", "w"}, {"", ""}};
  p.maximum_packet_size = 1000;
  p.wildcard_subscription_available = 1;
  p.subscription_identifier_available = 1;
  p.shared_subscription_available = 0;
  return p;
}

// all(), keeping only the identifiers allowed in `ctx`.
Properties only(Context ctx) {
  const std::set<int>& ids = allowedIds().at(ctx);
  const Properties a = all();
  Properties p;
  auto keep = [&](int id) { return ids.count(id) != 0; };
  if (keep(0x01)) p.payload_format_indicator = a.payload_format_indicator;
  if (keep(0x02)) p.message_expiry_interval = a.message_expiry_interval;
  if (keep(0x03)) p.content_type = a.content_type;
  if (keep(0x08)) p.response_topic = a.response_topic;
  if (keep(0x09)) p.correlation_data = a.correlation_data;
  if (keep(0x0B)) p.subscription_identifiers = a.subscription_identifiers;
  if (keep(0x11)) p.session_expiry_interval = a.session_expiry_interval;
  if (keep(0x12)) p.assigned_client_identifier = a.assigned_client_identifier;
  if (keep(0x13)) p.server_keep_alive = a.server_keep_alive;
  if (keep(0x15)) p.authentication_method = a.authentication_method;
  if (keep(0x16)) p.authentication_data = a.authentication_data;
  if (keep(0x17)) p.request_problem_information = a.request_problem_information;
  if (keep(0x18)) p.will_delay_interval = a.will_delay_interval;
  if (keep(0x19)) p.request_response_information = a.request_response_information;
  if (keep(0x1A)) p.response_information = a.response_information;
  if (keep(0x1C)) p.server_reference = a.server_reference;
  if (keep(0x1F)) p.reason_string = a.reason_string;
  if (keep(0x21)) p.receive_maximum = a.receive_maximum;
  if (keep(0x22)) p.topic_alias_maximum = a.topic_alias_maximum;
  if (keep(0x23)) p.topic_alias = a.topic_alias;
  if (keep(0x24)) p.maximum_qos = a.maximum_qos;
  if (keep(0x25)) p.retain_available = a.retain_available;
  if (keep(0x26)) p.user_properties = a.user_properties;
  if (keep(0x27)) p.maximum_packet_size = a.maximum_packet_size;
  if (keep(0x28)) p.wildcard_subscription_available = a.wildcard_subscription_available;
  if (keep(0x29)) p.subscription_identifier_available = a.subscription_identifier_available;
  if (keep(0x2A)) p.shared_subscription_available = a.shared_subscription_available;
  return p;
}

// The encoder writes every property the packet may carry and leaves out the
// rest; the decoder reads them all back.
TEST(Properties, EveryPropertyRoundTripsInEveryPacket) {
  const Properties a = all();
  auto check = [](const Packet& packet, auto&& get_properties, const Properties& expected,
                  const char* what) {
    std::string bytes;
    encode(packet, kV5, bytes);
    auto decoded = testing::decodeFrame(bytes, kV5);
    ASSERT_TRUE(decoded.ok()) << what << ": " << decoded.status() << " " << testing::hex(bytes);
    EXPECT_TRUE(get_properties(*decoded) == expected) << what << ": " << testing::hex(bytes);
  };

  ConnectPacket connect;
  connect.version = kV5;
  connect.client_id = "p";
  connect.properties = a;
  connect.will = Will{.topic = "t", .payload = "x", .qos = 1, .retain = true, .properties = a};
  check(
      connect, [](const Packet& p) { return std::get<ConnectPacket>(p).properties; },
      only(Context::kConnect), "CONNECT");
  check(
      connect, [](const Packet& p) { return std::get<ConnectPacket>(p).will->properties; },
      only(Context::kWill), "will");

  check(
      ConnackPacket{.properties = a},
      [](const Packet& p) { return std::get<ConnackPacket>(p).properties; },
      only(Context::kConnack), "CONNACK");

  PublishPacket publish;
  publish.topic = "t";
  publish.properties = a;
  publish.properties.subscription_identifiers = {42, 7, 268'435'455};
  Properties publish_expected = only(Context::kPublish);
  publish_expected.subscription_identifiers = {42, 7, 268'435'455};
  check(
      publish, [](const Packet& p) { return std::get<PublishPacket>(p).properties; },
      publish_expected, "PUBLISH");

  const std::pair<PacketType, Context> acks[] = {{PacketType::kPuback, Context::kPuback},
                                                 {PacketType::kPubrec, Context::kPubrec},
                                                 {PacketType::kPubrel, Context::kPubrel},
                                                 {PacketType::kPubcomp, Context::kPubcomp}};
  for (const auto& [type, ctx] : acks) {
    check(
        PubAckPacket{.type = type, .packet_id = 1, .properties = a},
        [](const Packet& p) { return std::get<PubAckPacket>(p).properties; }, only(ctx),
        "PUBACK family");
  }

  check(
      SubscribePacket{.packet_id = 1, .properties = a, .subscriptions = {{.filter = "p"}}},
      [](const Packet& p) { return std::get<SubscribePacket>(p).properties; },
      only(Context::kSubscribe), "SUBSCRIBE");
  check(
      SubackPacket{.packet_id = 1, .properties = a, .reason_codes = {0}},
      [](const Packet& p) { return std::get<SubackPacket>(p).properties; }, only(Context::kSuback),
      "SUBACK");
  check(
      UnsubscribePacket{.packet_id = 1, .properties = a, .filters = {"p"}},
      [](const Packet& p) { return std::get<UnsubscribePacket>(p).properties; },
      only(Context::kUnsubscribe), "UNSUBSCRIBE");
  check(
      UnsubackPacket{.packet_id = 1, .properties = a, .reason_codes = {0}},
      [](const Packet& p) { return std::get<UnsubackPacket>(p).properties; },
      only(Context::kUnsuback), "UNSUBACK");
  check(
      DisconnectPacket{.properties = a},
      [](const Packet& p) { return std::get<DisconnectPacket>(p).properties; },
      only(Context::kDisconnect), "DISCONNECT");
  check(
      AuthPacket{.reason_code = ReasonCode::kContinueAuthentication, .properties = a},
      [](const Packet& p) { return std::get<AuthPacket>(p).properties; }, only(Context::kAuth),
      "AUTH");
}

TEST(Properties, LargestSubscriptionIdentifier) {
  // §3.8.2.1.2: 1 to 268,435,455, a four-byte Variable Byte Integer.
  auto decoded = testing::decodeFrame(packetWith(Context::kSubscribe, B("0B FF FF FF 7F")), kV5);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<SubscribePacket>(*decoded).properties.subscription_identifiers,
            std::vector<uint32_t>{268'435'455});
}

TEST(Properties, EmptyStringsAndBinaryAreValues) {
  // Zero-length UTF-8 strings and binary data are present, not absent.
  auto decoded = testing::decodeFrame(
      packetWith(Context::kPublish, B("03 00 00 09 00 00 26 00 00 00 00")), kV5);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Properties& p = std::get<PublishPacket>(*decoded).properties;
  EXPECT_EQ(p.content_type, std::optional<std::string>(""));
  EXPECT_EQ(p.correlation_data, std::optional<std::string>(""));
  ASSERT_EQ(p.user_properties.size(), 1u);
  EXPECT_EQ(p.user_properties[0], (UserProperty{"", ""}));
}

}  // namespace
}  // namespace gannet::codec
