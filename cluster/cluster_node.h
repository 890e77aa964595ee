#pragma once
// ClusterNode: this node's membership in a cluster over gRPC (docs/architecture.md,
// "Cluster"). It serves the Cluster and Admin services on --cluster_listen, dials
// every peer in --peers (one long-lived Link stream each, re-dialled with backoff
// and re-resolved on every attempt), authenticates both directions with the
// shared secret, exchanges heartbeats, and keeps each peer alive / suspect / dead.
//
// Knows nothing of MQTT: what it reports of this node comes from a ClusterHost.
//
// Threads: gRPC's server threads (one per inbound stream), one dialer thread and
// one reader thread per peer, one monitor thread. start() and stop() from the
// owner's thread; stop() joins everything. The host is called from these threads.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster/membership.h"

namespace grpc {
class Server;
class ClientContext;
}  // namespace grpc

namespace gannet::clusterpb {
class Heartbeat;
}  // namespace gannet::clusterpb

namespace gannet::cluster {

// What the node running the cluster layer tells it about itself. Thread-safe.
class ClusterHost {
 public:
  virtual ~ClusterHost() = default;
  virtual uint64_t connections() = 0;  // MQTT connections on this node
  virtual uint64_t routes() = 0;       // subscriptions on this node
};

struct ClusterOptions {
  uint32_t node_id = 1;
  std::string listen;  // HOST:PORT for the Cluster and Admin services (port 0: any)
  std::vector<PeerAddress> peers;
  std::string secret;  // shared by every node; never sent
  MembershipTimeouts timeouts;
  std::string mqtt_address;  // reported to peers and gannetctl
};

class ClusterNode {
 public:
  ClusterNode(ClusterOptions options, ClusterHost& host);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // Binds the listener and starts dialling the peers. Returns the bound port.
  absl::StatusOr<uint16_t> start();
  void stop();

  uint64_t incarnation() const { return incarnation_; }
  Membership& membership() { return membership_; }

 private:
  class LinkService;
  class AdminService;
  struct Dialer {
    PeerAddress peer;
    std::thread thread;
    std::mutex mu;
    grpc::ClientContext* context = nullptr;  // the current attempt, for cancel
    int64_t attempt_started_ms = 0;          // 0 once the handshake is done
    std::string last_error;                  // logged once per change
  };

  void dial(Dialer& d);
  // What this node says of itself on every link.
  clusterpb::Heartbeat heartbeat();
  void monitor();
  // Cancels the current attempt of `d` (under d.mu).
  void cancel(Dialer& d);

  const ClusterOptions options_;
  ClusterHost& host_;
  const uint64_t incarnation_;
  Membership membership_;
  std::unique_ptr<LinkService> link_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<Dialer>> dialers_;
  std::thread monitor_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::atomic<bool> stopping_{false};
};

}  // namespace gannet::cluster
