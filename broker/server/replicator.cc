#include "broker/server/replicator.h"

#include <algorithm>

#include "base/clock.h"
#include "base/logging.h"
#include "cluster/cluster_node.h"

namespace gannet::server {

namespace {
spdlog::logger& log() { return base::logger("cluster"); }
}  // namespace

Replicator::Replicator(uint32_t node_id, uint32_t factor, std::vector<uint32_t> peers,
                       Callbacks callbacks)
    : node_id_(node_id), factor_(factor), callbacks_(std::move(callbacks)) {
  // Ring order: the peers with higher ids first (ascending), then the lower ones.
  std::sort(peers.begin(), peers.end(), [&](uint32_t a, uint32_t b) {
    return std::pair(a < node_id_, a) < std::pair(b < node_id_, b);
  });
  ring_ = std::move(peers);
}

uint64_t Replicator::epoch() const {
  std::lock_guard lock(mu_);
  return epoch_;
}

std::vector<uint32_t> Replicator::targets() const {
  std::lock_guard lock(mu_);
  return targets_;
}

uint64_t Replicator::epochChanges() const {
  std::lock_guard lock(mu_);
  return epoch_changes_;
}

std::vector<uint32_t> Replicator::chooseLocked(uint32_t lost) const {
  std::vector<uint32_t> usable;
  for (const auto& [id, address] : cluster_->takeoverPeers()) {
    if (id != lost) usable.push_back(id);
  }
  auto ok = [&](uint32_t id) { return std::find(usable.begin(), usable.end(), id) != usable.end(); };
  std::vector<uint32_t> next;
  const size_t want = factor_ - 1;
  // The current ones stay while usable (a change costs every worker a snapshot).
  for (uint32_t id : targets_) {
    if (ok(id) && next.size() < want) next.push_back(id);
  }
  for (uint32_t id : ring_) {
    if (next.size() >= want) break;
    if (ok(id) && std::find(next.begin(), next.end(), id) == next.end()) next.push_back(id);
  }
  return next;
}

void Replicator::reconsider() { onLinkChanged(0, true); }

void Replicator::setHeld(bool held) {
  {
    std::lock_guard lock(mu_);
    held_ = held;
  }
  if (!held) reconsider();
}

bool Replicator::held() const {
  std::lock_guard lock(mu_);
  return held_;
}

void Replicator::onLinkChanged(uint32_t node, bool up) {
  if (cluster_ == nullptr || factor_ < 2) return;
  {
    std::lock_guard lock(mu_);
    if (held_) return;
    const bool target = std::find(targets_.begin(), targets_.end(), node) != targets_.end();
    // A replica node's link lost: batches written on it may be gone with it.
    const uint32_t lost = !up && target ? node : 0;
    std::vector<uint32_t> next = chooseLocked(lost);
    std::vector<uint32_t> a = next, b = targets_;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a == b && lost == 0) return;
    targets_ = std::move(next);
    pending_.clear();
    next_sequence_.clear();
    ++epoch_changes_;
    if (targets_.empty()) {
      epoch_ = 0;
      log().warn("no node to replicate persistent sessions to: they are on this node only");
    } else {
      epoch_ = (cluster_->incarnation() << 20) | (++epoch_counter_ & 0xFFFFF);
      if (callbacks_.persist_epoch) callbacks_.persist_epoch(epoch_);
      std::string names;
      for (uint32_t id : targets_) names += (names.empty() ? "" : ", ") + std::to_string(id);
      log().info("replicating persistent sessions to node{} {} (epoch {})",
                 targets_.size() > 1 ? "s" : "", names, epoch_);
    }
  }
  if (callbacks_.epoch_changed) callbacks_.epoch_changed();
}

uint64_t Replicator::send(uint32_t worker, uint64_t epoch, bool snapshot, std::string operations) {
  bool lost = false;
  uint64_t sequence = 0;
  {
    std::lock_guard lock(mu_);
    if (epoch == 0 || epoch != epoch_) return 0;
    sequence = ++next_sequence_[worker];
    pending_[worker].push_back({sequence, targets_, false});
    for (size_t i = 0; i < targets_.size(); ++i) {
      std::string copy = i + 1 < targets_.size() ? operations : std::move(operations);
      lost |= !cluster_->sendReplica(targets_[i], epoch, worker, sequence, snapshot, std::move(copy));
    }
  }
  // A replica node's link is down: the next epoch replaces this one.
  if (lost) reconsider();
  return sequence;
}

void Replicator::onAck(uint32_t node, uint64_t epoch, uint32_t worker, uint64_t sequence,
                       bool ok) {
  absl::Status status;
  uint64_t done = 0;
  {
    std::lock_guard lock(mu_);
    if (epoch != epoch_) return;
    auto it = pending_.find(worker);
    if (it == pending_.end()) return;
    std::deque<Pending>& q = it->second;
    for (Pending& p : q) {
      if (p.sequence > sequence) break;
      auto w = std::find(p.waiting.begin(), p.waiting.end(), node);
      if (w == p.waiting.end()) continue;
      p.waiting.erase(w);
      p.failed |= !ok;
    }
    bool failed = false;
    while (!q.empty() && q.front().waiting.empty()) {
      done = q.front().sequence;
      failed |= q.front().failed;
      q.pop_front();
    }
    if (done == 0) return;
    if (failed) status = absl::UnavailableError("a replica node could not store it");
  }
  callbacks_.replicated(worker, epoch, done, std::move(status));
}

}  // namespace gannet::server
