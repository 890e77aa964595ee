// ClusterNode's part in ownership by consensus (cluster/ownership.h): the
// proposer's rounds (prepare, then accept, over the Link streams) and the
// acceptor's answers.
#include <algorithm>

#include "base/clock.h"
#include "base/logging.h"
#include "cluster/cluster_node.h"
#include "proto/cluster.pb.h"

namespace gannet::cluster {

struct ClusterNode::OwnershipRound {
  uint64_t id = 0;
  uint64_t ballot = 0;
  std::vector<std::string> keys;
  OwnershipOp op = OwnershipOp::kRead;
  uint32_t from = 0;
  std::vector<uint32_t> released;
  OwnershipDone done;
  int phase = 1;  // 1: prepare, 2: accept
  int attempts = 0;
  int64_t started_ms = 0;
  absl::flat_hash_set<uint32_t> waiting;  // peers still to answer this phase
  // Per key.
  std::vector<uint32_t> promises;
  std::vector<uint64_t> best_ballot;
  std::vector<uint32_t> best_owner;
  std::vector<uint32_t> value;  // phase 2: what was proposed (kept keys only)
  std::vector<bool> proposed;
  std::vector<uint32_t> accepts;
  uint64_t max_promised = 0;
};

void ClusterNode::loadOwnership(
    std::vector<std::pair<std::string, OwnerRecord>> records,
    std::function<void(const std::vector<std::pair<std::string, OwnerRecord>>&)> persist) {
  OwnershipAcceptor::Rules rules;
  rules.self = options_.node_id;
  rules.heard_recently = [this](uint32_t node) {
    for (const MemberView& v : membership_.snapshot()) {
      if (v.peer.id == node) return v.state == MemberState::kAlive || v.state == MemberState::kSuspect;
    }
    return false;
  };
  rules.persist = std::move(persist);
  acceptor_ = std::make_unique<OwnershipAcceptor>(std::move(rules));
  uint64_t max_ballot = 0;
  for (const auto& [key, r] : records) max_ballot = std::max({max_ballot, r.promised, r.accepted});
  acceptor_->load(std::move(records));
  std::lock_guard lock(rounds_mu_);
  max_ballot_seen_ = max_ballot;
}

bool ClusterNode::hasQuorum() {
  // The serving lease: heard within half the dead timeout, so that a node cut
  // off stops serving well before the others (after the dead timeout) may move
  // its sessions.
  const int64_t since = base::monotonicMs() - options_.timeouts.dead_ms / 2;
  size_t heard = 1;  // this node
  for (const MemberView& v : membership_.snapshot()) {
    if (v.last_heard_ms != 0 && v.last_heard_ms >= since) ++heard;
  }
  return heard * 2 > clusterSize();
}

void ClusterNode::decideOwners(std::vector<std::string> keys, OwnershipOp op, uint32_t from,
                               std::vector<uint32_t> released, OwnershipDone done) {
  auto round = std::make_shared<OwnershipRound>();
  round->keys = std::move(keys);
  round->op = op;
  round->from = from;
  round->released = std::move(released);
  round->done = std::move(done);
  round->started_ms = base::monotonicMs();
  startRound(std::move(round));
}

void ClusterNode::startRound(std::shared_ptr<OwnershipRound> round) {
  const size_t n = round->keys.size();
  std::vector<uint32_t> targets;
  {
    std::lock_guard lock(rounds_mu_);
    ++round->attempts;
    round->phase = 1;
    max_ballot_seen_ = std::max(max_ballot_seen_, round->max_promised);
    round->ballot = (((max_ballot_seen_ >> 16) + 1) << 16) | (options_.node_id & 0xFFFF);
    max_ballot_seen_ = round->ballot;
    if (round->id == 0) round->id = next_round_id_++;
    round->promises.assign(n, 0);
    round->best_ballot.assign(n, 0);
    round->best_owner.assign(n, 0);
    round->waiting.clear();
    for (auto& d : dialers_) {
      std::lock_guard dl(d->mu);
      if (d->live) targets.push_back(d->peer.id);
    }
    round->waiting.insert(targets.begin(), targets.end());
    rounds_[round->id] = round;
  }
  // This node's own promise first.
  const std::vector<OwnershipAcceptor::Promise> mine = acceptor_->prepare(round->ballot, round->keys);
  {
    std::lock_guard lock(rounds_mu_);
    for (size_t i = 0; i < n; ++i) {
      if (!mine[i].ok) {
        round->max_promised = std::max(round->max_promised, mine[i].promised);
        continue;
      }
      ++round->promises[i];
      if (mine[i].accepted >= round->best_ballot[i]) {
        round->best_ballot[i] = mine[i].accepted;
        round->best_owner[i] = mine[i].owner;
      }
    }
  }
  for (uint32_t node : targets) {
    clusterpb::LinkMessage m;
    auto* p = m.mutable_prepare();
    p->set_request_id(round->id);
    p->set_ballot(round->ballot);
    for (const std::string& k : round->keys) p->add_keys(k);
    send(node, std::move(m));
  }
  if (targets.empty()) advanceRound(round);
}

void ClusterNode::advanceRound(std::shared_ptr<OwnershipRound> round) {
  const size_t n = round->keys.size();
  const size_t majority = clusterSize() / 2 + 1;
  std::vector<uint32_t> targets;
  if (round->phase == 1) {
    bool retry = false;
    {
      std::lock_guard lock(rounds_mu_);
      round->phase = 2;
      round->value.assign(n, 0);
      round->proposed.assign(n, false);
      round->accepts.assign(n, 0);
      for (size_t i = 0; i < n; ++i) {
        if (round->promises[i] < majority) {
          retry |= round->max_promised > round->ballot;
          continue;
        }
        const uint32_t current = round->best_owner[i];
        uint32_t next = current;
        if (round->op == OwnershipOp::kClaim) next = options_.node_id;
        if (round->op == OwnershipOp::kTake && current == round->from) next = options_.node_id;
        round->value[i] = next;
        round->proposed[i] = true;
      }
      if (retry && round->attempts < 3) {
        // A higher ballot got there first: once more above it.
        round->phase = 1;
      } else {
        for (auto& d : dialers_) {
          std::lock_guard dl(d->mu);
          if (d->live) targets.push_back(d->peer.id);
        }
        round->waiting.clear();
        round->waiting.insert(targets.begin(), targets.end());
      }
    }
    if (round->phase == 1) {
      startRound(round);
      return;
    }
    std::vector<std::string> keys;
    std::vector<uint32_t> owners;
    for (size_t i = 0; i < n; ++i) {
      if (!round->proposed[i]) continue;
      keys.push_back(round->keys[i]);
      owners.push_back(round->value[i]);
    }
    const std::vector<bool> mine = acceptor_->accept(round->ballot, keys, owners, round->released);
    {
      std::lock_guard lock(rounds_mu_);
      for (size_t i = 0, k = 0; i < n; ++i) {
        if (!round->proposed[i]) continue;
        if (mine[k++]) ++round->accepts[i];
      }
    }
    for (uint32_t node : targets) {
      clusterpb::LinkMessage m;
      auto* a = m.mutable_accept();
      a->set_request_id(round->id);
      a->set_ballot(round->ballot);
      for (size_t i = 0; i < keys.size(); ++i) {
        a->add_keys(keys[i]);
        a->add_owner(owners[i]);
      }
      for (uint32_t r : round->released) a->add_released(r);
      send(node, std::move(m));
    }
    if (!targets.empty()) return;
  }
  // Phase 2 answered (or nobody to ask): the outcome.
  std::vector<OwnershipResult> results(n);
  {
    std::lock_guard lock(rounds_mu_);
    rounds_.erase(round->id);
    for (size_t i = 0; i < n; ++i) {
      if (!round->proposed[i] || round->accepts[i] < majority) continue;
      results[i] = {true, round->value[i], round->ballot};
    }
  }
  round->done(std::move(results));
}

void ClusterNode::roundAnswered(uint32_t node, uint64_t request_id, const clusterpb::LinkMessage& m) {
  std::shared_ptr<OwnershipRound> round;
  {
    std::lock_guard lock(rounds_mu_);
    auto it = rounds_.find(request_id);
    if (it == rounds_.end()) return;
    round = it->second;
    const size_t n = round->keys.size();
    if (m.has_promise() && round->phase == 1 && round->waiting.contains(node)) {
      const clusterpb::OwnershipPromise& p = m.promise();
      for (int i = 0; i < p.ok_size() && static_cast<size_t>(i) < n; ++i) {
        if (i < p.promised_size()) {
          round->max_promised = std::max(round->max_promised, p.promised(i));
          max_ballot_seen_ = std::max(max_ballot_seen_, p.promised(i));
        }
        if (!p.ok(i)) continue;
        ++round->promises[i];
        const uint64_t accepted = i < p.accepted_size() ? p.accepted(i) : 0;
        if (accepted >= round->best_ballot[i]) {
          round->best_ballot[i] = accepted;
          round->best_owner[i] = i < p.owner_size() ? p.owner(i) : 0;
        }
      }
    } else if (m.has_accepted() && round->phase == 2 && round->waiting.contains(node)) {
      const clusterpb::OwnershipAccepted& a = m.accepted();
      for (size_t i = 0, k = 0; i < n; ++i) {
        if (!round->proposed[i]) continue;
        if (static_cast<int>(k) < a.ok_size() && a.ok(static_cast<int>(k))) ++round->accepts[i];
        ++k;
      }
    } else {
      return;
    }
    round->waiting.erase(node);
    if (!round->waiting.empty()) return;
  }
  advanceRound(round);
}

void ClusterNode::giveUpRounds(uint32_t node, int64_t expire_before_ms) {
  std::vector<std::shared_ptr<OwnershipRound>> ready;
  {
    std::lock_guard lock(rounds_mu_);
    for (auto& [id, round] : rounds_) {
      bool changed = false;
      if (node != 0) changed = round->waiting.erase(node) > 0;
      if (node == 0 && round->started_ms < expire_before_ms && !round->waiting.empty()) {
        round->waiting.clear();
        changed = true;
      }
      if (changed && round->waiting.empty()) ready.push_back(round);
    }
  }
  for (auto& round : ready) advanceRound(round);
}

void ClusterNode::answerPrepare(uint32_t node, const clusterpb::LinkMessage& m) {
  const clusterpb::OwnershipPrepare& p = m.prepare();
  std::vector<std::string> keys(p.keys().begin(), p.keys().end());
  {
    std::lock_guard lock(rounds_mu_);
    max_ballot_seen_ = std::max(max_ballot_seen_, p.ballot());
  }
  const std::vector<OwnershipAcceptor::Promise> promises = acceptor_->prepare(p.ballot(), keys);
  clusterpb::LinkMessage out;
  auto* r = out.mutable_promise();
  r->set_request_id(p.request_id());
  for (const auto& pr : promises) {
    r->add_ok(pr.ok);
    r->add_accepted(pr.accepted);
    r->add_owner(pr.owner);
    r->add_promised(pr.promised);
  }
  send(node, std::move(out));
}

void ClusterNode::answerAccept(uint32_t node, const clusterpb::LinkMessage& m) {
  const clusterpb::OwnershipAccept& a = m.accept();
  std::vector<std::string> keys(a.keys().begin(), a.keys().end());
  std::vector<uint32_t> owners(a.owner().begin(), a.owner().end());
  std::vector<uint32_t> released(a.released().begin(), a.released().end());
  const std::vector<bool> ok = acceptor_->accept(a.ballot(), keys, owners, released);
  clusterpb::LinkMessage out;
  auto* r = out.mutable_accepted();
  r->set_request_id(a.request_id());
  for (bool b : ok) r->add_ok(b);
  send(node, std::move(out));
}

}  // namespace gannet::cluster
