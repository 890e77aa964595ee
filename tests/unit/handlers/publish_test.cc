// MQTT 5 features of PUBLISH: topic aliases both ways, message expiry, and the
// client's Maximum Packet Size.

#include "handler_fixture.h"

namespace gannet::handlers::testing {
namespace {

using Strings = std::vector<std::string>;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

codec::PublishPacket aliased(std::string topic, uint16_t alias, std::string payload) {
  codec::PublishPacket p = publishPacket(std::move(topic), std::move(payload));
  p.properties.topic_alias = alias;
  return p;
}

codec::PublishPacket expiring(std::string payload, uint32_t expiry_s, uint8_t qos, uint16_t id) {
  codec::PublishPacket p = publishPacket("t", std::move(payload), qos, id);
  p.properties.message_expiry_interval = expiry_s;
  return p;
}

// --- topic aliases from the client (MQTT 5 §3.3.2.3.4) ---

class InboundAliasTest : public HandlerTest {
 protected:
  void SetUp() override {
    HandlerTest::SetUp();
    ctx_.cfg.topic_alias_maximum = 2;
    sub = connect(connectPacket(kV5, "sub"));
    subscribe(*sub, "#", 0);
    pub = connect(connectPacket(kV5, "pub"));
  }
  std::vector<codec::PublishPacket> received() {
    return allAs<codec::PublishPacket>(sub->receive());
  }
  std::unique_ptr<TestClient> sub;
  std::unique_ptr<TestClient> pub;
};

TEST_F(InboundAliasTest, AliasIsSetThenUsedWithAnEmptyTopic) {
  pub->send(aliased("a/b", 1, "one"));
  pub->send(aliased("", 1, "two"));
  pub->send(aliased("c/d", 1, "three"));  // the alias now means c/d
  pub->send(aliased("", 1, "four"));
  auto got = received();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].topic, "a/b");
  EXPECT_EQ(got[1].topic, "a/b");
  EXPECT_EQ(got[2].topic, "c/d");
  EXPECT_EQ(got[3].topic, "c/d");
  EXPECT_EQ(payloads(got), (Strings{"one", "two", "three", "four"}));
  // The alias is the publisher's: it does not reach the subscriber.
  EXPECT_FALSE(got[1].properties.topic_alias.has_value());
  EXPECT_FALSE(pub->closedByBroker());
}

TEST_F(InboundAliasTest, AliasZeroIsTopicAliasInvalid) {
  pub->send(aliased("a/b", 0, "x"));
  expectClosedWith(*pub, ReasonCode::kTopicAliasInvalid);
  EXPECT_TRUE(received().empty());
}

TEST_F(InboundAliasTest, AliasAboveTheMaximumIsTopicAliasInvalid) {
  pub->send(aliased("a/b", 3, "x"));  // the maximum announced is 2
  expectClosedWith(*pub, ReasonCode::kTopicAliasInvalid);
  EXPECT_TRUE(received().empty());
}

TEST_F(InboundAliasTest, UnknownAliasWithAnEmptyTopicIsAProtocolError) {
  pub->send(aliased("a/b", 1, "x"));
  pub->send(aliased("", 2, "y"));
  expectClosedWith(*pub, ReasonCode::kProtocolError);
  EXPECT_EQ(payloads(received()), Strings{"x"});
}

TEST_F(HandlerTest, V5AliasesAreRefusedWhenTheMaximumIsZero) {
  ctx_.cfg.topic_alias_maximum = 0;
  auto pub = connect(connectPacket(kV5, "pub"));
  pub->send(aliased("a/b", 1, "x"));
  expectClosedWith(*pub, ReasonCode::kTopicAliasInvalid);
}

TEST_F(HandlerTest, V5AliasesBelongToTheConnection) {
  auto pub = connect(persistentConnect(kV5, "pub"));
  pub->send(aliased("a/b", 1, "x"));
  pub->dropNetwork();
  auto again = connect(persistentConnect(kV5, "pub"));
  again->send(aliased("", 1, "y"));  // §3.3.2.3.4: aliases end with the connection
  expectClosedWith(*again, ReasonCode::kProtocolError);
}

TEST_F(HandlerTest, V5SubscriptionIdentifierFromAClientIsAProtocolError) {
  auto pub = connect(connectPacket(kV5, "pub"));
  codec::PublishPacket p = publishPacket("t", "x");
  p.properties.subscription_identifiers.push_back(1);
  pub->send(p);
  expectClosedWith(*pub, ReasonCode::kProtocolError);
}

// --- topic aliases toward the client ---

TEST_F(HandlerTest, V5OutboundAliasesUpToTheClientMaximum) {
  codec::ConnectPacket c = connectPacket(kV5, "sub");
  c.properties.topic_alias_maximum = 1;
  auto sub = connect(c);
  subscribe(*sub, "#", 0);
  auto pub = connect(connectPacket(kV5, "pub"));
  pub->send(publishPacket("a/b", "1"));
  pub->send(publishPacket("a/b", "2"));
  pub->send(publishPacket("c/d", "3"));  // no alias left: the full topic
  auto got = allAs<codec::PublishPacket>(sub->receive());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].topic, "a/b");
  EXPECT_EQ(got[0].properties.topic_alias, 1);
  EXPECT_EQ(got[1].topic, "");
  EXPECT_EQ(got[1].properties.topic_alias, 1);
  EXPECT_EQ(got[2].topic, "c/d");
  EXPECT_FALSE(got[2].properties.topic_alias.has_value());
}

// --- message expiry (MQTT 5 §3.3.2.3.3) ---

class ExpiryTest : public HandlerTest {
 protected:
  void SetUp() override {
    HandlerTest::SetUp();
    sub = connect(persistentConnect(kV5, "sub"));
    subscribe(*sub, "t", 1);
    pub = connect(connectPacket(kV5, "pub"));
  }
  void publish(const codec::PublishPacket& p) {
    pub->send(p);
    pub->receive();
  }
  std::unique_ptr<TestClient> reconnectSub(std::vector<codec::PublishPacket>& got) {
    std::vector<codec::Packet> after;
    auto c = connect(persistentConnect(kV5, "sub"), nullptr, &after);
    got = allAs<codec::PublishPacket>(after);
    return c;
  }
  std::unique_ptr<TestClient> sub;
  std::unique_ptr<TestClient> pub;
};

TEST_F(ExpiryTest, DirectDeliveryCarriesTheInterval) {
  publish(expiring("m", 60, 1, 1));
  auto m = single<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(m.properties.message_expiry_interval, 60u);
}

TEST_F(ExpiryTest, QueuedMessageCarriesTheTimeLeft) {
  sub->dropNetwork();
  publish(expiring("m", 60, 1, 1));
  ctx_.advance(20'000);
  std::vector<codec::PublishPacket> got;
  auto again = reconnectSub(got);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].properties.message_expiry_interval, 40u);
}

TEST_F(ExpiryTest, ExpiredQueuedMessageIsDroppedAndCounted) {
  sub->dropNetwork();
  publish(expiring("old", 10, 1, 1));
  publish(publishPacket("t", "keep", 1, 2));
  ctx_.advance(10'001);
  std::vector<codec::PublishPacket> got;
  auto again = reconnectSub(got);
  EXPECT_EQ(payloads(got), Strings{"keep"});
  EXPECT_EQ(ctx_.dropped(DropReason::kExpired), 1u);
}

TEST_F(ExpiryTest, ExpiryWhileWaitingForTheWindow) {
  ctx_.cfg.max_inflight_messages = 1;
  auto slow = connect([] {
    codec::ConnectPacket c = connectPacket(kV5, "slow");
    c.properties.receive_maximum = 1;
    return c;
  }());
  subscribe(*slow, "t", 1);
  publish(publishPacket("t", "first", 1, 1));
  publish(expiring("stale", 5, 1, 2));
  publish(expiring("fresh", 60, 1, 3));
  auto first = single<codec::PublishPacket>(slow->receive());
  ctx_.advance(6'000);
  slow->send(ackPacket(PacketType::kPuback, first.packet_id));
  auto next = single<codec::PublishPacket>(slow->receive());
  EXPECT_EQ(next.payload, "fresh");
  EXPECT_EQ(next.properties.message_expiry_interval, 54u);
  EXPECT_EQ(ctx_.dropped(DropReason::kExpired), 1u);
}

TEST_F(ExpiryTest, RetainedMessageCarriesTheTimeLeft) {
  codec::PublishPacket p = expiring("kept", 60, 0, 0);
  p.retain = true;
  publish(p);
  sub->receive();
  ctx_.advance(15'000);
  auto late = connect(connectPacket(kV5, "late"));
  late->send(subscribePacket(1, request("t", 0)));
  auto got = late->receive();
  ASSERT_EQ(got.size(), 2u) << describe(got);
  EXPECT_EQ(as<codec::PublishPacket>(got[1]).properties.message_expiry_interval, 45u);
  ctx_.advance(45'000);  // expired: no longer sent
  late->send(subscribePacket(2, request("t", 0)));
  EXPECT_EQ(late->receive().size(), 1u);  // the SUBACK alone
}

TEST_F(HandlerTest, V311SubscriberGetsNoExpiryProperty) {
  auto sub = connect(connectPacket(ProtocolVersion::kV311, "sub"));
  subscribe(*sub, "t", 0);
  auto pub = connect(connectPacket(kV5, "pub"));
  pub->send(expiring("m", 60, 0, 0));
  auto m = single<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(m.payload, "m");
  EXPECT_EQ(m.properties, codec::Properties{});
}

// --- the client's Maximum Packet Size (MQTT 5 §3.1.2.11.4) ---

TEST_F(HandlerTest, V5MessageOverTheClientMaximumPacketSizeIsNotSent) {
  codec::ConnectPacket c = connectPacket(kV5, "sub");
  c.properties.maximum_packet_size = 64;
  auto sub = connect(c);
  subscribe(*sub, "t", 1);
  auto pub = connect(connectPacket(kV5, "pub"));
  const std::string big(100, 'x');
  pub->send(publishPacket("t", big, 1, 1));
  pub->send(publishPacket("t", big, 0));
  pub->send(publishPacket("t", "small", 1, 2));
  EXPECT_EQ(allAs<codec::PubAckPacket>(pub->receive()).size(), 2u);
  // Discarded as if sent: not in flight, not queued; the next one flows.
  auto got = allAs<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(payloads(got), Strings{"small"});
  EXPECT_EQ(ctx_.dropped(DropReason::kTooLarge), 2u);
  EXPECT_EQ(sub->session()->inflight.size(), 1u);
  EXPECT_TRUE(sub->session()->queue.empty());
}

TEST_F(HandlerTest, V5InflightMessageOverTheNewConnectionMaximumIsDiscardedOnResend) {
  auto sub = connect(persistentConnect(kV5, "sub"));
  subscribe(*sub, "t", 1);
  auto pub = connect(connectPacket(kV5, "pub"));
  pub->send(publishPacket("t", std::string(100, 'x'), 1, 1));
  pub->send(publishPacket("t", "small", 1, 2));
  EXPECT_EQ(allAs<codec::PublishPacket>(sub->receive()).size(), 2u);
  sub->dropNetwork();

  codec::ConnectPacket c = persistentConnect(kV5, "sub");
  c.properties.maximum_packet_size = 64;
  std::vector<codec::Packet> after;
  auto again = connect(c, nullptr, &after);
  auto resent = allAs<codec::PublishPacket>(after);
  EXPECT_EQ(payloads(resent), Strings{"small"});
  EXPECT_EQ(ctx_.dropped(DropReason::kTooLarge), 1u);
  // The big one must not hold a window slot forever: it can never be sent.
  EXPECT_EQ(again->session()->inflight.size(), 1u);
}

TEST_F(HandlerTest, PacketOverTheBrokerMaximumIsRefused) {
  ctx_.cfg.max_packet_size = 64;
  auto pub = connect(connectPacket(kV5, "pub"));
  pub->send(publishPacket("t", std::string(100, 'x')));
  expectClosedWith(*pub, ReasonCode::kPacketTooLarge);
}

TEST_F(HandlerTest, PublishToSysIsRefused) {
  auto pub = connect(connectPacket(kV5, "pub"));
  pub->send(publishPacket("$SYS/x", "no", 1, 1));
  EXPECT_EQ(single<codec::PubAckPacket>(pub->receive()).reason_code, ReasonCode::kNotAuthorized);
}

}  // namespace
}  // namespace gannet::handlers::testing
