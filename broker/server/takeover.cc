// Session takeover between the nodes of a cluster (docs/architecture.md,
// "Session ownership"): a CONNECT claims the client id's session from the other
// nodes before it is handled; a node asked for a session disconnects its client
// (MQTT 5: 0x8E), hands the session over and deletes it once the claiming node
// has stored it.
//
// Concurrent connects of one client id on two nodes: each claim carries a
// hybrid-logical-clock stamp. A node with a connect of that id in progress
// answers an older claim "newer claim here" at once (the older connect goes on
// with what it has), and a newer claim only after its own connect completed
// (then it hands over like any other holder). So the newest connect ends up
// with the session and the others are taken over: exactly one winner, and the
// waits only ever go from newer to older claims (no deadlock).
//
// Pulls (a draining node asks a peer to take a session, Worker::handOver) are
// claims without a client: they yield to connects (a node whose client of that
// id is connected or connecting keeps its session; a pull in progress answers
// a connect's claim after it completed).
//
// After the handover the old copy passes on what still arrives for it
// (SessionAppend), withdraws its routes once the new owner confirmed, and ends
// kHandoverGraceMs later (tickMovingSessions).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/delivery.h"
#include "broker/server/node.h"
#include "broker/server/records.h"
#include "broker/server/worker.h"
#include "storage/session_store.h"

namespace gannet::server {

using handlers::Client;

namespace {

spdlog::logger& log() { return base::logger("cluster"); }

template <typename Record>
void addSubscriptionIds(const session::SubscriptionIds& ids, Record* r) {
  for (uint32_t id : ids) r->add_subscription_ids(id);
}

// A queued delivery as it travels in a SessionTransfer (message embedded).
void addQueued(const session::OutboundMessage& out, const Clocks& clocks,
               records::SessionTransfer& t) {
  auto* e = t.add_queue();
  e->set_qos(out.qos);
  e->set_retain(out.retain);
  addSubscriptionIds(out.subscription_ids, e);
  *e->mutable_message() = toMessageRecord(*out.message, clocks);
}

template <typename Record>
session::OutboundMessage outboundOf(const Record& r, router::MessagePtr message) {
  session::OutboundMessage out;
  out.message = std::move(message);
  out.qos = static_cast<uint8_t>(std::min<uint32_t>(r.qos(), 2));
  out.retain = r.retain();
  for (uint32_t id : r.subscription_ids()) out.subscription_ids.push_back(id);
  return out;
}

}  // namespace

bool Worker::claimInCluster(Client& client, codec::ConnectPacket& connect) {
  if (!node_.clustered() || client.clusterCleared()) return false;
  if (handlers::sessionExpiry(connect, config()) > 0 && !node_.hasQuorum()) {
    // The minority side of a partition (or a node that lost its peers): a
    // persistent session may be served by the majority now (docs/architecture.md,
    // "Ownership by consensus"). Clean sessions are still served here.
    (void)handlers::refuseConnect(client, connect, codec::ReasonCode::kServerUnavailable,
                                  "this node does not reach a majority of the cluster");
    return true;
  }
  const std::string client_id = connect.client_id;
  auto it = pending_connects_.find(client_id);
  if (it != pending_connects_.end()) {
    // A second connect of this id while the first waits: it replaces the first
    // (which never got a CONNACK) and gets the answers of the same claim.
    PendingConnect& pending = it->second;
    Client* older = pending.client;
    pending.client = &client;
    pending.pull = false;
    pending.connect = std::move(connect);
    client.awaitCluster();
    if (older != nullptr) older->connection().closeNow("replaced by a newer connect of its client id");
    return true;
  }
  client.awaitCluster();
  startClaim(client_id, &client, std::move(connect));
  return true;
}

void Worker::startClaim(const std::string& client_id, Client* client, codec::ConnectPacket connect) {
  const uint64_t stamp = node_.claimStamp();
  PendingConnect& pending = pending_connects_[client_id];
  pending.stamp = stamp;
  pending.started_ms = now();
  pending.retry_at_ms = 0;
  pending.client = client;
  pending.pull = client == nullptr;
  pending.connect = std::move(connect);
  node_.claimSession(client_id, stamp, pending.pull,
                     [this, client_id, stamp](std::vector<cluster::SessionAnswer> answers) {
                       post([this, client_id, stamp, answers = std::move(answers)]() mutable {
                         onClaimAnswered(client_id, stamp, std::move(answers));
                       });
                     });
}

void Worker::retryPendingClaims() {
  for (auto& [client_id, pending] : pending_connects_) {
    if (pending.retry_at_ms == 0 || now() < pending.retry_at_ms) continue;
    pending.retry_at_ms = 0;
    const uint64_t stamp = pending.stamp;
    node_.claimSession(client_id, stamp, pending.pull,
                       [this, client_id = client_id, stamp](std::vector<cluster::SessionAnswer> a) {
                         post([this, client_id, stamp, a = std::move(a)]() mutable {
                           onClaimAnswered(client_id, stamp, std::move(a));
                         });
                       });
  }
}

void Worker::pullSession(uint32_t from_node, const std::string& client_id) {
  // A connect of it here claims it already.
  if (pending_connects_.contains(client_id)) return;
  log().debug("taking over client '{}' from draining node {}", client_id, from_node);
  codec::ConnectPacket connect;
  connect.client_id = client_id;
  connect.clean_start = false;
  startClaim(client_id, nullptr, std::move(connect));
}

void Worker::stopAccepting() {
  for (auto& l : listeners_) l->stop();
}

void Worker::handOver(const std::vector<std::pair<uint32_t, std::string>>& targets,
                      bool disconnect_clients) {
  if (targets.empty()) return;
  auto target = [&](const std::string& client_id) -> const std::pair<uint32_t, std::string>& {
    return targets[std::hash<std::string>{}(client_id) % targets.size()];
  };
  if (disconnect_clients) {
    std::vector<Client*> connected;
    for (auto& [ptr, client] : clients_) connected.push_back(ptr);
    for (Client* c : connected) {
      session::Session* s = c->session();
      const std::string& address = s != nullptr ? target(s->clientId()).second : targets[0].second;
      // MQTT 5: 0x9C "use another server" with its address; 3.1.1: a plain close.
      // No will: the client is not gone, its session moves.
      c->redirect(address);
    }
  }
  for (const auto& [id, s] : sessions_) {
    if (s->client != nullptr || s->handed_over != 0) continue;
    node_.pullSession(target(s->clientId()).first, s->clientId());
  }
}

void Worker::onClaimAnswered(const std::string& client_id, uint64_t stamp,
                             std::vector<cluster::SessionAnswer> answers) {
  auto it = pending_connects_.find(client_id);
  if (it == pending_connects_.end() || it->second.stamp != stamp) return;
  // A node handed the session on moments ago (to another node than this one):
  // ask again, after taking what came with this round.
  bool ask_again = false;
  for (const cluster::SessionAnswer& a : answers) {
    ask_again |= a.kind == cluster::SessionAnswer::Kind::kMoved &&
                 a.moved_to != node_.options().node_id;
  }
  bool wait = false, found = false;
  for (const cluster::SessionAnswer& a : answers) {
    wait |= a.kind == cluster::SessionAnswer::Kind::kPending;
    found |= a.kind == cluster::SessionAnswer::Kind::kSession;
  }
  if (wait && !found && now() - it->second.started_ms < kPendingClaimMs) {
    // A node is about to take the session over from a dead one: ask again soon
    // (onTick), the connection waiting.
    it->second.retry_at_ms = now() + kTickMs;
    return;
  }
  if (ask_again && it->second.rounds < kMaxClaimRounds) {
    ++it->second.rounds;
    importAnswers(client_id, it->second.connect.clean_start, answers);
    node_.claimSession(client_id, stamp, it->second.pull,
                       [this, client_id, stamp](std::vector<cluster::SessionAnswer> next) {
                         post([this, client_id, stamp, next = std::move(next)]() mutable {
                           onClaimAnswered(client_id, stamp, std::move(next));
                         });
                       });
    return;
  }
  if (!it->second.deciding &&
      (it->second.pull || handlers::sessionExpiry(it->second.connect, config()) > 0)) {
    // A persistent session: this node becomes its owner by consensus first.
    // The nodes that answered the claim released it (handed it over, or had none).
    it->second.deciding = true;
    std::vector<uint32_t> released;
    for (const cluster::SessionAnswer& a : answers) {
      if (a.kind != cluster::SessionAnswer::Kind::kUnavailable) released.push_back(a.node);
    }
    node_.decideOwners({client_id}, cluster::OwnershipOp::kClaim, 0, std::move(released),
                       [this, client_id, stamp, answers = std::move(answers)](
                           std::vector<cluster::OwnershipResult> results) mutable {
                         post([this, client_id, stamp, answers = std::move(answers),
                               result = results.empty() ? cluster::OwnershipResult{}
                                                        : results[0]]() mutable {
                           onOwnershipDecided(client_id, stamp, std::move(answers), result);
                         });
                       });
    return;
  }
  finishClaim(client_id, answers);
}

void Worker::onOwnershipDecided(const std::string& client_id, uint64_t stamp,
                                std::vector<cluster::SessionAnswer> answers,
                                const cluster::OwnershipResult& result) {
  auto it = pending_connects_.find(client_id);
  if (it == pending_connects_.end() || it->second.stamp != stamp) return;
  if (result.decided && result.owner == node_.options().node_id) {
    finishClaim(client_id, answers);
    return;
  }
  // Not this node's: not imported, not confirmed (a node that handed it over
  // keeps it), and the client is refused (MQTT 5: 0x88; 3.1.1: 3).
  PendingConnect pending = std::move(it->second);
  pending_connects_.erase(it);
  const std::string why =
      result.decided ? absl::StrCat("client id owned by node ", result.owner)
                     : std::string("no majority of the cluster decided its owner");
  if (pending.client != nullptr) {
    (void)handlers::refuseConnect(*pending.client, pending.connect,
                                  codec::ReasonCode::kServerUnavailable, why);
  }
  if (findSession(client_id) == nullptr) node_.registry().release(client_id, index_);
  log().warn("session of client '{}' not taken here: {}", client_id, why);
  for (const PendingConnect::Deferred& d : pending.deferred) {
    onSessionClaim(d.node, d.request_id, client_id, d.stamp, d.pull);
  }
}

void Worker::finishClaim(const std::string& client_id,
                         std::vector<cluster::SessionAnswer>& answers) {
  auto it = pending_connects_.find(client_id);
  PendingConnect pending = std::move(it->second);
  pending_connects_.erase(it);
  importAnswers(client_id, pending.connect.clean_start, answers);
  if (pending.client != nullptr) {
    pending.client->resumeConnect(std::move(pending.connect));
  } else if (findSession(client_id) == nullptr) {
    node_.registry().release(client_id, index_);
  }
  // Newer claims of other nodes waited for this connect: they take over now.
  for (const PendingConnect::Deferred& d : pending.deferred) {
    onSessionClaim(d.node, d.request_id, client_id, d.stamp, d.pull);
  }
}

void Worker::importAnswers(const std::string& client_id, bool clean_start,
                           std::vector<cluster::SessionAnswer>& answers) {
  for (cluster::SessionAnswer& a : answers) {
    if (a.kind == cluster::SessionAnswer::Kind::kUnavailable) {
      log().warn("client '{}' connected while node {} did not answer for its session: a session "
                 "there is not taken over", client_id, a.node);
    }
    if (a.kind != cluster::SessionAnswer::Kind::kSession) continue;
    records::SessionTransfer transfer;
    if (!transfer.ParseFromString(a.session) || transfer.session().client_id() != client_id) {
      // Not confirmed: node a.node keeps it.
      log().error("node {} handed over an unreadable session for client '{}'", a.node, client_id);
      continue;
    }
    if (node_.takeUnverified(client_id)) {
      // Restored here at startup, but taken over by that node while this one
      // was down: its copy is the one that lives on.
      std::vector<std::string> stale{client_id};
      dropStale(stale);
    }
    // A clean start discards the old session; its node deletes it all the same.
    if (!clean_start) {
      importSession(transfer);
      log().info("session of client '{}' taken over from node {} ({} subscriptions, {} inflight, "
                 "{} queued)", client_id, a.node, transfer.subscriptions_size(),
                 transfer.inflight_size(), transfer.queue_size());
    }
    handover_confirms_.push_back({a.node, client_id, a.handover_id});
  }
}

void Worker::onSessionClaim(uint32_t node, uint64_t request_id, const std::string& client_id,
                            uint64_t stamp, bool pull) {
  cluster::SessionAnswer answer;
  if (auto it = pending_connects_.find(client_id); it != pending_connects_.end()) {
    PendingConnect& pending = it->second;
    if (pull) {
      // A connect (or another pull) here gathers the session itself.
      node_.answerClaim(node, request_id, std::move(answer));
    } else if (!pending.pull &&
               std::pair(pending.stamp, node_.options().node_id) > std::pair(stamp, node)) {
      answer.kind = cluster::SessionAnswer::Kind::kNewerClaim;
      node_.answerClaim(node, request_id, std::move(answer));
    } else {
      // An older connect here, or a pull (which yields to any connect): the
      // claim is answered once it completed.
      pending.deferred.push_back({node, request_id, stamp, pull});
    }
    return;
  }
  session::Session* s = findSession(client_id);
  if (pull && s != nullptr && s->client != nullptr) {
    // Its client is connected here: the session stays (the pull is moot).
    node_.answerClaim(node, request_id, std::move(answer));
    return;
  }
  if (s != nullptr && s->client != nullptr) {
    // §3.1.4-3 / MQTT 5 §3.1.4: the client connected elsewhere takes over.
    static_cast<Client*>(s->client)
        ->disconnect(codec::ReasonCode::kSessionTakenOver,
                     "session taken over by a connection to another node", /*publish_will=*/true);
    s = findSession(client_id);  // a session with expiry 0 ended with it
  }
  if (s != nullptr && s->handed_over != 0) {
    // Handed over moments ago: the claimer may have asked that node before it
    // had the session, so it asks again.
    answer.kind = cluster::SessionAnswer::Kind::kMoved;
    answer.moved_to = s->handed_over_to;
    node_.answerClaim(node, request_id, std::move(answer));
    return;
  }
  if (s == nullptr) {
    node_.registry().release(client_id, index_);
    node_.answerClaim(node, request_id, std::move(answer));
    return;
  }
  answer.kind = cluster::SessionAnswer::Kind::kSession;
  answer.handover_id = node_.nextHandoverId();
  s->handed_over = answer.handover_id;
  s->handed_over_to = node;
  s->handed_over_at = now();
  s->handed_over_queued = s->queue.size();
  if (s->handover_grace_until == 0) moving_sessions_.push_back(client_id);
  exportSession(*s).SerializeToString(&answer.session);
  log().info("session of client '{}' handed over to node {}", client_id, node);
  node_.answerClaim(node, request_id, std::move(answer));
}

void Worker::onHandoverDone(const std::string& client_id, uint64_t handover_id) {
  session::Session* s = findSession(client_id);
  if (s == nullptr || s->handed_over != handover_id || s->client != nullptr) return;
  s->handover_confirmed = true;
  if (sendLateMessages(*s)) return;
  if (s->handover_grace_until == 0) {
    if (node_.draining()) stats_.drain_handed_over.add();  // drain progress
    // Peers learn the new owner's routes a link delivery later: until then they
    // may still route its messages here. Its routes are withdrawn now; what
    // still arrives follows it (onTick), for a while.
    s->handover_grace_until = now() + kHandoverGraceMs;
    detachRoutes(*s, true);
  }
}

bool Worker::sendLateMessages(session::Session& s) {
  if (s.queue.size() <= s.handed_over_queued) return false;
  // Published while the routes moved: queued here after the handover. They
  // follow the session; this copy goes once they are stored there too.
  const Clocks clocks = iterationClocks();
  records::SessionTransfer late;
  *late.mutable_session() = toSessionRecord(s, clocks, clocks.wall_ms);
  size_t i = 0;
  s.queue.forEach([&](const session::OutboundMessage& out) {
    if (i++ >= s.handed_over_queued) addQueued(out, clocks, late);
  });
  log().info("{} messages queued for client '{}' after its handover follow it to node {}",
             late.queue_size(), s.clientId(), s.handed_over_to);
  s.handed_over_queued = s.queue.size();
  s.handover_confirmed = false;
  node_.appendToSession(s.handed_over_to, s.clientId(), s.handed_over, late.SerializeAsString());
  return true;
}

void Worker::detachRoutes(session::Session& s, bool detach) {
  if (s.routes_detached == detach) return;
  s.routes_detached = detach;
  for (const auto& [filter, options] : s.subscriptions) {
    if (detach) {
      node_.routeRemoved(filter);
    } else {
      node_.routeAdded(filter);
    }
  }
}

void Worker::cancelHandover(session::Session& s) {
  // Its client connected here again: the session stays.
  detachRoutes(s, false);
  s.handed_over = 0;
  s.handed_over_at = 0;
  s.handover_grace_until = 0;
  s.handover_confirmed = false;
  s.handover_final = false;
}

void Worker::tickMovingSessions() {
  for (size_t i = 0; i < moving_sessions_.size();) {
    session::Session* s = findSession(moving_sessions_[i]);
    if (s == nullptr || s->handed_over == 0 || s->client != nullptr) {
      // Ended, or its client came back here.
      moving_sessions_[i] = std::move(moving_sessions_.back());
      moving_sessions_.pop_back();
      continue;
    }
    if (!s->handover_confirmed) {  // the handover or an append on its way
      // The claimer gives up on an answer after the dead timeout: a handover it
      // never confirms leaves the session here, usable again (at worst twice).
      const int64_t timeout = 2 * node_.options().cluster_timeouts.dead_ms;
      if (s->handover_grace_until == 0 && now() - s->handed_over_at > timeout) {
        log().warn("handover of client '{}' to node {} not confirmed: the session stays here",
                   s->clientId(), s->handed_over_to);
        cancelHandover(*s);
        moving_sessions_[i] = std::move(moving_sessions_.back());
        moving_sessions_.pop_back();
        continue;
      }
      if (s->handover_grace_until == 0 || now() < s->handover_grace_until + timeout) {
        ++i;
        continue;
      }
      // An append never confirmed: the new owner has the session; this copy ends.
      s->handover_final = true;
    }
    // Forwards still in flight when the peers switched to the new owner's route
    // arrive within the grace time; later ones went to the new owner too (its
    // route was known by then) and reach this copy only through another
    // session's route here: they end with it, instead of being duplicates.
    const bool over = now() >= s->handover_grace_until;
    if (!s->handover_final && sendLateMessages(*s)) {
      if (over) s->handover_final = true;
      ++i;
      continue;
    }
    if (!over) {
      ++i;
      continue;
    }
    // The session lives on over there; its will went with it (a reconnect there
    // cancelled a delayed one).
    s->will.reset();
    s->will_due_ms = 0;
    moving_sessions_[i] = std::move(moving_sessions_.back());
    moving_sessions_.pop_back();
    endSession(*s);
  }
}

void Worker::onSessionAppend(uint32_t node, const std::string& client_id, uint64_t handover_id,
                             const std::string& transfer) {
  records::SessionTransfer t;
  if (!t.ParseFromString(transfer) || t.session().client_id() != client_id) {
    log().error("node {} sent unreadable messages for client '{}'", node, client_id);
    return;  // not confirmed: that node keeps them
  }
  importSession(t);
  handover_confirms_.push_back({node, client_id, handover_id});
}

records::SessionTransfer Worker::exportSession(session::Session& s) {
  const Clocks clocks = iterationClocks();
  records::SessionTransfer t;
  *t.mutable_session() = toSessionRecord(s, clocks, clocks.wall_ms);
  for (const auto& [filter, options] : s.subscriptions) {
    auto* sub = t.add_subscriptions();
    sub->set_filter(filter);
    *sub->mutable_options() = toSubscriptionRecord(options);
  }
  std::vector<std::pair<uint64_t, uint16_t>> order;
  for (const auto& [pid, in] : s.inflight) order.emplace_back(in.sequence, pid);
  std::sort(order.begin(), order.end());
  for (const auto& [sequence, pid] : order) {
    const session::InflightMessage& in = s.inflight.at(pid);
    auto* r = t.add_inflight();
    r->set_packet_id(pid);
    r->set_sequence(sequence);
    r->set_qos(in.out.qos);
    r->set_retain(in.out.retain);
    addSubscriptionIds(in.out.subscription_ids, r);
    r->set_pubrec_received(in.pubrec_received);
    if (!in.pubrec_received && in.out.message) {
      *r->mutable_message() = toMessageRecord(*in.out.message, clocks);
    }
  }
  for (uint16_t pid : s.awaiting_pubrel) t.add_awaiting_pubrel(pid);
  // The offline queue: what is still on disk only, then what is in memory.
  if (!s.disk_backlog.empty() && node_.store() != nullptr) {
    auto entries = node_.store()->readQueue(s.clientId(), s.disk_backlog.next_sequence,
                                            s.disk_backlog.count);
    if (!entries.ok()) {
      log().error("handing over client '{}': its queue on disk could not be read ({}); it goes "
                  "without it", s.clientId(), entries.status().ToString());
    } else {
      for (storage::QueuedMessage& q : *entries) {
        if (q.state != storage::QueuedMessage::State::kOk) continue;
        auto* e = t.add_queue();
        *e = std::move(q.entry);
        e->set_message_id(0);
        *e->mutable_message() = std::move(q.message);
      }
    }
  }
  auto add = [&](const session::OutboundMessage& out) { addQueued(out, clocks, t); };
  s.backlog.forEach(add);
  s.queue.forEach(add);
  return t;
}

void Worker::importSession(const records::SessionTransfer& t) {
  const records::SessionRecord& rec = t.session();
  const std::string& client_id = rec.client_id();
  const Clocks clocks = iterationClocks();
  session::Session* s = findSession(client_id);
  if (s == nullptr) {
    s = &createSession(client_id);
    s->version = static_cast<codec::ProtocolVersion>(rec.protocol_version());
    if (rec.has_username()) s->username = rec.username();
    s->expiry_interval = rec.session_expiry_interval();
    // Offline until the connect that claimed it attaches (it may be gone).
    if (s->expiry_interval != session::kNeverExpires) {
      s->expires_at_ms = now() + int64_t{s->expiry_interval} * 1000;
    }
  } else {
    s->expiry_interval = std::max(s->expiry_interval, rec.session_expiry_interval());
  }
  persistSession(*s);  // stored (and its messages durable) from here on
  const router::Destination dest{s->id(), index_};
  for (const auto& sub : t.subscriptions()) {
    if (s->subscriptions.contains(sub.filter())) continue;  // the newer one stays
    router::SubscriptionOptions options = fromSubscriptionRecord(sub.options());
    options.durable = s->stored;
    router().subscribe(sub.filter(), dest, options);
    s->subscriptions[sub.filter()] = options;
    persistSubscription(*s, sub.filter(), options);
  }
  auto durable = [&](session::OutboundMessage& out) {
    // Its own copy here, embedded in its record (message ids are per node).
    if (s->stored) out.stored_id = nextMessageId();
  };
  for (const records::InflightRecord& r : t.inflight()) {
    const auto pid = static_cast<uint16_t>(r.packet_id());
    session::InflightMessage in;
    in.pubrec_received = r.pubrec_received();
    if (!in.pubrec_received) {
      if (!r.has_message()) continue;
      in.out = outboundOf(r, fromMessageRecord(r.message(), clocks));
      durable(in.out);
    } else {
      in.out.qos = 2;
    }
    if (pid == 0 || s->inflight.contains(pid)) {
      // Its packet id is in use here (both nodes had a session): send it anew.
      if (in.pubrec_received) continue;  // the client has it; PUBCOMP is all that is left
      persistQueued(*s, in.out);
      s->enqueue(std::move(in.out));
      continue;
    }
    in.sequence = s->next_sequence++;
    auto [slot, inserted] = s->inflight.emplace(pid, std::move(in));
    persistInflight(*s, pid, slot->second);
  }
  for (uint32_t pid : t.awaiting_pubrel()) {
    if (pid == 0 || pid > 0xFFFF) continue;
    if (s->awaiting_pubrel.insert(static_cast<uint16_t>(pid)).second && s->stored) {
      write_set_.putAwaitingPubrel(client_id, static_cast<uint16_t>(pid));
    }
  }
  for (const records::QueueEntryRecord& e : t.queue()) {
    if (!e.has_message()) continue;
    session::OutboundMessage out = outboundOf(e, fromMessageRecord(e.message(), clocks));
    durable(out);
    persistQueued(*s, out);
    s->enqueue(std::move(out));
  }
  // Connected already (messages that followed the session): send them now.
  if (s->client != nullptr) handlers::pumpQueue(*static_cast<Client*>(s->client));
}

}  // namespace gannet::server
