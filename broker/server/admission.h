#pragma once
// Admission control at accept (docs/security.md, "Limits"): turns a new
// connection away before anything is read from it when this node holds
// --max_connections, when its source address holds --max_connections_per_ip,
// or when that address opens connections faster than --max_connect_rate_per_ip
// (token bucket, burst = rate). Also the node's overload state
// (--max_memory_bytes: resident memory sampled about once a second).
//
// Owned by the Node, shared by every worker: all methods are thread-safe. The
// per-address state is split into shards, each with its own lock, so that
// workers accepting at once rarely meet; with no limit set, workers never call
// in (enabled() is false) and nothing is tracked.
//
// An admitted connection holds a slot keyed by its fd until release(fd). A
// connection migrating to another worker keeps its fd, hence its slot: it is
// counted once and released once, by the worker that closes it. The owner
// releases before the fd is closed (Worker::clientClosed runs before close(2)),
// so a slot can never be released for a newer socket that reuses the number;
// a slot that was not released (a socket closed while migrating) is stale when
// accept(2) hands out its number again, and admit() releases it first.

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "base/token_bucket.h"
#include "broker/handlers/config.h"
#include "broker/handlers/stats.h"

namespace gannet::server {

class Admission {
 public:
  struct Limits {
    uint32_t max_connections = 0;          // 0: no limit
    uint32_t max_connections_per_ip = 0;   // 0: no limit
    uint32_t max_connect_rate_per_ip = 0;  // per second; 0: no limit
    uint64_t max_memory_bytes = 0;         // 0: never overloaded
  };
  enum class Verdict : uint8_t { kAdmitted, kMaxConnections, kMaxConnectionsPerIp, kConnectRate };
  // A source address: IPv6, or IPv4 mapped into IPv6 (::ffff:a.b.c.d).
  using Address = std::array<uint8_t, 16>;

  explicit Admission(Limits limits);
  explicit Admission(const handlers::BrokerConfig& c)
      : Admission(Limits{c.max_connections, c.max_connections_per_ip, c.max_connect_rate_per_ip,
                         c.max_memory_bytes}) {}
  ~Admission();

  // Whether any connection limit is set; if not, admit() / release() are not
  // called at all.
  bool enabled() const { return enabled_; }
  const Limits& limits() const { return limits_; }

  // The address of a socket's peer (its IPv4 mapped); zeros when unknown.
  static Address addressOf(const sockaddr_storage& ss);
  static Address peerAddress(int fd);
  static std::string addressText(const Address& a);

  // Admits the accepted socket `fd` from `address` at `now_ms` (monotonic), or
  // says which limit turns it away (nothing is held then: close the socket).
  Verdict admit(int fd, const Address& address, int64_t now_ms);
  // The socket `fd` closes (or failed to start): its slot is freed. No-op for
  // a socket without one (not admitted, or released already).
  void release(int fd);
  // The slot id of `fd` (0: none), for releaseIf().
  uint64_t slotOf(int fd) const;
  // Releases `fd`'s slot only if it is still slot `slot` (not taken since by a
  // newer socket with the same number).
  void releaseIf(int fd, uint64_t slot);

  // Admitted connections open now (0 when !enabled()).
  uint64_t connections() const { return connections_.load(std::memory_order_relaxed); }
  // Source addresses tracked now (with connections, or a bucket refilling).
  size_t trackedAddresses() const;
  // Forgets addresses without connections whose bucket is full again, so an
  // address that came once costs nothing later. About once a second.
  void sweep(int64_t now_ms);

  // Overload: `rss_bytes` (resident memory now) against --max_memory_bytes.
  // Overloaded above it, until it is back under 90% of it (hysteresis: no
  // flapping at the threshold). Returns overloaded().
  bool updateMemory(uint64_t rss_bytes);
  bool overloaded() const { return overloaded_.load(std::memory_order_relaxed); }
  // Resident memory of this process, from /proc/self/statm.
  static uint64_t residentBytes();

  // The metric label of a verdict that turned a connection away.
  static handlers::ConnectionRejection rejectionOf(Verdict v);
  // Closes `fd`, turned away by `v`, at once: a reset, not a FIN, so that a
  // flood leaves no TIME_WAIT sockets behind. Logs at most once a second per
  // verdict (with the count since), never a line per connection.
  void turnAway(int fd, Verdict v, const Address& address, int64_t now_ms);

  // Log throttling for turned-away connections: true at most once a second per
  // verdict, with how many were turned away since the last line in `*count`.
  bool shouldLog(Verdict v, int64_t now_ms, uint64_t* count);

 private:
  struct PerAddress {
    uint32_t connections = 0;
    base::TokenBucket bucket;
  };
  struct AddressHash {
    size_t operator()(const Address& a) const;
  };
  struct Slot {
    Address address;
    uint64_t id;
  };
  static constexpr size_t kShards = 64;
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<Address, PerAddress, AddressHash> addresses;
    absl::flat_hash_map<int, Slot> slots;  // by fd (fd % kShards == shard)
  };
  Shard& addressShard(const Address& a) const;
  Shard& slotShard(int fd) const { return shards_[static_cast<size_t>(fd) % kShards]; }
  void releaseAddress(const Address& a);

  const Limits limits_;
  const bool enabled_;
  const bool per_address_;  // per-address state is kept
  std::unique_ptr<Shard[]> shards_;
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> next_slot_{1};
  std::atomic<bool> overloaded_{false};
  struct LogState {
    std::atomic<int64_t> next_ms{0};
    std::atomic<uint64_t> count{0};
  };
  LogState log_[4];
};

}  // namespace gannet::server
