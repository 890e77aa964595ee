#include "broker/server/worker.h"

#include <unistd.h>

#include <span>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "base/logging.h"
#include "base/strings.h"
#include "broker/handlers/acl_check.h"
#include "broker/handlers/delivery.h"
#include "broker/server/node.h"
#include "broker/server/node_spool.h"
#include "broker/server/records.h"
#include "storage/session_store.h"

namespace gannet::server {

using handlers::Client;

namespace {
}

Worker::Worker(Node& node, uint32_t index) : node_(node), index_(index) {
  passwords_ = node.config().passwords;
  acl_ = node.config().acl;
}

Worker::~Worker() {
  clients_.clear();
  sessions_.clear();
}

absl::Status Worker::init() {
  auto s = loop_.init();
  if (!s.ok()) return s;
  outgoing_.resize(node_.workerCount());
  confirms_.resize(node_.workerCount());
  loop_.setWakeHandler([this] { drainInbox(); });
  loop_.addIterationEndHook([this] { onIterationEnd(); });
  loop_.setTicker(kTickMs, [this] { onTick(); });
  return absl::OkStatus();
}

void Worker::setPasswords(std::shared_ptr<const auth::PasswordFile> passwords) {
  loop_.post([this, passwords = std::move(passwords)]() mutable { passwords_ = std::move(passwords); });
}

void Worker::setAcl(std::shared_ptr<const auth::Acl> acl) {
  loop_.post([this, acl = std::move(acl)]() mutable {
    acl_ = std::move(acl);
    // Subscriptions marked wholly readable under the old rules are worked out
    // again: none may skip a check the new rules need.
    for (auto& [id, s] : sessions_) handlers::refreshReadAll(*this, *s);
  });
}

absl::StatusOr<uint16_t> Worker::listen(const net::HostPort& addr, std::string name,
                                         LayerFactory layers) {
  const int listener_index = handlers::listenerIndex(name);
  auto on_accept = [this, name = std::move(name), layers = std::move(layers),
                    listener_index](int fd, std::string peer) {
    stats_.connections_accepted[listener_index].add();
    if (!admitAccepted(fd)) return;  // over a connection limit: closed (worker_limits.cc)
    net::Connection::Detached state;
    if (layers) state.layers = layers();
    addClient(fd, std::move(peer), name, std::move(state));
  };
  listeners_.push_back(std::make_unique<net::Listener>(loop_, std::move(on_accept)));
  return listeners_.back()->start(addr);
}

void Worker::start() {
  replicating_ = node_.replicator() != nullptr;
  mirrorWrites();
  thread_ = std::thread([this] {
    std::string name = absl::StrCat("gannet-w", index_);
    pthread_setname_np(pthread_self(), name.c_str());
    loop_.run();
    // Shutting down: close every connection (MQTT 5: 0x8B server shutting down).
    for (auto& [ptr, client] : clients_) {
      client->disconnect(codec::ReasonCode::kServerShuttingDown, "server shutting down", true);
    }
    commitWrites();
    flush_list_.flushAll();
    commitWrites();
  });
}

void Worker::stop() {
  loop_.post([this] {
    for (auto& l : listeners_) l->stop();
  });
  loop_.stop();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

const handlers::BrokerConfig& Worker::config() const { return node_.config(); }
router::TopicRouter& Worker::router() { return node_.router(); }
router::RetainedIndex& Worker::retained() { return node_.retained(); }

void Worker::addClient(int fd, std::string peer, const std::string& listener,
                       net::Connection::Detached state) {
  auto conn = std::make_unique<net::Connection>(loop_, flush_list_, fd, std::move(peer));
  net::Connection* c = conn.get();
  c->setListener(listener);
  std::string input = std::move(state.input);
  c->adoptState(std::move(state));
  auto client = std::make_unique<Client>(*this, std::move(conn));
  Client* raw = client.get();
  clients_.emplace(raw, std::move(client));
  auto s = c->start(std::move(input));
  if (!s.ok()) {
    base::logger("net").warn("cannot register connection: {}", s.message());
    c->closeNow("registration failed");
  }
}

void Worker::adopt(net::Connection::Detached&& d, std::string peer, std::string listener) {
  // std::function needs a copyable callable: the state travels in a shared_ptr.
  auto state = std::make_shared<net::Connection::Detached>(std::move(d));
  loop_.post([this, state, peer = std::move(peer), listener = std::move(listener)]() mutable {
    const int fd = state->fd;
    addClient(fd, std::move(peer), listener, std::move(*state));
  });
}

void Worker::clientClosed(Client& client) {
  closed_clients_.push_back(&client);
  // Before the fd is closed (Admission: a reused number is never released).
  node_.admission().release(client.connection().fd());
  for (auto& [id, pending] : pending_connects_) {
    if (pending.client == &client) pending.client = nullptr;
  }
}

void Worker::migrate(Client& client, uint32_t worker) {
  migrating_clients_.push_back(&client);
  noteMigratingSlot(client);
}

size_t Worker::match(const router::MessagePtr& message) { return matchInto(message, false); }

size_t Worker::matchInto(const router::MessagePtr& message, bool local_only, bool shared_groups) {
  match_scratch_.clear();
  match_stored_.clear();
  node_.router().match(message->topic, message->publisher_session_id, match_scratch_, local_only,
                       shared_groups);
  return match_scratch_.size();
}

void Worker::deliverMatched(const router::MessagePtr& message) {
  static const std::shared_ptr<const std::string> kNoClient;
  for (size_t i = 0; i < match_scratch_.size(); ++i) {
    router::Delivery& d = match_scratch_[i];
    session::OutboundMessage out = handlers::outboundFor(message, d);
    const std::shared_ptr<const std::string>* client = &kNoClient;
    uint64_t ack_token = 0;
    if (i < match_stored_.size() && match_stored_[i].id != 0) {
      const StoredDelivery& sd = match_stored_[i];
      out.stored_id = sd.id;
      out.stored_record = sd.record;
      out.queue_entry_written = sd.entry_written;
      client = &sd.client_id;
      if (sd.confirm) ack_token = publish_ack_token_;
    }
    if (d.destination.worker == index_) {
      deliverLocal(d.destination.session_id, std::move(out), *client, delivering_forwarded_);
    } else if (d.destination.remote()) {
      // Another node has a matching subscription: the message goes there once
      // (the router gives one delivery per destination), with its own QoS.
      const bool confirm = i < match_stored_.size() && match_stored_[i].confirm;
      appendForward(*message, loop_.now(), index_, confirm ? publish_ack_token_ : 0, d.shared,
                    forwards_[static_cast<uint32_t>(d.destination.session_id)]);
    } else if (d.destination.worker < outgoing_.size()) {
      outgoing_[d.destination.worker].push_back(
          {d.destination.session_id, std::move(out), *client, ack_token, index_,
           delivering_forwarded_});
    }
  }
  match_scratch_.clear();
  match_stored_.clear();
}

void Worker::spoolForwards() {
  NodeSpool* spool = node_.spool();
  if (spool == nullptr) return;
  const Clocks clocks = iterationClocks();
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    const uint32_t node = it->first;
    const cluster::PackedForwards& batch = it->second;
    uint64_t first = 0;
    if (!spool->mustSpool(node) || !spool->reserve(node, batch.count, &first)) {
      ++it;  // sent on the link (or refused there when over the bounds)
      continue;
    }
    std::string_view rest = batch.bytes;
    cluster::ForwardView f;
    for (size_t i = 0; i < batch.count && cluster::readForward(&rest, &f); ++i) {
      write_set_.putNodeQueue(node, first + i, toSpoolRecord(f, clocks));
    }
    for (const auto& [worker, token] : batch.acks) spooled_tokens_.push_back(token);
    spooled_.push_back({node, first, batch.count});
    stats_.forwards_spooled.add(batch.count);
    forwards_.erase(it++);
  }
}

void Worker::discardMatched() {
  match_scratch_.clear();
  match_stored_.clear();
}

void Worker::deliverLocal(uint64_t session_id, session::OutboundMessage&& out,
                          const std::shared_ptr<const std::string>& client_id, bool forwarded) {
  auto it = sessions_.find(session_id);
  session::Session* s = it == sessions_.end() ? nullptr : it->second.get();
  if (s != nullptr && s->routes_detached && !forwarded) {
    // Handed over, its routes withdrawn: a publish from this node reaches the
    // new owner through its route (which this node applied before the owner's
    // confirmation). Only forwards from peers that may not know it yet follow
    // the session from here.
    s = nullptr;
  }
  if (out.stored_id != 0 && (s == nullptr || !s->stored)) {
    // Its queue entry was written for a session that ended or left the store
    // since: delete the entry; deliver in memory if the session is still here.
    if (out.queue_entry_written && client_id) write_set_.deleteQueueEntry(*client_id, out.stored_id);
    releaseMessage(out);
  }
  if (s == nullptr) return;
  handlers::deliver(*this, *s, std::move(out));
}

void Worker::deliverBatch(std::vector<RemoteDelivery>&& batch) {
  {
    std::lock_guard lock(inbox_mu_);
    if (inbox_.empty()) {
      inbox_ = std::move(batch);
    } else {
      for (auto& d : batch) inbox_.push_back(std::move(d));
    }
  }
  loop_.wake();
}

void Worker::drainInbox() {
  std::vector<RemoteDelivery> batch;
  {
    std::lock_guard lock(inbox_mu_);
    batch.swap(inbox_);
  }
  for (auto& d : batch) {
    deliverLocal(d.session_id, std::move(d.out), d.client_id, d.forwarded);
    // Durable once this iteration's commit is done: then the publisher's worker
    // may send the ack (onIterationEnd).
    if (d.ack_token != 0 && d.ack_worker < confirms_.size()) {
      confirms_[d.ack_worker].push_back(d.ack_token);
    }
  }
}

void Worker::deliverForwarded(uint32_t from_node, std::string packed, uint32_t on_behalf_of) {
  std::string_view rest = packed;
  cluster::ForwardView f;
  while (!rest.empty()) {
    if (!cluster::readForward(&rest, &f)) {
      base::logger("cluster").error("malformed forwarded messages from node {}: rest of the batch "
                                    "dropped", from_node);
      break;
    }
    // Acknowledged to the sender after this iteration's commit, which holds what
    // this message made durable here (queue entries / journal records).
    if (f.ack_token != 0) forward_acks_[{from_node, f.ack_worker}].push_back(f.ack_token);
    router::MessagePtr m = fromForward(f, loop_.now());
    // Local subscribers only: a forwarded message is never forwarded again. Its
    // $share groups only when the sender picked their member here.
    if (matchInto(m, /*local_only=*/true, f.shared_groups) == 0) continue;
    if (on_behalf_of != 0) {
      // For the sessions taken over from that node only (the others here got
      // it when it was published).
      std::erase_if(match_scratch_, [&](const router::Delivery& d) {
        return !node_.adoptedFrom(on_behalf_of, d.destination.session_id);
      });
      if (match_scratch_.empty()) continue;
    }
    if (m->qos > 0 && persistMatched(m, nullptr, 0) == Durability::kRefused) {
      discardMatched();
      stats_.drop(handlers::DropReason::kStoreFull);
      continue;
    }
    delivering_forwarded_ = true;
    deliverMatched(m);
    delivering_forwarded_ = false;
  }
}

void Worker::confirmDurable(std::vector<uint64_t> tokens, absl::Status status) {
  loop_.post([this, tokens = std::move(tokens), status = std::move(status)] {
    for (uint64_t token : tokens) {
      if (token < held_base_token_ || token - held_base_token_ >= held_acks_.size()) continue;
      HeldAck& h = held_acks_[token - held_base_token_];
      if (h.remote_pending > 0) --h.remote_pending;
      if (!status.ok() && h.failure == absl::StatusCode::kOk) h.failure = status.code();
    }
    releaseReadyAcks();
  });
}

uint32_t Worker::claimClientId(const std::string& client_id) {
  return node_.registry().claim(client_id, index_);
}

session::Session* Worker::findSession(const std::string& client_id) {
  auto it = sessions_by_client_id_.find(client_id);
  return it == sessions_by_client_id_.end() ? nullptr : it->second;
}

session::Session& Worker::createSession(const std::string& client_id) {
  uint32_t home = node_.registry().claim(client_id, index_);
  if (home != index_) {
    base::logger("mqtt").warn("client id '{}' claimed by worker {} during connect", client_id, home);
  }
  uint64_t id = node_.nextSessionId();
  auto s = std::make_unique<session::Session>(id, client_id);
  session::Session& ref = *s;
  sessions_.emplace(id, std::move(s));
  sessions_by_client_id_[client_id] = &ref;
  stats_.sessions_current_inc.add();
  return ref;
}

void Worker::endSession(session::Session& s) {
  if (s.stored) dropDurability(s, /*update_router=*/false);
  const router::Destination dest{s.id(), index_};
  for (const auto& [filter, opts] : s.subscriptions) {
    node_.router().unsubscribe(filter, dest, /*notify=*/!s.routes_detached);
  }
  if (s.will && s.will_due_ms != 0) {
    // §3.1.3.2.2: a delayed will is due at the latest when the session ends.
    codec::Will will = std::move(*s.will);
    s.will.reset();
    handlers::publishWill(*this, will, s);
  }
  node_.registry().release(s.clientId(), index_);
  auto by_id = sessions_by_client_id_.find(s.clientId());
  if (by_id != sessions_by_client_id_.end() && by_id->second == &s) {
    sessions_by_client_id_.erase(by_id);
  }
  stats_.sessions_current_dec.add();
  sessions_.erase(s.id());  // destroys `s`
}

bool Worker::storeFull() const { return node_.storeFull(); }

std::string Worker::assignClientId() {
  // Unique per node: node id, worker, a per-worker counter and the start time.
  return absl::StrCat("gannet-", node_.options().node_id, "-", index_, "-",
                      node_.startedAtMs() % 1000000, "-", ++assigned_ids_);
}

void Worker::onIterationEnd() {
  if (!migrating_slots_.empty()) releaseClosedMigrating();
  for (Client* c : migrating_clients_) {
    net::Connection::Detached d = c->connection().release();
    std::string peer = c->connection().peer();
    node_.worker(c->migrateTo()).adopt(std::move(d), std::move(peer), c->connection().listener());
    clients_.erase(c);
  }
  migrating_clients_.clear();
  if (!forwards_.empty()) spoolForwards();
  // Group commit, before any output of this iteration is written: a CONNACK or
  // SUBACK never reports state that is not in the store's WAL yet.
  commitWrites();
  if (!spooled_.empty()) {
    // Kept on disk for their peers: durable here, which is all their
    // publishers' acks wait for.
    for (const Spooled& r : spooled_) {
      node_.spool()->committed(r.node, r.first, r.count, last_commit_status_.ok());
    }
    spooled_.clear();
    if (!spooled_tokens_.empty()) {
      confirmDurable(std::move(spooled_tokens_), last_commit_status_);
      spooled_tokens_.clear();
    }
  }
  if (!forward_acks_.empty()) {
    whenReplicated([this, acks = std::move(forward_acks_)](const absl::Status& st) mutable {
      const auto status = st.ok() ? cluster::ForwardStatus::kOk
                          : absl::IsResourceExhausted(st) ? cluster::ForwardStatus::kFull
                                                          : cluster::ForwardStatus::kError;
      for (auto& [key, tokens] : acks) node_.ackForwards(key.first, key.second, std::move(tokens), status);
    });
    forward_acks_.clear();
  }
  for (uint32_t w = 0; w < confirms_.size(); ++w) {
    if (!confirms_[w].empty()) {
      whenReplicated([this, w, tokens = std::move(confirms_[w])](const absl::Status& st) mutable {
        node_.worker(w).confirmDurable(std::move(tokens), st);
      });
      confirms_[w].clear();
    }
  }
  if (!forwards_.empty()) {
    for (auto& [node, batch] : forwards_) {
      const size_t n = batch.count;
      std::vector<uint64_t> tokens;
      for (const auto& [worker, token] : batch.acks) tokens.push_back(token);
      if (!node_.forwardToNode(node, std::move(batch))) {
        stats_.drop(handlers::DropReason::kNodeDown, n);
        // Never a success ack for them: their publishers send them again.
        if (!tokens.empty()) {
          confirmDurable(std::move(tokens),
                         absl::UnavailableError(absl::StrCat("node ", node, " is unreachable")));
        }
      }
    }
    forwards_.clear();
  }
  for (uint32_t w = 0; w < outgoing_.size(); ++w) {
    if (!outgoing_[w].empty()) {
      node_.worker(w).deliverBatch(std::move(outgoing_[w]));
      outgoing_[w].clear();
    }
  }
  flush_list_.flushAll();
  if (!closed_clients_.empty()) {
    if (!held_acks_.empty()) {
      // Acks still waiting for another worker's commit outlive the iteration:
      // forget the clients that go now.
      absl::flat_hash_set<Client*> closing(closed_clients_.begin(), closed_clients_.end());
      for (HeldAck& h : held_acks_) {
        if (closing.contains(h.client)) h.client = nullptr;
      }
    }
    for (Client* c : closed_clients_) clients_.erase(c);
    closed_clients_.clear();
  }
}

void Worker::onTick() {
  const int64_t now = loop_.now();
  if (!moving_sessions_.empty()) tickMovingSessions();
  if (!pending_connects_.empty()) retryPendingClaims();
  if (!to_verify_.empty() && node_.hasQuorum()) verifyPending();
  const int64_t connect_timeout = config().connect_timeout_ms;
  for (auto& [ptr, c] : clients_) {
    if (c->state() == Client::State::kAwaitConnect) {
      if (now - c->accepted_ms >= connect_timeout) {
        stats_.rejected(handlers::ConnectionRejection::kConnectTimeout);
        c->disconnect(codec::ReasonCode::kMaximumConnectTime, "no CONNECT in time", true);
      }
    } else if (c->state() == Client::State::kConnected && c->keep_alive > 0) {
      // §3.1.2.10: one and a half times the keep alive.
      if (now - c->last_received_ms >= int64_t{c->keep_alive} * 1500) {
        c->disconnect(codec::ReasonCode::kKeepAliveTimeout, "keep alive timeout", true);
      }
    }
  }
  // The gauges that need a look at every session, about once a second, in the
  // loop the tick makes anyway.
  const bool measure = now >= next_gauges_ms_;
  uint64_t inflight = 0, queued = 0, queued_bytes = 0;
  std::vector<session::Session*> expired;
  for (auto& [id, s] : sessions_) {
    if (measure) {
      inflight += s->inflight.size();
      queued += s->queuedCount();
      queued_bytes += s->queued_bytes;
    }
    if (s->client != nullptr) continue;
    if (s->will && s->will_due_ms != 0 && now >= s->will_due_ms) {
      codec::Will will = std::move(*s->will);
      s->will.reset();
      s->will_due_ms = 0;
      handlers::publishWill(*this, will, *s);
      persistSession(*s);  // the will is gone
    }
    if (s->expires_at_ms != 0 && now >= s->expires_at_ms) expired.push_back(s.get());
  }
  for (session::Session* s : expired) endSession(*s);
  if (measure) {
    next_gauges_ms_ = now + 1000;
    stats_.inflight_messages.set(inflight);
    stats_.queued_messages.set(queued);
    stats_.queued_bytes.set(queued_bytes);
  }
  if (index_ == 0) {
    node_.tickLimits(now);
    node_.tickReconciliation(now);
    node_.tickQuorum();
    node_.checkDiskUse(now);
    node_.publishSys(*this);
  }
}

// --- durable state ---

Clocks Worker::iterationClocks() {
  // Both clocks read once per loop iteration (the loop's time is per iteration
  // too), not once per stored message.
  if (clocks_.mono_ms != loop_.now()) {
    clocks_ = Clocks::now();
    clocks_.wall_ms += loop_.now() - clocks_.mono_ms;
    clocks_.mono_ms = loop_.now();
  }
  return clocks_;
}

void Worker::persistSession(session::Session& s) {
  if (node_.store() == nullptr) return;
  if (s.expiry_interval == 0) {
    // A clean session, or a stored one whose new connection asked for expiry 0:
    // it ends with its connection and must not be found after a restart.
    if (s.stored) dropDurability(s, /*update_router=*/true);
    return;
  }
  write_set_.putSession(sessionRecord(s));
  if (!s.stored) {
    // First write of a session that already has subscriptions (a session taken
    // over by a connection with a longer expiry): store them too.
    for (const auto& [filter, options] : s.subscriptions) {
      write_set_.putSubscription(s.clientId(), filter, toSubscriptionRecord(options));
    }
    s.stored = true;
    node_.durableSessions().add(s.id(), std::make_shared<const std::string>(s.clientId()));
    setRouterDurable(s, true);
  }
}

records::SessionRecord Worker::sessionRecord(const session::Session& s) {
  const Clocks clocks = iterationClocks();
  int64_t last_seen = 0;  // connected
  if (s.client == nullptr) {
    // Offline: when it went offline, which is what its expiry counts from (not
    // now: a later update, e.g. its delayed will going out, must not extend it).
    last_seen = s.expires_at_ms != 0
                    ? clocks.toWall(s.expires_at_ms - int64_t{s.expiry_interval} * 1000)
                    : clocks.wall_ms;
  }
  return toSessionRecord(s, clocks, last_seen);
}

void Worker::setRouterDurable(session::Session& s, bool durable) {
  const router::Destination dest{s.id(), index_};
  for (auto& [filter, options] : s.subscriptions) {
    if (options.durable == durable) continue;
    options.durable = durable;
    node_.router().subscribe(filter, dest, options);
  }
}

void Worker::dropDurability(session::Session& s, bool update_router) {
  // What is still on disk only comes into memory first: a session that stays
  // (in memory) keeps its messages; one that ends releases their references.
  while (!s.disk_backlog.empty()) {
    const uint64_t before = s.disk_backlog.count;
    refillBacklog(s);
    if (s.disk_backlog.count == before) break;  // unreadable: load() cleans up later
  }
  auto release_queue = [&](session::MessageQueue& q) {
    q.forEach([&](session::OutboundMessage& out) { releaseMessage(out); });
  };
  release_queue(s.backlog);
  release_queue(s.queue);
  for (auto& [pid, in] : s.inflight) {
    releaseMessage(in.out);
    in.stored = false;
  }
  write_set_.deleteSession(s.clientId());  // with everything under it
  if (journal_ != nullptr) {
    for (auto& [pid, in] : s.inflight) {
      if (in.journal_segment != 0) journal_->release(in.journal_segment);
      in.journal_segment = 0;
    }
    journal_->drop(s.id());
  }
  s.inflight_done_from = s.inflight_done_to = 0;
  s.journal_done_from = s.journal_done_to = 0;
  s.stored = false;
  node_.durableSessions().remove(s.id());
  if (update_router) setRouterDurable(s, false);
}

void Worker::persistSubscription(const session::Session& s, const std::string& filter,
                                 const router::SubscriptionOptions& options) {
  if (!s.stored) return;
  write_set_.putSubscription(s.clientId(), filter, toSubscriptionRecord(options));
}

void Worker::forgetSubscription(const session::Session& s, const std::string& filter) {
  if (!s.stored) return;
  write_set_.deleteSubscription(s.clientId(), filter);
}

void Worker::persistRetained(const router::MessagePtr& message) {
  if (node_.store() == nullptr) return;
  const Clocks clocks = iterationClocks();
  write_set_.putRetained(message->topic, toMessageRecord(*message, clocks));
}

void Worker::stampRetained(router::Message& message) { node_.stampRetained(message); }

bool Worker::setRetained(const router::MessagePtr& message) {
  if (!node_.clustered()) return BrokerContext::setRetained(message);
  return node_.setRetainedIfNewest(message);
}

void Worker::replicateRetained(const router::MessagePtr& message) {
  node_.replicateRetained(message);
}

void Worker::persistReplicatedRetained(const std::vector<router::MessagePtr>& messages) {
  for (const router::MessagePtr& m : messages) {
    if (m->payload.empty()) {
      forgetRetained(m->topic);
    } else {
      persistRetained(m);
    }
  }
}

void Worker::forgetRetained(const std::string& topic) {
  if (node_.store() == nullptr) return;
  write_set_.deleteRetained(topic);
}

void Worker::commitWrites() {
  flushInflightDone();
  absl::Status s;
  bool committed = false;
  const size_t ops = write_set_.operationCount();
  const int64_t started_ns = base::monotonicNs();
  if (journal_ != nullptr && journal_->pending()) {
    // The journal first: a record moving from the offline queue into the inflight
    // window is deleted from the queue (write_set_) only once its inflight record
    // is written. When the journal fails, write_set_ is not written either.
    s = journal_->commit();
    committed = true;
  }
  if (!write_set_.empty()) {
    if (s.ok()) s = node_.store()->commit(std::move(write_set_));
    write_set_ = storage::WriteSet();
    mirrorWrites();
    committed = true;
  }
  if (committed) {
    stats_.store_commits.add();
    stats_.store_commit_duration.record(base::monotonicNs() - started_ns);
    if (!s.ok()) {
      stats_.store_commit_failures.add();
      // A full disk fails every commit until space returns: log the first
      // failure, then one line per 5 s with the count.
      ++failed_commits_unlogged_;
      if (loop_.now() >= next_commit_error_log_ms_) {
        base::logger("storage").error("commit of {} changes failed ({} failed commits): {}", ops,
                                      failed_commits_unlogged_, base::toStd(s.message()));
        failed_commits_unlogged_ = 0;
        next_commit_error_log_ms_ = loop_.now() + 5000;
      }
    }
  }
  last_commit_status_ = s;
  if (replicating_) replicateIteration(s);
  if (!after_commit_.empty()) {
    std::vector<AfterReplicated> fns = std::move(after_commit_);
    after_commit_.clear();
    for (AfterReplicated& fn : fns) whenReplicated(std::move(fn));
  }
  if (!handover_confirms_.empty()) {
    // Imported sessions are stored (here and on the replica nodes): their old
    // nodes delete their copies. (After a failed commit they keep them.)
    whenReplicated([this, confirms = std::move(handover_confirms_)](const absl::Status& st) {
      if (!st.ok()) return;
      for (const HandoverConfirm& c : confirms) {
        node_.confirmHandover(c.node, c.client_id, c.handover_id);
      }
    });
    handover_confirms_.clear();
  }
  if (!held_acks_.empty() && !held_acks_.back().committed) {
    const uint64_t end = held_base_token_ + held_acks_.size();
    whenReplicated([this, end](const absl::Status& st) {
      for (size_t i = 0; i < held_acks_.size() && held_base_token_ + i < end; ++i) {
        HeldAck& h = held_acks_[i];
        if (h.committed) continue;
        h.committed = true;
        if (!st.ok() && h.failure == absl::StatusCode::kOk) h.failure = st.code();
      }
      releaseReadyAcks();
    });
  }
  if (committed && s.ok() && journal_ != nullptr) maintainJournal();
}

void Worker::ackAfterCommit(Client& client, const codec::PubAckPacket& ack) {
  const uint64_t token = held_base_token_ + held_acks_.size();
  HeldAck& h = held_acks_.emplace_back();
  h.client = &client;
  h.type = ack.type;
  h.packet_id = ack.packet_id;
  h.reason_code = ack.reason_code;
  if (ack.properties.reason_string) h.reason = *ack.properties.reason_string;
  if (token == publish_ack_token_) {
    // (publish_ack_token_ stays: deliverMatched() tags the deliveries with it.)
    h.remote_pending = publish_remote_confirms_;
    publish_remote_confirms_ = 0;
  }
  ++client.acks_held;
}

void Worker::releaseReadyAcks() {
  if (releasing_acks_) return;  // a failure below closes a connection, which commits again
  releasing_acks_ = true;
  while (!held_acks_.empty() && held_acks_.front().committed &&
         held_acks_.front().remote_pending == 0) {
    HeldAck h = std::move(held_acks_.front());
    held_acks_.pop_front();
    ++held_base_token_;
    if (h.client == nullptr) continue;  // gone: the client resends it after reconnecting
    Client& c = *h.client;
    --c.acks_held;
    if (c.connection().closed()) continue;
    const bool send_as_held =
        h.failure == absl::StatusCode::kOk || static_cast<uint8_t>(h.reason_code) >= 0x80;
    if (send_as_held && h.reason.empty()) {
      c.sendAck(h.type, h.packet_id, h.reason_code);
      continue;
    }
    codec::PubAckPacket ack{h.type, h.packet_id, h.reason_code, {}};
    if (!h.reason.empty()) ack.properties.reason_string = std::move(h.reason);
    if (send_as_held) {
      c.send(ack);
      continue;
    }
    // Not durable: never a false acknowledgement. The in-memory deliveries of it
    // stand (at-least-once: the client will publish it again).
    stats_.publishes_failed_store.add();
    if (ack.type == codec::PacketType::kPubrec && c.session() != nullptr) {
      c.session()->awaiting_pubrel.erase(ack.packet_id);  // a failed PUBREC ends the flow
    }
    if (!c.isV5()) {
      // 3.1.1 acks carry no reason: close, the client keeps the message.
      c.disconnect(codec::ReasonCode::kUnspecifiedError, "store write failed", false);
      continue;
    }
    const bool full = h.failure == absl::StatusCode::kResourceExhausted;
    ack.reason_code = full ? codec::ReasonCode::kQuotaExceeded : codec::ReasonCode::kUnspecifiedError;
    if (c.request_problem_information) {
      ack.properties.reason_string =
          full ? "store full: message not stored" : "store write failed: message not stored";
    }
    c.send(ack);
  }
  releasing_acks_ = false;
}

// --- the durable QoS >= 1 message path ---

uint64_t Worker::nextMessageId() {
  if (next_message_id_ == message_id_end_) {
    auto block = node_.messageIds().reserveBlock();
    if (!block.ok()) {
      base::logger("storage").error("cannot reserve message ids: {}",
                                    base::toStd(block.status().message()));
      return 0;
    }
    next_message_id_ = block->first;
    message_id_end_ = block->second;
  }
  return next_message_id_++;
}


Worker::Durability Worker::persistMatched(const router::MessagePtr& message,
                                          session::Session* publisher, uint16_t packet_id) {
  if (node_.store() == nullptr || message->qos == 0) return Durability::kNone;
  match_stored_.assign(match_scratch_.size(), StoredDelivery{});
  size_t targets = 0;
  uint32_t node_confirms = 0;
  uint32_t remote_confirms = 0;  // deliveries to other workers that confirm
  for (size_t i = 0; i < match_scratch_.size(); ++i) {
    const router::Delivery& d = match_scratch_[i];
    if (d.destination.remote()) {
      // Another node: a client's ack waits until that node has it durably.
      if (publisher != nullptr) {
        match_stored_[i].confirm = true;
        ++node_confirms;
      }
      continue;
    }
    if (!d.durable || d.qos == 0) continue;
    if (d.destination.worker == index_) {
      // Delivered later in this iteration, which writes its queue entry or
      // inflight record then (deliverLocal → deliver).
      auto it = sessions_.find(d.destination.session_id);
      if (it == sessions_.end() || !it->second->stored) continue;
      match_stored_[i].local = true;
    } else {
      match_stored_[i].client_id = node_.durableSessions().find(d.destination.session_id);
      if (!match_stored_[i].client_id) continue;
    }
    match_stored_[i].durable = true;
    ++targets;
  }
  const bool pubrel = message->qos == 2 && publisher != nullptr && publisher->stored;
  if (targets == 0 && !pubrel && node_confirms == 0) {
    match_stored_.clear();
    return Durability::kNone;
  }
  if ((targets > 0 || pubrel) && node_.storeFull()) {
    match_stored_.clear();
    return Durability::kRefused;
  }
  if (targets > 0) {
    const uint64_t id = nextMessageId();
    if (id == 0) {
      match_stored_.clear();
      return Durability::kRefused;
    }
    const Clocks clocks = iterationClocks();
    // Stored once: a record of its own when several sessions reference it,
    // embedded in the one entry otherwise.
    // (Not while replicating: a replica must never depend on a record another
    // worker's batch carried, which a new epoch's snapshot would not repeat.)
    const bool record = targets > 1 && !replicating_;
    if (record) {
      write_set_.putMessage(id, storedMessage(*message, clocks));
      node_.messageRefs().set(id, static_cast<uint32_t>(targets));
    }
    for (size_t i = 0; i < match_scratch_.size(); ++i) {
      StoredDelivery& sd = match_stored_[i];
      if (!sd.durable) continue;
      sd.id = id;
      sd.record = record;
      if (sd.local) continue;
      if (publisher != nullptr) {
        // The target worker writes it (journal or queue) and confirms after its
        // commit; the publisher's ack waits for that (no write here).
        sd.confirm = true;
        ++remote_confirms;
        continue;
      }
      const session::OutboundMessage out = handlers::outboundFor(message, match_scratch_[i]);
      write_set_.putQueueEntry(*sd.client_id, id,
                               queueEntry(*message, id, record, out.qos, out.retain,
                                          out.subscription_ids, clocks));
      sd.entry_written = true;
    }
    stats_.messages_stored.add();
  }
  // The ack the caller holds next (ackAfterCommit) is this publish's.
  publish_ack_token_ = held_base_token_ + held_acks_.size();
  publish_remote_confirms_ = remote_confirms + node_confirms;
  if (pubrel) write_set_.putAwaitingPubrel(publisher->clientId(), packet_id);
  return Durability::kStored;
}

void Worker::releaseMessage(session::OutboundMessage& out) {
  if (out.stored_id == 0) return;
  if (out.stored_record && node_.messageRefs().release(out.stored_id)) {
    write_set_.deleteMessage(out.stored_id);
  }
  out.stored_id = 0;
  out.stored_record = false;
  out.queue_entry_written = false;
}

void Worker::forgetQueued(session::Session& s, session::OutboundMessage& out) {
  if (out.stored_id == 0) return;
  if (out.queue_entry_written) write_set_.deleteQueueEntry(s.clientId(), out.stored_id);
  releaseMessage(out);
}

void Worker::persistQueued(session::Session& s, session::OutboundMessage& out) {
  if (out.stored_id == 0 || out.queue_entry_written || !s.stored) return;
  const Clocks clocks = iterationClocks();
  write_set_.putQueueEntry(s.clientId(), out.stored_id,
                          queueEntry(*out.message, out.stored_id, out.stored_record, out.qos,
                                     out.retain, out.subscription_ids, clocks));
  if (replicating_ && out.stored_record) {
    // The replicas get it with its message embedded (the mirrored entry names
    // a record of this node's).
    replica_set_.putQueueEntry(s.clientId(), out.stored_id,
                               queueEntry(*out.message, out.stored_id, false, out.qos, out.retain,
                                          out.subscription_ids, clocks));
  }
  out.queue_entry_written = true;
}

void Worker::persistInflight(session::Session& s, uint16_t packet_id,
                             session::InflightMessage& in) {
  if (!s.stored) return;
  session::OutboundMessage& out = in.out;
  if (!in.pubrec_received) {
    if (out.stored_id == 0) return;  // not a durable message
    if (out.queue_entry_written) {
      write_set_.deleteQueueEntry(s.clientId(), out.stored_id);
      out.queue_entry_written = false;
    }
  }
  record_scratch_.clear();
  appendInflightRecord(record_scratch_, packet_id, in, iterationClocks());
  if (journal_ != nullptr && (!in.stored || in.journal_segment != 0)) {
    // New records go to the journal; one already moved to the store stays there.
    const uint32_t segment = journal_->put(s.id(), s.clientId(), in.sequence, record_scratch_);
    if (in.journal_segment != 0) journal_->release(in.journal_segment);
    in.journal_segment = segment;
    if (replicating_) {
      if (out.stored_record && !in.pubrec_received) {
        replicateInflight(s, packet_id, in);  // with its message embedded
      } else {
        replica_set_.putInflightBytes(s.clientId(), in.sequence, record_scratch_);
      }
    }
  } else {
    write_set_.putInflightBytes(s.clientId(), in.sequence, record_scratch_);
    // (Mirrored as written; one that names a message record is written again
    // with its message embedded.)
    if (replicating_ && out.stored_record && !in.pubrec_received) replicateInflight(s, packet_id, in);
  }
  in.stored = true;
  if (in.pubrec_received) releaseMessage(out);
}

namespace {

// Extends the run [*from, *to) of completed sequences by `sequence`. False when
// `sequence` does not continue it: the caller writes the run and starts anew.
bool extendRun(uint64_t* from, uint64_t* to, uint64_t sequence) {
  if (*to == 0) {
    *from = sequence;
    *to = sequence + 1;
    return true;
  }
  if (sequence != *to) return false;
  ++*to;
  return true;
}

}  // namespace

void Worker::forgetInflight(session::Session& s, uint16_t packet_id, session::InflightMessage& in) {
  if (in.stored) {
    // QoS 1 acks come in send order (§4.6): extend this iteration's run, which
    // becomes one range delete / Done operation (flushInflightDone), instead of
    // one per message.
    if (s.inflight_done_to == 0 && s.journal_done_to == 0) completed_inflight_.push_back(s.id());
    if (in.journal_segment != 0) {
      journal_->release(in.journal_segment);
      in.journal_segment = 0;
      if (!extendRun(&s.journal_done_from, &s.journal_done_to, in.sequence)) {
        journal_->done(s.id(), s.journal_done_from, s.journal_done_to);
        replicateInflightDone(s, s.journal_done_from, s.journal_done_to);
        s.journal_done_from = in.sequence;
        s.journal_done_to = in.sequence + 1;
      }
    } else if (!extendRun(&s.inflight_done_from, &s.inflight_done_to, in.sequence)) {
      write_set_.deleteInflightRange(s.clientId(), s.inflight_done_from, s.inflight_done_to);
      s.inflight_done_from = in.sequence;
      s.inflight_done_to = in.sequence + 1;
    }
  }
  in.stored = false;
  releaseMessage(in.out);
}

void Worker::flushInflightDone() {
  for (uint64_t id : completed_inflight_) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) continue;  // ended: its records went with it
    session::Session& s = *it->second;
    if (s.stored) {
      if (s.inflight_done_to != 0) {
        write_set_.deleteInflightRange(s.clientId(), s.inflight_done_from, s.inflight_done_to);
      }
      if (s.journal_done_to != 0) {
        journal_->done(s.id(), s.journal_done_from, s.journal_done_to);
        replicateInflightDone(s, s.journal_done_from, s.journal_done_to);
      }
    }
    s.inflight_done_from = s.inflight_done_to = 0;
    s.journal_done_from = s.journal_done_to = 0;
  }
  completed_inflight_.clear();
}

void Worker::maintainJournal() {
  const uint32_t evict = journal_->evictBefore();
  if (evict != 0 && loop_.now() >= next_evict_ms_) {
    // Records still inflight after about two segments (a client that does not
    // acknowledge): into the store, where they do not hold the journal's files.
    storage::WriteSet moved;
    std::vector<session::InflightMessage*> entries;
    for (auto& [id, s] : sessions_) {
      for (auto& [pid, in] : s->inflight) {
        if (in.journal_segment == 0 || in.journal_segment > evict) continue;
        record_scratch_.clear();
        appendInflightRecord(record_scratch_, pid, in, iterationClocks());
        moved.putInflightBytes(s->clientId(), in.sequence, record_scratch_);
        entries.push_back(&in);
      }
    }
    absl::Status st = moved.empty() ? absl::OkStatus() : node_.store()->commit(std::move(moved));
    if (st.ok()) {
      for (session::InflightMessage* in : entries) in->journal_segment = 0;
      stats_.journal_records_moved.add(entries.size());
      // Everything those segments still held was in `entries`.
      journal_->releaseThrough(evict);
    } else {
      next_evict_ms_ = loop_.now() + 1000;
      base::logger("storage").warn("cannot move {} inflight records from the journal into the "
                                   "store (retrying in 1 s): {}",
                                   entries.size(), base::toStd(st.message()));
    }
  }
  journal_->collect();
}

void Worker::forgetAwaitingPubrel(session::Session& s, uint16_t packet_id) {
  if (s.stored) write_set_.deleteAwaitingPubrel(s.clientId(), packet_id);
}

void Worker::refillBacklog(session::Session& s) {
  static constexpr size_t kChunk = 256;
  if (s.disk_backlog.empty() || node_.store() == nullptr) return;
  auto entries = node_.store()->readQueue(s.clientId(), s.disk_backlog.next_sequence, kChunk);
  if (!entries.ok()) {
    base::logger("storage").error("cannot read the queue of '{}': {}", s.clientId(),
                                  base::toStd(entries.status().message()));
    return;
  }
  const Clocks clocks = iterationClocks();
  const uint64_t end = node_.messageIds().firstOfRun();
  bool exhausted = entries->size() < kChunk;
  for (storage::QueuedMessage& q : *entries) {
    if (q.sequence >= end) {  // queued during this run: already in memory
      exhausted = true;
      break;
    }
    s.disk_backlog.next_sequence = q.sequence + 1;
    if (s.disk_backlog.count > 0) --s.disk_backlog.count;
    s.disk_backlog.bytes -= std::min<uint64_t>(s.disk_backlog.bytes, q.entry.message_bytes());
    s.queued_bytes -= std::min<size_t>(s.queued_bytes, q.entry.message_bytes());
    if (q.state != storage::QueuedMessage::State::kOk) {
      // Expired (not counted as a reference at load) or lost: just the entry goes.
      write_set_.deleteQueueEntry(s.clientId(), q.sequence);
      stats_.drop(q.state == storage::QueuedMessage::State::kExpired
                      ? handlers::DropReason::kExpired
                      : handlers::DropReason::kStoreMissing);
      continue;
    }
    session::OutboundMessage out;
    out.message = fromMessageRecord(q.message, clocks);
    out.qos = static_cast<uint8_t>(q.entry.qos());
    out.retain = q.entry.retain();
    for (uint32_t sid : q.entry.subscription_ids()) out.subscription_ids.push_back(sid);
    out.stored_id = q.sequence;
    out.stored_record = !q.embedded;
    out.queue_entry_written = true;
    s.queued_bytes += out.message->topic.size() + out.message->payload.size();
    s.backlog.push_back(std::move(out));
  }
  if (exhausted) {
    s.queued_bytes -= std::min<size_t>(s.queued_bytes, s.disk_backlog.bytes);
    s.disk_backlog = session::DiskBacklog{};
  }
}

}  // namespace gannet::server
