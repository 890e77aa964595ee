// broker/server/records.h: broker state ↔ records.proto, and the monotonic ↔
// wall clock conversion of deadlines.

#include "broker/server/records.h"

#include <gtest/gtest.h>

namespace gannet::server {
namespace {

constexpr Clocks kClocks{/*mono_ms=*/5'000, /*wall_ms=*/1'700'000'000'000};

TEST(ClocksTest, ConvertsBothWaysAndKeepsZero) {
  EXPECT_EQ(kClocks.toWall(6'000), 1'700'000'001'000);
  EXPECT_EQ(kClocks.toMono(1'700'000'001'000), 6'000);
  EXPECT_EQ(kClocks.toWall(0), 0);
  EXPECT_EQ(kClocks.toMono(0), 0);
}

TEST(RecordsTest, WillRoundTripsWithProperties) {
  codec::Will will;
  will.topic = "t/will";
  will.payload = std::string("\0bin", 4);
  will.qos = 2;
  will.retain = true;
  will.properties.will_delay_interval = 30;
  will.properties.message_expiry_interval = 60;
  will.properties.content_type = "text/plain";
  will.properties.response_topic = "r";
  will.properties.correlation_data = "c";
  will.properties.payload_format_indicator = 1;
  will.properties.user_properties = {{"a", "1"}, {"a", "2"}};
  EXPECT_EQ(fromWillRecord(toWillRecord(will)), will);
}

TEST(RecordsTest, WillWithoutPropertiesRoundTrips) {
  codec::Will will;
  will.topic = "t";
  will.payload = "p";
  EXPECT_EQ(fromWillRecord(toWillRecord(will)), will);
}

TEST(RecordsTest, SessionRecord) {
  session::Session s(7, "client");
  s.version = codec::ProtocolVersion::kV5;
  s.expiry_interval = 120;
  s.will = std::make_unique<codec::Will>();
  s.will->topic = "w";
  s.will_due_ms = 8'000;
  records::SessionRecord r = toSessionRecord(s, kClocks, /*last_seen_wall_ms=*/0);
  EXPECT_EQ(r.client_id(), "client");
  EXPECT_EQ(r.protocol_version(), 5u);
  EXPECT_EQ(r.session_expiry_interval(), 120u);
  EXPECT_EQ(r.last_seen_ms(), 0);
  EXPECT_EQ(r.will_due_ms(), 1'700'000'003'000);
  EXPECT_EQ(r.will().topic(), "w");

  s.will.reset();
  r = toSessionRecord(s, kClocks, 1'700'000'000'500);
  EXPECT_FALSE(r.has_will());
  EXPECT_EQ(r.will_due_ms(), 0);  // no will, nothing due
  EXPECT_EQ(r.last_seen_ms(), 1'700'000'000'500);
}

TEST(RecordsTest, MessageRoundTripsWithExpiryAcrossClocks) {
  router::Message m;
  m.topic = "a/b";
  m.payload = "x";
  m.qos = 1;
  m.retain = true;
  m.expiry_deadline_ms = 65'000;  // 60 s from kClocks
  auto props = std::make_shared<codec::Properties>();
  props->content_type = "ct";
  props->user_properties = {{"k", "v"}};
  m.properties = props;
  records::MessageRecord r = toMessageRecord(m, kClocks);
  EXPECT_EQ(r.expiry_ms(), 1'700'000'060'000u);
  // After a "restart": another monotonic epoch, 10 s of wall time later.
  const Clocks later{/*mono_ms=*/100, /*wall_ms=*/1'700'000'010'000};
  router::MessagePtr back = fromMessageRecord(r, later);
  EXPECT_EQ(back->topic, "a/b");
  EXPECT_EQ(back->payload, "x");
  EXPECT_EQ(back->qos, 1);
  EXPECT_TRUE(back->retain);
  EXPECT_EQ(back->expiry_deadline_ms, 100 + 50'000);  // 50 s left
  ASSERT_NE(back->properties, nullptr);
  EXPECT_EQ(*back->properties, *props);
  EXPECT_EQ(back->publisher_session_id, 0u);

  m.expiry_deadline_ms = 0;
  m.properties = nullptr;
  r = toMessageRecord(m, kClocks);
  EXPECT_EQ(r.expiry_ms(), 0u);
  back = fromMessageRecord(r, later);
  EXPECT_EQ(back->expiry_deadline_ms, 0);
  EXPECT_EQ(back->properties, nullptr);
}

// The record appendInflightRecord() writes directly, built the ordinary way.
records::InflightRecord builtInflight(uint16_t packet_id, const session::InflightMessage& in) {
  records::InflightRecord r;
  r.set_qos(in.out.qos);
  r.set_retain(in.out.retain);
  r.set_sequence(in.sequence);
  r.set_packet_id(packet_id);
  for (uint32_t sid : in.out.subscription_ids) r.add_subscription_ids(sid);
  if (in.pubrec_received) {
    r.set_pubrec_received(true);
  } else if (in.out.stored_record) {
    r.set_message_id(in.out.stored_id);
  } else {
    *r.mutable_message() = toMessageRecord(*in.out.message, kClocks);
  }
  return r;
}

TEST(RecordsTest, DirectInflightEncodingIsTheProtobufEncoding) {
  auto plain = std::make_shared<router::Message>();
  plain->topic = "sensors/1/temp";
  plain->payload = std::string(300, 'p');  // a two-byte length
  plain->qos = 1;
  auto rich = std::make_shared<router::Message>(*plain);
  rich->qos = 2;
  rich->retain = true;
  rich->payload.clear();
  rich->expiry_deadline_ms = 65'000;
  auto props = std::make_shared<codec::Properties>();
  props->content_type = "ct";
  props->user_properties = {{"k", "v"}};
  rich->properties = props;
  auto empty_props = std::make_shared<router::Message>(*plain);
  empty_props->properties = std::make_shared<codec::Properties>();

  std::vector<std::pair<uint16_t, session::InflightMessage>> cases;
  auto add = [&](uint16_t pid, router::MessagePtr m, uint8_t qos, uint64_t seq) -> session::InflightMessage& {
    session::InflightMessage in;
    in.out.message = std::move(m);
    in.out.qos = qos;
    in.sequence = seq;
    cases.emplace_back(pid, std::move(in));
    return cases.back().second;
  };
  add(1, plain, 1, 1);
  add(65535, rich, 2, uint64_t{1} << 40).out.subscription_ids = {1, 300, 268435455};
  add(7, empty_props, 0, 9).out.retain = true;
  session::InflightMessage& shared = add(8, plain, 1, 10);
  shared.out.stored_record = true;
  shared.out.stored_id = uint64_t{1} << 33;
  session::InflightMessage& pubrec = add(9, nullptr, 2, 11);
  pubrec.pubrec_received = true;

  for (const auto& [pid, in] : cases) {
    std::string direct = "prefix";
    appendInflightRecord(direct, pid, in, kClocks);
    const std::string expected = builtInflight(pid, in).SerializeAsString();
    EXPECT_EQ(direct.substr(6), expected) << "packet id " << pid;
    records::InflightRecord parsed;
    ASSERT_TRUE(parsed.ParseFromString(direct.substr(6)));
    EXPECT_EQ(parsed.packet_id(), pid);
    EXPECT_EQ(parsed.sequence(), in.sequence);
  }
}

TEST(RecordsTest, SubscriptionOptionsRoundTrip) {
  router::SubscriptionOptions o;
  o.qos = 2;
  o.no_local = true;
  o.retain_as_published = true;
  o.retain_handling = 2;
  o.subscription_id = 268'435'455;
  EXPECT_EQ(fromSubscriptionRecord(toSubscriptionRecord(o)), o);
}

}  // namespace
}  // namespace gannet::server
