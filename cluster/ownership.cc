#include "cluster/ownership.h"

#include <algorithm>

namespace gannet::cluster {

void OwnershipAcceptor::load(std::vector<std::pair<std::string, OwnerRecord>> records) {
  std::lock_guard lock(mu_);
  for (auto& [key, r] : records) registers_[std::move(key)] = r;
}

std::vector<OwnershipAcceptor::Promise> OwnershipAcceptor::prepare(
    uint64_t ballot, const std::vector<std::string>& keys) {
  std::vector<Promise> out(keys.size());
  std::vector<std::pair<std::string, OwnerRecord>> changed;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < keys.size(); ++i) {
      OwnerRecord& r = registers_[keys[i]];
      Promise& p = out[i];
      if (ballot > r.promised) {
        r.promised = ballot;
        changed.emplace_back(keys[i], r);
        p.ok = true;
      }
      p.accepted = r.accepted;
      p.owner = r.owner;
      p.promised = r.promised;
    }
  }
  if (!changed.empty() && rules_.persist) rules_.persist(changed);
  return out;
}

std::vector<bool> OwnershipAcceptor::accept(uint64_t ballot, const std::vector<std::string>& keys,
                                            const std::vector<uint32_t>& owners,
                                            const std::vector<uint32_t>& released) {
  std::vector<bool> out(keys.size(), false);
  std::vector<std::pair<std::string, OwnerRecord>> changed;
  auto was_released = [&](uint32_t node) {
    return std::find(released.begin(), released.end(), node) != released.end();
  };
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < keys.size() && i < owners.size(); ++i) {
      OwnerRecord& r = registers_[keys[i]];
      if (ballot < r.promised) continue;
      const uint32_t current = r.owner;
      const uint32_t next = owners[i];
      if (current != 0 && current != next && !was_released(current)) {
        // The lease: not away from a node that may still serve the session.
        if (current == rules_.self) continue;
        if (rules_.heard_recently && rules_.heard_recently(current)) continue;
      }
      r.promised = ballot;
      r.accepted = ballot;
      r.owner = next;
      changed.emplace_back(keys[i], r);
      out[i] = true;
    }
  }
  if (!changed.empty() && rules_.persist) rules_.persist(changed);
  return out;
}

uint32_t OwnershipAcceptor::acceptedOwner(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = registers_.find(key);
  return it == registers_.end() ? 0 : it->second.owner;
}

size_t OwnershipAcceptor::size() {
  std::lock_guard lock(mu_);
  return registers_.size();
}

}  // namespace gannet::cluster
