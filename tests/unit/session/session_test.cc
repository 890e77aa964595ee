#include "broker/session/session.h"

#include <gtest/gtest.h>

namespace gannet::session {
namespace {

OutboundMessage message(std::string topic, std::string payload, uint8_t qos = 1) {
  auto m = std::make_shared<router::Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = qos;
  OutboundMessage out;
  out.message = m;
  out.qos = qos;
  return out;
}

TEST(SessionTest, PacketIdsAreNonZeroAndSkipInflight) {
  Session s(1, "c");
  EXPECT_EQ(s.nextPacketId(), 1);
  s.inflight[2] = InflightMessage{};
  EXPECT_EQ(s.nextPacketId(), 3);  // 2 is in flight (§2.2.1)
}

TEST(SessionTest, PacketIdsWrapAroundSkippingZero) {
  Session s(1, "c");
  for (int i = 0; i < 65535; ++i) s.nextPacketId();  // last was 65535
  EXPECT_EQ(s.nextPacketId(), 1);
}

TEST(SessionTest, PacketIdsExhaustedReturnsZero) {
  Session s(1, "c");
  for (uint32_t id = 1; id <= 65535; ++id) s.inflight[static_cast<uint16_t>(id)] = {};
  EXPECT_EQ(s.nextPacketId(), 0);
}

TEST(SessionTest, QueueKeepsOrderAndCountsBytes) {
  Session s(1, "c");
  s.enqueue(message("a", "12345"));
  s.enqueue(message("bb", "1"));
  EXPECT_EQ(s.queue.size(), 2u);
  EXPECT_EQ(s.queued_bytes, 1u + 5u + 2u + 1u);
  EXPECT_EQ(s.dequeue().message->topic, "a");
  EXPECT_EQ(s.queued_bytes, 3u);
  EXPECT_EQ(s.dequeue().message->topic, "bb");
  EXPECT_TRUE(s.queue.empty());
  EXPECT_EQ(s.queued_bytes, 0u);
}

TEST(SessionTest, LongQueueStaysInOrderAcrossCompaction) {
  Session s(1, "c");
  for (int i = 0; i < 5000; ++i) s.enqueue(message("t", std::to_string(i)));
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(s.dequeue().message->payload, std::to_string(i));
  for (int i = 5000; i < 6000; ++i) s.enqueue(message("t", std::to_string(i)));
  for (int i = 3000; i < 6000; ++i) ASSERT_EQ(s.dequeue().message->payload, std::to_string(i));
  EXPECT_TRUE(s.queue.empty());
}

}  // namespace
}  // namespace gannet::session
