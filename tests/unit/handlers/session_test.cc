// Sessions across connections: reconnecting to a kept session (§4.4 resends),
// takeover by a second connection with the same client id, and wills.

#include "handler_fixture.h"

namespace gannet::handlers::testing {
namespace {

using Strings = std::vector<std::string>;

class SessionTest : public PerVersionTest {
 protected:
  // Publishes `payload` on `topic` from a throwaway publisher connection.
  void publish(const std::string& topic, const std::string& payload, uint8_t qos) {
    if (!pub_) pub_ = connect(connectPacket(v(), "pub"));
    pub_->send(publishPacket(topic, payload, qos, qos == 0 ? 0 : next_id_++));
    pub_->receive();  // its PUBACK / PUBREC
  }
  std::unique_ptr<TestClient> pub_;
  uint16_t next_id_ = 1;
};
INSTANTIATE_TEST_SUITE_P(Versions, SessionTest,
                         ::testing::Values(ProtocolVersion::kV311, ProtocolVersion::kV5),
                         versionName);

// --- reconnect (§4.4) ---

TEST_P(SessionTest, UnackedQos1IsResentWithDupInOrderThenTheQueueFlows) {
  auto sub = connect(persistentConnect(v(), "sub"));
  subscribe(*sub, "t", 1);
  const Strings sent = {"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"};
  for (const std::string& p : sent) publish("t", p, 1);
  auto first = allAs<codec::PublishPacket>(sub->receive());
  ASSERT_EQ(payloads(first), sent);
  // Acks for some only; the network then fails.
  sub->send(ackPacket(PacketType::kPuback, first[1].packet_id));
  sub->send(ackPacket(PacketType::kPuback, first[4].packet_id));
  sub->dropNetwork();
  ASSERT_NE(ctx_.session("sub"), nullptr);
  publish("t", "later1", 1);  // queued while offline
  publish("t", "later2", 1);
  EXPECT_EQ(ctx_.session("sub")->queue.size(), 2u);

  codec::ConnackPacket ack;
  std::vector<codec::Packet> after;
  auto again = connect(persistentConnect(v(), "sub"), &ack, &after);
  EXPECT_TRUE(ack.session_present);
  auto resent = allAs<codec::PublishPacket>(after);
  EXPECT_EQ(payloads(resent), (Strings{"m1", "m3", "m4", "m6", "m7", "m8", "later1", "later2"}));
  for (size_t i = 0; i < resent.size() && i < 6; ++i) {
    EXPECT_TRUE(resent[i].dup) << describe(resent[i]);
    EXPECT_EQ(resent[i].qos, 1);
  }
  // Resent under the packet ids they were first sent with.
  EXPECT_EQ(resent.at(0).packet_id, first[0].packet_id);
  EXPECT_EQ(resent.at(1).packet_id, first[2].packet_id);
  EXPECT_EQ(resent.at(5).packet_id, first[7].packet_id);
  EXPECT_FALSE(resent.at(6).dup);  // never sent before
  EXPECT_FALSE(resent.at(7).dup);
  for (const auto& m : resent) again->send(ackPacket(PacketType::kPuback, m.packet_id));
  EXPECT_TRUE(again->receive().empty());
  EXPECT_TRUE(again->session()->inflight.empty());
}

TEST_P(SessionTest, ResendRespectsTheWindowOfTheNewConnection) {
  ctx_.cfg.max_inflight_messages = 2;
  auto sub = connect(persistentConnect(v(), "sub"));
  subscribe(*sub, "t", 1);
  for (const char* p : {"m1", "m2", "m3", "m4"}) publish("t", p, 1);
  EXPECT_EQ(allAs<codec::PublishPacket>(sub->receive()).size(), 2u);
  sub->dropNetwork();

  std::vector<codec::Packet> after;
  auto again = connect(persistentConnect(v(), "sub"), nullptr, &after);
  auto resent = allAs<codec::PublishPacket>(after);
  EXPECT_EQ(payloads(resent), (Strings{"m1", "m2"}));  // the window is full again
  again->send(ackPacket(PacketType::kPuback, resent.at(0).packet_id));
  EXPECT_EQ(payloads(allAs<codec::PublishPacket>(again->receive())), Strings{"m3"});
}

TEST_P(SessionTest, Qos2AwaitingPubcompGetsPubrelResent) {
  auto sub = connect(persistentConnect(v(), "sub"));
  subscribe(*sub, "t", 2);
  publish("t", "a", 2);
  publish("t", "b", 2);
  auto first = allAs<codec::PublishPacket>(sub->receive());
  ASSERT_EQ(payloads(first), (Strings{"a", "b"}));
  sub->send(ackPacket(PacketType::kPubrec, first[0].packet_id));  // "a" reaches PUBREL
  EXPECT_EQ(single<codec::PubAckPacket>(sub->receive()).type, PacketType::kPubrel);
  sub->dropNetwork();
  publish("t", "c", 2);

  codec::ConnackPacket ack;
  std::vector<codec::Packet> after;
  auto again = connect(persistentConnect(v(), "sub"), &ack, &after);
  EXPECT_TRUE(ack.session_present);
  ASSERT_EQ(after.size(), 3u) << describe(after);
  // In the original order: the PUBREL of "a", "b" again with DUP, then "c".
  auto rel = as<codec::PubAckPacket>(after[0]);
  EXPECT_EQ(rel.type, PacketType::kPubrel);
  EXPECT_EQ(rel.packet_id, first[0].packet_id);
  auto b = as<codec::PublishPacket>(after[1]);
  EXPECT_EQ(b.payload, "b");
  EXPECT_TRUE(b.dup);
  EXPECT_EQ(b.packet_id, first[1].packet_id);
  auto c = as<codec::PublishPacket>(after[2]);
  EXPECT_EQ(c.payload, "c");
  EXPECT_FALSE(c.dup);

  again->send(ackPacket(PacketType::kPubcomp, rel.packet_id));
  for (uint16_t id : {b.packet_id, c.packet_id}) {
    again->send(ackPacket(PacketType::kPubrec, id));
    EXPECT_EQ(single<codec::PubAckPacket>(again->receive()).type, PacketType::kPubrel);
    again->send(ackPacket(PacketType::kPubcomp, id));
  }
  EXPECT_TRUE(again->receive().empty());
  EXPECT_TRUE(again->session()->inflight.empty());
}

TEST_P(SessionTest, Qos2InboundStateSurvivesAReconnect) {
  auto sub = connect(connectPacket(v(), "sub"));
  subscribe(*sub, "t", 1);
  auto pub = connect(persistentConnect(v(), "pub"));
  pub->send(publishPacket("t", "x", 2, 9));
  EXPECT_EQ(single<codec::PubAckPacket>(pub->receive()).type, PacketType::kPubrec);
  EXPECT_EQ(allAs<codec::PublishPacket>(sub->receive()).size(), 1u);
  pub->dropNetwork();  // our PUBREC may be lost: the client resends the PUBLISH

  auto pub2 = connect(persistentConnect(v(), "pub"));
  codec::PublishPacket dup = publishPacket("t", "x", 2, 9);
  dup.dup = true;
  pub2->send(dup);
  EXPECT_EQ(single<codec::PubAckPacket>(pub2->receive()).type, PacketType::kPubrec);
  EXPECT_TRUE(sub->receive().empty());  // still exactly once
  pub2->send(ackPacket(PacketType::kPubrel, 9));
  EXPECT_EQ(single<codec::PubAckPacket>(pub2->receive()).type, PacketType::kPubcomp);
}

TEST_P(SessionTest, CleanStartDiscardsTheKeptSession) {
  auto sub = connect(persistentConnect(v(), "sub"));
  subscribe(*sub, "t", 1);
  publish("t", "m1", 1);
  sub->dropNetwork();
  publish("t", "m2", 1);

  codec::ConnackPacket ack;
  auto again = connect(connectPacket(v(), "sub"), &ack);  // nothing may follow
  EXPECT_FALSE(ack.session_present);
  EXPECT_EQ(ctx_.router().subscriptionCount(), 0u);
  EXPECT_TRUE(again->session()->inflight.empty());
  EXPECT_TRUE(again->session()->queue.empty());
}

// MQTT 5 §3.3.4 [MQTT-3.3.4-9]: never more unacknowledged QoS>0 PUBLISHes than
// the client's Receive Maximum, resends after a reconnect included; the rest are
// resent as slots free, with their original packet ids.
TEST_F(HandlerTest, V5ResendRespectsASmallerReceiveMaximum) {
  auto sub = connect(persistentConnect(ProtocolVersion::kV5, "sub"));
  subscribe(*sub, "t", 1);
  auto pub = connect(connectPacket(ProtocolVersion::kV5, "pub"));
  for (uint16_t i = 1; i <= 3; ++i) pub->send(publishPacket("t", "m" + std::to_string(i), 1, i));
  auto first = allAs<codec::PublishPacket>(sub->receive());
  ASSERT_EQ(first.size(), 3u);
  sub->dropNetwork();

  codec::ConnectPacket c = persistentConnect(ProtocolVersion::kV5, "sub");
  c.properties.receive_maximum = 1;
  std::vector<codec::Packet> after;
  auto again = connect(c, nullptr, &after);
  EXPECT_EQ(payloads(allAs<codec::PublishPacket>(after)), Strings{"m1"});
  again->send(ackPacket(PacketType::kPuback, first[0].packet_id));
  auto next = single<codec::PublishPacket>(again->receive());
  EXPECT_EQ(next.payload, "m2");
  EXPECT_EQ(next.packet_id, first[1].packet_id);  // §4.4: its original packet id
  EXPECT_TRUE(next.dup);
}

TEST_F(HandlerTest, V5SessionExpiryZeroEndsTheSessionDespiteCleanStart0) {
  codec::ConnectPacket p = connectPacket(ProtocolVersion::kV5, "c");
  p.clean_start = false;  // no Session Expiry Interval: 0, ends with the connection
  auto c = connect(p);
  c->dropNetwork();
  EXPECT_EQ(ctx_.session("c"), nullptr);
}

TEST_F(HandlerTest, V5DisconnectCanShortenButNotSetTheSessionExpiry) {
  auto kept = connect(persistentConnect(ProtocolVersion::kV5, "kept"));
  codec::DisconnectPacket d;
  d.properties.session_expiry_interval = 0;
  kept->send(d);
  EXPECT_TRUE(kept->receive().empty());
  EXPECT_EQ(ctx_.session("kept"), nullptr);  // ended at once

  // §3.14.2.2.2: non-zero on DISCONNECT after 0 on CONNECT is a Protocol Error.
  auto clean = connect(connectPacket(ProtocolVersion::kV5, "clean"));
  d.properties.session_expiry_interval = 60;
  clean->send(d);
  expectClosedWith(*clean, ReasonCode::kProtocolError);
}

// --- takeover (§3.1.4-3) ---

TEST_P(SessionTest, SecondConnectionTakesTheSessionOver) {
  auto first = connect(persistentConnect(v(), "c"));
  subscribe(*first, "t", 1);
  session::Session* s = first->session();
  publish("t", "unacked", 1);
  EXPECT_EQ(allAs<codec::PublishPacket>(first->receive()).size(), 1u);

  codec::ConnackPacket ack;
  std::vector<codec::Packet> after;
  auto second = connect(persistentConnect(v(), "c"), &ack, &after);
  EXPECT_TRUE(ack.session_present);
  EXPECT_EQ(second->session(), s);  // the same session carries over
  auto resent = single<codec::PublishPacket>(after);
  EXPECT_EQ(resent.payload, "unacked");
  EXPECT_TRUE(resent.dup);

  // The first connection: MQTT 5 DISCONNECT 0x8E Session taken over; closed.
  auto old = first->receive();
  if (isV5()) {
    EXPECT_EQ(single<codec::DisconnectPacket>(old).reason_code, ReasonCode::kSessionTakenOver);
  } else {
    EXPECT_TRUE(old.empty()) << describe(old);
  }
  EXPECT_TRUE(first->closedByBroker());
  ASSERT_EQ(ctx_.closed_clients.size(), 1u);
  EXPECT_EQ(ctx_.closed_clients[0], &first->client());

  // The subscription carried over too.
  publish("t", "new", 1);
  EXPECT_EQ(payloads(allAs<codec::PublishPacket>(second->receive())), Strings{"new"});
}

TEST_P(SessionTest, TakeoverWithCleanStartGetsAFreshSession) {
  auto first = connect(persistentConnect(v(), "c"));
  subscribe(*first, "t", 1);
  codec::ConnackPacket ack;
  auto second = connect(connectPacket(v(), "c"), &ack);
  EXPECT_FALSE(ack.session_present);
  auto old = first->receive();
  if (isV5()) {
    EXPECT_EQ(single<codec::DisconnectPacket>(old).reason_code, ReasonCode::kSessionTakenOver);
  }
  EXPECT_TRUE(first->closedByBroker());
  EXPECT_EQ(ctx_.router().subscriptionCount(), 0u);
  EXPECT_EQ(ctx_.sessionCount(), 1u);
}

// --- wills (§3.1.2.5, MQTT 5 §3.1.3.2) ---

class WillTest : public SessionTest {
 protected:
  void SetUp() override {
    SessionTest::SetUp();
    watcher = connect(connectPacket(v(), "watcher"));
    subscribe(*watcher, "will/#", 1);
  }
  codec::ConnectPacket withWill(codec::ConnectPacket p) {
    p.will = willOf("will/c", "gone", 1);
    return p;
  }
  std::vector<codec::PublishPacket> wills() {
    return allAs<codec::PublishPacket>(watcher->receive());
  }
  std::unique_ptr<TestClient> watcher;
};
INSTANTIATE_TEST_SUITE_P(Versions, WillTest,
                         ::testing::Values(ProtocolVersion::kV311, ProtocolVersion::kV5),
                         versionName);

TEST_P(WillTest, PublishedOnAbnormalClose) {
  auto c = connect(withWill(connectPacket(v(), "c")));
  EXPECT_TRUE(wills().empty());
  c->dropNetwork();
  auto got = wills();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "will/c");
  EXPECT_EQ(got[0].payload, "gone");
  EXPECT_EQ(got[0].qos, 1);
}

TEST_P(WillTest, PublishedWhenClosedForAProtocolError) {
  auto c = connect(withWill(connectPacket(v(), "c")));
  c->send(connectPacket(v(), "c"));  // a second CONNECT
  expectClosedWith(*c, ReasonCode::kProtocolError);
  EXPECT_EQ(payloads(wills()), Strings{"gone"});
}

TEST_P(WillTest, NotPublishedAfterANormalDisconnect) {
  auto c = connect(withWill(persistentConnect(v(), "c")));
  c->send(disconnectPacket());
  EXPECT_TRUE(c->receive().empty());
  EXPECT_TRUE(c->closedByBroker());
  EXPECT_TRUE(wills().empty());
  EXPECT_EQ(ctx_.session("c")->will, nullptr);  // discarded, not kept for later
}

TEST_P(WillTest, RetainedWillIsStored) {
  codec::ConnectPacket p = withWill(connectPacket(v(), "c"));
  p.will->retain = true;
  auto c = connect(p);
  c->dropNetwork();
  EXPECT_EQ(payloads(wills()), Strings{"gone"});
  EXPECT_EQ(ctx_.retained().size(), 1u);
}

TEST_P(WillTest, AReconnectReplacesTheWill) {
  auto c = connect(withWill(persistentConnect(v(), "c")));
  c->dropNetwork();
  EXPECT_EQ(payloads(wills()), Strings{"gone"});
  auto again = connect(persistentConnect(v(), "c"));  // no will this time
  again->dropNetwork();
  EXPECT_TRUE(wills().empty());
}

TEST_F(HandlerTest, V5WillPublishedAfterDisconnectWithWill) {
  auto watcher = connect(connectPacket(ProtocolVersion::kV5, "watcher"));
  subscribe(*watcher, "will/c", 0);
  codec::ConnectPacket p = connectPacket(ProtocolVersion::kV5, "c");
  p.will = willOf("will/c", "bye");
  auto c = connect(p);
  c->send(disconnectPacket(ReasonCode::kDisconnectWithWill));  // §3.14.2.1: 0x04
  EXPECT_TRUE(c->receive().empty());
  EXPECT_TRUE(c->closedByBroker());
  EXPECT_EQ(single<codec::PublishPacket>(watcher->receive()).payload, "bye");
}

class V5WillDelayTest : public HandlerTest {
 protected:
  void SetUp() override {
    HandlerTest::SetUp();
    watcher = connect(connectPacket(ProtocolVersion::kV5, "watcher"));
    subscribe(*watcher, "will/c", 0);
  }
  codec::ConnectPacket delayed(uint32_t delay_s, uint32_t session_expiry_s) {
    codec::ConnectPacket p = connectPacket(ProtocolVersion::kV5, "c");
    p.clean_start = false;
    p.properties.session_expiry_interval = session_expiry_s;
    p.will = willOf("will/c", "late");
    p.will->properties.will_delay_interval = delay_s;
    return p;
  }
  std::unique_ptr<TestClient> watcher;
};

TEST_F(V5WillDelayTest, NotPublishedAtOnceWhenDelayedAndTheSessionOutlivesTheConnection) {
  auto c = connect(delayed(30, 300));
  c->dropNetwork();
  EXPECT_TRUE(watcher->receive().empty());
  session::Session* s = ctx_.session("c");
  ASSERT_NE(s, nullptr);
  ASSERT_NE(s->will, nullptr);
  EXPECT_EQ(s->will_due_ms, ctx_.now_ms + 30'000);  // the worker's timer publishes it then
}

TEST_F(V5WillDelayTest, DueAtTheSessionEndWhenThatComesFirst) {
  auto c = connect(delayed(600, 60));
  c->dropNetwork();
  EXPECT_TRUE(watcher->receive().empty());
  EXPECT_EQ(ctx_.session("c")->will_due_ms, ctx_.now_ms + 60'000);
}

TEST_F(V5WillDelayTest, PublishedAtOnceWithoutSessionExpiry) {
  auto c = connect(delayed(30, 0));  // the session ends now, and the will with it
  c->dropNetwork();
  EXPECT_EQ(single<codec::PublishPacket>(watcher->receive()).payload, "late");
  EXPECT_EQ(ctx_.session("c"), nullptr);
}

TEST_F(V5WillDelayTest, AReconnectBeforeTheDelayCancelsIt) {
  auto c = connect(delayed(30, 300));
  c->dropNetwork();
  ctx_.advance(10'000);
  codec::ConnectPacket p = persistentConnect(ProtocolVersion::kV5, "c");
  auto again = connect(p);
  session::Session* s = ctx_.session("c");
  EXPECT_EQ(s->will_due_ms, 0);
  EXPECT_EQ(s->will, nullptr);
  EXPECT_TRUE(watcher->receive().empty());
}

TEST_F(V5WillDelayTest, ACleanStartReconnectPublishesThePendingWill) {
  auto c = connect(delayed(30, 300));
  c->dropNetwork();
  // The old session ends, and a delayed will is due at the latest then (§3.1.3.2.2).
  auto again = connect(connectPacket(ProtocolVersion::kV5, "c"));
  EXPECT_EQ(single<codec::PublishPacket>(watcher->receive()).payload, "late");
}

}  // namespace
}  // namespace gannet::handlers::testing
