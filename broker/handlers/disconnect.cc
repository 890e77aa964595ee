#include "broker/codec/errors.h"
#include "broker/handlers/handlers.h"

namespace gannet::handlers {

absl::Status handleDisconnect(Client& client, codec::DisconnectPacket&& packet) {
  session::Session* s = client.session();
  if (client.isV5() && s != nullptr && packet.properties.session_expiry_interval) {
    // §3.14.2.2.2: a non-zero expiry after a zero one in CONNECT is a Protocol Error.
    uint32_t want = *packet.properties.session_expiry_interval;
    if (s->expiry_interval == 0 && want != 0) {
      return codec::protocolError("session expiry set on DISCONNECT after 0 in CONNECT");
    }
    s->expiry_interval = std::min(want, client.ctx().config().max_session_expiry);
  }
  // §3.14.4: DISCONNECT with 0x00 discards the will; any other reason (0x04
  // "with will", or an error the client reports) leaves it to be published.
  client.normal_disconnect = packet.reason_code == codec::ReasonCode::kSuccess;
  // The close writes this connection's output at once: commit what it acknowledges first.
  client.ctx().commitDurable();
  client.connection().closeAfterFlush();
  return absl::OkStatus();
}

}  // namespace gannet::handlers
