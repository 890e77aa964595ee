#include "broker/codec/errors.h"
#include "broker/handlers/delivery.h"
#include "broker/handlers/handlers.h"

namespace gannet::handlers {

using codec::PacketType;
using codec::ReasonCode;

namespace {

// The sender side of QoS 1 and 2 (§4.3.2, §4.3.3): PUBACK / PUBREC / PUBCOMP.
void onOutboundAck(Client& client, session::Session& s, const codec::PubAckPacket& p) {
  auto it = s.inflight.find(p.packet_id);
  if (it == s.inflight.end()) {
    if (p.type == PacketType::kPubrec) {
      // MQTT 5 §4.3.3: answer an unknown PUBREC with PUBREL 0x92.
      client.send(codec::PubAckPacket{PacketType::kPubrel, p.packet_id,
                                      ReasonCode::kPacketIdentifierNotFound, {}});
    }
    return;  // a late or duplicate ack: nothing to do
  }
  session::InflightMessage& in = it->second;
  switch (p.type) {
    case PacketType::kPuback:
      if (in.out.qos != 1) return;
      s.inflight.erase(it);
      break;
    case PacketType::kPubrec:
      if (in.out.qos != 2 || in.pubrec_received) {
        if (in.pubrec_received) {
          client.send(codec::PubAckPacket{PacketType::kPubrel, p.packet_id,
                                          ReasonCode::kSuccess, {}});
        }
        return;
      }
      if (static_cast<uint8_t>(p.reason_code) >= 0x80) {
        s.inflight.erase(it);  // MQTT 5: the receiver refused it; the flow ends here
        break;
      }
      in.pubrec_received = true;
      in.out.message.reset();  // only the packet id matters from now on
      client.send(codec::PubAckPacket{PacketType::kPubrel, p.packet_id, ReasonCode::kSuccess, {}});
      return;
    case PacketType::kPubcomp:
      if (!in.pubrec_received) return;
      s.inflight.erase(it);
      break;
    default:
      return;
  }
  pumpQueue(client);
}

}  // namespace

absl::Status handlePubAck(Client& client, codec::PubAckPacket&& p) {
  session::Session& s = *client.session();
  if (p.type == PacketType::kPubrel) {
    // The receiver side of QoS 2: release the packet id, complete the flow.
    bool known = s.awaiting_pubrel.erase(p.packet_id) > 0;
    client.send(codec::PubAckPacket{PacketType::kPubcomp, p.packet_id,
                                    known ? ReasonCode::kSuccess
                                          : ReasonCode::kPacketIdentifierNotFound,
                                    {}});
    return absl::OkStatus();
  }
  onOutboundAck(client, s, p);
  return absl::OkStatus();
}

}  // namespace gannet::handlers
