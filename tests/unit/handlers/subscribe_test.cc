// SUBSCRIBE and what it changes for deliveries: granted QoS and downgrade,
// retained messages (retain handling, RETAIN flag), no local, retain as
// published, subscription identifiers, overlapping subscriptions, UNSUBSCRIBE.
//
// Note: the per-delivery QoS (min of publish and subscription) and RETAIN flag of
// a normal delivery are computed by the context (Worker::deliverMatched, mirrored
// by FakeContext); retained messages sent on SUBSCRIBE are computed by
// handleSubscribe itself.

#include <algorithm>

#include "handler_fixture.h"

namespace gannet::handlers::testing {
namespace {

using Strings = std::vector<std::string>;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

class SubscribeTest : public PerVersionTest {
 protected:
  void SetUp() override {
    PerVersionTest::SetUp();
    pub = connect(connectPacket(v(), "pub"));
  }
  void publish(codec::PublishPacket p) {
    pub->send(p);
    pub->receive();
  }
  void publishRetained(const std::string& topic, const std::string& payload, uint8_t qos) {
    codec::PublishPacket p = publishPacket(topic, payload, qos, qos == 0 ? 0 : 1);
    p.retain = true;
    publish(p);
  }
  std::unique_ptr<TestClient> pub;
};
INSTANTIATE_TEST_SUITE_P(Versions, SubscribeTest,
                         ::testing::Values(ProtocolVersion::kV311, ProtocolVersion::kV5),
                         versionName);

TEST_P(SubscribeTest, DeliveredQosIsTheMinimumOfPublishAndSubscription) {
  std::vector<std::unique_ptr<TestClient>> subs;
  for (uint8_t q = 0; q <= 2; ++q) {
    subs.push_back(connect(connectPacket(v(), "s" + std::to_string(q))));
    subscribe(*subs.back(), "t", q);
  }
  for (uint8_t pq = 0; pq <= 2; ++pq) {
    publish(publishPacket("t", "p" + std::to_string(pq), pq, pq == 0 ? 0 : 1));
    for (uint8_t sq = 0; sq <= 2; ++sq) {
      auto m = single<codec::PublishPacket>(subs[sq]->receive());
      EXPECT_EQ(m.qos, std::min(pq, sq)) << "publish q" << int{pq} << ", subscription q" << int{sq};
      EXPECT_EQ(m.packet_id == 0, m.qos == 0);
    }
  }
}

TEST_P(SubscribeTest, RetainedMessageOnSubscribeHasRetainSetAndDowngradedQos) {
  publishRetained("r/1", "kept", 2);
  auto sub = connect(connectPacket(v(), "sub"));
  sub->send(subscribePacket(1, request("r/+", 1)));
  auto got = sub->receive();
  ASSERT_EQ(got.size(), 2u) << describe(got);
  EXPECT_EQ(as<codec::SubackPacket>(got[0]).reason_codes, std::vector<uint8_t>{1});
  auto m = as<codec::PublishPacket>(got[1]);  // after the SUBACK
  EXPECT_EQ(m.payload, "kept");
  EXPECT_TRUE(m.retain);  // §3.3.1.3: sent because of a new subscription
  EXPECT_EQ(m.qos, 1);
}

TEST_P(SubscribeTest, NormalDeliveryClearsRetain) {
  auto sub = connect(connectPacket(v(), "sub"));
  subscribe(*sub, "r/1", 0);
  publishRetained("r/1", "live", 0);
  // 3.1.1 §3.3.1.3 / MQTT 5 without Retain As Published: RETAIN 0 on a normal delivery.
  EXPECT_FALSE(single<codec::PublishPacket>(sub->receive()).retain);
}

TEST_P(SubscribeTest, OverlappingSubscriptionsGiveOneDeliveryAtTheMaximumQos) {
  auto sub = connect(connectPacket(v(), "sub"));
  subscribe(*sub, "a/#", 0);
  subscribe(*sub, "a/+", 2);
  publish(publishPacket("a/b", "m", 2, 1));
  auto m = single<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(m.qos, 2);
}

TEST_P(SubscribeTest, UnsubscribeStopsDeliveries) {
  auto sub = connect(connectPacket(v(), "sub"));
  subscribe(*sub, "t", 0);
  codec::UnsubscribePacket u;
  u.packet_id = 5;
  u.filters = {"t", "never"};
  sub->send(u);
  auto ack = single<codec::UnsubackPacket>(sub->receive());
  EXPECT_EQ(ack.packet_id, 5);
  if (isV5()) {
    EXPECT_EQ(ack.reason_codes,
              (std::vector<uint8_t>{0x00, 0x11}));  // 0x11 No subscription existed
  }
  publish(publishPacket("t", "x"));
  EXPECT_TRUE(sub->receive().empty());
  EXPECT_EQ(ctx_.router().subscriptionCount(), 0u);
}

TEST_P(SubscribeTest, InvalidFilterIsAProtocolError) {
  // The decoder checks every filter (§4.7.1): the whole SUBSCRIBE is refused, so
  // no valid filter of it is subscribed either.
  auto sub = connect(connectPacket(v(), "sub"));
  codec::SubscribePacket s = subscribePacket(2, request("ok/#", 1));
  s.subscriptions.push_back(request("bad/#/x", 1));
  sub->send(s);
  expectClosedWith(*sub, ReasonCode::kProtocolError);
  EXPECT_EQ(ctx_.router().subscriptionCount(), 0u);
}

// --- MQTT 5 subscription options (§3.8.3.1) ---

TEST_F(HandlerTest, V5NoLocalSkipsTheSubscribersOwnMessages) {
  auto a = connect(connectPacket(kV5, "a"));
  codec::SubscriptionRequest r = request("t", 0);
  r.no_local = true;
  subscribe(*a, r);
  auto b = connect(connectPacket(kV5, "b"));
  subscribe(*b, "t", 0);

  a->send(publishPacket("t", "from a"));
  EXPECT_TRUE(a->receive().empty());
  EXPECT_EQ(single<codec::PublishPacket>(b->receive()).payload, "from a");
  b->send(publishPacket("t", "from b"));
  EXPECT_EQ(single<codec::PublishPacket>(a->receive()).payload, "from b");
  EXPECT_EQ(single<codec::PublishPacket>(b->receive()).payload, "from b");  // no no-local
}

TEST_F(HandlerTest, V5NoLocalOnASharedSubscriptionIsAProtocolError) {
  auto a = connect(connectPacket(kV5, "a"));
  codec::SubscriptionRequest r = request("$share/g/t", 0);
  r.no_local = true;
  a->send(subscribePacket(1, r));
  expectClosedWith(*a, ReasonCode::kProtocolError);
}

TEST_F(HandlerTest, V5RetainAsPublishedKeepsTheRetainFlag) {
  auto rap = connect(connectPacket(kV5, "rap"));
  codec::SubscriptionRequest r = request("t", 0);
  r.retain_as_published = true;
  subscribe(*rap, r);
  auto plain = connect(connectPacket(kV5, "plain"));
  subscribe(*plain, "t", 0);
  auto pub = connect(connectPacket(kV5, "pub"));

  codec::PublishPacket p = publishPacket("t", "r");
  p.retain = true;
  pub->send(p);
  pub->send(publishPacket("t", "not retained"));
  auto got = allAs<codec::PublishPacket>(rap->receive());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].retain);
  EXPECT_FALSE(got[1].retain);
  for (const auto& m : allAs<codec::PublishPacket>(plain->receive())) EXPECT_FALSE(m.retain);
}

TEST_F(HandlerTest, V5RetainHandlingOnSubscribeAndResubscribe) {
  auto pub = connect(connectPacket(kV5, "pub"));
  codec::PublishPacket p = publishPacket("r/1", "kept");
  p.retain = true;
  pub->send(p);
  auto sub = connect(connectPacket(kV5, "sub"));

  // Sends the SUBSCRIBE; returns the payloads of the retained messages that follow
  // the SUBACK.
  uint16_t id = 1;
  auto subscribeWith = [&](const std::string& filter, uint8_t retain_handling) {
    codec::SubscriptionRequest r = request(filter, 0);
    r.retain_handling = retain_handling;
    sub->send(subscribePacket(id++, r));
    auto got = sub->receive();
    Strings retained;
    for (size_t i = 1; i < got.size(); ++i) {
      auto m = as<codec::PublishPacket>(got[i]);
      EXPECT_TRUE(m.retain);
      retained.push_back(m.payload);
    }
    EXPECT_FALSE(got.empty());
    if (!got.empty()) as<codec::SubackPacket>(got[0]);
    return retained;
  };
  // 0: at every subscribe, new or not.
  EXPECT_EQ(subscribeWith("r/+", 0), Strings{"kept"});
  EXPECT_EQ(subscribeWith("r/+", 0), Strings{"kept"});
  // 1: only when the subscription is new.
  EXPECT_EQ(subscribeWith("r/#", 1), Strings{"kept"});
  EXPECT_EQ(subscribeWith("r/#", 1), Strings{});
  // 2: never.
  EXPECT_EQ(subscribeWith("r/1", 2), Strings{});
  EXPECT_EQ(subscribeWith("r/1", 2), Strings{});
}

TEST_F(HandlerTest, V5SharedSubscriptionGetsNoRetainedMessages) {
  auto pub = connect(connectPacket(kV5, "pub"));
  codec::PublishPacket p = publishPacket("r/1", "kept");
  p.retain = true;
  pub->send(p);
  auto sub = connect(connectPacket(kV5, "sub"));
  subscribe(*sub, "$share/g/r/1", 0);  // expects the SUBACK alone
}

TEST_F(HandlerTest, V5SubscriptionIdentifiersAreDelivered) {
  auto sub = connect(connectPacket(kV5, "sub"));
  subscribe(*sub, request("a/+", 1), /*subscription_id=*/5);
  auto pub = connect(connectPacket(kV5, "pub"));
  codec::PublishPacket p = publishPacket("a/b", "m", 1, 1);
  p.retain = true;
  pub->send(p);
  auto m = single<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(m.properties.subscription_identifiers, std::vector<uint32_t>{5});

  // On a retained message sent at subscribe time too.
  sub->send(subscribePacket(2, request("a/b", 0), 9));
  auto got = sub->receive();
  ASSERT_EQ(got.size(), 2u) << describe(got);
  EXPECT_EQ(as<codec::PublishPacket>(got[1]).properties.subscription_identifiers,
            std::vector<uint32_t>{9});
}

TEST_F(HandlerTest, V5OverlappingSubscriptionsCarryEveryIdentifier) {
  auto sub = connect(connectPacket(kV5, "sub"));
  subscribe(*sub, request("a/#", 0), 1);
  subscribe(*sub, request("a/+", 2), 2);
  subscribe(*sub, request("a/b", 1));  // no identifier
  auto pub = connect(connectPacket(kV5, "pub"));
  pub->send(publishPacket("a/b", "m", 2, 1));
  auto m = single<codec::PublishPacket>(sub->receive());
  EXPECT_EQ(m.qos, 2);
  auto ids = m.properties.subscription_identifiers;
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<uint32_t>{1, 2}));
}

TEST_F(HandlerTest, V311DeliveryCarriesNoSubscriptionIdentifier) {
  auto sub = connect(connectPacket(ProtocolVersion::kV311, "sub"));
  subscribe(*sub, "t", 0);
  auto pub = connect(connectPacket(kV5, "pub"));
  pub->send(publishPacket("t", "m"));
  EXPECT_EQ(single<codec::PublishPacket>(sub->receive()).properties, codec::Properties{});
}

}  // namespace
}  // namespace gannet::handlers::testing
