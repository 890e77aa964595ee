#include "broker/handlers/limits.h"

#include <algorithm>
#include <string>

#include "base/logging.h"
#include "broker/codec/encoder.h"
#include "broker/codec/errors.h"
#include "broker/handlers/client.h"

namespace gannet::handlers {

using codec::ReasonCode;

uint32_t topicLevels(std::string_view topic) {
  return 1 + static_cast<uint32_t>(std::count(topic.begin(), topic.end(), '/'));
}

std::optional<LimitRefusal> topicOverLimits(const BrokerConfig& config, std::string_view topic,
                                            std::string_view levels_of) {
  if (topic.size() > config.max_topic_length) return LimitRefusal::kMaxTopicLength;
  if (config.max_topic_levels != 0 && topicLevels(levels_of) > config.max_topic_levels) {
    return LimitRefusal::kMaxTopicLevels;
  }
  return std::nullopt;
}

namespace {

// The refusing PUBACK / PUBREC of a QoS >= 1 publish, in order behind any
// acks that wait for a commit (§4.6).
void refuseAck(Client& client, const codec::PublishPacket& p, ReasonCode rc,
               std::string_view why) {
  codec::PubAckPacket ack{p.qos == 1 ? codec::PacketType::kPuback : codec::PacketType::kPubrec,
                          p.packet_id, rc, {}};
  // MQTT 5 §3.1.2.11.7: a Reason String only when the client did not opt out.
  if (client.isV5() && client.request_problem_information && rc != ReasonCode::kSuccess) {
    ack.properties.reason_string = std::string(why);
  }
  if (client.acks_held > 0) {
    client.ctx().ackAfterCommit(client, ack);
  } else {
    client.send(ack);
  }
}

}  // namespace

bool refusedByPublishLimits(Client& client, const codec::PublishPacket& p) {
  BrokerContext& ctx = client.ctx();
  const BrokerConfig& config = ctx.config();
  if (auto over = topicOverLimits(config, p.topic, p.topic)) {
    ctx.stats().limited(*over);
    if (p.qos > 0) {
      // 3.1.1 acks carry no reason: acknowledged and dropped (as a publish to
      // $SYS), since sending it again could never succeed.
      refuseAck(client, p, client.isV5() ? ReasonCode::kTopicNameInvalid : ReasonCode::kSuccess,
                *over == LimitRefusal::kMaxTopicLength ? "topic longer than --max_topic_length"
                                                       : "more topic levels than --max_topic_levels");
    }
    return true;
  }
  if (config.max_publish_rate != 0 &&
      !client.publish_bucket.take(ctx.now(), config.max_publish_rate)) {
    ctx.stats().limited(LimitRefusal::kMaxPublishRate);
    if (p.qos == 0) return true;  // dropped
    if (client.isV5()) {
      refuseAck(client, p, ReasonCode::kMessageRateTooHigh, "over --max_publish_rate");
    } else {
      // No reason code to say it: close, the client keeps the message.
      client.disconnect(ReasonCode::kMessageRateTooHigh, "over --max_publish_rate",
                        /*publish_will=*/true);
    }
    return true;
  }
  return false;
}

absl::Status refuseOverloaded(Client& client, const codec::ConnectPacket& p) {
  BrokerContext& ctx = client.ctx();
  codec::ConnackPacket ack;
  ack.reason_code = p.version == codec::ProtocolVersion::kV5
                        ? static_cast<uint8_t>(ReasonCode::kServerBusy)
                        : codec::connackReturnCodeV3(ReasonCode::kServerBusy);
  codec::encode(ack, p.version, client.connection().output());
  ctx.stats().refused(ReasonCode::kServerBusy);
  ctx.stats().rejected(ConnectionRejection::kOverload);
  // A reconnect storm must not become a log flood: one line a second per worker.
  thread_local int64_t next_log_ms = 0;
  thread_local uint64_t unlogged = 0;
  ++unlogged;
  if (ctx.now() >= next_log_ms) {
    base::logger("mqtt").warn("node overloaded (--max_memory_bytes): refused {} CONNECT(s), "
                              "the last from {}", unlogged, client.peer());
    unlogged = 0;
    next_log_ms = ctx.now() + 1000;
  }
  client.connection().closeAfterFlush();
  return absl::OkStatus();
}

uint8_t refusedFilter(Client& client, const session::Session& s, const std::string& filter,
                      std::string_view levels_of) {
  BrokerContext& ctx = client.ctx();
  const BrokerConfig& config = ctx.config();
  const bool v5 = client.isV5();
  if (auto over = topicOverLimits(config, filter, levels_of)) {
    ctx.stats().limited(*over);
    return v5 ? static_cast<uint8_t>(ReasonCode::kTopicFilterInvalid) : 0x80;
  }
  if (config.max_subscriptions_per_client != 0 &&
      s.subscriptions.size() >= config.max_subscriptions_per_client &&
      !s.subscriptions.contains(filter)) {
    ctx.stats().limited(LimitRefusal::kMaxSubscriptionsPerClient);
    return v5 ? static_cast<uint8_t>(ReasonCode::kQuotaExceeded) : 0x80;
  }
  return 0;
}

}  // namespace gannet::handlers
