#include <algorithm>

#include "broker/codec/decoder.h"
#include "broker/codec/errors.h"
#include "broker/handlers/acl_check.h"
#include "broker/handlers/delivery.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/limits.h"

namespace gannet::handlers {

using codec::ReasonCode;

namespace {

// The reason code for one requested filter, or the QoS granted.
uint8_t grant(const codec::SubscriptionRequest& r, bool valid) {
  if (!valid) return static_cast<uint8_t>(ReasonCode::kTopicFilterInvalid);
  return std::min<uint8_t>(r.qos, 2);
}

}  // namespace

absl::Status handleSubscribe(Client& client, codec::SubscribePacket&& p) {
  BrokerContext& ctx = client.ctx();
  session::Session& s = *client.session();
  const router::Destination dest{s.id(), ctx.workerIndex()};
  uint32_t sub_id = p.properties.subscription_identifiers.empty()
                        ? 0
                        : p.properties.subscription_identifiers.front();

  codec::SubackPacket ack;
  ack.packet_id = p.packet_id;
  std::vector<session::OutboundMessage> retained;
  for (const codec::SubscriptionRequest& r : p.subscriptions) {
    std::string_view group, filter;
    const bool shared = router::parseSharedFilter(r.filter, group, filter);
    const bool valid = shared ? router::isValidSharedFilter(r.filter)
                              : codec::isValidTopicFilter(r.filter);
    if (shared && r.no_local && client.isV5()) {
      // MQTT 5 §3.8.3.1: No Local on a shared subscription is a Protocol Error.
      return codec::protocolError("no local on a shared subscription");
    }
    uint8_t code = grant(r, valid);
    if (!valid) {
      // 3.1.1 SUBACK has one failure code, 0x80.
      ack.reason_codes.push_back(client.isV5() ? code : 0x80);
      continue;
    }
    // --max_topic_length / --max_topic_levels / --max_subscriptions_per_client.
    if (const uint8_t refused = refusedFilter(client, s, r.filter, shared ? filter : r.filter)) {
      ack.reason_codes.push_back(refused);
      continue;
    }
    const SubscribeAccess access = maySubscribe(ctx, s, r.filter);
    if (access == SubscribeAccess::kDenied) {
      // Not authorised (docs/security.md): 0x87, 3.1.1's one failure code 0x80.
      // An earlier subscription to the same filter does not stay either.
      ack.reason_codes.push_back(
          client.isV5() ? static_cast<uint8_t>(ReasonCode::kNotAuthorized) : 0x80);
      if (s.subscriptions.erase(r.filter) > 0) {
        ctx.router().unsubscribe(r.filter, dest);
        ctx.forgetSubscription(s, r.filter);
      }
      continue;
    }
    router::SubscriptionOptions opts;
    opts.qos = code;
    opts.no_local = r.no_local;
    opts.retain_as_published = r.retain_as_published;
    opts.retain_handling = r.retain_handling;
    opts.subscription_id = sub_id;
    opts.durable = s.stored;
    opts.read_all = access == SubscribeAccess::kReadsAll;
    const bool is_new = ctx.router().subscribe(r.filter, dest, opts);
    s.subscriptions[r.filter] = opts;
    ctx.persistSubscription(s, r.filter, opts);
    ack.reason_codes.push_back(code);
    // §3.3.1.3 / MQTT 5 §3.8.3.1 Retain Handling: 0 send, 1 send if new, 2 never.
    // Retained messages are not sent for shared subscriptions (§4.8.2).
    if (shared || r.retain_handling == 2 || (r.retain_handling == 1 && !is_new)) continue;
    ctx.retained().forEachMatch(r.filter, ctx.now(), [&](const router::MessagePtr& m) {
      session::OutboundMessage out;
      out.message = m;
      out.qos = std::min(m->qos, code);
      out.retain = true;
      out.read_checked = opts.read_all;  // otherwise deliver() checks it
      if (sub_id != 0) out.subscription_ids.push_back(sub_id);
      retained.push_back(std::move(out));
    });
  }
  if (client.isV5() && client.request_problem_information &&
      std::any_of(ack.reason_codes.begin(), ack.reason_codes.end(),
                  [](uint8_t rc) { return rc >= 0x80; })) {
    ack.properties.reason_string =
        "invalid topic filter, not authorised, or over a limit (docs/security.md)";
  }
  client.send(ack);
  for (auto& out : retained) deliver(ctx, s, std::move(out));
  return absl::OkStatus();
}

absl::Status handleUnsubscribe(Client& client, codec::UnsubscribePacket&& p) {
  BrokerContext& ctx = client.ctx();
  session::Session& s = *client.session();
  const router::Destination dest{s.id(), ctx.workerIndex()};
  codec::UnsubackPacket ack;
  ack.packet_id = p.packet_id;
  for (const std::string& filter : p.filters) {
    bool existed = s.subscriptions.erase(filter) > 0;
    if (existed) {
      ctx.router().unsubscribe(filter, dest);
      ctx.forgetSubscription(s, filter);
    }
    ack.reason_codes.push_back(static_cast<uint8_t>(
        existed ? ReasonCode::kSuccess : ReasonCode::kNoSubscriptionExisted));
  }
  client.send(ack);
  return absl::OkStatus();
}

}  // namespace gannet::handlers
