#include "broker/codec/errors.h"
#include "broker/handlers/acl_check.h"
#include "broker/handlers/delivery.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/limits.h"

namespace gannet::handlers {

using codec::ReasonCode;

namespace {

// MQTT 5 §3.3.2.3.4: resolves (and learns) a topic alias. Returns an error status
// for an alias of 0, above our maximum, or unknown with an empty topic.
absl::Status resolveAlias(Client& client, codec::PublishPacket& p) {
  if (!p.properties.topic_alias) {
    if (p.topic.empty()) return codec::protocolError("empty topic without a topic alias");
    return absl::OkStatus();
  }
  uint16_t alias = *p.properties.topic_alias;
  if (alias == 0 || alias > client.ctx().config().topic_alias_maximum) {
    return codec::codecError(ReasonCode::kTopicAliasInvalid, "topic alias out of range");
  }
  auto& table = client.inbound_aliases;
  if (table.size() < alias) table.resize(alias);
  if (p.topic.empty()) {
    if (table[alias - 1].empty()) {
      return codec::protocolError("unknown topic alias");
    }
    p.topic = table[alias - 1];
  } else {
    table[alias - 1] = p.topic;
  }
  return absl::OkStatus();
}

void sendAck(Client& client, codec::PacketType type, uint16_t packet_id, ReasonCode rc,
             std::string_view reason = {}, bool after_commit = false) {
  if (reason.empty() && !after_commit && client.acks_held == 0) {
    client.sendAck(type, packet_id, rc);  // the common case: no packet struct
    return;
  }
  codec::PubAckPacket ack{type, packet_id, rc, {}};
  // MQTT 5 §3.1.2.11.7: a Reason String only when the client did not opt out.
  if (!reason.empty() && client.isV5() && client.request_problem_information) {
    ack.properties.reason_string = std::string(reason);
  }
  // §4.6: acks go out in the order of the PUBLISHes; once one waits for the
  // commit, the later ones of this iteration wait behind it.
  if (after_commit || client.acks_held > 0) {
    client.ctx().ackAfterCommit(client, ack);
  } else {
    client.send(ack);
  }
}

// The ACL does not let the client publish to the topic (docs/security.md,
// "Authorisation (ACL)"). Never routed, retained or stored; counted. As
// Mosquitto 2.0: MQTT 5 QoS 1/2 get PUBACK / PUBREC 0x87 (a PUBREC >= 0x80 ends
// the QoS 2 exchange, MQTT 5 §4.3.3); 3.1.1 acks carry no reason, so QoS 1 is
// acknowledged and QoS 2 completes its PUBREC / PUBREL / PUBCOMP as usual,
// and the message is dropped.
absl::Status refuseUnauthorized(Client& client, const codec::PublishPacket& p) {
  client.ctx().stats().drop(DropReason::kNotAuthorized);
  constexpr std::string_view kWhy = "not authorised to publish to this topic";
  if (p.qos == 0) return absl::OkStatus();
  const codec::PacketType type = p.qos == 1 ? codec::PacketType::kPuback : codec::PacketType::kPubrec;
  if (client.isV5()) {
    sendAck(client, type, p.packet_id, ReasonCode::kNotAuthorized, kWhy);
    return absl::OkStatus();
  }
  // Kept in memory only: nothing of this publish is stored, and a PUBREL for an
  // id we do not hold is answered with PUBCOMP anyway (pub_ack.cc).
  if (p.qos == 2) client.session()->awaiting_pubrel.insert(p.packet_id);
  sendAck(client, type, p.packet_id, ReasonCode::kSuccess);
  return absl::OkStatus();
}

}  // namespace

absl::Status handlePublish(Client& client, codec::PublishPacket&& p) {
  BrokerContext& ctx = client.ctx();
  session::Session& s = *client.session();
  if (client.isV5()) {
    if (!p.properties.subscription_identifiers.empty()) {
      // MQTT 5 §3.3.4: a PUBLISH from a client MUST NOT carry a Subscription Identifier.
      return codec::protocolError("subscription identifier in a client PUBLISH");
    }
    absl::Status st = resolveAlias(client, p);
    if (!st.ok()) return st;
  }
  if (p.retain && !ctx.config().retain_available) {
    // MQTT 5 §3.3.1.3: RETAIN set when Retain Available is 0.
    return codec::codecError(ReasonCode::kRetainNotSupported, "retain is not available");
  }
  if (p.qos > 0 && p.retain && ctx.storeFull()) {
    // The store is over --max_disk_bytes: refuse what would grow it (§3.4.2.1
    // 0x97 Quota exceeded). 3.1.1 acks carry no reason: close instead, so the
    // client keeps the message and resends it later; never a false PUBACK.
    if (!client.isV5()) {
      return codec::codecError(ReasonCode::kQuotaExceeded, "store over its disk limit");
    }
    sendAck(client, p.qos == 1 ? codec::PacketType::kPuback : codec::PacketType::kPubrec,
            p.packet_id, ReasonCode::kQuotaExceeded, "store over its disk limit");
    return absl::OkStatus();
  }
  if (p.qos == 2 && s.awaiting_pubrel.contains(p.packet_id)) {
    // §4.3.3: a resent PUBLISH whose PUBREC we already sent: acknowledge again,
    // deliver nothing (exactly once).
    sendAck(client, codec::PacketType::kPubrec, p.packet_id, ReasonCode::kSuccess);
    return absl::OkStatus();
  }
  if (p.qos == 2 && s.awaiting_pubrel.size() >= ctx.config().receive_maximum && client.isV5()) {
    // MQTT 5 §3.3.4: more unacknowledged QoS 2 PUBLISHes than our Receive Maximum.
    return codec::codecError(ReasonCode::kReceiveMaximumExceeded, "receive maximum exceeded");
  }
  ctx.stats().messages_received[p.qos].add();
  ctx.stats().message_bytes_received[p.qos].add(p.payload.size());
  // Topic length / levels, publish rate (docs/security.md, "Limits"): one
  // branch when none is set.
  if (ctx.config().publishLimits() && refusedByPublishLimits(client, p)) return absl::OkStatus();
  if (p.topic.starts_with("$SYS") || p.topic.starts_with("$share/")) {
    // $SYS is the broker's own namespace, and a "$share/..." topic name could never
    // be subscribed to (§4.8.2): clients may not publish there (as in Mosquitto).
    // MQTT 5 gets 0x87; a 3.1.1 QoS>0 publish is acknowledged and dropped, since
    // 3.1.1 acks carry no reason.
    constexpr std::string_view kWhy = "clients may not publish to $SYS or $share topics";
    if (p.qos == 1) {
      sendAck(client, codec::PacketType::kPuback, p.packet_id, ReasonCode::kNotAuthorized, kWhy);
    } else if (p.qos == 2) {
      sendAck(client, codec::PacketType::kPubrec, p.packet_id, ReasonCode::kNotAuthorized, kWhy);
    }
    return absl::OkStatus();
  }
  if (!mayWrite(ctx, s, p.topic)) return refuseUnauthorized(client, p);

  auto m = std::make_shared<router::Message>();
  m->topic = std::move(p.topic);
  m->payload = std::move(p.payload);
  m->qos = p.qos;
  m->retain = p.retain;
  m->publisher_session_id = s.id();
  if (p.properties.message_expiry_interval) {
    m->expiry_deadline_ms = ctx.now() + int64_t{*p.properties.message_expiry_interval} * 1000;
  }
  m->properties = passThroughProperties(p.properties);

  size_t deliveries = ctx.match(m);
  using Durability = BrokerContext::Durability;
  const Durability durability =
      p.qos > 0 ? ctx.persistMatched(m, &s, p.packet_id) : Durability::kNone;
  const codec::PacketType ack_type =
      p.qos == 1 ? codec::PacketType::kPuback : codec::PacketType::kPubrec;
  if (durability == Durability::kRefused) {
    // The store is over --max_disk_bytes: delivered to nobody, refused (0x97), so
    // that the client keeps it and retries; 3.1.1 acks carry no reason: close.
    ctx.discardMatched();
    if (!client.isV5()) {
      return codec::codecError(ReasonCode::kQuotaExceeded, "store over its disk limit");
    }
    sendAck(client, ack_type, p.packet_id, ReasonCode::kQuotaExceeded, "store over its disk limit");
    return absl::OkStatus();
  }
  if (m->retain) {
    ctx.stampRetained(*m);
    storeRetained(ctx, m);
  }
  if (deliveries == 0) ctx.stats().drop(DropReason::kNoSubscribers);

  // MQTT 5 §3.4.2.1: 0x10 "No matching subscribers" is a success code.
  ReasonCode rc = deliveries == 0 && client.isV5() ? ReasonCode::kNoMatchingSubscribers
                                                   : ReasonCode::kSuccess;
  if (p.qos > 0) {
    if (p.qos == 2) s.awaiting_pubrel.insert(p.packet_id);
    // What this publish made durable for persistent sessions (queue entries, the
    // awaiting-PUBREL id) is acknowledged only once it is committed. (A retained
    // message alone is committed at the end of the iteration too, before output
    // is written; its ack keeps its place ahead of the deliveries below.)
    sendAck(client, ack_type, p.packet_id, rc, {}, durability == Durability::kStored);
  }
  // After an ack sent at once, so a client subscribed to its own topic sees it first.
  ctx.deliverMatched(m);
  return absl::OkStatus();
}

}  // namespace gannet::handlers
