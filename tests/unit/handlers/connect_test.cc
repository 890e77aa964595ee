// CONNECT → CONNACK: session present, the MQTT 5 properties the broker announces,
// empty client ids, and a second CONNECT.

#include "handler_fixture.h"

namespace gannet::handlers::testing {
namespace {

using ConnectTest = PerVersionTest;
INSTANTIATE_TEST_SUITE_P(Versions, ConnectTest,
                         ::testing::Values(ProtocolVersion::kV311, ProtocolVersion::kV5),
                         versionName);

TEST_P(ConnectTest, SessionPresentOnlyWhenTheSessionWasKept) {
  codec::ConnackPacket ack;
  auto first = connect(persistentConnect(v(), "c1"), &ack);
  EXPECT_FALSE(ack.session_present);  // §3.2.2.1.1: no session existed
  first->send(disconnectPacket());
  EXPECT_TRUE(first->receive().empty());
  EXPECT_TRUE(first->closedByBroker());
  ASSERT_NE(ctx_.session("c1"), nullptr);  // kept: clean session 0 / expiry 300 s

  auto second = connect(persistentConnect(v(), "c1"), &ack);
  EXPECT_TRUE(ack.session_present);

  // A clean start discards it (§3.1.2.4): no session present.
  second->send(disconnectPacket());
  auto third = connect(connectPacket(v(), "c1"), &ack);
  EXPECT_FALSE(ack.session_present);
}

TEST_P(ConnectTest, CleanSessionEndsWithTheConnection) {
  auto c = connect(connectPacket(v(), "c1"));
  subscribe(*c, "a/b", 1);
  EXPECT_EQ(ctx_.router().subscriptionCount(), 1u);
  c->dropNetwork();
  EXPECT_EQ(ctx_.session("c1"), nullptr);
  EXPECT_EQ(ctx_.router().subscriptionCount(), 0u);
  ASSERT_EQ(ctx_.closed_clients.size(), 1u);
  EXPECT_EQ(ctx_.closed_clients[0], &c->client());
}

TEST_F(HandlerTest, V311ConnackCarriesNoProperties) {
  codec::ConnackPacket ack;
  auto c = connect(connectPacket(ProtocolVersion::kV311, "c1"), &ack);
  EXPECT_EQ(ack.properties, codec::Properties{});
  // 3.1.1 has no Receive Maximum: the configured window applies.
  EXPECT_EQ(c->client().send_window, ctx_.cfg.max_inflight_messages);
}

TEST_F(HandlerTest, V5ConnackAnnouncesTheBrokerLimits) {
  ctx_.cfg.receive_maximum = 7;
  ctx_.cfg.topic_alias_maximum = 3;
  ctx_.cfg.max_packet_size = 4096;
  codec::ConnackPacket ack;
  auto c = connect(connectPacket(ProtocolVersion::kV5, "c1"), &ack);
  EXPECT_FALSE(ack.session_present);
  EXPECT_EQ(ack.properties.receive_maximum, 7);
  EXPECT_EQ(ack.properties.topic_alias_maximum, 3);
  EXPECT_EQ(ack.properties.maximum_packet_size, 4096u);
  EXPECT_FALSE(ack.properties.assigned_client_identifier.has_value());
  EXPECT_FALSE(ack.properties.retain_available.has_value());  // absent = available
}

TEST_F(HandlerTest, V5ConnectTakesTheClientLimits) {
  ctx_.cfg.max_inflight_messages = 20;
  codec::ConnectPacket p = connectPacket(ProtocolVersion::kV5, "c1");
  p.properties.receive_maximum = 5;
  p.properties.maximum_packet_size = 512;
  p.properties.topic_alias_maximum = 4;
  auto c = connect(p);
  EXPECT_EQ(c->client().send_window, 5);
  EXPECT_EQ(c->client().client_max_packet_size, 512u);
  EXPECT_EQ(c->client().client_topic_alias_max, 4);

  // A Receive Maximum above the configured window is capped by it.
  p = connectPacket(ProtocolVersion::kV5, "c2");
  p.properties.receive_maximum = 1000;
  auto c2 = connect(p);
  EXPECT_EQ(c2->client().send_window, 20);
}

TEST_F(HandlerTest, V5SessionExpiryAboveTheMaximumIsAnnouncedCapped) {
  ctx_.cfg.max_session_expiry = 100;
  codec::ConnectPacket p = persistentConnect(ProtocolVersion::kV5, "c1");
  p.properties.session_expiry_interval = 1000;
  codec::ConnackPacket ack;
  auto c = connect(p, &ack);
  EXPECT_EQ(ack.properties.session_expiry_interval, 100u);
  EXPECT_EQ(c->session()->expiry_interval, 100u);
}

TEST_F(HandlerTest, V5ServerKeepAliveCapsTheClients) {
  ctx_.cfg.max_keepalive = 30;
  codec::ConnackPacket ack;
  auto c = connect(connectPacket(ProtocolVersion::kV5, "c1"), &ack);  // asks for 60
  EXPECT_EQ(ack.properties.server_keep_alive, 30);  // §3.2.2.3.14: the client must use it
  EXPECT_EQ(c->client().keep_alive, 30);
  codec::ConnectPacket p = connectPacket(ProtocolVersion::kV5, "c2");
  p.keep_alive = 0;  // "no keep alive" is above any maximum too
  auto c2 = connect(p, &ack);
  EXPECT_EQ(ack.properties.server_keep_alive, 30);
}

TEST_F(HandlerTest, V5EnhancedAuthenticationIsRefused) {
  auto c = open(ProtocolVersion::kV5);
  codec::ConnectPacket p = connectPacket(ProtocolVersion::kV5, "c1");
  p.properties.authentication_method = "SCRAM-SHA-1";
  c->send(p);
  auto ack = single<codec::ConnackPacket>(c->receive());
  EXPECT_EQ(ack.reason_code, static_cast<uint8_t>(ReasonCode::kBadAuthenticationMethod));
  EXPECT_TRUE(c->closedByBroker());
  EXPECT_EQ(ctx_.sessionCount(), 0u);
}

// A single-round token method for the enhanced-authentication hook: "letmein"
// is accepted as user "tok-user" (the server answers "welcome"), "multi" asks
// for a second round, anything else fails.
class TokenAuth final : public auth::EnhancedAuth {
 public:
  bool supports(std::string_view method) const override { return method == "TOKEN"; }
  auth::AuthStep start(std::string_view, std::string_view data, std::string_view,
                       const std::optional<std::string>&) const override {
    auth::AuthStep step;
    if (data == "letmein") {
      step.kind = auth::AuthStep::Kind::kSuccess;
      step.username = "tok-user";
      step.data = "welcome";
    } else if (data == "multi") {
      step.kind = auth::AuthStep::Kind::kContinue;
    }
    return step;
  }
};

codec::ConnackPacket connectWithToken(HandlerTest& t, std::unique_ptr<TestClient>& c,
                                      std::string method, std::string data) {
  codec::ConnectPacket p = connectPacket(ProtocolVersion::kV5, "c1");
  p.properties.authentication_method = std::move(method);
  p.properties.authentication_data = std::move(data);
  c->send(p);
  return single<codec::ConnackPacket>(c->receive());
}

class EnhancedAuthTest : public HandlerTest {
 protected:
  void SetUp() override {
    HandlerTest::SetUp();
    ctx_.cfg.enhanced_auth = std::make_shared<TokenAuth>();
  }
};

TEST_F(EnhancedAuthTest, AnAcceptedTokenConnectsAsItsUser) {
  auto c = open(ProtocolVersion::kV5);
  auto ack = connectWithToken(*this, c, "TOKEN", "letmein");
  EXPECT_EQ(ack.reason_code, 0);
  EXPECT_EQ(ack.properties.authentication_method, "TOKEN");
  EXPECT_EQ(ack.properties.authentication_data, "welcome");
  ASSERT_NE(ctx_.session("c1"), nullptr);
  EXPECT_EQ(ctx_.session("c1")->username, "tok-user");
}

TEST_F(EnhancedAuthTest, ARefusedTokenGetsNotAuthorized) {
  auto c = open(ProtocolVersion::kV5);
  auto ack = connectWithToken(*this, c, "TOKEN", "guess");
  EXPECT_EQ(ack.reason_code, static_cast<uint8_t>(ReasonCode::kNotAuthorized));
  EXPECT_TRUE(c->closedByBroker());
  EXPECT_EQ(ctx_.sessionCount(), 0u);
}

TEST_F(EnhancedAuthTest, AnotherMethodOrASecondRoundIsABadMethod) {
  for (auto [method, data] : {std::pair<std::string, std::string>{"SCRAM-SHA-1", "x"},
                              {"TOKEN", "multi"}}) {
    auto c = open(ProtocolVersion::kV5);
    auto ack = connectWithToken(*this, c, method, data);
    EXPECT_EQ(ack.reason_code, static_cast<uint8_t>(ReasonCode::kBadAuthenticationMethod))
        << method << " " << data;
    EXPECT_TRUE(c->closedByBroker());
  }
  EXPECT_EQ(ctx_.sessionCount(), 0u);
}

TEST_P(ConnectTest, RetainNotAvailable) {
  ctx_.cfg.retain_available = false;
  codec::ConnackPacket ack;
  auto c = connect(connectPacket(v(), "c1"), &ack);
  if (isV5()) {
    EXPECT_EQ(ack.properties.retain_available, 0);
  }
  codec::PublishPacket p = publishPacket("t", "x");
  p.retain = true;
  c->send(p);
  expectClosedWith(*c, ReasonCode::kRetainNotSupported);  // MQTT 5 §3.3.1.3
  EXPECT_EQ(ctx_.retained().size(), 0u);

  // A retained will cannot be accepted either: refused at CONNECT.
  auto w = open(v());
  codec::ConnectPacket with_will = connectPacket(v(), "c2");
  with_will.will = willOf("will/c2", "x");
  with_will.will->retain = true;
  w->send(with_will);
  EXPECT_NE(single<codec::ConnackPacket>(w->receive()).reason_code, 0);
  EXPECT_TRUE(w->closedByBroker());
}

TEST_F(HandlerTest, V5EmptyClientIdIsAssigned) {
  codec::ConnackPacket ack;
  auto c = connect(connectPacket(ProtocolVersion::kV5, ""), &ack);
  ASSERT_TRUE(ack.properties.assigned_client_identifier.has_value());
  EXPECT_EQ(*ack.properties.assigned_client_identifier, "auto-1");
  ASSERT_NE(c->session(), nullptr);
  EXPECT_EQ(c->session()->clientId(), "auto-1");
  EXPECT_EQ(ctx_.session("auto-1"), c->session());
}

TEST_F(HandlerTest, V311EmptyClientIdWithCleanSessionIsAccepted) {
  codec::ConnackPacket ack;
  auto c = connect(connectPacket(ProtocolVersion::kV311, ""), &ack);
  EXPECT_EQ(ack.properties, codec::Properties{});  // 3.1.1 cannot tell the id
  EXPECT_EQ(c->session()->clientId(), "auto-1");
}

TEST_F(HandlerTest, V311EmptyClientIdWithoutCleanSessionIsRefusedWithCode2) {
  // §3.1.3-8: return code 0x02 "identifier rejected", then close.
  auto c = open(ProtocolVersion::kV311);
  c->send(persistentConnect(ProtocolVersion::kV311, ""));
  auto ack = single<codec::ConnackPacket>(c->receive());
  EXPECT_EQ(ack.reason_code, 2);
  EXPECT_FALSE(ack.session_present);
  EXPECT_TRUE(c->closedByBroker());
  EXPECT_EQ(ctx_.sessionCount(), 0u);
  EXPECT_EQ(c->client().state(), Client::State::kClosed);
  // Counted once, under its reason (gannet_connects_refused_total).
  const auto refused = [&](ConnectRefusal r) {
    return ctx_.stats().connects_refused[static_cast<int>(r)].get();
  };
  EXPECT_EQ(refused(ConnectRefusal::kClientIdentifierNotValid), 1u);
  EXPECT_EQ(refused(ConnectRefusal::kOther), 0u);
}

TEST(ConnectRefusalTest, ReasonCodesMapToTheMetricReasons) {
  EXPECT_EQ(connectRefusalOf(ReasonCode::kUnsupportedProtocolVersion),
            ConnectRefusal::kUnsupportedProtocolVersion);
  EXPECT_EQ(connectRefusalOf(ReasonCode::kServerUnavailable), ConnectRefusal::kServerUnavailable);
  EXPECT_EQ(connectRefusalOf(ReasonCode::kQuotaExceeded), ConnectRefusal::kQuotaExceeded);
  EXPECT_EQ(connectRefusalOf(ReasonCode::kBanned), ConnectRefusal::kNotAuthorized);
  EXPECT_EQ(connectRefusalOf(ReasonCode::kBadAuthenticationMethod), ConnectRefusal::kOther);
  EXPECT_STREQ(connectRefusalName(ConnectRefusal::kClientIdentifierNotValid),
               "client_identifier_not_valid");
}

TEST_P(ConnectTest, SecondConnectIsAProtocolError) {
  auto c = connect(connectPacket(v(), "c1"));
  c->send(connectPacket(v(), "c1"));
  auto got = c->receive();
  if (isV5()) {
    // MQTT 5 §3.1.0-2 / §4.13: DISCONNECT 0x82 Protocol Error, then close.
    EXPECT_EQ(single<codec::DisconnectPacket>(got).reason_code, ReasonCode::kProtocolError);
  } else {
    EXPECT_TRUE(got.empty()) << describe(got);  // 3.1.1: just close
  }
  EXPECT_TRUE(c->closedByBroker());
  EXPECT_EQ(ctx_.stats().protocol_errors.get(), 1u);
  EXPECT_EQ(ctx_.session("c1"), nullptr);  // clean session: ended with it
}

TEST_P(ConnectTest, PacketBeforeConnectCloses) {
  auto c = open(v());
  c->send(publishPacket("a", "x"));
  EXPECT_TRUE(c->receive().empty());  // no CONNACK, no DISCONNECT: not connected
  EXPECT_TRUE(c->closedByBroker());
  EXPECT_EQ(ctx_.sessionCount(), 0u);
}

TEST_P(ConnectTest, PingreqIsAnswered) {
  auto c = connect(connectPacket(v(), "c1"));
  c->send(codec::PingreqPacket{});
  single<codec::PingrespPacket>(c->receive());
}

}  // namespace
}  // namespace gannet::handlers::testing
