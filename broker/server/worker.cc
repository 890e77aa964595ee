#include "broker/server/worker.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/strings.h"
#include "broker/handlers/delivery.h"
#include "broker/server/node.h"
#include "broker/server/records.h"
#include "storage/session_store.h"

namespace gannet::server {

using handlers::Client;

namespace {
constexpr int64_t kTickMs = 250;
}

Worker::Worker(Node& node, uint32_t index) : node_(node), index_(index) {}

Worker::~Worker() {
  clients_.clear();
  sessions_.clear();
}

absl::Status Worker::init() {
  auto s = loop_.init();
  if (!s.ok()) return s;
  outgoing_.resize(node_.workerCount());
  loop_.setWakeHandler([this] { drainInbox(); });
  loop_.addIterationEndHook([this] { onIterationEnd(); });
  loop_.setTicker(kTickMs, [this] { onTick(); });
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> Worker::listen(const net::HostPort& addr) {
  listener_ = std::make_unique<net::Listener>(
      loop_, [this](int fd, std::string peer) { onAccept(fd, std::move(peer)); });
  return listener_->start(addr);
}

void Worker::start() {
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
    if (listener_) listener_->stop();
  });
  loop_.stop();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

const handlers::BrokerConfig& Worker::config() const { return node_.config(); }
router::TopicRouter& Worker::router() { return node_.router(); }
router::RetainedIndex& Worker::retained() { return node_.retained(); }

void Worker::onAccept(int fd, std::string peer) {
  stats_.connections_accepted.add();
  addClient(fd, std::move(peer), {});
}

void Worker::addClient(int fd, std::string peer, std::string input) {
  auto conn = std::make_unique<net::Connection>(loop_, flush_list_, fd, std::move(peer));
  net::Connection* c = conn.get();
  auto client = std::make_unique<Client>(*this, std::move(conn));
  Client* raw = client.get();
  clients_.emplace(raw, std::move(client));
  auto s = c->start(std::move(input));
  if (!s.ok()) {
    base::logger("net").warn("cannot register connection: {}", s.message());
    c->closeNow("registration failed");
  }
}

void Worker::adopt(int fd, std::string peer, std::string input) {
  loop_.post([this, fd, peer = std::move(peer), input = std::move(input)]() mutable {
    addClient(fd, std::move(peer), std::move(input));
  });
}

void Worker::clientClosed(Client& client) { closed_clients_.push_back(&client); }

void Worker::migrate(Client& client, uint32_t worker) { migrating_clients_.push_back(&client); }

size_t Worker::match(const router::MessagePtr& message) {
  match_scratch_.clear();
  node_.router().match(message->topic, message->publisher_session_id, match_scratch_);
  return match_scratch_.size();
}

void Worker::deliverMatched(const router::MessagePtr& message) {
  for (router::Delivery& d : match_scratch_) {
    session::OutboundMessage out = handlers::outboundFor(message, d);
    if (d.destination.worker == index_) {
      deliverLocal(d.destination.session_id, std::move(out));
    } else if (d.destination.worker < outgoing_.size()) {
      outgoing_[d.destination.worker].push_back({d.destination.session_id, std::move(out)});
    }
  }
  match_scratch_.clear();
}

void Worker::deliverLocal(uint64_t session_id, session::OutboundMessage&& out) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;  // the session ended meanwhile
  handlers::deliver(*this, *it->second, std::move(out));
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
  for (auto& d : batch) deliverLocal(d.session_id, std::move(d.out));
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
  if (s.stored) {
    write_set_.deleteSession(s.clientId());  // with its subscriptions
    s.stored = false;
  }
  const router::Destination dest{s.id(), index_};
  for (const auto& [filter, opts] : s.subscriptions) node_.router().unsubscribe(filter, dest);
  if (s.will && s.will_due_ms != 0) {
    // §3.1.3.2.2: a delayed will is due at the latest when the session ends.
    codec::Will will = std::move(*s.will);
    s.will.reset();
    handlers::publishWill(*this, will, s.id());
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
  for (Client* c : migrating_clients_) {
    std::string input;
    int fd = c->connection().release(input);
    std::string peer = c->connection().peer();
    node_.worker(c->migrateTo()).adopt(fd, std::move(peer), std::move(input));
    clients_.erase(c);
  }
  migrating_clients_.clear();
  // Group commit, before any output of this iteration is written: a CONNACK or
  // SUBACK never reports state that is not in the store's WAL yet.
  commitWrites();
  for (uint32_t w = 0; w < outgoing_.size(); ++w) {
    if (!outgoing_[w].empty()) {
      node_.worker(w).deliverBatch(std::move(outgoing_[w]));
      outgoing_[w].clear();
    }
  }
  flush_list_.flushAll();
  if (!closed_clients_.empty()) {
    for (Client* c : closed_clients_) clients_.erase(c);
    closed_clients_.clear();
  }
}

void Worker::onTick() {
  const int64_t now = loop_.now();
  const int64_t connect_timeout = config().connect_timeout_ms;
  for (auto& [ptr, c] : clients_) {
    if (c->state() == Client::State::kAwaitConnect) {
      if (now - c->accepted_ms >= connect_timeout) {
        c->disconnect(codec::ReasonCode::kMaximumConnectTime, "no CONNECT in time", true);
      }
    } else if (c->state() == Client::State::kConnected && c->keep_alive > 0) {
      // §3.1.2.10: one and a half times the keep alive.
      if (now - c->last_received_ms >= int64_t{c->keep_alive} * 1500) {
        c->disconnect(codec::ReasonCode::kKeepAliveTimeout, "keep alive timeout", true);
      }
    }
  }
  std::vector<session::Session*> expired;
  for (auto& [id, s] : sessions_) {
    if (s->client != nullptr) continue;
    if (s->will && s->will_due_ms != 0 && now >= s->will_due_ms) {
      codec::Will will = std::move(*s->will);
      s->will.reset();
      s->will_due_ms = 0;
      handlers::publishWill(*this, will, s->id());
      persistSession(*s);  // the will is gone
    }
    if (s->expires_at_ms != 0 && now >= s->expires_at_ms) expired.push_back(s.get());
  }
  for (session::Session* s : expired) endSession(*s);
  if (index_ == 0) {
    node_.checkDiskUse(now);
    node_.publishSys(*this);
  }
}

// --- durable state ---

void Worker::persistSession(session::Session& s) {
  if (node_.store() == nullptr) return;
  if (s.expiry_interval == 0) {
    // A clean session, or a stored one whose new connection asked for expiry 0:
    // it ends with its connection and must not be found after a restart.
    if (s.stored) {
      write_set_.deleteSession(s.clientId());
      s.stored = false;
    }
    return;
  }
  const Clocks clocks{loop_.now(), Clocks::now().wall_ms};
  int64_t last_seen = 0;  // connected
  if (s.client == nullptr) {
    // Offline: when it went offline, which is what its expiry counts from (not
    // now: a later update, e.g. its delayed will going out, must not extend it).
    last_seen = s.expires_at_ms != 0
                    ? clocks.toWall(s.expires_at_ms - int64_t{s.expiry_interval} * 1000)
                    : clocks.wall_ms;
  }
  write_set_.putSession(toSessionRecord(s, clocks, last_seen));
  if (!s.stored) {
    // First write of a session that already has subscriptions (a session taken
    // over by a connection with a longer expiry): store them too.
    for (const auto& [filter, options] : s.subscriptions) {
      write_set_.putSubscription(s.clientId(), filter, toSubscriptionRecord(options));
    }
    s.stored = true;
  }
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
  const Clocks clocks{loop_.now(), Clocks::now().wall_ms};
  write_set_.putRetained(message->topic, toMessageRecord(*message, clocks));
}

void Worker::forgetRetained(const std::string& topic) {
  if (node_.store() == nullptr) return;
  write_set_.deleteRetained(topic);
}

void Worker::commitWrites() {
  if (write_set_.empty()) return;
  const size_t ops = write_set_.operationCount();
  absl::Status s = node_.store()->commit(std::move(write_set_));
  write_set_ = storage::WriteSet();
  if (!s.ok()) {
    // Not yet surfaced to clients (sessions, subscriptions and retained messages
    // only in this step): the acks already written are not taken back.
    base::logger("storage").error("commit of {} changes failed: {}", ops, base::toStd(s.message()));
  }
}

}  // namespace gannet::server
