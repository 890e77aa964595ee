#include "broker/session/session.h"

namespace gannet::session {

uint16_t Session::nextPacketId() {
  // §2.2.1: non-zero, not in use by another unacknowledged PUBLISH.
  for (int tries = 0; tries < 65535; ++tries) {
    last_packet_id_ = static_cast<uint16_t>(last_packet_id_ + 1);
    if (last_packet_id_ == 0) last_packet_id_ = 1;
    if (!inflight.contains(last_packet_id_)) return last_packet_id_;
  }
  return 0;
}

}  // namespace gannet::session
