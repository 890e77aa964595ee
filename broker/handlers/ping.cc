#include "broker/handlers/handlers.h"

namespace gannet::handlers {

// §3.12.4: the server MUST send a PINGRESP in response to a PINGREQ.
absl::Status handlePingreq(Client& client) {
  client.send(codec::PingrespPacket{});
  return absl::OkStatus();
}

}  // namespace gannet::handlers
