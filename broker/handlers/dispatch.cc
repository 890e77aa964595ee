#include "broker/codec/errors.h"
#include "broker/handlers/handlers.h"

namespace gannet::handlers {

namespace {
template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;
}  // namespace

// The only switch over packet types. Packets a client must never send (CONNACK,
// SUBACK, UNSUBACK, PINGRESP) are protocol errors (§4.8 of 3.1.1, §4.13 of 5.0).
absl::Status dispatch(Client& client, codec::Packet&& packet) {
  if (client.state() != Client::State::kConnected &&
      !std::holds_alternative<codec::ConnectPacket>(packet)) {
    return codec::protocolError("packet before CONNECT");
  }
  return std::visit(
      Overloaded{
          [&](codec::ConnectPacket& p) { return handleConnect(client, std::move(p)); },
          [&](codec::PublishPacket& p) { return handlePublish(client, std::move(p)); },
          [&](codec::PubAckPacket& p) { return handlePubAck(client, std::move(p)); },
          [&](codec::SubscribePacket& p) { return handleSubscribe(client, std::move(p)); },
          [&](codec::UnsubscribePacket& p) { return handleUnsubscribe(client, std::move(p)); },
          [&](codec::PingreqPacket&) { return handlePingreq(client); },
          [&](codec::DisconnectPacket& p) { return handleDisconnect(client, std::move(p)); },
          [&](codec::AuthPacket& p) { return handleAuth(client, std::move(p)); },
          [&](auto&) { return codec::protocolError("packet type not allowed from a client"); },
      },
      packet);
}

}  // namespace gannet::handlers
