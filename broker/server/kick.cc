// gannetctl kick (proto adminpb.Kick): an operator disconnects one client by
// its client id and, if asked, ends its session. The admin API calls
// Node::kick on a gRPC thread; the work runs on the worker that holds the
// client id (posted to its loop), and the gRPC thread waits for the answer
// with a timeout. A worker thread never waits here.
//
// MQTT 5 clients get DISCONNECT 0x98 (Administrative action), as EMQX's
// kickout and Mosquitto's plugin kick send. The will is published: MQTT 5
// §3.1.2.5 / §3.14 withhold it only after the client's own DISCONNECT 0x00,
// and an administrator's disconnect is not that (Mosquitto's plugin API leaves
// the choice to its caller; we keep the spec's one rule).
#include <chrono>
#include <future>
#include <memory>

#include "absl/strings/str_cat.h"
#include "broker/handlers/client.h"
#include "broker/server/node.h"
#include "broker/server/worker.h"

namespace gannet::server {

cluster::KickOutcome Worker::kick(const std::string& client_id, bool end_session) {
  cluster::KickOutcome out;
  session::Session* s = findSession(client_id);
  // A session handed over to another node moments ago lives there now.
  if (s == nullptr || s->handed_over != 0) return out;
  out.session_found = true;
  // §3.1.2.11.2 / §3.1.3.2.2: expiry 0 ends the session with its connection,
  // and a delayed will is published at once when the session ends.
  if (end_session) s->expiry_interval = 0;
  if (s->client != nullptr) {
    out.connected = true;
    static_cast<handlers::Client*>(s->client)->disconnect(codec::ReasonCode::kAdministrativeAction,
                                                          "disconnected by an administrator",
                                                          /*publish_will=*/true);
    s = findSession(client_id);  // gone if it ended with the connection
  }
  if (s != nullptr && end_session) endSession(*s);  // an offline session
  out.session_ended = findSession(client_id) == nullptr;
  if (out.session_ended) commitWrites();  // its records are deleted before the answer
  return out;
}

absl::StatusOr<cluster::KickOutcome> Node::kick(const std::string& client_id, bool end_session,
                                                int64_t timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int64_t home = registry_.find(client_id);
  // Twice at most: the client id may move to another worker between the look-up
  // and the worker's turn (a new connection of it landing there).
  for (int attempt = 0; attempt < 2 && home >= 0; ++attempt) {
    auto done = std::make_shared<std::promise<cluster::KickOutcome>>();
    std::future<cluster::KickOutcome> answer = done->get_future();
    Worker& w = worker(static_cast<uint32_t>(home));
    w.post([&w, done, client_id, end_session] { done->set_value(w.kick(client_id, end_session)); });
    if (answer.wait_until(deadline) != std::future_status::ready) {
      return absl::UnavailableError(
          absl::StrCat("kick '", client_id, "': worker ", home, " did not answer in time"));
    }
    cluster::KickOutcome out;
    try {
      out = answer.get();
    } catch (const std::future_error&) {  // the worker stopped with the call queued
      return absl::UnavailableError(absl::StrCat("kick '", client_id, "': the node is stopping"));
    }
    if (out.session_found) return out;
    const int64_t now_home = registry_.find(client_id);
    if (now_home == home) break;
    home = now_home;
  }
  return cluster::KickOutcome{};
}

}  // namespace gannet::server
