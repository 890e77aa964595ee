#pragma once
// The client side of the Admin service (gannetctl): one call per command, over
// a fresh channel to --server, authenticated with the cluster secret.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/tls.h"

namespace gannet::cluster {

struct MemberStatusView {
  uint32_t node_id = 0;
  std::string cluster_address;
  std::string state;  // self, alive, suspect, dead, unreachable
  uint64_t incarnation = 0;
  int64_t last_heard_ms_ago = -1;
  uint64_t connections = 0;
  uint64_t routes = 0;
  std::string mqtt_address;
  uint64_t sessions = 0;
};

// Status of the cluster as `server` (HOST:PORT, its --cluster_listen) sees it:
// itself first, then its peers. Unavailable when nothing answers within
// `timeout_ms`; Unauthenticated for a wrong secret. With `tls`, over mutual
// TLS (the node's --cluster_tls_* files are set).
absl::StatusOr<std::vector<MemberStatusView>> fetchStatus(const std::string& server,
                                                          const std::string& secret,
                                                          int64_t timeout_ms,
                                                          const std::optional<TlsMaterial>& tls);

// Starts draining `server` (see proto/admin.proto Drain). Returns how many
// sessions it has to hand over; AlreadyExists when it was draining already.
absl::StatusOr<uint64_t> startDrain(const std::string& server, const std::string& secret,
                                    int64_t timeout_ms, const std::optional<TlsMaterial>& tls);

// What `server` did for a kick (see proto/admin.proto Kick).
struct KickReplyView {
  bool connected = false;      // the client was connected there; disconnected now
  bool session_found = false;  // that node held its session
  bool session_ended = false;  // and it ended
};

// Asks `server` to disconnect the client `client_id` if it is connected there
// (with `end_session`: and to end its session there). Unavailable when nothing
// answers; Unauthenticated for a wrong secret.
absl::StatusOr<KickReplyView> kickClient(const std::string& server, const std::string& secret,
                                         const std::string& client_id, bool end_session,
                                         int64_t timeout_ms,
                                         const std::optional<TlsMaterial>& tls);

}  // namespace gannet::cluster
