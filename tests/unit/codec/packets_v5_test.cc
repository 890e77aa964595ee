// Exact bytes of every MQTT 5.0 packet, both ways, and one byte at a time.

#include "gtest/gtest.h"
#include "tests/unit/codec/codec_test_util.h"

namespace gannet::codec {
namespace {

using testing::B;
using testing::decodeFrame;
using testing::expectRoundTrip;
using testing::kV5;

TEST(PacketsV5, ConnectMinimal) {
  ConnectPacket p;
  p.version = kV5;
  p.keep_alive = 10;
  p.client_id = "p";
  expectRoundTrip(p, kV5, B("10 0E 00 04 'MQTT' 05 02 00 0A 00 00 01 'p'"));
}

TEST(PacketsV5, ConnectWithEverything) {
  ConnectPacket p;
  p.version = kV5;
  p.clean_start = true;
  p.keep_alive = 60;
  p.client_id = "cid";
  p.properties.session_expiry_interval = 3600;
  p.properties.receive_maximum = 20;
  p.properties.maximum_packet_size = 1024;
  p.properties.topic_alias_maximum = 10;
  p.properties.request_response_information = 1;
  p.properties.request_problem_information = 0;
  p.properties.user_properties = {{"k", "v"}};
  p.properties.authentication_method = "SCRAM";
  p.properties.authentication_data = std::string("\x01\x02");
  Will w;
  w.topic = "w";
  w.payload = "x";
  w.qos = 2;
  w.properties.will_delay_interval = 5;
  w.properties.payload_format_indicator = 1;
  w.properties.message_expiry_interval = 60;
  w.properties.content_type = "text";
  w.properties.response_topic = "r/t";
  w.properties.correlation_data = "cd";
  w.properties.user_properties = {{"a", "b"}};
  p.will = w;
  p.username = "u";
  p.password = "p";
  // Flags: user name 0x80 | password 0x40 | will QoS 2 0x10 | will 0x04 | clean
  // start 0x02 = 0xD6. Properties in identifier order.
  expectRoundTrip(p, kV5,
                  B("10 6A 00 04 'MQTT' 05 D6 00 3C"
                    " 28 11 00 00 0E 10 15 00 05 'SCRAM' 16 00 02 01 02 17 00 19 01"
                    "    21 00 14 22 00 0A 26 00 01 'k' 00 01 'v' 27 00 00 04 00"
                    " 00 03 'cid'"
                    " 25 01 01 02 00 00 00 3C 03 00 04 'text' 08 00 03 'r/t' 09 00 02 'cd'"
                    "    18 00 00 00 05 26 00 01 'a' 00 01 'b'"
                    " 00 01 'w' 00 01 'x' 00 01 'u' 00 01 'p'"));
}

TEST(PacketsV5, ConnectPasswordWithoutUserName) {
  // MQTT 5 §3.1.2.9 allows a password without a user name (3.1.1 did not).
  ConnectPacket p;
  p.version = kV5;
  p.client_id = "p";
  p.password = "secret";
  expectRoundTrip(p, kV5, B("10 16 00 04 'MQTT' 05 42 00 00 00 00 01 'p' 00 06 'secret'"));
}

TEST(PacketsV5, ConnackMinimal) {
  expectRoundTrip(ConnackPacket{}, kV5, B("20 03 00 00 00"));
  expectRoundTrip(ConnackPacket{.reason_code = 0x87}, kV5, B("20 03 00 87 00"));
}

TEST(PacketsV5, ConnackWithEverything) {
  ConnackPacket p;
  p.session_present = true;
  Properties& pr = p.properties;
  pr.assigned_client_identifier = "id1";
  pr.server_keep_alive = 30;
  pr.authentication_method = "m";
  pr.authentication_data = "d";
  pr.response_information = "ri";
  pr.server_reference = "srv";
  pr.reason_string = "ok";
  pr.receive_maximum = 10;
  pr.topic_alias_maximum = 5;
  pr.maximum_qos = 1;
  pr.retain_available = 0;
  pr.user_properties = {{"x", "y"}};
  pr.maximum_packet_size = 65536;
  pr.wildcard_subscription_available = 1;
  pr.subscription_identifier_available = 0;
  pr.shared_subscription_available = 1;
  expectRoundTrip(p, kV5,
                  B("20 40 01 00 3D 12 00 03 'id1' 13 00 1E 15 00 01 'm' 16 00 01 'd'"
                    " 1A 00 02 'ri' 1C 00 03 'srv' 1F 00 02 'ok' 21 00 0A 22 00 05 24 01 25 00"
                    " 26 00 01 'x' 00 01 'y' 27 00 01 00 00 28 01 29 00 2A 01"));
}

TEST(PacketsV5, PublishQos0) {
  PublishPacket p;
  p.topic = "a/b";
  p.payload = "hello";
  expectRoundTrip(p, kV5, B("30 0B 00 03 'a/b' 00 'hello'"));
}

TEST(PacketsV5, PublishQos1WithProperties) {
  PublishPacket p;
  p.qos = 1;
  p.topic = "a/b";
  p.packet_id = 7;
  p.payload = "hello";
  p.properties.payload_format_indicator = 1;
  p.properties.message_expiry_interval = 30;
  p.properties.content_type = "json";
  p.properties.response_topic = "res";
  p.properties.correlation_data = std::string("\x00\x01", 2);
  p.properties.subscription_identifiers = {1, 200};
  p.properties.topic_alias = 3;
  p.properties.user_properties = {{"k", "v"}};
  expectRoundTrip(p, kV5,
                  B("32 35 00 03 'a/b' 00 07"
                    " 28 01 01 02 00 00 00 1E 03 00 04 'json' 08 00 03 'res' 09 00 02 00 01"
                    "    0B 01 0B C8 01 23 00 03 26 00 01 'k' 00 01 'v'"
                    " 'hello'"));
}

TEST(PacketsV5, PublishQos2RetainDup) {
  PublishPacket p;
  p.qos = 2;
  p.dup = true;
  p.retain = true;
  p.topic = "t";
  p.packet_id = 0xFFFF;
  expectRoundTrip(p, kV5, B("3D 06 00 01 't' FF FF 00"));
}

TEST(PacketsV5, PublishWithTopicAliasOnly) {
  // §3.3.2.1: an empty Topic Name with a Topic Alias.
  PublishPacket p;
  p.properties.topic_alias = 3;
  p.payload = "x";
  expectRoundTrip(p, kV5, B("30 07 00 00 03 23 00 03 'x'"));
}

TEST(PacketsV5, PublishUserPropertiesKeepOrderAndDuplicates) {
  PublishPacket p;
  p.topic = "t";
  p.properties.user_properties = {{"b", "1"}, {"a", "2"}, {"b", "3"}};
  expectRoundTrip(p, kV5,
                  B("30 19 00 01 't' 15 26 00 01 'b' 00 01 '1' 26 00 01 'a' 00 01 '2'"
                    " 26 00 01 'b' 00 01 '3'"));
}

TEST(PacketsV5, PubAckShortForm) {
  // §3.4.2.1: Success without properties is sent as the 2-byte packet id only.
  expectRoundTrip(PubAckPacket{.type = PacketType::kPuback, .packet_id = 7}, kV5, B("40 02 00 07"));
  expectRoundTrip(PubAckPacket{.type = PacketType::kPubcomp, .packet_id = 7}, kV5,
                  B("70 02 00 07"));
}

TEST(PacketsV5, PubAckReasonWithoutProperties) {
  expectRoundTrip(PubAckPacket{.type = PacketType::kPuback,
                               .packet_id = 7,
                               .reason_code = ReasonCode::kNoMatchingSubscribers},
                  kV5, B("40 03 00 07 10"));
  expectRoundTrip(PubAckPacket{.type = PacketType::kPubrel,
                               .packet_id = 7,
                               .reason_code = ReasonCode::kPacketIdentifierNotFound},
                  kV5, B("62 03 00 07 92"));
}

TEST(PacketsV5, PubAckWithProperties) {
  PubAckPacket puback{
      .type = PacketType::kPuback, .packet_id = 7, .reason_code = ReasonCode::kUnspecifiedError};
  puback.properties.reason_string = "nope";
  expectRoundTrip(puback, kV5, B("40 0B 00 07 80 07 1F 00 04 'nope'"));

  PubAckPacket pubrec{.type = PacketType::kPubrec, .packet_id = 7};
  pubrec.properties.user_properties = {{"a", "b"}};
  expectRoundTrip(pubrec, kV5, B("50 0B 00 07 00 07 26 00 01 'a' 00 01 'b'"));
}

TEST(PacketsV5, PubAckLongFormsDecodeToTheShortOne) {
  // A reason code and an empty property block may be present even when the short
  // form would do (§3.4.2.2.1).
  for (const char* spec : {"40 03 00 07 00", "40 04 00 07 00 00"}) {
    auto p = decodeFrame(B(spec), kV5);
    ASSERT_TRUE(p.ok()) << spec << ": " << p.status();
    EXPECT_TRUE(*p == Packet(PubAckPacket{.type = PacketType::kPuback, .packet_id = 7})) << spec;
  }
}

TEST(PacketsV5, Subscribe) {
  SubscribePacket p;
  p.packet_id = 10;
  p.properties.subscription_identifiers = {300};
  p.properties.user_properties = {{"k", "v"}};
  p.subscriptions.push_back({.filter = "a/+",
                             .qos = 1,
                             .no_local = true,
                             .retain_as_published = true,
                             .retain_handling = 2});
  p.subscriptions.push_back({.filter = "$share/g/x", .qos = 0, .retain_handling = 1});
  // Options: QoS 1 | No Local 0x04 | RAP 0x08 | Retain Handling 2 << 4 = 0x2D.
  expectRoundTrip(p, kV5,
                  B("82 20 00 0A 0A 0B AC 02 26 00 01 'k' 00 01 'v'"
                    " 00 03 'a/+' 2D 00 0A '$share/g/x' 10"));
}

TEST(PacketsV5, Suback) {
  SubackPacket p;
  p.packet_id = 10;
  p.properties.reason_string = "r";
  p.reason_codes = {0x01, 0x8F, 0x9E};
  expectRoundTrip(p, kV5, B("90 0A 00 0A 04 1F 00 01 'r' 01 8F 9E"));
}

TEST(PacketsV5, Unsubscribe) {
  UnsubscribePacket p;
  p.packet_id = 11;
  p.properties.user_properties = {{"k", "v"}};
  p.filters = {"a/+", "$share/g/#"};
  expectRoundTrip(p, kV5,
                  B("A2 1B 00 0B 07 26 00 01 'k' 00 01 'v' 00 03 'a/+' 00 0A '$share/g/#'"));
}

TEST(PacketsV5, Unsuback) {
  UnsubackPacket p;
  p.packet_id = 11;
  p.reason_codes = {0x00, 0x11};
  expectRoundTrip(p, kV5, B("B0 05 00 0B 00 00 11"));
}

TEST(PacketsV5, Ping) {
  expectRoundTrip(PingreqPacket{}, kV5, B("C0 00"));
  expectRoundTrip(PingrespPacket{}, kV5, B("D0 00"));
}

TEST(PacketsV5, Disconnect) {
  // §3.14.2.1: Normal disconnection without properties may be a bare header.
  expectRoundTrip(DisconnectPacket{}, kV5, B("E0 00"));
  expectRoundTrip(DisconnectPacket{.reason_code = ReasonCode::kDisconnectWithWill}, kV5,
                  B("E0 01 04"));
  DisconnectPacket p{.reason_code = ReasonCode::kServerShuttingDown};
  p.properties.session_expiry_interval = 0;
  p.properties.server_reference = "other";
  p.properties.reason_string = "bye";
  expectRoundTrip(p, kV5, B("E0 15 8B 13 11 00 00 00 00 1C 00 05 'other' 1F 00 03 'bye'"));
}

TEST(PacketsV5, DisconnectLongFormsDecode) {
  for (const char* spec : {"E0 01 00", "E0 02 00 00"}) {
    auto p = decodeFrame(B(spec), kV5);
    ASSERT_TRUE(p.ok()) << spec << ": " << p.status();
    EXPECT_TRUE(*p == Packet(DisconnectPacket{})) << spec;
  }
}

TEST(PacketsV5, Auth) {
  expectRoundTrip(AuthPacket{}, kV5, B("F0 00"));
  AuthPacket p{.reason_code = ReasonCode::kContinueAuthentication};
  p.properties.authentication_method = "SCRAM";
  p.properties.authentication_data = "abc";
  expectRoundTrip(p, kV5, B("F0 10 18 0E 15 00 05 'SCRAM' 16 00 03 'abc'"));
  AuthPacket re{.reason_code = ReasonCode::kReAuthenticate};
  expectRoundTrip(re, kV5, B("F0 02 19 00"));
}

}  // namespace
}  // namespace gannet::codec
