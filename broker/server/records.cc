#include "broker/server/records.h"

#include <chrono>
#include <cstring>

#include "base/assert.h"
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
  if (s.username) r.set_username(*s.username);
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
  if (m.hlc != 0) {
    r.set_hlc(m.hlc);
    r.set_origin_node(m.origin_node);
  }
  return r;
}

router::MessagePtr fromMessageRecord(const records::MessageRecord& r, const Clocks& clocks) {
  auto m = std::make_shared<router::Message>();
  m->topic = r.topic();
  m->payload = r.payload();
  m->qos = static_cast<uint8_t>(r.qos());
  m->retain = r.retain();
  m->hlc = r.hlc();
  m->origin_node = r.origin_node();
  if (r.expiry_ms() != 0) m->expiry_deadline_ms = clocks.toMono(static_cast<int64_t>(r.expiry_ms()));
  if (r.has_properties()) {
    auto props = std::make_shared<codec::Properties>();
    fromProperties(r.properties(), *props);
    m->properties = std::move(props);
  }
  return m;
}

namespace {

// Protocol Buffers wire format, written into a buffer sized in advance.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2;

size_t varintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

char* writeVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

// Fields below 16: a one-byte tag.
char* writeTag(char* p, uint32_t field, uint32_t wire_type) {
  *p++ = static_cast<char>((field << 3) | wire_type);
  return p;
}

char* writeBytes(char* p, uint32_t field, std::string_view bytes) {
  p = writeTag(p, field, kLengthDelimited);
  p = writeVarint(p, bytes.size());
  std::memcpy(p, bytes.data(), bytes.size());
  return p + bytes.size();
}

size_t bytesFieldSize(size_t n) { return 1 + varintSize(n) + n; }

}  // namespace

void appendInflightRecord(std::string& out, uint16_t packet_id, const session::InflightMessage& in,
                          const Clocks& clocks) {
  const session::OutboundMessage& o = in.out;
  const bool embedded = !in.pubrec_received && !o.stored_record;
  // The embedded MessageRecord (fields in number order, defaults omitted).
  size_t message_size = 0;
  uint64_t expiry = 0;
  int64_t received = clocks.wall_ms;
  std::string properties;
  if (embedded) {
    const router::Message& m = *o.message;
    if (m.expiry_deadline_ms != 0) expiry = static_cast<uint64_t>(clocks.toWall(m.expiry_deadline_ms));
    if (m.properties) {
      records::MessageProperties pr;
      toProperties(*m.properties, &pr);
      pr.SerializeToString(&properties);
    }
    if (expiry != 0) message_size += 1 + 8;
    if (!m.topic.empty()) message_size += bytesFieldSize(m.topic.size());
    if (!m.payload.empty()) message_size += bytesFieldSize(m.payload.size());
    if (m.qos != 0) message_size += 1 + varintSize(m.qos);
    if (m.retain) message_size += 2;
    if (m.properties) message_size += bytesFieldSize(properties.size());
    if (received != 0) message_size += 1 + varintSize(static_cast<uint64_t>(received));
  }
  size_t ids_size = 0;
  for (uint32_t sid : o.subscription_ids) ids_size += varintSize(sid);
  size_t size = 0;
  if (in.pubrec_received) {
  } else if (o.stored_record) {
    size += 1 + varintSize(o.stored_id);
  } else {
    size += bytesFieldSize(message_size);
  }
  if (o.qos != 0) size += 1 + varintSize(o.qos);
  if (o.retain) size += 2;
  if (ids_size != 0) size += bytesFieldSize(ids_size);
  if (in.pubrec_received) size += 2;
  if (in.sequence != 0) size += 1 + varintSize(in.sequence);
  if (packet_id != 0) size += 1 + varintSize(packet_id);

  const size_t start = out.size();
  out.resize(start + size);
  char* p = out.data() + start;
  if (in.pubrec_received) {
  } else if (o.stored_record) {
    p = writeVarint(writeTag(p, 1, kVarint), o.stored_id);
  } else {
    const router::Message& m = *o.message;
    p = writeVarint(writeTag(p, 2, kLengthDelimited), message_size);
    if (expiry != 0) {
      p = writeTag(p, 1, kFixed64);
      for (int i = 0; i < 8; ++i) *p++ = static_cast<char>((expiry >> (8 * i)) & 0xFF);
    }
    if (!m.topic.empty()) p = writeBytes(p, 2, m.topic);
    if (!m.payload.empty()) p = writeBytes(p, 3, m.payload);
    if (m.qos != 0) p = writeVarint(writeTag(p, 4, kVarint), m.qos);
    if (m.retain) p = writeVarint(writeTag(p, 5, kVarint), 1);
    if (m.properties) p = writeBytes(p, 6, properties);
    if (received != 0) p = writeVarint(writeTag(p, 8, kVarint), static_cast<uint64_t>(received));
  }
  if (o.qos != 0) p = writeVarint(writeTag(p, 3, kVarint), o.qos);
  if (o.retain) p = writeVarint(writeTag(p, 4, kVarint), 1);
  if (ids_size != 0) {
    p = writeVarint(writeTag(p, 5, kLengthDelimited), ids_size);
    for (uint32_t sid : o.subscription_ids) p = writeVarint(p, sid);
  }
  if (in.pubrec_received) p = writeVarint(writeTag(p, 6, kVarint), 1);
  if (in.sequence != 0) p = writeVarint(writeTag(p, 7, kVarint), in.sequence);
  if (packet_id != 0) p = writeVarint(writeTag(p, 8, kVarint), packet_id);
  GANNET_RELEASE_ASSERT(p == out.data() + out.size(), "inflight record size mismatch");
}

void toWire(const router::Message& m, int64_t now_ms, cluster::WireMessage& out) {
  out.topic = m.topic;
  out.payload = m.payload;
  out.qos = m.qos;
  out.retain = m.retain;
  if (m.properties) {
    records::MessageProperties pr;
    toProperties(*m.properties, &pr);
    out.properties = pr.SerializeAsString();  // empty properties travel as none
  }
  if (m.expiry_deadline_ms != 0) out.expiry_in_ms = std::max<int64_t>(1, m.expiry_deadline_ms - now_ms);
}

void appendForward(const router::Message& m, int64_t now_ms, uint32_t ack_worker,
                   uint64_t ack_token, bool shared_groups, cluster::PackedForwards& out) {
  cluster::ForwardView f;
  f.topic = m.topic;
  f.payload = m.payload;
  f.qos = m.qos;
  f.retain = m.retain;
  std::string properties;
  if (m.properties) {
    records::MessageProperties pr;
    toProperties(*m.properties, &pr);
    properties = pr.SerializeAsString();  // empty properties travel as none
    f.properties = properties;
  }
  if (m.expiry_deadline_ms != 0) f.expiry_in_ms = std::max<int64_t>(1, m.expiry_deadline_ms - now_ms);
  f.ack_worker = ack_worker;
  f.ack_token = ack_token;
  f.shared_groups = shared_groups;
  out.add(f);
}

router::MessagePtr fromForward(const cluster::ForwardView& f, int64_t now_ms) {
  auto m = std::make_shared<router::Message>();
  m->topic = f.topic;
  m->payload = f.payload;
  m->qos = f.qos;
  m->retain = f.retain;
  records::MessageProperties pr;
  if (!f.properties.empty() &&
      pr.ParseFromArray(f.properties.data(), static_cast<int>(f.properties.size()))) {
    auto props = std::make_shared<codec::Properties>();
    fromProperties(pr, *props);
    m->properties = std::move(props);
  }
  if (f.expiry_in_ms != 0) m->expiry_deadline_ms = now_ms + f.expiry_in_ms;
  return m;
}

records::MessageRecord toSpoolRecord(const cluster::ForwardView& f, const Clocks& clocks) {
  records::MessageRecord r;
  if (f.expiry_in_ms != 0) r.set_expiry_ms(static_cast<uint64_t>(clocks.wall_ms + f.expiry_in_ms));
  r.set_topic(f.topic.data(), f.topic.size());
  r.set_payload(f.payload.data(), f.payload.size());
  r.set_qos(f.qos);
  r.set_retain(f.retain);
  if (!f.properties.empty() &&
      !r.mutable_properties()->ParseFromArray(f.properties.data(),
                                              static_cast<int>(f.properties.size()))) {
    r.clear_properties();
  }
  r.set_received_ms(clocks.wall_ms);
  return r;
}

bool appendSpooled(const records::MessageRecord& r, const Clocks& clocks, uint32_t ack_worker,
                   uint64_t ack_token, cluster::PackedForwards& out) {
  if (r.expiry_ms() != 0 && static_cast<int64_t>(r.expiry_ms()) <= clocks.wall_ms) return false;
  // Kept on disk for a node that was away: which groups were served elsewhere
  // is not kept, so its groups are served there too (a group may get it twice).
  appendForward(*fromMessageRecord(r, clocks), clocks.mono_ms, ack_worker, ack_token,
                /*shared_groups=*/true, out);
  return true;
}

std::shared_ptr<router::Message> fromWire(cluster::WireMessage&& w, int64_t now_ms) {
  auto m = std::make_shared<router::Message>();
  m->topic = std::move(w.topic);
  m->payload = std::move(w.payload);
  m->qos = w.qos;
  m->retain = w.retain;
  records::MessageProperties pr;
  if (!w.properties.empty() && pr.ParseFromString(w.properties)) {
    auto props = std::make_shared<codec::Properties>();
    fromProperties(pr, *props);
    m->properties = std::move(props);
  }
  if (w.expiry_in_ms != 0) m->expiry_deadline_ms = now_ms + w.expiry_in_ms;
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

records::MessageRecord storedMessage(const router::Message& m, const Clocks& clocks) {
  records::MessageRecord record = toMessageRecord(m, clocks);
  record.clear_publisher_client_id();  // not needed to deliver it
  record.clear_hlc();                  // retained bookkeeping, not for deliveries
  record.clear_origin_node();
  return record;
}

records::QueueEntryRecord queueEntry(const router::Message& m, uint64_t id, bool record,
                                     uint8_t qos, bool retain, std::span<const uint32_t> sub_ids,
                                     const Clocks& clocks) {
  records::QueueEntryRecord entry;
  entry.set_expiry_ms(static_cast<uint64_t>(clocks.toWall(m.expiry_deadline_ms)));
  entry.set_message_id(id);
  entry.set_qos(qos);
  entry.set_retain(retain);
  for (uint32_t sid : sub_ids) entry.add_subscription_ids(sid);
  entry.set_message_bytes(static_cast<uint32_t>(m.topic.size() + m.payload.size()));
  if (!record) *entry.mutable_message() = storedMessage(m, clocks);
  return entry;
}

}  // namespace gannet::server
