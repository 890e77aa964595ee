#include "broker/codec/errors.h"
#include "broker/handlers/handlers.h"

namespace gannet::handlers {

// Enhanced authentication (MQTT 5 §4.12) is not offered: a CONNECT with an
// Authentication Method is refused with 0x8C, so an AUTH packet afterwards is a
// Protocol Error (§3.15.2.2).
absl::Status handleAuth(Client& client, codec::AuthPacket&&) {
  return codec::protocolError("AUTH without an authentication method");
}

}  // namespace gannet::handlers
