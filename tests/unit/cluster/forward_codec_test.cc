#include "cluster/forward_codec.h"

#include <gtest/gtest.h>

#include <string>

namespace gannet::cluster {
namespace {

TEST(ForwardCodec, MessagesRoundTripInOrder) {
  PackedForwards batch;
  ForwardView a;
  a.topic = "plant/1/temp";
  a.payload = std::string_view("\x00\x01\xff", 3);
  a.qos = 1;
  a.ack_worker = 3;
  a.ack_token = 1234567890123;
  ForwardView b;
  b.topic = "t";
  b.qos = 2;
  b.retain = true;
  b.properties = "\x0a\x03" "abc";
  b.expiry_in_ms = 60000;
  b.shared_groups = true;
  ForwardView c;  // QoS 0, empty payload, nothing else
  c.topic = std::string(300, 'x');
  batch.add(a);
  batch.add(b);
  batch.add(c);
  EXPECT_EQ(batch.count, 3u);
  ASSERT_EQ(batch.acks.size(), 1u);
  EXPECT_EQ(batch.acks[0], (std::pair<uint32_t, uint64_t>{3, 1234567890123}));

  std::string_view rest = batch.bytes;
  ForwardView m;
  ASSERT_TRUE(readForward(&rest, &m));
  EXPECT_EQ(m.topic, a.topic);
  EXPECT_EQ(m.payload, a.payload);
  EXPECT_EQ(m.qos, 1);
  EXPECT_FALSE(m.retain);
  EXPECT_EQ(m.ack_worker, 3u);
  EXPECT_EQ(m.ack_token, 1234567890123u);
  EXPECT_FALSE(m.shared_groups);
  ASSERT_TRUE(readForward(&rest, &m));
  EXPECT_EQ(m.topic, "t");
  EXPECT_TRUE(m.retain);
  EXPECT_EQ(m.qos, 2);
  EXPECT_EQ(m.properties, b.properties);
  EXPECT_EQ(m.expiry_in_ms, 60000);
  EXPECT_EQ(m.ack_token, 0u);
  EXPECT_TRUE(m.shared_groups);
  ASSERT_TRUE(readForward(&rest, &m));
  EXPECT_EQ(m.topic.size(), 300u);
  EXPECT_TRUE(m.payload.empty());
  EXPECT_TRUE(rest.empty());
  EXPECT_FALSE(readForward(&rest, &m));
}

TEST(ForwardCodec, TruncatedOrBadInputIsRefused) {
  PackedForwards batch;
  ForwardView a;
  a.topic = "a/b";
  a.payload = "payload";
  a.expiry_in_ms = 5;
  a.ack_token = 9;
  batch.add(a);
  // Every cut short prefix is refused, never read past its end.
  for (size_t n = 0; n < batch.bytes.size(); ++n) {
    std::string_view cut(batch.bytes.data(), n);
    ForwardView m;
    EXPECT_FALSE(readForward(&cut, &m)) << "prefix of " << n << " bytes";
  }
  std::string bad = batch.bytes;
  bad[0] = static_cast<char>(0x03);  // QoS 3
  std::string_view v = bad;
  ForwardView m;
  EXPECT_FALSE(readForward(&v, &m));
  std::string huge = std::string(1, '\0') + "\xff\xff\xff\xff\x0f";  // topic longer than the input
  v = huge;
  EXPECT_FALSE(readForward(&v, &m));
}

}  // namespace
}  // namespace gannet::cluster
