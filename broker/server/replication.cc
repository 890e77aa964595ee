// Session replication, the worker's part (docs/architecture.md, "Session
// replication"): every change a loop iteration makes to this worker's
// persistent sessions (the WriteSet operations on their tables, mirrored as they
// are added; inflight records, which go to the journal, added explicitly) goes
// to the replica nodes after the local commit, as one batch. What that
// iteration acknowledges (PUBACK / PUBREC, ForwardAck, confirmations to other
// workers, handover confirmations) waits until every replica node stored it.
//
// In a new epoch (the replica nodes changed) the first batch is a snapshot of
// all of this worker's sessions, and everything still waiting for a batch of
// the old epoch waits for it instead.
#include "base/logging.h"
#include "base/strings.h"
#include "broker/server/node.h"
#include "broker/server/records.h"
#include "broker/server/replicator.h"
#include "broker/server/worker.h"

namespace gannet::server {

void Worker::mirrorWrites() {
  if (!replicating_) return;
  using storage::Table;
  using storage::WriteSet;
  write_set_.setMirror(&replica_set_, WriteSet::bit(Table::kSession) |
                                          WriteSet::bit(Table::kSubscription) |
                                          WriteSet::bit(Table::kInflight) |
                                          WriteSet::bit(Table::kPubrel) | WriteSet::bit(Table::kQueue));
}

void Worker::replicateInflight(const session::Session& s, uint16_t packet_id,
                               const session::InflightMessage& in) {
  std::string record;
  if (in.out.stored_record && !in.pubrec_received) {
    session::InflightMessage embedded = in;
    embedded.out.stored_record = false;
    appendInflightRecord(record, packet_id, embedded, iterationClocks());
  } else {
    appendInflightRecord(record, packet_id, in, iterationClocks());
  }
  replica_set_.putInflightBytes(s.clientId(), in.sequence, record);
}

void Worker::whenReplicated(AfterReplicated fn) {
  if (replicating_batches_.empty()) {
    fn(last_commit_status_);
    return;
  }
  replicating_batches_.back().actions.push_back(std::move(fn));
}

void Worker::replicateIteration(const absl::Status& commit_status) {
  Replicator& r = *node_.replicator();
  if (!commit_status.ok()) {
    // Nothing of it is stored here: nothing of it goes to the replicas.
    replica_set_.clear();
    return;
  }
  if (r.held()) {
    // Waits for the first epoch (whose snapshot carries this iteration's changes).
    replica_set_.clear();
    if (replicating_batches_.empty() || replicating_batches_.back().sequence != 0) {
      replicating_batches_.push_back({0, {}});
    }
    return;
  }
  const uint64_t epoch = r.epoch();
  if (epoch == 0) {
    // No node to replicate to: what waited goes on with this node's copy only.
    replica_set_.clear();
    replica_epoch_ = 0;
    std::deque<Replicating> waiting = std::move(replicating_batches_);
    replicating_batches_.clear();
    for (Replicating& b : waiting) {
      for (AfterReplicated& fn : b.actions) fn(absl::OkStatus());
    }
    return;
  }
  if (epoch != replica_epoch_) {
    replica_set_.clear();
    storage::WriteSet snapshot;
    snapshotSessions(snapshot);
    const uint64_t sequence = r.send(index_, epoch, /*snapshot=*/true, snapshot.takeBytes());
    if (sequence == 0) return;  // the epoch changed again: the next one's snapshot
    replica_epoch_ = epoch;
    Replicating merged{sequence, {}};
    for (Replicating& b : replicating_batches_) {
      for (AfterReplicated& fn : b.actions) merged.actions.push_back(std::move(fn));
    }
    replicating_batches_.clear();
    replicating_batches_.push_back(std::move(merged));
    return;
  }
  if (replica_set_.empty()) return;
  const uint64_t sequence = r.send(index_, epoch, /*snapshot=*/false, replica_set_.takeBytes());
  // 0: the epoch is over; the next snapshot carries this.
  replicating_batches_.push_back({sequence, {}});
}

void Worker::onReplicated(uint64_t epoch, uint64_t sequence, const absl::Status& status) {
  if (epoch != replica_epoch_) return;
  if (!status.ok()) {
    base::logger("cluster").warn("replication of batch {} failed: {}", sequence,
                                 base::toStd(status.message()));
  }
  while (!replicating_batches_.empty() && replicating_batches_.front().sequence != 0 &&
         replicating_batches_.front().sequence <= sequence) {
    Replicating b = std::move(replicating_batches_.front());
    replicating_batches_.pop_front();
    for (AfterReplicated& fn : b.actions) fn(status);
  }
}

void Worker::snapshotSessions(storage::WriteSet& out) {
  const Clocks clocks = iterationClocks();
  for (auto& [id, sp] : sessions_) {
    session::Session& s = *sp;
    if (!s.stored || s.handed_over != 0) continue;
    const std::string& client_id = s.clientId();
    out.putSession(sessionRecord(s));
    for (const auto& [filter, options] : s.subscriptions) {
      out.putSubscription(client_id, filter, toSubscriptionRecord(options));
    }
    for (const auto& [pid, in] : s.inflight) {
      if (!in.stored) continue;
      std::string record;
      session::InflightMessage embedded = in;
      embedded.out.stored_record = false;
      appendInflightRecord(record, pid, embedded, clocks);
      out.putInflightBytes(client_id, in.sequence, record);
    }
    for (uint16_t pid : s.awaiting_pubrel) out.putAwaitingPubrel(client_id, pid);
    if (!s.disk_backlog.empty() && node_.store() != nullptr) {
      auto entries = node_.store()->readQueue(client_id, s.disk_backlog.next_sequence,
                                              s.disk_backlog.count);
      if (!entries.ok()) {
        base::logger("cluster").error("replicating client '{}': its queue on disk could not be "
                                      "read ({})", client_id, entries.status().ToString());
      } else {
        for (storage::QueuedMessage& q : *entries) {
          if (q.state != storage::QueuedMessage::State::kOk) continue;
          *q.entry.mutable_message() = std::move(q.message);
          out.putQueueEntry(client_id, q.sequence, q.entry);
        }
      }
    }
    auto add = [&](const session::OutboundMessage& o) {
      if (o.stored_id == 0 || !o.message) return;
      out.putQueueEntry(client_id, o.stored_id,
                        queueEntry(*o.message, o.stored_id, false, o.qos, o.retain,
                                   o.subscription_ids, clocks));
    };
    s.backlog.forEach(add);
    s.queue.forEach(add);
  }
}

}  // namespace gannet::server

namespace gannet::server {

void Worker::afterCommit(AfterReplicated fn) { after_commit_.push_back(std::move(fn)); }

void Worker::adoptPromoted(uint32_t owner, const records::SessionTransfer& t,
                           std::shared_ptr<void> promotion) {
  const records::SessionRecord& rec = t.session();
  importSession(t);
  session::Session* s = findSession(rec.client_id());
  if (s != nullptr) node_.noteAdopted(owner, s->id());
  base::logger("cluster").debug("session of client '{}' taken over from dead node {} ({} "
                                "subscriptions, {} inflight, {} queued)", rec.client_id(), owner,
                                t.subscriptions_size(), t.inflight_size(), t.queue_size());
  if (s != nullptr && s->client == nullptr && rec.has_will() && rec.last_seen_ms() == 0 && !s->will) {
    // Its client was connected to the node that died: the connection is gone,
    // so its will goes (§3.1.2.5), at the earlier of its delay and the session's end.
    const uint32_t wait = std::min(rec.will().will_delay_interval(), s->expiry_interval);
    s->will = std::make_unique<codec::Will>(fromWillRecord(rec.will()));
    s->will_due_ms = std::max<int64_t>(1, now() + int64_t{wait} * 1000);
    persistSession(*s);
  }
  afterCommit([promotion = std::move(promotion)](const absl::Status&) {});
}

void Worker::dropStale(const std::vector<std::string>& client_ids) {
  for (const std::string& id : client_ids) {
    session::Session* s = findSession(id);
    if (s == nullptr) continue;
    if (s->client != nullptr) {
      static_cast<handlers::Client*>(s->client)
          ->disconnect(codec::ReasonCode::kSessionTakenOver,
                       "session taken over by another node while this one was down",
                       /*publish_will=*/false);
      s = findSession(id);
      if (s == nullptr) continue;
    }
    s->will.reset();
    s->will_due_ms = 0;
    endSession(*s);
  }
}

}  // namespace gannet::server

namespace gannet::server {

void Worker::onQuorumLost() {
  std::vector<handlers::Client*> persistent;
  for (auto& [ptr, client] : clients_) {
    session::Session* s = ptr->session();
    if (s != nullptr && s->stored) persistent.push_back(ptr);
  }
  for (handlers::Client* c : persistent) {
    c->disconnect(codec::ReasonCode::kUseAnotherServer,
                  "this node does not reach a majority of the cluster", /*publish_will=*/false);
  }
}

void Worker::verifyOwnership() {
  to_verify_.clear();
  for (const auto& [id, s] : sessions_) {
    if (s->stored && s->handed_over == 0) to_verify_.push_back(s->clientId());
  }
  verifyPending();
}

void Worker::verifyPending() {
  if (to_verify_.empty() || verifying_) return;
  verifying_ = true;
  std::vector<std::string> ids = std::move(to_verify_);
  to_verify_.clear();
  node_.decideOwners(ids, cluster::OwnershipOp::kRead, 0, {},
                     [this, ids](std::vector<cluster::OwnershipResult> results) {
                       post([this, ids, results = std::move(results)] {
                         verifying_ = false;
                         std::vector<std::string> stale;
                         const uint32_t self = node_.options().node_id;
                         for (size_t i = 0; i < ids.size(); ++i) {
                           if (i >= results.size() || !results[i].decided) {
                             // No majority answered yet (links still coming up):
                             // asked again at the next tick.
                             if (findSession(ids[i]) != nullptr) to_verify_.push_back(ids[i]);
                             continue;
                           }
                           if (results[i].owner != 0 && results[i].owner != self) {
                             stale.push_back(ids[i]);
                           }
                         }
                         if (stale.empty()) return;
                         base::logger("cluster").info(
                             "{} sessions here are owned by other nodes now (taken over while "
                             "this node was cut off): they end here", stale.size());
                         dropStale(stale);
                       });
                     });
}

}  // namespace gannet::server
