#include "broker/server/node_spool.h"

#include <chrono>
#include <limits>

#include "base/clock.h"
#include "base/logging.h"
#include "base/strings.h"
#include "broker/server/records.h"

namespace gannet::server {
namespace {
spdlog::logger& log() { return base::logger("cluster"); }
}  // namespace

NodeSpool::NodeSpool(storage::SessionStore& store, cluster::ClusterNode& cluster,
                     uint64_t max_per_node, int64_t ack_timeout_ms)
    : store_(store), cluster_(cluster), max_per_node_(max_per_node), ack_timeout_ms_(ack_timeout_ms) {}

NodeSpool::~NodeSpool() { stop(); }

absl::Status NodeSpool::load(const std::vector<uint32_t>& peers) {
  for (uint32_t node : peers) {
    Peer& p = peers_[node];
    uint64_t from = 0;
    while (true) {
      auto entries = store_.readNodeQueue(node, from, 4096);
      if (!entries.ok()) return entries.status();
      if (entries->empty()) break;
      p.count += entries->size();
      from = entries->back().first + 1;
      next_sequence_ = std::max(next_sequence_, from);
      if (entries->size() < 4096) break;
    }
    if (p.count > 0) {
      p.logged = true;
      log().info("{} messages kept for node {} (its link was down): sent when it is back", p.count,
                 node);
    }
  }
  return absl::OkStatus();
}

void NodeSpool::start() { thread_ = std::thread([this] { run(); }); }

void NodeSpool::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

bool NodeSpool::mustSpool(uint32_t node) {
  {
    std::lock_guard lock(mu_);
    auto it = peers_.find(node);
    if (it == peers_.end()) return false;  // not a peer
    if (it->second.count > 0) return true;
  }
  return !cluster_.linkLive(node);
}

bool NodeSpool::reserve(uint32_t node, size_t n, uint64_t* first) {
  std::lock_guard lock(mu_);
  auto it = peers_.find(node);
  if (it == peers_.end()) return false;
  Peer& p = it->second;
  if (p.count + n > max_per_node_) return false;
  *first = next_sequence_;
  next_sequence_ += n;
  p.count += n;
  p.uncommitted.emplace(*first, n);
  if (!p.logged) {
    p.logged = true;
    log().info("link to node {} is down: keeping messages for it on disk until it is back", node);
  }
  return true;
}

void NodeSpool::committed(uint32_t node, uint64_t first, size_t n, bool ok) {
  std::lock_guard lock(mu_);
  Peer& p = peers_[node];
  p.uncommitted.erase(first);
  if (!ok) p.count -= std::min<uint64_t>(p.count, n);
  wake_ = true;
  cv_.notify_all();
}

void NodeSpool::onAck(const std::vector<uint64_t>& sequences, bool ok) {
  std::lock_guard lock(mu_);
  for (uint64_t s : sequences) awaiting_.erase(s);
  if (!ok) chunk_failed_ = true;
  cv_.notify_all();
}

uint64_t NodeSpool::kept() {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& [node, p] : peers_) n += p.count;
  return n;
}

void NodeSpool::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_ || wake_; });
    wake_ = false;
    std::vector<uint32_t> waiting;
    for (const auto& [node, p] : peers_) {
      if (p.count > 0) waiting.push_back(node);
    }
    lock.unlock();
    for (uint32_t node : waiting) {
      while (!stopping_ && drainOnce(node)) {
      }
    }
    lock.lock();
  }
}

void NodeSpool::redirect(uint32_t from, uint32_t to) {
  std::lock_guard lock(mu_);
  auto it = peers_.find(from);
  if (it == peers_.end() || it->second.count == 0) return;
  it->second.redirect_to = to;
  log().info("node {} died and node {} took over its sessions: the {} messages kept for it go there",
             from, to, it->second.count);
  wake_ = true;
  cv_.notify_all();
}

bool NodeSpool::drainOnce(uint32_t node) {
  uint64_t from = 0;
  uint64_t limit = std::numeric_limits<uint64_t>::max();
  uint32_t target = node;
  {
    std::lock_guard lock(mu_);
    Peer& p = peers_[node];
    if (p.count == 0) return false;
    if (p.redirect_to != 0) target = p.redirect_to;
    from = p.next_read;
    // Only what every worker has committed: a lower sequence may still come.
    if (!p.uncommitted.empty()) limit = p.uncommitted.begin()->first;
  }
  const bool local = target == self_ && local_;
  if (!local && !cluster_.linkLive(target)) return false;
  auto entries = store_.readNodeQueue(node, from, kChunk);
  if (!entries.ok()) {
    const int64_t now = base::monotonicMs();
    if (now >= next_error_log_ms_) {
      log().error("reading the messages kept for node {}: {}", node,
                  base::toStd(entries.status().message()));
      next_error_log_ms_ = now + 5000;
    }
    return false;
  }
  while (!entries->empty() && entries->back().first >= limit) entries->pop_back();
  if (entries->empty()) return false;
  const uint64_t last = entries->back().first;
  const size_t n = entries->size();
  const Clocks clocks = Clocks::now();
  cluster::PackedForwards batch;
  std::vector<uint64_t> sequences;
  for (const auto& [sequence, record] : *entries) {
    // Expired ones are not sent (and deleted with the chunk).
    if (appendSpooled(record, clocks, kAckWorker, sequence, batch)) sequences.push_back(sequence);
  }
  {
    std::unique_lock lock(mu_);
    awaiting_.clear();
    awaiting_.insert(sequences.begin(), sequences.end());
    chunk_failed_ = false;
  }
  const uint32_t on_behalf_of = target == node ? 0 : node;
  if (!batch.empty()) {
    if (local) {
      local_(std::move(batch.bytes), on_behalf_of);
    } else if (!cluster_.forward(target, std::move(batch), on_behalf_of)) {
      return false;
    }
  }
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ack_timeout_ms_),
                 [&] { return stopping_ || awaiting_.empty() || chunk_failed_; });
    if (!awaiting_.empty() || chunk_failed_) {
      awaiting_.clear();
      return false;  // sent again from `from` on the next round
    }
  }
  storage::WriteSet ws;
  ws.deleteNodeQueueRange(node, from, last + 1);
  if (absl::Status s = store_.commit(std::move(ws)); !s.ok()) {
    log().error("deleting messages sent to node {}: {}", node, base::toStd(s.message()));
    return false;
  }
  std::lock_guard lock(mu_);
  Peer& p = peers_[node];
  p.next_read = last + 1;
  p.count -= std::min<uint64_t>(p.count, n);
  if (p.count == 0) {
    p.logged = false;
    p.redirect_to = 0;
    log().info("messages kept for node {} sent", node);
  }
  return true;
}

}  // namespace gannet::server
