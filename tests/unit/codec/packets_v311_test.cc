// Exact bytes of every MQTT 3.1.1 packet (and the MQTT 3.1 CONNECT/CONNACK), both
// ways, and one byte at a time.

#include "gtest/gtest.h"
#include "tests/unit/codec/codec_test_util.h"

namespace gannet::codec {
namespace {

using testing::B;
using testing::expectRoundTrip;
using testing::kV31;
using testing::kV311;

TEST(PacketsV311, ConnectMinimal) {
  ConnectPacket p;
  p.version = kV311;
  p.clean_start = true;
  p.keep_alive = 10;
  p.client_id = "p";
  expectRoundTrip(p, kV311, B("10 0D 00 04 'MQTT' 04 02 00 0A 00 01 'p'"));
}

TEST(PacketsV311, ConnectEmptyClientId) {
  ConnectPacket p;
  p.version = kV311;
  p.keep_alive = 0;
  expectRoundTrip(p, kV311, B("10 0C 00 04 'MQTT' 04 02 00 00 00 00"));
}

TEST(PacketsV311, ConnectWithWillUserPassword) {
  ConnectPacket p;
  p.version = kV311;
  p.clean_start = false;
  p.keep_alive = 60;
  p.client_id = "client1";
  p.will = Will{.topic = "w/t", .payload = "bye", .qos = 1, .retain = true};
  p.username = "user";
  p.password = std::string("\x00\xFF", 2);
  // Flags: user name 0x80 | password 0x40 | will retain 0x20 | will QoS 1 0x08 |
  // will 0x04 = 0xEC.
  expectRoundTrip(p, kV311,
                  B("10 27 00 04 'MQTT' 04 EC 00 3C 00 07 'client1' 00 03 'w/t' 00 03 'bye'"
                    " 00 04 'user' 00 02 00 FF"));
}

TEST(PacketsV311, ConnectWillQos2NoRetainUsernameOnly) {
  ConnectPacket p;
  p.version = kV311;
  p.keep_alive = 0xFFFF;
  p.client_id = "c";
  p.will = Will{.topic = "t", .payload = "", .qos = 2, .retain = false};
  p.username = "";
  // 0x80 | 0x10 | 0x04 | 0x02 = 0x96.
  expectRoundTrip(p, kV311, B("10 14 00 04 'MQTT' 04 96 FF FF 00 01 'c' 00 01 't' 00 00 00 00"));
}

TEST(PacketsV31, Connect) {
  ConnectPacket p;
  p.version = kV31;
  p.keep_alive = 10;
  p.client_id = "p";
  expectRoundTrip(p, kV31, B("10 0F 00 06 'MQIsdp' 03 02 00 0A 00 01 'p'"));
}

TEST(PacketsV311, Connack) {
  expectRoundTrip(ConnackPacket{.session_present = true, .reason_code = 0}, kV311,
                  B("20 02 01 00"));
  expectRoundTrip(ConnackPacket{.session_present = false, .reason_code = 5}, kV311,
                  B("20 02 00 05"));
}

TEST(PacketsV31, ConnackHasNoSessionPresent) {
  expectRoundTrip(ConnackPacket{.reason_code = 2}, kV31, B("20 02 00 02"));
  // 3.1 has no Session Present flag: it is not sent, and the byte is not read.
  std::string out;
  encode(ConnackPacket{.session_present = true}, kV31, out);
  EXPECT_EQ(testing::hex(out), "20 02 00 00");
}

TEST(PacketsV311, PublishQos0) {
  PublishPacket p;
  p.topic = "a/b";
  p.payload = "hello";
  expectRoundTrip(p, kV311, B("30 0A 00 03 'a/b' 'hello'"));
}

TEST(PacketsV311, PublishQos1DupRetain) {
  PublishPacket p;
  p.dup = true;
  p.qos = 1;
  p.retain = true;
  p.topic = "a/b";
  p.packet_id = 0x1234;
  p.payload = "hello";
  expectRoundTrip(p, kV311, B("3B 0C 00 03 'a/b' 12 34 'hello'"));
}

TEST(PacketsV311, PublishQos2EmptyPayload) {
  PublishPacket p;
  p.qos = 2;
  p.topic = "a/b";
  p.packet_id = 1;
  expectRoundTrip(p, kV311, B("34 07 00 03 'a/b' 00 01"));
}

TEST(PacketsV311, PublishBinaryPayloadWithTwoByteRemainingLength) {
  PublishPacket p;
  p.topic = "t";
  for (int i = 0; i < 200; ++i) p.payload.push_back(static_cast<char>(i));
  // 2 + 1 + 200 = 203 = 0xCB 0x01.
  expectRoundTrip(p, kV311, B("30 CB 01 00 01 't'") + p.payload);
}

TEST(PacketsV311, PublishThreeByteRemainingLength) {
  PublishPacket p;
  p.topic = "t";
  p.payload.assign(20000, 'x');
  // 2 + 1 + 20000 = 20003 = 0x4E23: A3 9C 01.
  expectRoundTrip(p, kV311, B("30 A3 9C 01 00 01 't'") + p.payload);
}

TEST(PacketsV311, PublishUtf8Topic) {
  PublishPacket p;
  p.topic = "caf\xC3\xA9/\xF0\x9F\x90\xA6";  // "café/🐦"
  expectRoundTrip(p, kV311, B("30 0C 00 0A 'caf' C3 A9 '/' F0 9F 90 A6"));
}

TEST(PacketsV311, PubAcks) {
  expectRoundTrip(PubAckPacket{.type = PacketType::kPuback, .packet_id = 0x1234}, kV311,
                  B("40 02 12 34"));
  expectRoundTrip(PubAckPacket{.type = PacketType::kPubrec, .packet_id = 0x1234}, kV311,
                  B("50 02 12 34"));
  expectRoundTrip(PubAckPacket{.type = PacketType::kPubrel, .packet_id = 0x1234}, kV311,
                  B("62 02 12 34"));
  expectRoundTrip(PubAckPacket{.type = PacketType::kPubcomp, .packet_id = 0x1234}, kV311,
                  B("70 02 12 34"));
}

TEST(PacketsV311, Subscribe) {
  SubscribePacket p;
  p.packet_id = 10;
  p.subscriptions.push_back({.filter = "a/+", .qos = 1});
  p.subscriptions.push_back({.filter = "#", .qos = 2});
  expectRoundTrip(p, kV311, B("82 0C 00 0A 00 03 'a/+' 01 00 01 '#' 02"));
}

TEST(PacketsV311, SubscribeSharedAndDollarFilters) {
  SubscribePacket p;
  p.packet_id = 0xFFFF;
  p.subscriptions.push_back({.filter = "$share/g/a/#", .qos = 0});
  p.subscriptions.push_back({.filter = "$SYS/+", .qos = 1});
  expectRoundTrip(p, kV311, B("82 1A FF FF 00 0C '$share/g/a/#' 00 00 06 '$SYS/+' 01"));
}

TEST(PacketsV311, Suback) {
  SubackPacket p;
  p.packet_id = 10;
  p.reason_codes = {0x01, 0x02, 0x80, 0x00};
  expectRoundTrip(p, kV311, B("90 06 00 0A 01 02 80 00"));
}

TEST(PacketsV311, Unsubscribe) {
  UnsubscribePacket p;
  p.packet_id = 11;
  p.filters = {"a/+", "#"};
  expectRoundTrip(p, kV311, B("A2 0A 00 0B 00 03 'a/+' 00 01 '#'"));
}

TEST(PacketsV311, Unsuback) {
  expectRoundTrip(UnsubackPacket{.packet_id = 11}, kV311, B("B0 02 00 0B"));
}

TEST(PacketsV311, PingAndDisconnect) {
  expectRoundTrip(PingreqPacket{}, kV311, B("C0 00"));
  expectRoundTrip(PingrespPacket{}, kV311, B("D0 00"));
  expectRoundTrip(DisconnectPacket{}, kV311, B("E0 00"));
}

TEST(PacketsV31, OtherPacketsAsIn311) {
  PublishPacket pub;
  pub.qos = 1;
  pub.topic = "a";
  pub.packet_id = 2;
  pub.payload = "x";
  expectRoundTrip(pub, kV31, B("32 06 00 01 'a' 00 02 'x'"));
  expectRoundTrip(PubAckPacket{.type = PacketType::kPubrel, .packet_id = 2}, kV31,
                  B("62 02 00 02"));
  SubscribePacket sub;
  sub.packet_id = 3;
  sub.subscriptions.push_back({.filter = "a", .qos = 1});
  expectRoundTrip(sub, kV31, B("82 06 00 03 00 01 'a' 01"));
  expectRoundTrip(DisconnectPacket{}, kV31, B("E0 00"));
}

TEST(PacketsV31, DupAndQosBitsOnAckPacketsAreAccepted) {
  // MQTT 3.1 set DUP and QoS 1 in the fixed header of PUBREL, SUBSCRIBE and
  // UNSUBSCRIBE retries, and clients sent QoS bits on CONNECT.
  auto pubrel = testing::decodeFrame(B("6A 02 00 02"), kV31);
  ASSERT_TRUE(pubrel.ok()) << pubrel.status();
  EXPECT_TRUE(*pubrel == Packet(PubAckPacket{.type = PacketType::kPubrel, .packet_id = 2}));
  auto sub = testing::decodeFrame(B("8A 06 00 03 00 01 'a' 01"), kV31);
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto connect = testing::decodeFrame(B("14 0F 00 06 'MQIsdp' 03 02 00 0A 00 01 'p'"), kV311);
  ASSERT_TRUE(connect.ok()) << connect.status();
  EXPECT_EQ(std::get<ConnectPacket>(*connect).version, kV31);
}

}  // namespace
}  // namespace gannet::codec
