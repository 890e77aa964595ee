#pragma once
// Membership: what this node knows of each peer named in --peers — alive,
// suspect or dead by the time since it last heard from it, its incarnation
// (which changes when it restarts), and what it says of itself.
//
// Thread-safe: the gRPC threads report what they hear, the monitor thread
// evaluates the states, the admin service reads snapshots.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace gannet::cluster {

struct PeerAddress {
  uint32_t id = 0;
  std::string address;  // HOST:PORT, resolved again on every connection attempt
};

// "2@host2:7946,3@host3:7946" → peers. Errors name the bad entry; an entry with
// `self_id` or a repeated id is an error.
absl::StatusOr<std::vector<PeerAddress>> parsePeers(std::string_view spec, uint32_t self_id);

struct MembershipTimeouts {
  int64_t heartbeat_ms = 500;  // how often each link sends a heartbeat
  int64_t suspect_ms = 2000;   // nothing heard for this long: suspect
  int64_t dead_ms = 10000;     // nothing heard for this long: dead
};

enum class MemberState : uint8_t {
  kUnreachable,  // never heard from since this node started
  kAlive,
  kSuspect,
  kDead,
};
std::string_view memberStateName(MemberState state);

// What a peer says of itself in its heartbeats.
// A replica of node `owner`'s sessions (proto ReplicaState).
struct ReplicaState {
  uint32_t owner = 0;
  uint64_t epoch = 0;
  bool promoted = false;
  bool operator==(const ReplicaState&) const = default;
};

struct PeerReport {
  uint64_t incarnation = 0;
  uint64_t connections = 0;
  uint64_t routes = 0;
  std::string mqtt_address;
  bool draining = false;
  uint64_t sessions = 0;
  std::vector<ReplicaState> replicas;
};

struct MemberView {
  PeerAddress peer;
  MemberState state = MemberState::kUnreachable;
  int64_t last_heard_ms = 0;  // monotonic; 0 = never
  PeerReport report;
};

struct Transition {
  uint32_t id;
  MemberState from;
  MemberState to;
  uint64_t incarnation;
  bool restarted;  // heard with a new incarnation (it restarted since)
};

class Membership {
 public:
  Membership(std::vector<PeerAddress> peers, MembershipTimeouts timeouts);

  bool isPeer(uint32_t id) const;
  const std::vector<PeerAddress>& peers() const { return peers_; }
  const MembershipTimeouts& timeouts() const { return timeouts_; }

  // Something came from peer `id` (handshake or heartbeat) at `now_ms`. The
  // route count is taken only with `routes` (from the stream that also carries
  // the peer's route updates, so the count never runs ahead of them).
  void heard(uint32_t id, const PeerReport& report, int64_t now_ms, bool routes = true);
  // The peer's incarnation only (handshake).
  void heardIncarnation(uint32_t id, uint64_t incarnation, int64_t now_ms);

  // Re-evaluates every state at `now_ms`; returns what changed since the last call.
  std::vector<Transition> tick(int64_t now_ms);
  std::vector<MemberView> snapshot() const;

 private:
  struct Member {
    MemberView view;
    bool restarted = false;  // incarnation changed since the last tick
  };
  Member* find(uint32_t id);
  MemberState stateAt(const Member& m, int64_t now_ms) const;

  const std::vector<PeerAddress> peers_;
  const MembershipTimeouts timeouts_;
  mutable std::mutex mu_;
  std::vector<Member> members_;  // in --peers order
};

}  // namespace gannet::cluster
