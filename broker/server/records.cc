#include "broker/server/records.h"

#include <chrono>

#include "base/clock.h"

namespace gannet::server {

namespace {

void toProperties(const codec::Properties& p, records::MessageProperties* out) {
  if (p.payload_format_indicator) out->set_payload_format_indicator(*p.payload_format_indicator);
  if (p.content_type) out->set_content_type(*p.content_type);
  if (p.response_topic) out->set_response_topic(*p.response_topic);
  if (p.correlation_data) out->set_correlation_data(*p.correlation_data);
  for (const codec::UserProperty& u : p.user_properties) {
    records::UserProperty* r = out->add_user_properties();
    r->set_key(u.key);
    r->set_value(u.value);
  }
}

void fromProperties(const records::MessageProperties& r, codec::Properties& out) {
  if (r.has_payload_format_indicator()) {
    out.payload_format_indicator = static_cast<uint8_t>(r.payload_format_indicator());
  }
  if (r.has_content_type()) out.content_type = r.content_type();
  if (r.has_response_topic()) out.response_topic = r.response_topic();
  if (r.has_correlation_data()) out.correlation_data = r.correlation_data();
  for (const records::UserProperty& u : r.user_properties()) {
    out.user_properties.push_back({u.key(), u.value()});
  }
}

bool hasMessageProperties(const codec::Properties& p) {
  return p.payload_format_indicator || p.content_type || p.response_topic || p.correlation_data ||
         !p.user_properties.empty();
}

}  // namespace

Clocks Clocks::now() {
  Clocks c;
  c.mono_ms = base::monotonicMs();
  c.wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  return c;
}

records::SessionRecord toSessionRecord(const session::Session& s, const Clocks& clocks,
                                       int64_t last_seen_wall_ms) {
  records::SessionRecord r;
  r.set_client_id(s.clientId());
  r.set_protocol_version(static_cast<uint32_t>(s.version));
  r.set_session_expiry_interval(s.expiry_interval);
  if (s.will) *r.mutable_will() = toWillRecord(*s.will);
  r.set_last_seen_ms(last_seen_wall_ms);
  if (s.will && s.will_due_ms != 0) r.set_will_due_ms(clocks.toWall(s.will_due_ms));
  return r;
}

records::WillRecord toWillRecord(const codec::Will& will) {
  records::WillRecord r;
  r.set_topic(will.topic);
  r.set_payload(will.payload);
  r.set_qos(will.qos);
  r.set_retain(will.retain);
  r.set_will_delay_interval(will.properties.will_delay_interval.value_or(0));
  if (will.properties.message_expiry_interval) {
    r.set_message_expiry_interval(*will.properties.message_expiry_interval);
  }
  if (hasMessageProperties(will.properties)) toProperties(will.properties, r.mutable_properties());
  return r;
}

codec::Will fromWillRecord(const records::WillRecord& r) {
  codec::Will will;
  will.topic = r.topic();
  will.payload = r.payload();
  will.qos = static_cast<uint8_t>(r.qos());
  will.retain = r.retain();
  if (r.will_delay_interval() != 0) will.properties.will_delay_interval = r.will_delay_interval();
  if (r.has_message_expiry_interval()) {
    will.properties.message_expiry_interval = r.message_expiry_interval();
  }
  if (r.has_properties()) fromProperties(r.properties(), will.properties);
  return will;
}

records::MessageRecord toMessageRecord(const router::Message& m, const Clocks& clocks) {
  records::MessageRecord r;
  if (m.expiry_deadline_ms != 0) {
    r.set_expiry_ms(static_cast<uint64_t>(clocks.toWall(m.expiry_deadline_ms)));
  }
  r.set_topic(m.topic);
  r.set_payload(m.payload);
  r.set_qos(m.qos);
  r.set_retain(m.retain);
  if (m.properties) toProperties(*m.properties, r.mutable_properties());
  r.set_received_ms(clocks.wall_ms);
  return r;
}

router::MessagePtr fromMessageRecord(const records::MessageRecord& r, const Clocks& clocks) {
  auto m = std::make_shared<router::Message>();
  m->topic = r.topic();
  m->payload = r.payload();
  m->qos = static_cast<uint8_t>(r.qos());
  m->retain = r.retain();
  if (r.expiry_ms() != 0) m->expiry_deadline_ms = clocks.toMono(static_cast<int64_t>(r.expiry_ms()));
  if (r.has_properties()) {
    auto props = std::make_shared<codec::Properties>();
    fromProperties(r.properties(), *props);
    m->properties = std::move(props);
  }
  return m;
}

records::SubscriptionRecord toSubscriptionRecord(const router::SubscriptionOptions& o) {
  records::SubscriptionRecord r;
  r.set_qos(o.qos);
  r.set_no_local(o.no_local);
  r.set_retain_as_published(o.retain_as_published);
  r.set_retain_handling(o.retain_handling);
  r.set_subscription_id(o.subscription_id);
  return r;
}

router::SubscriptionOptions fromSubscriptionRecord(const records::SubscriptionRecord& r) {
  router::SubscriptionOptions o;
  o.qos = static_cast<uint8_t>(r.qos());
  o.no_local = r.no_local();
  o.retain_as_published = r.retain_as_published();
  o.retain_handling = static_cast<uint8_t>(r.retain_handling());
  o.subscription_id = r.subscription_id();
  return o;
}

}  // namespace gannet::server
