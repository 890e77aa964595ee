#pragma once
// Which worker is home to each client id's session. Consulted only at CONNECT and
// session end, never per message. Thread-safe (one mutex).

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace gannet::server {

class SessionRegistry {
 public:
  // Makes `worker` the home of `client_id` unless one exists; returns the home.
  uint32_t claim(const std::string& client_id, uint32_t worker) {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = homes_.try_emplace(client_id, worker);
    return it->second;
  }
  // Forgets `client_id` if `worker` is still its home.
  void release(const std::string& client_id, uint32_t worker) {
    absl::MutexLock lock(&mu_);
    auto it = homes_.find(client_id);
    if (it != homes_.end() && it->second == worker) homes_.erase(it);
  }
  // The home of `client_id`, or -1 when it has none.
  int64_t find(const std::string& client_id) const {
    absl::MutexLock lock(&mu_);
    auto it = homes_.find(client_id);
    return it == homes_.end() ? -1 : int64_t{it->second};
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return homes_.size();
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, uint32_t> homes_;
};

}  // namespace gannet::server
