// The connection limits and overload protection of a node, as the workers and
// worker 0's tick apply them (docs/security.md, "Limits"; server::Admission).

#include "base/logging.h"
#include "broker/server/admission.h"
#include "broker/server/node.h"
#include "broker/server/worker.h"

namespace gannet::server {

bool Worker::admitAccepted(int fd) {
  Admission& admission = node_.admission();
  if (!admission.enabled()) return true;
  const Admission::Address address = Admission::peerAddress(fd);
  const Admission::Verdict v = admission.admit(fd, address, loop_.now());
  if (v == Admission::Verdict::kAdmitted) return true;
  stats_.rejected(Admission::rejectionOf(v));
  admission.turnAway(fd, v, address, loop_.now());
  return false;
}

void Worker::noteMigratingSlot(handlers::Client& client) {
  Admission& admission = node_.admission();
  if (!admission.enabled()) return;
  const int fd = client.connection().fd();
  migrating_slots_.push_back({&client, fd, admission.slotOf(fd)});
}

void Worker::releaseClosedMigrating() {
  for (const MigratingSlot& m : migrating_slots_) {
    // Closed while migrating, which skips clientClosed(): its slot goes now,
    // unless its fd number was handed to a newer connection meanwhile.
    if (m.client->connection().closed()) node_.admission().releaseIf(m.fd, m.slot);
  }
  migrating_slots_.clear();
}

bool Worker::overloaded() const { return node_.admission().overloaded(); }

void Node::tickLimits(int64_t now_ms) {
  if (now_ms < next_limits_tick_ms_) return;
  next_limits_tick_ms_ = now_ms + 1000;
  if (options_.broker.max_memory_bytes != 0) {
    admission_.updateMemory(Admission::residentBytes());
  }
  admission_.sweep(now_ms);
}

}  // namespace gannet::server
