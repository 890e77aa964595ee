// peekFrame(), the variable byte integer, and streams of several packets.

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/codec/codec_test_util.h"

namespace gannet::codec {
namespace {

using testing::B;
using testing::hex;
using testing::kV311;
using testing::kV5;

TEST(PeekFrame, NeedsTheWholeFixedHeader) {
  EXPECT_FALSE(peekFrame("")->has_value());
  EXPECT_FALSE(peekFrame(B("30"))->has_value());
  EXPECT_FALSE(peekFrame(B("30 80"))->has_value());
  EXPECT_FALSE(peekFrame(B("30 80 80"))->has_value());
  EXPECT_FALSE(peekFrame(B("30 FF FF FF"))->has_value());
}

TEST(PeekFrame, ReportsTheHeaderBeforeTheBodyArrives) {
  auto peek = peekFrame(B("3B 0C 00"));
  ASSERT_TRUE(peek.ok() && peek->has_value());
  const FrameHeader& h = **peek;
  EXPECT_EQ(h.type(), PacketType::kPublish);
  EXPECT_EQ(h.flags(), 0x0B);
  EXPECT_EQ(h.remaining_length, 12u);
  EXPECT_EQ(h.header_length, 2);
  EXPECT_EQ(h.totalLength(), 14u);
}

TEST(PeekFrame, RemainingLengthBoundaries) {
  // §1.5.5 Table 1-1.
  const struct {
    const char* bytes;
    uint32_t value;
    int header_length;
  } cases[] = {
      {"30 00", 0, 2},
      {"30 7F", 127, 2},
      {"30 80 01", 128, 3},
      {"30 FF 7F", 16'383, 3},
      {"30 80 80 01", 16'384, 4},
      {"30 FF FF 7F", 2'097'151, 4},
      {"30 80 80 80 01", 2'097'152, 5},
      {"30 FF FF FF 7F", 268'435'455, 5},
  };
  for (const auto& c : cases) {
    auto peek = peekFrame(B(c.bytes));
    ASSERT_TRUE(peek.ok()) << c.bytes << ": " << peek.status();
    ASSERT_TRUE(peek->has_value()) << c.bytes;
    EXPECT_EQ((*peek)->remaining_length, c.value) << c.bytes;
    EXPECT_EQ((*peek)->header_length, c.header_length) << c.bytes;
  }
}

TEST(PeekFrame, DoesNotJudgeTypeOrFlags) {
  // decodePacket() does that; peekFrame only frames.
  auto peek = peekFrame(B("0F 00"));
  ASSERT_TRUE(peek.ok() && peek->has_value());
  EXPECT_EQ((*peek)->totalLength(), 2u);
}

TEST(AppendVarInt, Boundaries) {
  const struct {
    uint32_t value;
    const char* bytes;
  } cases[] = {
      {0, "00"},
      {127, "7F"},
      {128, "80 01"},
      {16'383, "FF 7F"},
      {16'384, "80 80 01"},
      {2'097'151, "FF FF 7F"},
      {2'097'152, "80 80 80 01"},
      {268'435'455, "FF FF FF 7F"},
      {300, "AC 02"},
  };
  for (const auto& c : cases) {
    std::string out = "x";
    const int n = appendVarInt(c.value, out);
    EXPECT_EQ(hex(out.substr(1)), hex(B(c.bytes))) << c.value;
    EXPECT_EQ(static_cast<size_t>(n), out.size() - 1) << c.value;
    EXPECT_EQ(out[0], 'x');
  }
}

// A connection's input: several packets back to back, arriving in chunks of every
// size from 1 byte up. Each packet comes out whole and in order.
TEST(Stream, SeveralPacketsInArbitraryChunks) {
  std::vector<Packet> packets;
  {
    ConnectPacket c;
    c.version = kV5;
    c.client_id = "dev-1";
    c.properties.receive_maximum = 100;
    packets.emplace_back(c);
    PublishPacket p;
    p.qos = 1;
    p.packet_id = 1;
    p.topic = "sensors/1/temp";
    p.payload.assign(300, 'v');  // two-byte remaining length
    p.properties.user_properties = {{"unit", "C"}};
    packets.emplace_back(p);
    packets.emplace_back(PingreqPacket{});
    SubscribePacket s;
    s.packet_id = 2;
    s.subscriptions.push_back({.filter = "cmd/#", .qos = 2});
    packets.emplace_back(s);
    packets.emplace_back(PubAckPacket{.type = PacketType::kPubrel, .packet_id = 9});
    packets.emplace_back(DisconnectPacket{});
  }
  std::string wire;
  for (const Packet& p : packets) encode(p, kV5, wire);

  for (size_t chunk = 1; chunk <= wire.size(); chunk = chunk < 8 ? chunk + 1 : chunk * 2) {
    std::string buffer;
    size_t fed = 0;
    size_t next = 0;
    while (fed < wire.size() || !buffer.empty()) {
      if (fed < wire.size()) {
        const size_t n = std::min(chunk, wire.size() - fed);
        buffer.append(wire, fed, n);
        fed += n;
      }
      // Take every whole packet in the buffer, as a connection would.
      while (true) {
        auto peek = peekFrame(buffer);
        ASSERT_TRUE(peek.ok()) << peek.status();
        if (!peek->has_value() || (*peek)->totalLength() > buffer.size()) break;
        const size_t total = (*peek)->totalLength();
        auto decoded = decodePacket(**peek, std::string_view(buffer).substr(0, total), kV5);
        ASSERT_TRUE(decoded.ok()) << decoded.status();
        ASSERT_LT(next, packets.size());
        EXPECT_TRUE(*decoded == packets[next]) << "packet " << next << " chunk " << chunk;
        ++next;
        buffer.erase(0, total);
      }
      if (fed == wire.size() && !buffer.empty()) {
        FAIL() << "bytes left over: " << hex(buffer);
      }
    }
    EXPECT_EQ(next, packets.size()) << "chunk " << chunk;
  }
}

TEST(Stream, EncodeAppendsWithoutTouchingEarlierBytes) {
  std::string out;
  encode(PingreqPacket{}, kV311, out);
  encodePubAck(PubAckPacket{.packet_id = 5}, kV311, out);
  PublishPacket p;
  p.topic = "t";
  encodePublish(p, kV311, out);
  EXPECT_EQ(hex(out), hex(B("C0 00 40 02 00 05 30 03 00 01 't'")));
}

}  // namespace
}  // namespace gannet::codec
