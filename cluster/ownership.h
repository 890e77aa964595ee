#pragma once
// Ownership of client ids by consensus (docs/architecture.md, "Ownership by
// consensus"). Every client id is a register holding its owner node, decided by
// single-decree Paxos rounds per register (as in CASPaxos): a proposer asks
// every node for a promise on a ballot, takes the value accepted with the
// highest ballot from a majority, computes the new value and has a majority
// accept it. Several registers travel in one message. The ballot that wrote an
// owner is its fencing epoch.
//
// Acceptors add one rule (a lease): ownership does not move away from a node
// the acceptor heard from within the dead timeout (or from the acceptor itself)
// unless that node answered the proposer's claim (it handed the session over,
// or had none). A node serves persistent sessions only while it hears from a
// majority within the suspect timeout, shorter than the dead timeout: so a
// node on the minority side of a partition stops serving before the majority
// may move its sessions.
//
// OwnershipAcceptor: thread-safe; its state is persisted through a callback
// before any answer leaves. OwnershipRound: one proposer round's bookkeeping.

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace gannet::cluster {

// One register's acceptor state (persisted).
struct OwnerRecord {
  uint64_t promised = 0;
  uint64_t accepted = 0;  // the ballot that wrote `owner` (0: never written)
  uint32_t owner = 0;     // 0: none
};

class OwnershipAcceptor {
 public:
  struct Rules {
    uint32_t self = 0;
    // This node heard from `node` within the dead timeout.
    std::function<bool(uint32_t node)> heard_recently;
    // Writes changed registers durably (before the answer is sent).
    std::function<void(const std::vector<std::pair<std::string, OwnerRecord>>&)> persist;
  };
  explicit OwnershipAcceptor(Rules rules) : rules_(std::move(rules)) {}

  // At startup, before any round.
  void load(std::vector<std::pair<std::string, OwnerRecord>> records);

  struct Promise {
    bool ok = false;
    uint64_t accepted = 0;
    uint32_t owner = 0;
    uint64_t promised = 0;
  };
  std::vector<Promise> prepare(uint64_t ballot, const std::vector<std::string>& keys);
  std::vector<bool> accept(uint64_t ballot, const std::vector<std::string>& keys,
                           const std::vector<uint32_t>& owners,
                           const std::vector<uint32_t>& released);
  // The owner this node last accepted for `key` (0: none): a hint, not a decision.
  uint32_t acceptedOwner(const std::string& key);
  size_t size();

 private:
  const Rules rules_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, OwnerRecord> registers_;
};

// What a proposer wants for each register of a round.
enum class OwnershipOp : uint8_t {
  kClaim,  // this node becomes the owner
  kTake,   // this node becomes the owner if the owner is `from` (a dead node's sessions)
  kRead,   // the owner stays (a read that also settles an unfinished write)
};

// The outcome per register.
struct OwnershipResult {
  bool decided = false;  // a majority accepted the value below
  uint32_t owner = 0;    // the owner decided (this node when it won)
  uint64_t epoch = 0;    // the ballot that decided it
};

}  // namespace gannet::cluster
