// ClusterNode's part in session takeover: claims sent to the peers, their
// answers collected, handovers confirmed (docs/architecture.md, "Session
// ownership"). The messages ride on the Link streams like everything else.
#include "base/clock.h"
#include "base/logging.h"
#include "cluster/cluster_node.h"
#include "proto/cluster.pb.h"

namespace gannet::cluster {

bool ClusterNode::send(uint32_t node, clusterpb::LinkMessage m) {
  Dialer* d = dialerFor(node);
  if (d == nullptr) return false;
  std::lock_guard lock(d->mu);
  d->outbox.push_back(std::move(m));
  d->cv.notify_all();
  return true;
}

void ClusterNode::claimSession(const std::string& client_id, uint64_t stamp, bool pull,
                               ClaimDone done) {
  std::vector<uint32_t> targets;
  uint64_t id = 0;
  {
    std::lock_guard lock(claims_mu_);
    for (auto& d : dialers_) {
      std::lock_guard dl(d->mu);
      if (d->live) targets.push_back(d->peer.id);
    }
    if (!targets.empty()) {
      id = next_claim_id_++;
      PendingClaim& pc = claims_[id];
      pc.waiting.insert(targets.begin(), targets.end());
      pc.done = std::move(done);
      pc.started_ms = base::monotonicMs();
      for (uint32_t node : targets) {
        clusterpb::LinkMessage m;
        auto* c = m.mutable_claim();
        c->set_request_id(id);
        c->set_client_id(client_id);
        c->set_stamp(stamp);
        c->set_pull(pull);
        send(node, std::move(m));
      }
    }
  }
  if (targets.empty()) done({});
}

void ClusterNode::answerClaim(uint32_t node, uint64_t request_id, SessionAnswer answer) {
  clusterpb::LinkMessage m;
  auto* h = m.mutable_handover();
  h->set_request_id(request_id);
  switch (answer.kind) {
    case SessionAnswer::Kind::kSession:
      h->set_status(clusterpb::SessionHandover::SESSION);
      h->set_session(std::move(answer.session));
      h->set_handover_id(answer.handover_id);
      break;
    case SessionAnswer::Kind::kNewerClaim:
      h->set_status(clusterpb::SessionHandover::NEWER_CLAIM);
      break;
    case SessionAnswer::Kind::kMoved:
      h->set_status(clusterpb::SessionHandover::MOVED);
      h->set_moved_to(answer.moved_to);
      break;
    case SessionAnswer::Kind::kPending:
      h->set_status(clusterpb::SessionHandover::PENDING);
      break;
    default:
      h->set_status(clusterpb::SessionHandover::NONE);
      break;
  }
  send(node, std::move(m));
}

void ClusterNode::confirmHandover(uint32_t node, const std::string& client_id,
                                  uint64_t handover_id) {
  clusterpb::LinkMessage m;
  auto* d = m.mutable_handover_done();
  d->set_client_id(client_id);
  d->set_handover_id(handover_id);
  send(node, std::move(m));
}

void ClusterNode::pullSession(uint32_t node, const std::string& client_id) {
  clusterpb::LinkMessage m;
  m.mutable_pull()->set_client_id(client_id);
  send(node, std::move(m));
}

std::vector<std::pair<uint32_t, std::string>> ClusterNode::takeoverPeers() {
  std::vector<std::pair<uint32_t, std::string>> out;
  const std::vector<MemberView> views = membership_.snapshot();
  for (auto& d : dialers_) {
    if (!linkLive(d->peer.id)) continue;
    for (const MemberView& v : views) {
      if (v.peer.id == d->peer.id && v.state == MemberState::kAlive && !v.report.draining) {
        out.emplace_back(v.peer.id, v.report.mqtt_address);
      }
    }
  }
  return out;
}

void ClusterNode::replicaAnswered(Dialer& d, uint64_t epoch, uint32_t worker, uint64_t sequence) {
  auto it = d.replica_flows.find(worker);
  if (it == d.replica_flows.end()) return;
  Dialer::ReplicaFlow& flow = it->second;
  if (flow.epoch != epoch) return;
  while (!flow.in_flight.empty() && flow.in_flight.front() <= sequence) flow.in_flight.pop_front();
  if (!flow.held || flow.in_flight.size() >= Dialer::kReplicaBatchesInFlight) return;
  flow.in_flight.push_back(flow.held->replica().sequence());
  d.outbox.push_back(std::move(*flow.held));
  flow.held.reset();
  d.cv.notify_all();
}

bool ClusterNode::sendReplica(uint32_t node, uint64_t epoch, uint32_t worker, uint64_t sequence,
                              bool snapshot, std::string operations) {
  Dialer* d = dialerFor(node);
  if (d == nullptr) return false;
  std::lock_guard lock(d->mu);
  if (!d->live) return false;
  Dialer::ReplicaFlow& flow = d->replica_flows[worker];
  if (!snapshot && flow.epoch == epoch &&
      flow.in_flight.size() >= Dialer::kReplicaBatchesInFlight) {
    // Enough are on their way: this waits for an ack, merged with what else
    // does (the receiver acknowledges the last sequence, which covers the others).
    if (flow.held) {
      clusterpb::ReplicaBatch* r = flow.held->mutable_replica();
      r->mutable_operations()->append(operations);
      r->set_sequence(sequence);
    } else {
      flow.held = std::make_unique<clusterpb::LinkMessage>();
      auto* r = flow.held->mutable_replica();
      r->set_epoch(epoch);
      r->set_worker(worker);
      r->set_sequence(sequence);
      r->set_operations(std::move(operations));
    }
    return true;
  }
  if (snapshot || flow.epoch != epoch) {
    // A snapshot starts afresh: what was held or is on its way belongs to the
    // old epoch.
    flow.epoch = epoch;
    flow.in_flight.clear();
    flow.held.reset();
  }
  // Not written yet: a worker's batches go out as one. Nothing between them
  // in the outbox depends on their order.
  for (auto it = d->outbox.rbegin(); it != d->outbox.rend(); ++it) {
    if (!it->has_replica() || it->replica().worker() != worker) continue;
    clusterpb::ReplicaBatch* r = it->mutable_replica();
    if (r->epoch() != epoch || snapshot) break;
    r->mutable_operations()->append(operations);
    r->set_sequence(sequence);
    if (!flow.in_flight.empty()) flow.in_flight.back() = sequence;
    d->cv.notify_all();
    return true;
  }
  flow.in_flight.push_back(sequence);
  clusterpb::LinkMessage m;
  auto* r = m.mutable_replica();
  r->set_epoch(epoch);
  r->set_worker(worker);
  r->set_sequence(sequence);
  r->set_snapshot(snapshot);
  r->set_operations(std::move(operations));
  d->outbox.push_back(std::move(m));
  d->cv.notify_all();
  return true;
}

size_t ClusterNode::pendingOutbound() {
  size_t n = 0;
  for (auto& d : dialers_) {
    std::lock_guard lock(d->mu);
    if (!d->live) continue;
    n += d->pending_forwards + d->unacked.size();
  }
  return n;
}

void ClusterNode::appendToSession(uint32_t node, const std::string& client_id,
                                  uint64_t handover_id, std::string transfer) {
  clusterpb::LinkMessage m;
  auto* a = m.mutable_append();
  a->set_client_id(client_id);
  a->set_handover_id(handover_id);
  a->set_session(std::move(transfer));
  send(node, std::move(m));
}

void ClusterNode::applyHandover(uint32_t node, clusterpb::SessionHandover& h) {
  ClaimDone done;
  std::vector<SessionAnswer> answers;
  {
    std::lock_guard lock(claims_mu_);
    auto it = claims_.find(h.request_id());
    if (it == claims_.end() || it->second.waiting.erase(node) == 0) {
      if (h.status() == clusterpb::SessionHandover::SESSION) {
        // Given up on (link lost, timeout): node `node` keeps its copy, which the
        // client's next connect claims again.
        base::logger("cluster").warn(
            "node {} handed over a session after this node stopped waiting; it stays there", node);
      }
      return;
    }
    SessionAnswer a;
    a.node = node;
    switch (h.status()) {
      case clusterpb::SessionHandover::SESSION:
        a.kind = SessionAnswer::Kind::kSession;
        a.session = std::move(*h.mutable_session());
        a.handover_id = h.handover_id();
        break;
      case clusterpb::SessionHandover::NEWER_CLAIM:
        a.kind = SessionAnswer::Kind::kNewerClaim;
        break;
      case clusterpb::SessionHandover::MOVED:
        a.kind = SessionAnswer::Kind::kMoved;
        a.moved_to = h.moved_to();
        break;
      case clusterpb::SessionHandover::PENDING:
        a.kind = SessionAnswer::Kind::kPending;
        break;
      default:
        a.kind = SessionAnswer::Kind::kNone;
        break;
    }
    it->second.answers.push_back(std::move(a));
    if (!it->second.waiting.empty()) return;
    done = std::move(it->second.done);
    answers = std::move(it->second.answers);
    claims_.erase(it);
  }
  done(std::move(answers));
}

void ClusterNode::giveUpClaims(uint32_t node, int64_t expire_before_ms) {
  std::vector<std::pair<ClaimDone, std::vector<SessionAnswer>>> finished;
  {
    std::lock_guard lock(claims_mu_);
    for (auto it = claims_.begin(); it != claims_.end();) {
      PendingClaim& pc = it->second;
      std::vector<uint32_t> lost;
      if (node != 0 && pc.waiting.contains(node)) lost.push_back(node);
      if (node == 0 && pc.started_ms < expire_before_ms) lost.assign(pc.waiting.begin(), pc.waiting.end());
      for (uint32_t n : lost) {
        pc.waiting.erase(n);
        SessionAnswer a;
        a.node = n;
        a.kind = SessionAnswer::Kind::kUnavailable;
        pc.answers.push_back(std::move(a));
      }
      if (!lost.empty() && pc.waiting.empty()) {
        finished.emplace_back(std::move(pc.done), std::move(pc.answers));
        claims_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (auto& [done, answers] : finished) done(std::move(answers));
}

}  // namespace gannet::cluster
