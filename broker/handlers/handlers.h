#pragma once
// The packet handlers: one file per packet type, dispatch.cc holds the only switch.
// Each checks the protocol rules for its packet and acts through the Client, its
// Session and the BrokerContext. A failed Status closes the connection with the
// reason code it carries (codec/errors.h).

#include "absl/status/status.h"
#include "broker/codec/packets.h"
#include "broker/handlers/client.h"

namespace gannet::handlers {

absl::Status dispatch(Client& client, codec::Packet&& packet);

absl::Status handleConnect(Client& client, codec::ConnectPacket&& packet);
// Sends a refusing CONNACK for `packet` (MQTT 5 reason `rc`; 3.1.1 its return
// code) and closes; logs `why`.
absl::Status refuseConnect(Client& client, const codec::ConnectPacket& packet,
                           codec::ReasonCode rc, std::string_view why);
// The session expiry interval a CONNECT asks for, within the configured maximum
// (3.1.1: cleanSession=0 never expires). 0: the session ends with the connection.
uint32_t sessionExpiry(const codec::ConnectPacket& packet, const BrokerConfig& config);
absl::Status handlePublish(Client& client, codec::PublishPacket&& packet);
// PUBACK, PUBREC, PUBREL and PUBCOMP.
absl::Status handlePubAck(Client& client, codec::PubAckPacket&& packet);
absl::Status handleSubscribe(Client& client, codec::SubscribePacket&& packet);
absl::Status handleUnsubscribe(Client& client, codec::UnsubscribePacket&& packet);
absl::Status handlePingreq(Client& client);
absl::Status handleDisconnect(Client& client, codec::DisconnectPacket&& packet);
absl::Status handleAuth(Client& client, codec::AuthPacket&& packet);

}  // namespace gannet::handlers
