#include "broker/codec/errors.h"
#include "broker/handlers/delivery.h"
#include "broker/handlers/handlers.h"

namespace gannet::handlers {

using codec::PacketType;
using codec::ReasonCode;

namespace {

// The sender side of QoS 1 and 2 (§4.3.2, §4.3.3): PUBACK / PUBREC / PUBCOMP.
// An ack of the wrong kind for the message's QoS (PUBREC or PUBCOMP for QoS 1,
// PUBACK for QoS 2, PUBCOMP before PUBREC) is a Protocol Error.
absl::Status onOutboundAck(Client& client, session::Session& s, const codec::PubAckPacket& p) {
  const bool failed = static_cast<uint8_t>(p.reason_code) >= 0x80;
  auto it = s.inflight.find(p.packet_id);
  if (it == s.inflight.end()) {
    if (p.type == PacketType::kPubrec && !failed) {
      // §4.3.3: a PUBREC is answered with PUBREL even for an id we no longer
      // hold (e.g. a PUBREC resent after its PUBREL was lost); as Mosquitto does,
      // with Success, so the client can release the id.
      client.send(codec::PubAckPacket{PacketType::kPubrel, p.packet_id, ReasonCode::kSuccess, {}});
    }
    return absl::OkStatus();  // a late or duplicate ack: nothing to do
  }
  session::InflightMessage& in = it->second;
  if (in.resend_pending) {  // acknowledged before we got to resend it
    in.resend_pending = false;
    --s.resend_pending;
  }
  switch (p.type) {
    case PacketType::kPuback:
      if (in.out.qos != 1) return codec::protocolError("PUBACK for a QoS 2 message");
      client.ctx().forgetInflight(s, p.packet_id, in);
      s.inflight.erase(it);
      break;
    case PacketType::kPubrec:
      if (in.out.qos != 2) return codec::protocolError("PUBREC for a QoS 1 message");
      if (in.pubrec_received) {
        client.send(codec::PubAckPacket{PacketType::kPubrel, p.packet_id, ReasonCode::kSuccess, {}});
        return absl::OkStatus();
      }
      if (failed) {
        // MQTT 5: the receiver refused it; the flow ends here.
        client.ctx().forgetInflight(s, p.packet_id, in);
        s.inflight.erase(it);
        break;
      }
      in.pubrec_received = true;
      client.ctx().persistInflight(s, p.packet_id, in);
      in.out.message.reset();  // only the packet id matters from now on
      client.send(codec::PubAckPacket{PacketType::kPubrel, p.packet_id, ReasonCode::kSuccess, {}});
      return absl::OkStatus();
    case PacketType::kPubcomp:
      if (in.out.qos != 2) return codec::protocolError("PUBCOMP for a QoS 1 message");
      if (!in.pubrec_received) return codec::protocolError("PUBCOMP before PUBREC");
      client.ctx().forgetInflight(s, p.packet_id, in);
      s.inflight.erase(it);
      break;
    default:
      return absl::OkStatus();
  }
  pumpQueue(client);
  return absl::OkStatus();
}

}  // namespace

absl::Status handlePubAck(Client& client, codec::PubAckPacket&& p) {
  session::Session& s = *client.session();
  if (p.type == PacketType::kPubrel) {
    // The receiver side of QoS 2: release the packet id, complete the flow.
    // An unknown id is answered with Success too (as Mosquitto does): the PUBREL
    // of a flow whose PUBCOMP was lost is resent after a reconnect (§4.4).
    if (s.awaiting_pubrel.erase(p.packet_id) > 0) client.ctx().forgetAwaitingPubrel(s, p.packet_id);
    client.send(codec::PubAckPacket{PacketType::kPubcomp, p.packet_id, ReasonCode::kSuccess, {}});
    return absl::OkStatus();
  }
  return onOutboundAck(client, s, p);
}

}  // namespace gannet::handlers
