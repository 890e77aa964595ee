#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "broker/codec/encoder.h"
#include "broker/codec/errors.h"
#include "broker/handlers/acl_check.h"
#include "broker/handlers/delivery.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/limits.h"

namespace gannet::handlers {

using codec::ProtocolVersion;
using codec::ReasonCode;

// Sends a refusing CONNACK and closes (§3.2.2.2 / MQTT 5 §3.2.2.2).
absl::Status refuseConnect(Client& client, const codec::ConnectPacket& p, ReasonCode rc,
                    std::string_view why) {
  codec::ConnackPacket ack;
  ack.reason_code = p.version == ProtocolVersion::kV5 ? static_cast<uint8_t>(rc)
                                                      : codec::connackReturnCodeV3(rc);
  // The connection has no version yet: encode for the version the client spoke.
  codec::encode(ack, p.version, client.connection().output());
  client.ctx().stats().refused(rc);
  base::logger("mqtt").info("refused CONNECT of '{}' from {}: {}", p.client_id, client.peer(), why);
  client.connection().closeAfterFlush();
  return absl::OkStatus();
}

uint32_t sessionExpiry(const codec::ConnectPacket& p, const BrokerConfig& config) {
  if (p.version == ProtocolVersion::kV5) {
    return std::min(p.properties.session_expiry_interval.value_or(0), config.max_session_expiry);
  }
  // 3.1.1 §3.1.2.4: cleanSession=0 keeps the session after the connection ends.
  return p.clean_start ? 0 : std::min(session::kNeverExpires, config.max_session_expiry);
}

absl::Status handleConnect(Client& client, codec::ConnectPacket&& p) {
  if (client.state() != Client::State::kAwaitConnect) {
    // §3.1.0-2: a second CONNECT is a Protocol Error.
    return codec::protocolError("second CONNECT");
  }
  BrokerContext& ctx = client.ctx();
  const BrokerConfig& config = ctx.config();
  const bool v5 = p.version == ProtocolVersion::kV5;
  if (ctx.overloaded()) {
    // Shed new connections, keep serving the connected ones (docs/security.md,
    // "Limits"). 0x89 Server busy; 3.1.1 return code 3 Server unavailable.
    return refuseOverloaded(client, p);
  }

  // MQTT 5 enhanced authentication (§4.12), through the hook of
  // auth/enhanced_auth.h: single-round methods; none offered by default.
  std::optional<std::string> auth_reply;
  bool authenticated = false;
  if (v5 && p.properties.authentication_method) {
    const std::string& method = *p.properties.authentication_method;
    const auth::EnhancedAuth* hook = config.enhanced_auth.get();
    if (hook == nullptr || !hook->supports(method)) {
      return refuseConnect(client, p, ReasonCode::kBadAuthenticationMethod,
                           absl::StrCat("authentication method '", method, "' is not offered"));
    }
    auth::AuthStep step = hook->start(method, p.properties.authentication_data.value_or(""),
                                      p.client_id, p.username);
    if (step.kind == auth::AuthStep::Kind::kContinue) {
      return refuseConnect(client, p, ReasonCode::kBadAuthenticationMethod,
                           "multi-step enhanced authentication is not supported");
    }
    if (step.kind == auth::AuthStep::Kind::kFail) {
      return refuseConnect(client, p, static_cast<ReasonCode>(step.reason),
                           absl::StrCat("authentication method '", method, "' refused"));
    }
    if (step.username) p.username = std::move(step.username);
    auth_reply = std::move(step.data);
    authenticated = true;
  }
  if (p.will && p.will->retain && !config.retain_available) {
    return refuseConnect(client, p, ReasonCode::kRetainNotSupported, "retain is not available");
  }
  // Who it is, before anything of it is kept (docs/security.md): as Mosquitto,
  // no user name is anonymous; a user name is checked against --password_file
  // when there is one. 3.1.1 return codes: 4 bad user name or password, 5 not
  // authorised (connackReturnCodeV3).
  const std::string& listener = client.connection().listener();
  const bool cert_identity =
      config.tls_identity_as_username && (listener == "mqtts" || listener == "wss");
  if (authenticated) {
    // The enhanced method decided who this is.
  } else if (cert_identity) {
    // Mutual TLS: the handshake verified the certificate; its CN is who this is.
    std::string cn = client.connection().peerIdentity();
    if (cn.empty()) {
      return refuseConnect(client, p, ReasonCode::kNotAuthorized,
                           "the client certificate has no subject CN");
    }
    p.username = std::move(cn);
    p.password.reset();
  } else if (!p.username) {
    if (!config.allow_anonymous) {
      return refuseConnect(client, p, ReasonCode::kNotAuthorized,
                           "no user name, and --allow_anonymous is false");
    }
  } else if (const auth::PasswordFile* passwords = ctx.passwords();
             passwords != nullptr &&
             !passwords->check(*p.username, p.password.value_or(std::string()))) {
    return refuseConnect(client, p, ReasonCode::kBadUserNameOrPassword,
                         "unknown user or wrong password");
  }
  bool assigned = false;
  if (p.client_id.empty()) {
    // 3.1 requires an id; 3.1.1 §3.1.3-8 allows an empty one only with cleanSession=1.
    if (p.version == ProtocolVersion::kV31 || (p.version == ProtocolVersion::kV311 && !p.clean_start)) {
      return refuseConnect(client, p, ReasonCode::kClientIdentifierNotValid,
                    "empty client id needs a clean session");
    }
    p.client_id = ctx.assignClientId();
    assigned = true;
  }
  if (p.will) {
    // As Mosquitto 2.0: a will the client may not write refuses the CONNECT (not
    // authorised), rather than being dropped silently when the client goes.
    const auth::Acl* acl = ctx.acl();
    if (acl != nullptr &&
        !acl->canWrite(auth::AclIdentity{p.username, p.client_id}, p.will->topic)) {
      return refuseConnect(client, p, ReasonCode::kNotAuthorized,
                           "the ACL does not allow publishing to the will topic");
    }
  }

  uint32_t home = ctx.claimClientId(p.client_id);
  if (home != ctx.workerIndex()) {
    // The client id's session lives on another worker: move this connection there
    // (sessions never move between threads; connections do, once, at CONNECT).
    client.markMigrating(home);
    ctx.migrate(client, home);
    return absl::OkStatus();
  }

  // The session may live on another node of the cluster: it comes here first.
  if (ctx.claimInCluster(client, p)) return absl::OkStatus();

  session::Session* s = ctx.findSession(p.client_id);
  if (s != nullptr && s->handed_over != 0) ctx.cancelHandover(*s);
  if (s != nullptr && s->client != nullptr) {
    // §3.1.4-3 / MQTT 5 §3.1.4: take over the session; the old connection is
    // closed (MQTT 5: DISCONNECT 0x8E). Its will follows the usual rules.
    auto* old = static_cast<Client*>(s->client);
    old->disconnect(ReasonCode::kSessionTakenOver, "session taken over", /*publish_will=*/true);
    s = ctx.findSession(p.client_id);  // a session with expiry 0 ended with it
  }
  if (s != nullptr && p.clean_start) {
    if (s->will_due_ms != 0 && s->will) {
      // A delayed will of the old session is sent when that session ends.
      codec::Will will = std::move(*s->will);
      s->will.reset();
      publishWill(ctx, will, *s);
    }
    ctx.endSession(*s);
    s = nullptr;
  }
  const bool session_present = s != nullptr;
  if (!session_present && sessionExpiry(p, config) > 0 && ctx.storeFull()) {
    // A new persistent session would add durable state to a store over its limit.
    return refuseConnect(client, p, ReasonCode::kQuotaExceeded, "store over its disk limit");
  }
  if (s == nullptr) s = &ctx.createSession(p.client_id);
  // §3.1.3.2.2: reconnecting before the will delay passed cancels the old will.
  s->will_due_ms = 0;
  s->will = p.will ? std::make_unique<codec::Will>(std::move(*p.will)) : nullptr;
  s->version = p.version;
  s->username = p.username;
  // Subscriptions kept from an earlier connection: for this identity now.
  if (session_present && ctx.acl() != nullptr) refreshReadAll(ctx, *s);
  s->expiry_interval = sessionExpiry(p, config);

  codec::ConnackPacket ack;
  ack.session_present = session_present;
  client.keep_alive = p.keep_alive;
  if (v5) {
    const codec::Properties& cp = p.properties;
    client.send_window = std::min<uint16_t>(cp.receive_maximum.value_or(65535),
                                            config.max_inflight_messages);
    client.client_max_packet_size = cp.maximum_packet_size.value_or(0);
    client.client_topic_alias_max = cp.topic_alias_maximum.value_or(0);
    client.request_problem_information = cp.request_problem_information.value_or(1) != 0;
    codec::Properties& ap = ack.properties;
    ap.receive_maximum = config.receive_maximum;
    ap.maximum_packet_size = config.max_packet_size;
    ap.topic_alias_maximum = config.topic_alias_maximum;
    if (!config.retain_available) ap.retain_available = 0;
    if (auth_reply) {
      // §3.2.2.3.17-18: the method, and the server's data when there is some.
      ap.authentication_method = p.properties.authentication_method;
      if (!auth_reply->empty()) ap.authentication_data = std::move(*auth_reply);
    }
    if (assigned) ap.assigned_client_identifier = p.client_id;
    if (cp.session_expiry_interval && *cp.session_expiry_interval > config.max_session_expiry) {
      ap.session_expiry_interval = config.max_session_expiry;
    }
    if (p.keep_alive > config.max_keepalive || (p.keep_alive == 0 && config.max_keepalive < 65535)) {
      // §3.2.2.3.14: the client MUST use the Server Keep Alive.
      client.keep_alive = config.max_keepalive;
      ap.server_keep_alive = config.max_keepalive;
    }
  } else {
    client.send_window = config.max_inflight_messages;
  }
  if (v5 && client.client_max_packet_size != 0) {
    std::string probe;
    codec::encode(ack, p.version, probe);
    if (probe.size() > client.client_max_packet_size) {
      // MQTT 5 §3.1.2.11.4: we may not send a packet over the client's maximum,
      // and the CONNACK does not fit: nothing can be said, close.
      if (!session_present) ctx.endSession(*s);
      client.connection().closeNow("CONNACK larger than the client's Maximum Packet Size");
      return absl::OkStatus();
    }
  }
  client.attach(*s, p.version);
  // Before the CONNACK: the worker commits it ahead of this iteration's output.
  ctx.persistSession(*s);
  client.send(ack);
  base::logger("mqtt").debug("client '{}' connected from {} (v{}, session present {})",
                             p.client_id, client.peer(), static_cast<int>(p.version),
                             session_present);
  if (session_present) resendInflight(client);
  return absl::OkStatus();
}

}  // namespace gannet::handlers
