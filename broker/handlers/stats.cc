#include "broker/handlers/stats.h"

namespace gannet::handlers {

const char* dropReasonName(DropReason r) {
  switch (r) {
    case DropReason::kQueueFull: return "queue_full";
    case DropReason::kSlowConsumer: return "slow_consumer";
    case DropReason::kExpired: return "expired";
    case DropReason::kTooLarge: return "too_large";
    case DropReason::kNoSubscribers: return "no_subscribers";
    case DropReason::kOffline: return "offline_qos0";
    case DropReason::kStoreMissing: return "store_missing";
    case DropReason::kNodeDown: return "node_down";
    case DropReason::kStoreFull: return "store_full";
    case DropReason::kNotAuthorized: return "not_authorized";
    case DropReason::kCount: break;
  }
  return "unknown";
}

const char* connectRefusalName(ConnectRefusal r) {
  switch (r) {
    case ConnectRefusal::kUnsupportedProtocolVersion: return "unsupported_protocol_version";
    case ConnectRefusal::kClientIdentifierNotValid: return "client_identifier_not_valid";
    case ConnectRefusal::kBadUsernameOrPassword: return "bad_username_or_password";
    case ConnectRefusal::kNotAuthorized: return "not_authorized";
    case ConnectRefusal::kServerUnavailable: return "server_unavailable";
    case ConnectRefusal::kServerBusy: return "server_busy";
    case ConnectRefusal::kQuotaExceeded: return "quota_exceeded";
    case ConnectRefusal::kOther: return "other";
    case ConnectRefusal::kCount: break;
  }
  return "other";
}

ConnectRefusal connectRefusalOf(codec::ReasonCode rc) {
  using codec::ReasonCode;
  switch (rc) {
    case ReasonCode::kUnsupportedProtocolVersion: return ConnectRefusal::kUnsupportedProtocolVersion;
    case ReasonCode::kClientIdentifierNotValid: return ConnectRefusal::kClientIdentifierNotValid;
    case ReasonCode::kBadUserNameOrPassword: return ConnectRefusal::kBadUsernameOrPassword;
    // 3.1.1 answers both with return code 5 "not authorized".
    case ReasonCode::kNotAuthorized:
    case ReasonCode::kBanned: return ConnectRefusal::kNotAuthorized;
    case ReasonCode::kServerUnavailable: return ConnectRefusal::kServerUnavailable;
    case ReasonCode::kServerBusy: return ConnectRefusal::kServerBusy;
    case ReasonCode::kQuotaExceeded: return ConnectRefusal::kQuotaExceeded;
    default: return ConnectRefusal::kOther;  // e.g. 0x8C bad authentication method, 0x9A
  }
}

const char* connectionRejectionName(ConnectionRejection r) {
  switch (r) {
    case ConnectionRejection::kMaxConnections: return "max_connections";
    case ConnectionRejection::kMaxConnectionsPerIp: return "max_connections_per_ip";
    case ConnectionRejection::kConnectRate: return "connect_rate";
    case ConnectionRejection::kOverload: return "overload";
    case ConnectionRejection::kConnectTimeout: return "connect_timeout";
    case ConnectionRejection::kCount: break;
  }
  return "unknown";
}

const char* limitRefusalName(LimitRefusal r) {
  switch (r) {
    case LimitRefusal::kMaxPacketSize: return "max_packet_size";
    case LimitRefusal::kMaxTopicLength: return "max_topic_length";
    case LimitRefusal::kMaxTopicLevels: return "max_topic_levels";
    case LimitRefusal::kMaxSubscriptionsPerClient: return "max_subscriptions_per_client";
    case LimitRefusal::kMaxPublishRate: return "max_publish_rate";
    case LimitRefusal::kCount: break;
  }
  return "unknown";
}

int listenerIndex(std::string_view name) {
  if (name == "mqtts") return 1;
  if (name == "ws") return 2;
  if (name == "wss") return 3;
  return 0;
}

const char* listenerName(int index) {
  switch (index) {
    case 0: return "mqtt";
    case 1: return "mqtts";
    case 2: return "ws";
    case 3: return "wss";
  }
  return "unknown";
}

const char* protocolName(int index) {
  switch (index) {
    case 0: return "3.1";
    case 1: return "3.1.1";
    case 2: return "5";
  }
  return "unknown";
}

}  // namespace gannet::handlers
