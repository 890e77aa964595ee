#include "broker/handlers/delivery.h"

#include <algorithm>

#include "broker/codec/encoder.h"
#include "broker/codec/publish_writer.h"
#include "broker/handlers/acl_check.h"

namespace gannet::handlers {
namespace {

bool expired(const router::Message& m, int64_t now) {
  return m.expiry_deadline_ms != 0 && m.expiry_deadline_ms <= now;
}

// Writes one PUBLISH to the client. Returns false (and counts the drop) when the
// message is over the client's Maximum Packet Size (MQTT 5 §3.1.2.11.4: discard
// it as if it had been sent).
bool writeToClient(Client& c, const session::OutboundMessage& out, uint16_t packet_id, bool dup) {
  BrokerContext& ctx = c.ctx();
  const router::Message& m = *out.message;
  codec::PublishView v;
  v.topic = m.topic;
  v.payload = m.payload;
  v.qos = out.qos;
  v.retain = out.retain;
  v.dup = dup;
  v.packet_id = packet_id;
  v.properties = m.properties.get();
  if (m.expiry_deadline_ms != 0) {
    // §3.3.2.3.3: the interval sent is the received one minus the time waited.
    int64_t left_ms = m.expiry_deadline_ms - ctx.now();
    v.message_expiry = static_cast<uint32_t>(std::max<int64_t>(1, (left_ms + 999) / 1000));
  }
  v.subscription_ids = std::span<const uint32_t>(out.subscription_ids.data(),
                                                 out.subscription_ids.size());
  uint16_t alias = 0;
  bool alias_known = false;
  if (c.client_topic_alias_max > 0) {
    if (!c.outbound_aliases) {
      c.outbound_aliases = std::make_unique<absl::flat_hash_map<std::string, uint16_t>>();
    }
    auto it = c.outbound_aliases->find(m.topic);
    if (it != c.outbound_aliases->end()) {
      alias = it->second;
      alias_known = true;
    } else if (c.outbound_aliases->size() < c.client_topic_alias_max) {
      alias = static_cast<uint16_t>(c.outbound_aliases->size() + 1);
    }
    v.topic_alias = alias;
    if (alias_known) v.topic = {};
  }
  std::string& buf = c.connection().output();
  const size_t start = buf.size();
  size_t n = codec::writePublish(v, c.version(), buf);
  if (c.client_max_packet_size != 0 && n > c.client_max_packet_size) {
    buf.resize(start);
    ctx.stats().drop(DropReason::kTooLarge);
    return false;
  }
  if (alias != 0 && !alias_known) c.outbound_aliases->emplace(m.topic, alias);
  c.connection().scheduleFlush();
  ctx.stats().messages_sent[out.qos].add();
  ctx.stats().message_bytes_sent[out.qos].add(m.payload.size());
  ctx.stats().bytes_sent.add(n);
  return true;
}

// Queues `out` within --max_queued_messages / --max_queued_bytes, applying the
// overflow policy when the session's queue is full. Every dropped message is
// counted as queue_full (and its durable entry deleted).
void enqueueBounded(BrokerContext& ctx, session::Session& s, session::OutboundMessage&& out) {
  const BrokerConfig& cfg = ctx.config();
  const size_t size = out.message->topic.size() + out.message->payload.size();
  auto full = [&] {
    return s.queuedCount() >= cfg.max_queued_messages ||
           (cfg.max_queued_bytes != 0 && s.queued_bytes + size > cfg.max_queued_bytes);
  };
  if (cfg.queue_overflow == BrokerConfig::QueueOverflow::kDropOldest) {
    while (full() && s.hasQueued()) {
      if (!s.hasQueuedInMemory()) {
        ctx.refillBacklog(s);
        if (!s.hasQueuedInMemory()) break;  // the backlog could not be read
      }
      session::OutboundMessage old = s.dequeue();
      ctx.forgetQueued(s, old);
      ctx.stats().drop(DropReason::kQueueFull);
    }
  }
  if (full()) {  // refuse-newest, or one message larger than the byte bound itself
    ctx.forgetQueued(s, out);
    ctx.stats().drop(DropReason::kQueueFull);
    return;
  }
  ctx.persistQueued(s, out);
  s.enqueue(std::move(out));
}

void sendInflight(Client& c, session::Session& s, session::OutboundMessage&& out) {
  uint16_t pid = s.nextPacketId();
  if (pid == 0) {  // cannot happen with a window below 65535; keep it queued
    c.ctx().persistQueued(s, out);
    s.enqueue(std::move(out));
    return;
  }
  if (!writeToClient(c, out, pid, /*dup=*/false)) {
    c.ctx().forgetQueued(s, out);  // over the client's Maximum Packet Size: dropped
    return;
  }
  session::InflightMessage& in = s.inflight[pid];
  in.out = std::move(out);
  in.sequence = s.next_sequence++;
  c.ctx().persistInflight(s, pid, in);
}

}  // namespace

session::OutboundMessage outboundFor(const router::MessagePtr& message,
                                     const router::Delivery& d) {
  session::OutboundMessage out;
  out.message = message;
  out.qos = std::min(message->qos, d.qos);
  // MQTT 5 §3.3.1.3 / 3.1.1 §3.3.1.3: RETAIN is cleared on normal delivery
  // unless the subscription asked for Retain As Published.
  out.retain = d.retain_as_published && message->retain;
  out.read_checked = d.read_all;
  out.subscription_ids.assign(d.subscription_ids.begin(), d.subscription_ids.end());
  return out;
}

void deliver(BrokerContext& ctx, session::Session& s, session::OutboundMessage&& out) {
  if (!out.read_checked && !mayRead(ctx, s, out.message->topic)) {
    // As Mosquitto: read access is checked at delivery, for messages from any
    // worker or node and for retained ones (docs/security.md).
    ctx.forgetQueued(s, out);
    ctx.stats().drop(DropReason::kNotAuthorized);
    return;
  }
  if (expired(*out.message, ctx.now())) {
    ctx.forgetQueued(s, out);
    ctx.stats().drop(DropReason::kExpired);
    return;
  }
  auto* c = static_cast<Client*>(s.client);
  if (out.qos == 0) {
    if (c == nullptr) {
      ctx.stats().drop(DropReason::kOffline);
    } else if (c->connection().outputFull()) {
      ctx.stats().drop(DropReason::kSlowConsumer);
    } else {
      writeToClient(*c, out, 0, false);
    }
    return;
  }
  if (c != nullptr && !s.hasQueued() && s.resend_pending == 0 &&
      s.onWire() < c->send_window &&
      !c->connection().outputFull()) {
    sendInflight(*c, s, std::move(out));
    return;
  }
  enqueueBounded(ctx, s, std::move(out));
}

// Resends inflight entries of an earlier connection while the window allows.
void resendPending(Client& c, session::Session& s) {
  while (s.resend_pending > 0 && s.resend_next < s.resend_order.size() &&
         s.onWire() < c.send_window && !c.connection().outputFull() &&
         !c.connection().closed()) {
    const uint16_t pid = s.resend_order[s.resend_next++];
    auto it = s.inflight.find(pid);
    if (it == s.inflight.end() || !it->second.resend_pending) continue;
    session::InflightMessage& in = it->second;
    in.resend_pending = false;
    --s.resend_pending;
    if (in.pubrec_received) {
      c.send(codec::PubAckPacket{codec::PacketType::kPubrel, pid, codec::ReasonCode::kSuccess, {}});
    } else if (!writeToClient(c, in.out, pid, /*dup=*/true)) {
      // Over this connection's Maximum Packet Size: discarded as if sent
      // (MQTT 5 §3.1.2.11.4). No ack can ever come; it must not hold a window slot.
      c.ctx().forgetInflight(s, pid, in);
      s.inflight.erase(it);
    }
  }
  if (s.resend_pending == 0) {
    s.resend_order.clear();
    s.resend_next = 0;
  }
}

void pumpQueue(Client& c) {
  session::Session* s = c.session();
  if (s == nullptr) return;
  BrokerContext& ctx = c.ctx();
  resendPending(c, *s);
  if (s->resend_pending > 0) return;  // older messages first (§4.6 ordering)
  while (s->hasQueued() && s->onWire() < c.send_window &&
         !c.connection().outputFull() && !c.connection().closed()) {
    if (!s->hasQueuedInMemory()) {
      ctx.refillBacklog(*s);
      if (!s->hasQueuedInMemory()) break;  // the backlog could not be read now
    }
    session::OutboundMessage out = s->dequeue();
    if (expired(*out.message, ctx.now())) {
      ctx.forgetQueued(*s, out);
      ctx.stats().drop(DropReason::kExpired);
      continue;
    }
    sendInflight(c, *s, std::move(out));
  }
}

void resendInflight(Client& c) {
  session::Session* s = c.session();
  if (s == nullptr) return;
  std::vector<std::pair<uint64_t, uint16_t>> order;
  order.reserve(s->inflight.size());
  for (auto& [pid, in] : s->inflight) {
    in.resend_pending = true;
    order.emplace_back(in.sequence, pid);
  }
  std::sort(order.begin(), order.end());
  s->resend_order.clear();
  for (auto& [seq, pid] : order) s->resend_order.push_back(pid);
  s->resend_next = 0;
  s->resend_pending = order.size();
  pumpQueue(c);
}

std::shared_ptr<const codec::Properties> passThroughProperties(codec::Properties& in) {
  if (!in.payload_format_indicator && !in.content_type && !in.response_topic &&
      !in.correlation_data && in.user_properties.empty()) {
    return nullptr;
  }
  auto out = std::make_shared<codec::Properties>();
  out->payload_format_indicator = in.payload_format_indicator;
  out->content_type = std::move(in.content_type);
  out->response_topic = std::move(in.response_topic);
  out->correlation_data = std::move(in.correlation_data);
  out->user_properties = std::move(in.user_properties);
  return out;
}

void storeRetained(BrokerContext& ctx, const router::MessagePtr& m) {
  // In a cluster a newer write of the topic from another node may have been
  // applied in the meantime: then this one is already superseded.
  if (!ctx.setRetained(m)) return;
  if (m->payload.empty()) {
    ctx.forgetRetained(m->topic);
  } else {
    ctx.persistRetained(m);
  }
  ctx.replicateRetained(m);
}

void publishWill(BrokerContext& ctx, const codec::Will& will, const session::Session& s) {
  // Checked at CONNECT already (handleConnect refuses a will the client may not
  // write); checked again in case the ACL changed since.
  if (!mayWrite(ctx, s, will.topic)) {
    ctx.stats().drop(DropReason::kNotAuthorized);
    return;
  }
  publishWill(ctx, will, s.id());
}

void publishWill(BrokerContext& ctx, const codec::Will& will, uint64_t session_id) {
  auto m = std::make_shared<router::Message>();
  m->topic = will.topic;
  m->payload = will.payload;
  m->qos = will.qos;
  m->retain = will.retain;
  m->publisher_session_id = session_id;
  if (will.properties.message_expiry_interval) {
    m->expiry_deadline_ms = ctx.now() + int64_t{*will.properties.message_expiry_interval} * 1000;
  }
  codec::Properties props = will.properties;  // wills are rare: a copy is fine
  m->properties = passThroughProperties(props);
  if (m->retain && ctx.config().retain_available) {
    ctx.stampRetained(*m);
    storeRetained(ctx, m);
  }
  ctx.publish(m);
}

}  // namespace gannet::handlers
