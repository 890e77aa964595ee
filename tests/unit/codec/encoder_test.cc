// What the encoder leaves out for a peer that cannot carry it.

#include "gtest/gtest.h"
#include "tests/unit/codec/codec_test_util.h"

namespace gannet::codec {
namespace {

using testing::B;
using testing::encodeToBytes;
using testing::hex;
using testing::kV31;
using testing::kV311;
using testing::kV5;

Properties someProperties() {
  Properties p;
  p.reason_string = "why";
  p.user_properties = {{"k", "v"}};
  p.message_expiry_interval = 10;
  p.session_expiry_interval = 10;
  p.topic_alias = 4;
  return p;
}

TEST(EncodeFor311, PubAckIsFourBytes) {
  PubAckPacket p{.type = PacketType::kPuback,
                 .packet_id = 7,
                 .reason_code = ReasonCode::kNotAuthorized,
                 .properties = someProperties()};
  EXPECT_EQ(hex(encodeToBytes(p, kV311)), hex(B("40 02 00 07")));
  p.type = PacketType::kPubrel;
  EXPECT_EQ(hex(encodeToBytes(p, kV311)), hex(B("62 02 00 07")));
  std::string out;
  encodePubAck(p, kV31, out);
  EXPECT_EQ(hex(out), hex(B("62 02 00 07")));
}

TEST(EncodeAck, SameBytesAsThePacketWithoutProperties) {
  for (ProtocolVersion v : {kV31, kV311, kV5}) {
    for (PacketType t : {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel,
                         PacketType::kPubcomp}) {
      for (ReasonCode rc : {ReasonCode::kSuccess, ReasonCode::kNoMatchingSubscribers,
                            ReasonCode::kQuotaExceeded, ReasonCode::kPacketIdentifierNotFound}) {
        for (uint16_t pid : {uint16_t{1}, uint16_t{0x1234}, uint16_t{65535}}) {
          std::string direct, packet;
          encodeAck(t, pid, rc, v, direct);
          encodePubAck(PubAckPacket{t, pid, rc, {}}, v, packet);
          EXPECT_EQ(hex(direct), hex(packet))
              << "version " << static_cast<int>(v) << " type " << static_cast<int>(t) << " rc "
              << static_cast<int>(rc) << " pid " << pid;
        }
      }
    }
  }
  std::string out;
  encodeAck(PacketType::kPuback, 7, ReasonCode::kQuotaExceeded, kV5, out);
  EXPECT_EQ(hex(out), hex(B("40 03 00 07 97")));
}

TEST(EncodeFor311, PublishDropsProperties) {
  PublishPacket p;
  p.qos = 1;
  p.packet_id = 1;
  p.topic = "a/b";
  p.payload = "hello";
  p.properties = someProperties();
  std::string out;
  encodePublish(p, kV311, out);
  EXPECT_EQ(hex(out), hex(B("32 0C 00 03 'a/b' 00 01 'hello'")));
}

TEST(EncodeFor311, SubackReasonCodesBecomeFailure) {
  SubackPacket p{.packet_id = 1,
                 .properties = someProperties(),
                 .reason_codes = {0x00, 0x01, 0x02, 0x80, 0x87, 0x8F, 0xA2}};
  EXPECT_EQ(hex(encodeToBytes(p, kV311)), hex(B("90 09 00 01 00 01 02 80 80 80 80")));
}

TEST(EncodeFor311, UnsubackHasNoReasonCodes) {
  UnsubackPacket p{.packet_id = 3, .properties = someProperties(), .reason_codes = {0x11}};
  EXPECT_EQ(hex(encodeToBytes(p, kV311)), hex(B("B0 02 00 03")));
}

TEST(EncodeFor311, DisconnectIsTwoBytes) {
  DisconnectPacket p{.reason_code = ReasonCode::kServerShuttingDown,
                     .properties = someProperties()};
  EXPECT_EQ(hex(encodeToBytes(p, kV311)), hex(B("E0 00")));
}

TEST(EncodeFor311, AuthIsNotSent) {
  AuthPacket p{.reason_code = ReasonCode::kContinueAuthentication};
  EXPECT_EQ(encodeToBytes(p, kV311), "");
  EXPECT_EQ(encodeToBytes(p, kV31), "");
}

TEST(EncodeFor311, SubscribeOptionsAreQosOnly) {
  SubscribePacket p{.packet_id = 1, .properties = someProperties()};
  p.subscriptions.push_back({.filter = "a",
                             .qos = 2,
                             .no_local = true,
                             .retain_as_published = true,
                             .retain_handling = 2});
  EXPECT_EQ(hex(encodeToBytes(p, kV311)), hex(B("82 06 00 01 00 01 'a' 02")));
}

TEST(EncodeFor311, ConnectAndConnackDropProperties) {
  ConnectPacket c;
  c.client_id = "p";
  c.keep_alive = 10;
  c.properties = someProperties();
  c.will = Will{.topic = "t", .payload = "x", .properties = someProperties()};
  EXPECT_EQ(hex(encodeToBytes(c, kV311)),
            hex(B("10 13 00 04 'MQTT' 04 06 00 0A 00 01 'p' 00 01 't' 00 01 'x'")));
  ConnackPacket a{.session_present = true, .reason_code = 0, .properties = someProperties()};
  EXPECT_EQ(hex(encodeToBytes(a, kV311)), hex(B("20 02 01 00")));
}

TEST(EncodeForV5, ConnectIsEncodedForTheGivenVersion) {
  ConnectPacket c;
  c.version = kV311;  // what a decoder would have read; the encoder follows `version`
  c.client_id = "p";
  c.keep_alive = 10;
  EXPECT_EQ(hex(encodeToBytes(c, kV5)), hex(B("10 0E 00 04 'MQTT' 05 02 00 0A 00 00 01 'p'")));
  EXPECT_EQ(hex(encodeToBytes(c, kV31)), hex(B("10 0F 00 06 'MQIsdp' 03 02 00 0A 00 01 'p'")));
}

TEST(EncodeForV5, PropertiesThePacketCannotCarryAreLeftOut) {
  // Only Reason String and User Property belong in a PUBACK (§3.4.2.2).
  PubAckPacket ack{.type = PacketType::kPuback, .packet_id = 7};
  ack.properties.topic_alias = 4;
  ack.properties.session_expiry_interval = 4;
  EXPECT_EQ(hex(encodeToBytes(ack, kV5)), hex(B("40 02 00 07")));
  // ... and no Session Expiry Interval in a PUBLISH.
  PublishPacket pub;
  pub.topic = "t";
  pub.properties.session_expiry_interval = 4;
  pub.properties.message_expiry_interval = 4;
  EXPECT_EQ(hex(encodeToBytes(pub, kV5)), hex(B("30 09 00 01 't' 05 02 00 00 00 04")));
}

TEST(EncodeForV5, LongPubAckUsesATwoByteRemainingLength) {
  PubAckPacket ack{
      .type = PacketType::kPubrec, .packet_id = 7, .reason_code = ReasonCode::kQuotaExceeded};
  ack.properties.reason_string = std::string(200, 'r');
  // 2 + 1 + (2 + 203) = 208 = D0 01; property length 203 = CB 01.
  testing::expectRoundTrip(ack, kV5, B("50 D0 01 00 07 97 CB 01 1F 00 C8") + std::string(200, 'r'));
}

TEST(EncodeForV5, DisconnectReasonWithoutProperties) {
  EXPECT_EQ(hex(encodeToBytes(DisconnectPacket{.reason_code = ReasonCode::kSessionTakenOver}, kV5)),
            hex(B("E0 01 8E")));
}

}  // namespace
}  // namespace gannet::codec
