// QoS 1 and 2 flows (§4.3): outbound (the broker sends PUBLISH, the client
// acks), the window and the session queue in front of it, and inbound QoS 2
// (exactly once toward subscribers).

#include "handler_fixture.h"

namespace gannet::handlers::testing {
namespace {

class QosTest : public PerVersionTest {
 protected:
  // A subscriber "sub" on "t" at `qos` and a publisher "pub", both connected.
  void SetUpPair(uint8_t qos, codec::ConnectPacket sub_connect = {}) {
    if (sub_connect.client_id.empty()) sub_connect = connectPacket(v(), "sub");
    sub = connect(sub_connect);
    subscribe(*sub, "t", qos);
    pub = connect(connectPacket(v(), "pub"));
  }
  // Publishes `payloads` on "t" at `qos` with packet ids 1, 2, ...; expects
  // them all acknowledged.
  void publishAll(const std::vector<std::string>& payloads, uint8_t qos) {
    uint16_t id = 1;
    for (const std::string& p : payloads) pub->send(publishPacket("t", p, qos, id++));
    auto acks = allAs<codec::PubAckPacket>(pub->receive());
    EXPECT_EQ(acks.size(), payloads.size());
  }
  std::vector<codec::PublishPacket> received() {
    return allAs<codec::PublishPacket>(sub->receive());
  }

  std::unique_ptr<TestClient> sub;
  std::unique_ptr<TestClient> pub;
};
INSTANTIATE_TEST_SUITE_P(Versions, QosTest,
                         ::testing::Values(ProtocolVersion::kV311, ProtocolVersion::kV5),
                         versionName);

using Strings = std::vector<std::string>;

// --- QoS 1 outbound ---

TEST_P(QosTest, Qos1IsDeliveredWithAPacketIdThatPubackReleases) {
  SetUpPair(1);
  pub->send(publishPacket("t", "m1", 1, 10));
  auto ack = single<codec::PubAckPacket>(pub->receive());
  EXPECT_EQ(ack.type, PacketType::kPuback);
  EXPECT_EQ(ack.packet_id, 10);
  EXPECT_EQ(ack.reason_code, ReasonCode::kSuccess);

  auto m = single<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(m.topic, "t");
  EXPECT_EQ(m.payload, "m1");
  EXPECT_EQ(m.qos, 1);
  EXPECT_NE(m.packet_id, 0);
  EXPECT_FALSE(m.dup);
  EXPECT_FALSE(m.retain);
  ASSERT_EQ(sub->session()->inflight.size(), 1u);
  EXPECT_TRUE(sub->session()->inflight.contains(m.packet_id));

  sub->send(ackPacket(PacketType::kPuback, m.packet_id));
  EXPECT_TRUE(sub->receive().empty());
  EXPECT_TRUE(sub->session()->inflight.empty());
  // A duplicate PUBACK for a released id is ignored.
  sub->send(ackPacket(PacketType::kPuback, m.packet_id));
  EXPECT_TRUE(sub->receive().empty());
  EXPECT_FALSE(sub->closedByBroker());
  EXPECT_EQ(ctx_.stats().messages_received[1].get(), 1u);
  EXPECT_EQ(ctx_.stats().messages_sent[1].get(), 1u);
}

TEST_P(QosTest, PublishWithoutSubscribersIsAckedAndCounted) {
  pub = connect(connectPacket(v(), "pub"));
  pub->send(publishPacket("nobody", "x", 1, 3));
  auto ack = single<codec::PubAckPacket>(pub->receive());
  // MQTT 5 §3.4.2.1: 0x10 No matching subscribers (a success code).
  EXPECT_EQ(ack.reason_code, isV5() ? ReasonCode::kNoMatchingSubscribers : ReasonCode::kSuccess);
  EXPECT_EQ(ctx_.dropped(DropReason::kNoSubscribers), 1u);
}

TEST_P(QosTest, WindowHoldsMessagesInTheQueueUntilAcksArrive) {
  ctx_.cfg.max_inflight_messages = 2;
  SetUpPair(1);
  publishAll({"m1", "m2", "m3", "m4", "m5"}, 1);

  auto first = received();
  EXPECT_EQ(payloads(first), (Strings{"m1", "m2"}));
  EXPECT_EQ(sub->session()->inflight.size(), 2u);
  EXPECT_EQ(sub->session()->queue.size(), 3u);

  // Each ack frees one slot; the queue flows in publish order.
  sub->send(ackPacket(PacketType::kPuback, first[0].packet_id));
  auto m3 = received();
  EXPECT_EQ(payloads(m3), Strings{"m3"});
  sub->send(ackPacket(PacketType::kPuback, first[1].packet_id));
  auto m4 = received();
  EXPECT_EQ(payloads(m4), Strings{"m4"});
  sub->send(ackPacket(PacketType::kPuback, m3.at(0).packet_id));
  auto m5 = received();
  EXPECT_EQ(payloads(m5), Strings{"m5"});
  EXPECT_TRUE(sub->session()->queue.empty());

  sub->send(ackPacket(PacketType::kPuback, m4.at(0).packet_id));
  sub->send(ackPacket(PacketType::kPuback, m5.at(0).packet_id));
  EXPECT_TRUE(received().empty());
  EXPECT_TRUE(sub->session()->inflight.empty());
  EXPECT_EQ(ctx_.dropped(DropReason::kQueueFull), 0u);
}

TEST_P(QosTest, QueueBoundDropsAndCounts) {
  ctx_.cfg.max_inflight_messages = 1;
  ctx_.cfg.max_queued_messages = 2;
  SetUpPair(1);
  publishAll({"m1", "m2", "m3", "m4", "m5"}, 1);

  auto m1 = received();
  EXPECT_EQ(payloads(m1), Strings{"m1"});
  EXPECT_EQ(sub->session()->queue.size(), 2u);
  EXPECT_EQ(ctx_.dropped(DropReason::kQueueFull), 2u);  // m4 and m5

  sub->send(ackPacket(PacketType::kPuback, m1.at(0).packet_id));
  auto m2 = received();
  EXPECT_EQ(payloads(m2), Strings{"m2"});
  sub->send(ackPacket(PacketType::kPuback, m2.at(0).packet_id));
  auto m3 = received();
  EXPECT_EQ(payloads(m3), Strings{"m3"});
  sub->send(ackPacket(PacketType::kPuback, m3.at(0).packet_id));
  EXPECT_TRUE(received().empty());
}

TEST_P(QosTest, DropOldestKeepsTheNewestMessages) {
  ctx_.cfg.max_inflight_messages = 1;
  ctx_.cfg.max_queued_messages = 2;
  ctx_.cfg.queue_overflow = BrokerConfig::QueueOverflow::kDropOldest;
  SetUpPair(1);
  publishAll({"m1", "m2", "m3", "m4", "m5"}, 1);

  auto m1 = received();
  EXPECT_EQ(payloads(m1), Strings{"m1"});  // in flight before the queue filled
  EXPECT_EQ(ctx_.dropped(DropReason::kQueueFull), 2u);  // m2 and m3 made room
  sub->send(ackPacket(PacketType::kPuback, m1.at(0).packet_id));
  auto m4 = received();
  EXPECT_EQ(payloads(m4), Strings{"m4"});
  sub->send(ackPacket(PacketType::kPuback, m4.at(0).packet_id));
  EXPECT_EQ(payloads(received()), Strings{"m5"});
}

TEST_P(QosTest, ByteBoundLimitsTheQueue) {
  ctx_.cfg.max_inflight_messages = 1;
  ctx_.cfg.max_queued_bytes = 2 * (1 + 10);  // two messages of topic "t" + 10-byte payload
  SetUpPair(1);
  publishAll({"0123456789", "abcdefghij", "ABCDEFGHIJ", "9876543210"}, 1);

  auto first = received();
  EXPECT_EQ(payloads(first), Strings{"0123456789"});
  EXPECT_EQ(sub->session()->queue.size(), 2u);
  EXPECT_EQ(sub->session()->queued_bytes, 22u);
  EXPECT_EQ(ctx_.dropped(DropReason::kQueueFull), 1u);  // the fourth did not fit
}

TEST_P(QosTest, Qos0ToAnOfflineSessionIsDroppedAndCounted) {
  SetUpPair(0, persistentConnect(v(), "sub"));
  sub->dropNetwork();
  pub->send(publishPacket("t", "x", 0));
  EXPECT_EQ(ctx_.dropped(DropReason::kOffline), 1u);
  EXPECT_TRUE(ctx_.session("sub")->queue.empty());
}

TEST_F(HandlerTest, V5ClientReceiveMaximumIsTheWindow) {
  ctx_.cfg.max_inflight_messages = 20;
  codec::ConnectPacket c = connectPacket(ProtocolVersion::kV5, "sub");
  c.properties.receive_maximum = 1;
  auto sub = connect(c);
  subscribe(*sub, "t", 2);
  auto pub = connect(connectPacket(ProtocolVersion::kV5, "pub"));
  pub->send(publishPacket("t", "a", 1, 1));
  pub->send(publishPacket("t", "b", 2, 2));
  auto first = allAs<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(payloads(first), Strings{"a"});
  EXPECT_EQ(sub->session()->queue.size(), 1u);
  sub->send(ackPacket(PacketType::kPuback, first.at(0).packet_id));
  auto second = allAs<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(payloads(second), Strings{"b"});
  EXPECT_EQ(second.at(0).qos, 2);
}

// The output bound (--max_connection_buffer_bytes): over it, QoS 0 is dropped and
// QoS 1/2 wait in the session queue until the output drains.
TEST_P(QosTest, OverTheOutputBoundQos0IsDroppedAndQos1Waits) {
  ctx_.cfg.max_connection_buffer_bytes = 200;  // read when the Client is created
  SetUpPair(1);
  pub->send(publishPacket("t", std::string(300, 'x'), 0));  // fills the output
  pub->send(publishPacket("t", "dropped", 0));
  pub->send(publishPacket("t", "waits", 1, 1));
  EXPECT_EQ(ctx_.dropped(DropReason::kSlowConsumer), 1u);
  EXPECT_EQ(sub->session()->queue.size(), 1u);
  EXPECT_TRUE(sub->session()->inflight.empty());
}

// A QoS 1 message queued behind a full output flows once the output drains,
// however the output filled (here: by deliveries, not by the client's input).
TEST_P(QosTest, Qos1QueuedBehindAFullOutputFlowsWhenItDrains) {
  ctx_.cfg.max_connection_buffer_bytes = 200;
  SetUpPair(1);
  pub->send(publishPacket("t", std::string(300, 'x'), 0));
  pub->send(publishPacket("t", "waits", 1, 1));
  auto got = allAs<codec::PublishPacket>(sub->receive());  // drains the output
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].payload, "waits");
  pub->send(publishPacket("t", "next", 1, 2));
  EXPECT_EQ(payloads(received()), Strings{"next"});
  EXPECT_TRUE(sub->session()->queue.empty());
}

// --- QoS 2 outbound ---

TEST_P(QosTest, Qos2PubrecGetsPubrelAndPubcompCompletes) {
  ctx_.cfg.max_inflight_messages = 1;  // so the next message waits for PUBCOMP
  SetUpPair(2);
  publishAll({"m1", "m2"}, 2);
  auto m = single<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(m.payload, "m1");
  EXPECT_EQ(m.qos, 2);

  sub->send(ackPacket(PacketType::kPubrec, m.packet_id));
  auto rel = single<codec::PubAckPacket>(sub->receive());
  EXPECT_EQ(rel.type, PacketType::kPubrel);
  EXPECT_EQ(rel.packet_id, m.packet_id);
  ASSERT_TRUE(sub->session()->inflight.contains(m.packet_id));
  EXPECT_TRUE(sub->session()->inflight.at(m.packet_id).pubrec_received);

  // A resent PUBREC (our PUBREL was lost) is answered with PUBREL again.
  sub->send(ackPacket(PacketType::kPubrec, m.packet_id));
  EXPECT_EQ(single<codec::PubAckPacket>(sub->receive()).type, PacketType::kPubrel);

  // The id stays in flight until PUBCOMP; then the window opens for m2.
  EXPECT_EQ(sub->session()->queue.size(), 1u);
  sub->send(ackPacket(PacketType::kPubcomp, m.packet_id));
  auto m2 = single<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(m2.payload, "m2");
  EXPECT_FALSE(sub->session()->inflight.contains(m.packet_id));
  EXPECT_EQ(sub->session()->inflight.size(), 1u);
}

TEST_P(QosTest, PubrecForAnUnknownIdIsAnsweredWithPubrel) {
  SetUpPair(2);
  // §4.3.3: e.g. a PUBREC resent after the flow completed.
  sub->send(ackPacket(PacketType::kPubrec, 77));
  auto rel = single<codec::PubAckPacket>(sub->receive());
  EXPECT_EQ(rel.type, PacketType::kPubrel);
  EXPECT_EQ(rel.packet_id, 77);
}

TEST_F(HandlerTest, V5FailedPubrecEndsTheFlow) {
  auto sub = connect(connectPacket(ProtocolVersion::kV5, "sub"));
  subscribe(*sub, "t", 2);
  auto pub = connect(connectPacket(ProtocolVersion::kV5, "pub"));
  pub->send(publishPacket("t", "m", 2, 1));
  auto m = single<codec::PublishPacket>(sub->receive());
  sub->send(ackPacket(PacketType::kPubrec, m.packet_id, ReasonCode::kQuotaExceeded));
  EXPECT_TRUE(sub->receive().empty());  // no PUBREL
  EXPECT_TRUE(sub->session()->inflight.empty());
}

// An ack of the wrong kind for the message's QoS is a Protocol Error (§4.3).
TEST_P(QosTest, PubackForQos2IsAProtocolError) {
  SetUpPair(2);
  publishAll({"m"}, 2);
  auto m = single<codec::PublishPacket>(sub->receive());
  sub->send(ackPacket(PacketType::kPuback, m.packet_id));
  expectClosedWith(*sub, ReasonCode::kProtocolError);
}

TEST_P(QosTest, PubcompBeforePubrecIsAProtocolError) {
  SetUpPair(2);
  publishAll({"m"}, 2);
  auto m = single<codec::PublishPacket>(sub->receive());
  sub->send(ackPacket(PacketType::kPubcomp, m.packet_id));
  expectClosedWith(*sub, ReasonCode::kProtocolError);
}

TEST_P(QosTest, PubrecForQos1IsAProtocolError) {
  SetUpPair(1);
  publishAll({"m"}, 1);
  auto m = single<codec::PublishPacket>(sub->receive());
  sub->send(ackPacket(PacketType::kPubrec, m.packet_id));
  expectClosedWith(*sub, ReasonCode::kProtocolError);
}

TEST_P(QosTest, PubcompForQos1IsAProtocolError) {
  SetUpPair(1);
  publishAll({"m"}, 1);
  auto m = single<codec::PublishPacket>(sub->receive());
  sub->send(ackPacket(PacketType::kPubcomp, m.packet_id));
  expectClosedWith(*sub, ReasonCode::kProtocolError);
}

// --- QoS 2 inbound ---

TEST_P(QosTest, Qos2InboundIsDeliveredExactlyOnce) {
  SetUpPair(2);
  pub->send(publishPacket("t", "once", 2, 7));
  auto rec = single<codec::PubAckPacket>(pub->receive());
  EXPECT_EQ(rec.type, PacketType::kPubrec);
  EXPECT_EQ(rec.packet_id, 7);
  EXPECT_EQ(payloads(received()), Strings{"once"});
  EXPECT_TRUE(pub->session()->awaiting_pubrel.contains(7));

  // The same id again before PUBREL (our PUBREC was lost): PUBREC again, no
  // second delivery (§4.3.3).
  codec::PublishPacket again = publishPacket("t", "once", 2, 7);
  again.dup = true;
  pub->send(again);
  rec = single<codec::PubAckPacket>(pub->receive());
  EXPECT_EQ(rec.type, PacketType::kPubrec);
  EXPECT_EQ(rec.packet_id, 7);
  EXPECT_TRUE(received().empty());

  pub->send(ackPacket(PacketType::kPubrel, 7));
  auto comp = single<codec::PubAckPacket>(pub->receive());
  EXPECT_EQ(comp.type, PacketType::kPubcomp);
  EXPECT_EQ(comp.packet_id, 7);
  EXPECT_FALSE(pub->session()->awaiting_pubrel.contains(7));

  // Released: the id is free for a new message, which is delivered.
  pub->send(publishPacket("t", "next", 2, 7));
  EXPECT_EQ(single<codec::PubAckPacket>(pub->receive()).type, PacketType::kPubrec);
  EXPECT_EQ(payloads(received()), Strings{"next"});
  EXPECT_EQ(ctx_.stats().messages_received[2].get(), 2u);
}

TEST_P(QosTest, PubrelForAnUnknownIdIsAnsweredWithPubcomp) {
  pub = connect(connectPacket(v(), "pub"));
  pub->send(ackPacket(PacketType::kPubrel, 9));
  auto comp = single<codec::PubAckPacket>(pub->receive());
  EXPECT_EQ(comp.type, PacketType::kPubcomp);
  EXPECT_EQ(comp.packet_id, 9);
}

TEST_F(HandlerTest, V5TooManyUnreleasedQos2IsReceiveMaximumExceeded) {
  ctx_.cfg.receive_maximum = 2;
  auto pub = connect(connectPacket(ProtocolVersion::kV5, "pub"));
  pub->send(publishPacket("t", "1", 2, 1));
  pub->send(publishPacket("t", "2", 2, 2));
  EXPECT_EQ(allAs<codec::PubAckPacket>(pub->receive()).size(), 2u);
  pub->send(publishPacket("t", "3", 2, 3));  // MQTT 5 §3.3.4: over our Receive Maximum
  expectClosedWith(*pub, ReasonCode::kReceiveMaximumExceeded);
}

TEST_P(QosTest, OwnSubscriptionSeesTheAckFirst) {
  auto c = connect(connectPacket(v(), "c"));
  subscribe(*c, "t", 1);
  c->send(publishPacket("t", "self", 1, 4));
  auto got = c->receive();
  ASSERT_EQ(got.size(), 2u) << describe(got);
  EXPECT_EQ(as<codec::PubAckPacket>(got[0]).packet_id, 4);
  EXPECT_EQ(as<codec::PublishPacket>(got[1]).payload, "self");
}

}  // namespace
}  // namespace gannet::handlers::testing
