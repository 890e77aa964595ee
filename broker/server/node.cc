#include "broker/server/node.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <prometheus/exposer.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/clock.h"
#include "base/logging.h"
#include "base/strings.h"
#include "base/status_macros.h"
#include "broker/handlers/delivery.h"
#include "broker/net/address.h"
#include "broker/net/websocket.h"
#include "broker/server/metrics_collector.h"
#include "broker/server/node_spool.h"
#include "broker/server/replica_stores.h"
#include "broker/server/replicator.h"
#include "broker/server/records.h"
#include "cluster/hlc.h"
#include "storage/crc32c.h"
#include "storage/journal.h"
#include "storage/rocksdb/rocksdb_session_store.h"

namespace gannet::server {

Node::Node(NodeOptions options) : options_(std::move(options)) {}

Node::~Node() {
  stop();
  wait();
  router_.setListener(nullptr);
  exposer_.reset();
  workers_.clear();
  store_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::Status Node::prepareDataDir() {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data directory '", options_.data_dir, "': ", ec.message()));
  }
  std::string lock_path = absl::StrCat(options_.data_dir, "/gannet.lock");
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data directory '", options_.data_dir, "' is not writable: ", strerror(errno)));
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data directory '", options_.data_dir,
        "' is in use by another gannet process (lock held on ", lock_path, ")"));
  }
  std::string pid = absl::StrCat(getpid(), "\n");
  [[maybe_unused]] int r = ::ftruncate(lock_fd_, 0);
  [[maybe_unused]] ssize_t w = ::pwrite(lock_fd_, pid.data(), pid.size(), 0);
  return absl::OkStatus();
}

absl::Status Node::startClientListeners(const net::HostPort& mqtt_addr) {
  if (!options_.mqtts_listen.empty() || !options_.wss_listen.empty()) {
    auto tls = net::TlsContext::load(options_.tls);
    if (!tls.ok()) return tls.status();
    tls_.store(*tls);
    base::logger("node").info("TLS certificate {} valid until {}{}", options_.tls.cert_file,
                              (*tls)->notAfter(),
                              (*tls)->verifiesClients() ? "; client certificates required" : "");
  }
  auto tls_layer = [this]() -> std::unique_ptr<net::StreamLayer> {
    return std::make_unique<net::TlsLayer>(tls_.load());
  };
  struct Spec {
    std::string name;
    std::string address;
    Worker::LayerFactory layers;
  };
  std::vector<Spec> specs;
  specs.push_back({"mqtt", options_.mqtt_listen, {}});
  if (!options_.mqtts_listen.empty()) {
    specs.push_back({"mqtts", options_.mqtts_listen, [tls_layer] {
                       std::vector<std::unique_ptr<net::StreamLayer>> v;
                       v.push_back(tls_layer());
                       return v;
                     }});
  }
  // WebSocket messages carry MQTT packets: the MQTT packet limit (checked above
  // the layer) plus room for the packets of one flush.
  net::WebSocketOptions ws;
  ws.max_message_bytes = std::max<uint64_t>(ws.max_message_bytes, uint64_t{config().max_packet_size} + 5);
  if (!options_.ws_listen.empty()) {
    specs.push_back({"ws", options_.ws_listen, [ws] {
                       std::vector<std::unique_ptr<net::StreamLayer>> v;
                       v.push_back(std::make_unique<net::WebSocketLayer>(ws));
                       return v;
                     }});
  }
  if (!options_.wss_listen.empty()) {
    specs.push_back({"wss", options_.wss_listen, [tls_layer, ws] {
                       std::vector<std::unique_ptr<net::StreamLayer>> v;
                       v.push_back(tls_layer());
                       v.push_back(std::make_unique<net::WebSocketLayer>(ws));
                       return v;
                     }});
  }
  const uint32_t workers = static_cast<uint32_t>(workers_.size());
  for (const Spec& spec : specs) {
    auto addr = spec.name == "mqtt" ? absl::StatusOr<net::HostPort>(mqtt_addr)
                                    : net::parseHostPort(spec.address);
    if (!addr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", spec.name, "_listen: ", addr.status().message()));
    }
    // The first worker binds (port 0 picks a free port); the others share the port.
    net::HostPort bind = *addr;
    for (auto& w : workers_) {
      auto port = w->listen(bind, spec.name, spec.layers);
      if (!port.ok()) return port.status();
      bind.port = *port;
    }
    listener_ports_.emplace_back(spec.name, bind.port);
    if (spec.name == "mqtt") mqtt_port_ = bind.port;
    base::logger("node").info("{} listener on {}:{} ({} workers)", spec.name,
                              addr->host.empty() ? "0.0.0.0" : addr->host, bind.port, workers);
  }
  return absl::OkStatus();
}

uint16_t Node::listenerPort(const std::string& name) const {
  for (const auto& [n, port] : listener_ports_) {
    if (n == name) return port;
  }
  return 0;
}

void Node::waitForWorkers() {
  // Each worker runs its posted tasks in order: once this one ran, the ones
  // posted before it have too.
  std::vector<std::future<void>> done;
  for (auto& w : workers_) {
    auto p = std::make_shared<std::promise<void>>();
    done.push_back(p->get_future());
    w->post([p] { p->set_value(); });
  }
  for (auto& f : done) f.wait_for(std::chrono::seconds(10));
}

absl::Status Node::reload() {
  std::vector<std::string> errors;
  auto& log = base::logger("node");
  if (tls_.load() != nullptr) {
    auto tls = net::TlsContext::load(options_.tls);
    if (tls.ok()) {
      tls_.store(*tls);
      log.info("reloaded TLS certificate {} (valid until {})", options_.tls.cert_file,
               (*tls)->notAfter());
    } else {
      errors.emplace_back(tls.status().message());
    }
  }
  if (!options_.password_file.empty()) {
    auto passwords = auth::PasswordFile::load(options_.password_file);
    if (passwords.ok()) {
      for (auto& w : workers_) w->setPasswords(*passwords);
      waitForWorkers();
      log.info("reloaded password file {} ({} users)", options_.password_file, (*passwords)->size());
    } else {
      errors.emplace_back(passwords.status().message());
    }
  }
  if (!options_.acl_file.empty()) {
    auto acl = auth::Acl::load(options_.acl_file);
    if (acl.ok()) {
      for (auto& w : workers_) w->setAcl(*acl);
      waitForWorkers();
      log.info("reloaded ACL file {}", options_.acl_file);
    } else {
      errors.emplace_back(acl.status().message());
    }
  }
  if (errors.empty()) return absl::OkStatus();
  for (const auto& e : errors) log.error("reload: {} (the previous one stays in use)", e);
  return absl::InvalidArgumentError(absl::StrJoin(errors, "; "));
}

absl::Status Node::start() {
  started_ms_ = base::monotonicMs();
  // Handover ids must not repeat across restarts: a peer may still hold one.
  next_handover_id_ = static_cast<uint64_t>(Clocks::now().wall_ms) << 16;
  auto addr = net::parseHostPort(options_.mqtt_listen);
  if (!addr.ok()) return addr.status();
  absl::Status s = prepareDataDir();
  if (!s.ok()) return s;
  RETURN_IF_ERROR(openStore());

  uint32_t n = options_.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (uint32_t i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(*this, i));
  for (auto& w : workers_) {
    s = w->init();
    if (!s.ok()) return s;
  }
  RETURN_IF_ERROR(createCluster());
  RETURN_IF_ERROR(loadStore());
  for (auto& w : workers_) {
    storage::JournalOptions jo;
    jo.dir = journalDir();
    jo.writer = w->workerIndex();
    jo.segment_bytes = options_.journal_segment_bytes;
    jo.sync = options_.fsync;
    auto journal = storage::Journal::open(jo);
    if (!journal.ok()) return journal.status();
    w->setJournal(std::move(*journal));
  }
  RETURN_IF_ERROR(startClientListeners(*addr));
  s = startMetrics();
  if (!s.ok()) return s;
  RETURN_IF_ERROR(startCluster());
  for (auto& w : workers_) w->start();
  return absl::OkStatus();
}

absl::Status Node::openStore() {
  storage::StoreOptions so;
  so.data_dir = absl::StrCat(options_.data_dir, "/store");
  so.sync = options_.fsync;
  auto store = storage::openRocksDbSessionStore(so);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  return recoverJournal();
}

std::string Node::journalDir() const { return absl::StrCat(options_.data_dir, "/journal"); }

absl::Status Node::recoverJournal() {
  // Inflight records the workers' journals held when the node stopped go into
  // the store (one batch), then the files go: the store is the one place
  // load() reads, and each run starts with empty journals.
  auto recovered = storage::recoverJournal(journalDir());
  if (!recovered.ok()) return recovered.status();
  if (recovered->files == 0) return absl::OkStatus();
  storage::WriteSet moved;
  for (const storage::RecoveredInflight& e : recovered->entries) {
    records::InflightRecord record;
    if (!record.ParseFromString(e.record)) {
      return absl::DataLossError(absl::StrCat("journal in ", journalDir(),
                                              ": unreadable inflight record of client '",
                                              e.client_id, "' sequence ", e.sequence));
    }
    moved.putInflightBytes(e.client_id, e.sequence, e.record);  // checked, stored as is
  }
  if (!moved.empty()) RETURN_IF_ERROR(store_->commit(std::move(moved)));
  RETURN_IF_ERROR(storage::removeJournalFiles(journalDir()));
  base::logger("node").info("journal: {} inflight records from {} files ({} frames) moved into the "
                            "store", recovered->entries.size(), recovered->files,
                            recovered->frames);
  return absl::OkStatus();
}

namespace {

// Collects what the store holds; Node::loadStore() then places it.
struct Loaded : storage::LoadVisitor {
  struct Inflight {
    uint16_t packet_id;
    records::InflightRecord record;
    std::optional<records::MessageRecord> message;
  };
  records::MetaRecord meta;
  std::vector<records::SessionRecord> sessions;
  absl::flat_hash_map<std::string, std::vector<std::pair<std::string, records::SubscriptionRecord>>>
      subscriptions;
  absl::flat_hash_map<std::string, std::vector<Inflight>> inflight;
  absl::flat_hash_map<std::string, std::vector<uint16_t>> awaiting_pubrel;
  absl::flat_hash_map<std::string, storage::QueueSummary> queues;
  absl::flat_hash_map<uint64_t, uint32_t> references;
  std::vector<records::MessageRecord> retained;

  void onMeta(records::MetaRecord m) override { meta = std::move(m); }
  void onSession(records::SessionRecord session) override {
    sessions.push_back(std::move(session));
  }
  void onSubscription(std::string_view client_id, std::string_view filter,
                      records::SubscriptionRecord subscription) override {
    subscriptions[std::string(client_id)].emplace_back(std::string(filter), std::move(subscription));
  }
  void onInflight(std::string_view client_id, uint16_t packet_id, records::InflightRecord record,
                  const records::MessageRecord* message) override {
    Inflight in{packet_id, std::move(record), std::nullopt};
    if (message != nullptr) in.message = *message;
    inflight[std::string(client_id)].push_back(std::move(in));
  }
  void onAwaitingPubrel(std::string_view client_id, uint16_t packet_id) override {
    awaiting_pubrel[std::string(client_id)].push_back(packet_id);
  }
  void onRetained(std::string_view topic, records::MessageRecord message) override {
    if (message.topic().empty()) message.set_topic(std::string(topic));
    retained.push_back(std::move(message));
  }
  void onQueue(std::string_view client_id, const storage::QueueSummary& summary) override {
    queues[std::string(client_id)] = summary;
  }
  void onMessageReferences(uint64_t message_id, uint32_t references_count) override {
    references[message_id] = references_count;
  }
  void onOwnership(std::string_view client_id, records::OwnershipRecord r) override {
    ownership.emplace_back(std::string(client_id),
                           cluster::OwnerRecord{r.promised(), r.accepted(), r.owner()});
  }
  std::vector<std::pair<std::string, cluster::OwnerRecord>> ownership;
};

// The stored queue and inflight entries of a session that is not restored (it
// expired while the node was down, or its record is gone): they are deleted with
// the session, and the references they held are dropped from `loaded`.
absl::Status dropStoredReferences(storage::SessionStore& store, const std::string& client_id,
                                  Loaded& loaded) {
  auto unref = [&](uint64_t id) {
    auto it = loaded.references.find(id);
    if (it != loaded.references.end() && it->second > 0) --it->second;
  };
  if (auto it = loaded.inflight.find(client_id); it != loaded.inflight.end()) {
    for (const auto& in : it->second) {
      if (in.record.body_case() == records::InflightRecord::kMessageId) unref(in.record.message_id());
    }
    loaded.inflight.erase(it);
  }
  if (loaded.queues.erase(client_id) == 0) return absl::OkStatus();
  uint64_t from = 0;
  while (true) {
    auto entries = store.readQueue(client_id, from, 1024);
    if (!entries.ok()) return entries.status();
    for (const storage::QueuedMessage& q : *entries) {
      if (q.state != storage::QueuedMessage::State::kExpired) unref(q.entry.message_id());
      from = q.sequence + 1;
    }
    if (entries->size() < 1024) return absl::OkStatus();
  }
}

}  // namespace

absl::Status Node::loadStore() {
  Loaded loaded;
  auto stats = store_->load(loaded);
  if (!stats.ok()) return stats.status();
  message_ids_ = std::make_unique<MessageIds>(store_.get(), loaded.meta);
  const Clocks clocks = Clocks::now();
  const int64_t now_wall = clocks.wall_ms;
  storage::WriteSet fixups;  // expired sessions deleted, crash-time sessions marked offline
  std::vector<codec::Will> orphan_wills;
  size_t restored = 0, expired = 0, subscriptions = 0, inflight = 0, queued = 0;
  absl::flat_hash_set<std::string> restored_ids;

  for (records::SessionRecord& rec : loaded.sessions) {
    const std::string& client_id = rec.client_id();
    const uint32_t expiry = rec.session_expiry_interval();
    // A session that was connected when the node stopped (last_seen 0: a crash or
    // kill -9) counts as disconnected now, at the restart.
    const bool was_connected = rec.last_seen_ms() == 0;
    const int64_t last_seen = was_connected ? now_wall : rec.last_seen_ms();
    std::optional<codec::Will> will;
    int64_t will_due_wall = 0;
    if (rec.has_will()) {
      if (was_connected) {
        // §3.1.3.2.2: the will goes at the earlier of its delay and the session's end.
        uint32_t wait = std::min(rec.will().will_delay_interval(), expiry);
        will_due_wall = now_wall + int64_t{wait} * 1000;
      } else {
        will_due_wall = rec.will_due_ms();
      }
      if (will_due_wall != 0) will = fromWillRecord(rec.will());
    }
    if (expiry == 0 ||
        (expiry != session::kNeverExpires && last_seen + int64_t{expiry} * 1000 <= now_wall)) {
      // Expired while the node was down: gone with everything under it. A pending
      // will was due by then at the latest, so it goes out now.
      fixups.deleteSession(client_id);
      RETURN_IF_ERROR(dropStoredReferences(*store_, client_id, loaded));
      if (will) orphan_wills.push_back(std::move(*will));
      ++expired;
      continue;
    }
    const uint32_t w = homeWorker(client_id);
    session::Session& s = workers_[w]->createSession(client_id);
    restored_ids.insert(client_id);
    s.version = static_cast<codec::ProtocolVersion>(rec.protocol_version());
    if (rec.has_username()) s.username = rec.username();
    s.expiry_interval = expiry;
    s.expires_at_ms = expiry == session::kNeverExpires
                          ? 0
                          : clocks.toMono(last_seen + int64_t{expiry} * 1000);
    if (will) {
      s.will = std::make_unique<codec::Will>(std::move(*will));
      // Never 0 (= none): a will already due is published at the first tick.
      s.will_due_ms = std::max<int64_t>(1, clocks.toMono(will_due_wall));
    }
    const router::Destination dest{s.id(), w};
    if (auto it = loaded.subscriptions.find(client_id); it != loaded.subscriptions.end()) {
      for (auto& [filter, sub] : it->second) {
        router::SubscriptionOptions options = fromSubscriptionRecord(sub);
        options.durable = true;
        router_.subscribe(filter, dest, options);
        s.subscriptions[filter] = options;
        ++subscriptions;
      }
    }
    s.stored = true;
    durable_sessions_.add(s.id(), std::make_shared<const std::string>(client_id));
    if (auto it = loaded.inflight.find(client_id); it != loaded.inflight.end()) {
      for (Loaded::Inflight& li : it->second) {
        const records::InflightRecord& r = li.record;
        session::InflightMessage in;
        in.out.qos = static_cast<uint8_t>(r.qos());
        in.out.retain = r.retain();
        for (uint32_t sid : r.subscription_ids()) in.out.subscription_ids.push_back(sid);
        in.sequence = r.sequence();
        in.pubrec_received = r.pubrec_received();
        in.stored = true;
        if (!in.pubrec_received) {
          if (!li.message) {  // its message is gone: nothing to resend
            fixups.deleteInflight(client_id, r.sequence());
            continue;
          }
          in.out.message = fromMessageRecord(*li.message, clocks);
          if (r.body_case() == records::InflightRecord::kMessageId) {
            in.out.stored_id = r.message_id();
            in.out.stored_record = true;
          }
        }
        s.next_sequence = std::max(s.next_sequence, in.sequence + 1);
        s.inflight.emplace(li.packet_id, std::move(in));
        ++inflight;
      }
      loaded.inflight.erase(it);
    }
    if (auto it = loaded.awaiting_pubrel.find(client_id); it != loaded.awaiting_pubrel.end()) {
      for (uint16_t pid : it->second) s.awaiting_pubrel.insert(pid);
    }
    if (auto it = loaded.queues.find(client_id); it != loaded.queues.end()) {
      s.disk_backlog.next_sequence = it->second.first_sequence;
      s.disk_backlog.count = it->second.count;
      s.disk_backlog.bytes = it->second.bytes;
      s.queued_bytes = it->second.bytes;
      queued += it->second.count;
      loaded.queues.erase(it);
    }
    // Its expiry now counts from this restart: say so on disk, or a second crash
    // would count it from the next restart again.
    if (was_connected) fixups.putSession(toSessionRecord(s, clocks, now_wall));
    ++restored;
  }

  // Queues and inflight windows whose session record is gone (a crash between
  // two workers' batches can leave some): delete them and their references.
  // (Restored sessions' entries were taken out of `loaded` above.)
  absl::flat_hash_set<std::string> strays;
  for (const auto& [client_id, summary] : loaded.queues) strays.insert(client_id);
  for (const auto& [client_id, entries] : loaded.inflight) strays.insert(client_id);
  for (const auto& [client_id, ids] : loaded.awaiting_pubrel) {
    if (!restored_ids.contains(client_id)) strays.insert(client_id);
  }
  for (const std::string& client_id : strays) {
    RETURN_IF_ERROR(dropStoredReferences(*store_, client_id, loaded));
    fixups.deleteSession(client_id);
  }
  for (const auto& [id, count] : loaded.references) {
    if (count >= 2) {
      message_refs_.set(id, count);
    } else if (count == 0) {
      fixups.deleteMessage(id);
    }
  }

  if (cluster_ != nullptr) {
    // This node's acceptor state (ownership by consensus), written through
    // before any answer leaves.
    cluster_->loadOwnership(
        std::move(loaded.ownership),
        [this](const std::vector<std::pair<std::string, cluster::OwnerRecord>>& changed) {
          storage::WriteSet ws;
          for (const auto& [key, r] : changed) {
            records::OwnershipRecord rec;
            rec.set_promised(r.promised);
            rec.set_accepted(r.accepted);
            rec.set_owner(r.owner);
            ws.putOwnership(key, rec);
          }
          if (absl::Status s = store_->commit(std::move(ws)); !s.ok()) {
            base::logger("cluster").error("cannot store ownership registers: {}",
                                          base::toStd(s.message()));
          }
        });
  }
  if (cluster_host_ != nullptr && previous_epoch_ != 0 && !restored_ids.empty()) {
    // Replicated before this restart: another node may have taken these over
    // while this one was down. They wait (and so does replication) until a
    // peer says (docs/architecture.md, "Node crash").
    std::lock_guard lock(reconcile_mu_);
    reconciling_ = true;
    unverified_ = restored_ids;
    if (replicator_ != nullptr) replicator_->setHeld(true);
    base::logger("cluster").info("{} restored sessions wait for the peers' word on epoch {}",
                                 restored_ids.size(), previous_epoch_);
  }

  size_t retained = 0;
  for (const records::MessageRecord& rec : loaded.retained) {
    if (rec.expiry_ms() != 0 && static_cast<int64_t>(rec.expiry_ms()) <= now_wall) {
      fixups.deleteRetained(rec.topic());
      continue;
    }
    router::MessagePtr m = fromMessageRecord(rec, clocks);
    if (cluster_host_ != nullptr) {
      if (m->hlc == 0) {
        // Stored before this node was in a cluster: stamped with when it arrived.
        auto stamped = std::make_shared<router::Message>(*m);
        stamped->hlc = static_cast<uint64_t>(std::max<int64_t>(0, rec.received_ms())) << 16;
        stamped->origin_node = options_.node_id;
        m = std::move(stamped);
      }
      noteRetained(*m);
    }
    retained_.set(std::move(m));
    ++retained;
  }
  if (!fixups.empty()) RETURN_IF_ERROR(store_->commit(std::move(fixups)));
  if (!orphan_wills.empty()) {
    Worker* w0 = workers_[0].get();
    w0->post([w0, wills = std::move(orphan_wills)] {
      for (const codec::Will& will : wills) handlers::publishWill(*w0, will, 0);
    });
  }
  base::logger("node").info(
      "store {}/store: {} sessions restored ({} expired and deleted), {} subscriptions, {} "
      "inflight and {} queued messages, {} shared message records, {} retained messages",
      options_.data_dir, restored, expired, subscriptions, inflight, queued,
      stats->messages - stats->orphan_messages_deleted, retained);
  return absl::OkStatus();
}

// The cluster's view of this node, and the router's of the cluster: local
// subscriptions become routes announced to the peers; the peers' routes become
// remote destinations in the router (one per node, {node id, kRemoteWorker}).
class Node::ClusterHostImpl final : public cluster::ClusterHost, public router::RouteListener {
 public:
  explicit ClusterHostImpl(Node& node) : node_(node) {}
  uint64_t connections() override { return node_.totals().connections_current; }
  uint64_t sessions() override { return node_.totals().sessions; }
  bool draining() override { return node_.draining(); }
  bool startDrain(uint64_t* sessions) override {
    *sessions = node_.totals().sessions;
    return node_.requestDrain();
  }
  absl::StatusOr<cluster::KickOutcome> kick(const std::string& client_id,
                                            bool end_session) override {
    return node_.kick(client_id, end_session);
  }

  void onSessionPull(uint32_t node, std::string client_id) override {
    const uint32_t home = node_.registry().claim(client_id, node_.homeWorker(client_id));
    Worker& w = node_.worker(home);
    w.post([&w, node, client_id = std::move(client_id)] { w.pullSession(node, client_id); });
  }

  void onRoutes(uint32_t node, bool snapshot, std::vector<std::string> add,
                std::vector<std::string> remove) override {
    const router::Destination dest{node, router::kRemoteWorker};
    router::SubscriptionOptions options;
    options.qos = 2;  // forwarded with the publish QoS; the receiving node applies its grants
    std::lock_guard lock(mu_);
    auto& filters = remote_[node];
    if (snapshot) {
      absl::flat_hash_set<std::string> next(add.begin(), add.end());
      for (const std::string& f : filters) {
        if (!next.contains(f)) node_.router().unsubscribe(f, dest);
      }
      for (const std::string& f : next) {
        if (!filters.contains(f)) node_.router().subscribe(f, dest, options);
      }
      filters = std::move(next);
      return;
    }
    for (std::string& f : add) {
      if (filters.insert(f).second) node_.router().subscribe(f, dest, options);
    }
    for (const std::string& f : remove) {
      if (filters.erase(f) > 0) node_.router().unsubscribe(f, dest);
    }
  }

  void onForward(uint32_t node, std::string packed, uint32_t on_behalf_of) override {
    // One worker per sending node: its messages stay in order.
    Worker& w = node_.worker(node % node_.workerCount());
    w.post([&w, node, on_behalf_of, packed = std::move(packed)]() mutable {
      w.deliverForwarded(node, std::move(packed), on_behalf_of);
    });
  }

  void onForwardAck(uint32_t worker, std::vector<uint64_t> tokens,
                    cluster::ForwardStatus status) override {
    if (worker == NodeSpool::kAckWorker) {
      if (node_.spool_ != nullptr) node_.spool_->onAck(tokens, status == cluster::ForwardStatus::kOk);
      return;
    }
    if (worker >= node_.workerCount()) return;
    absl::Status s;
    if (status == cluster::ForwardStatus::kFull) {
      s = absl::ResourceExhaustedError("the receiving node's disk is full");
    } else if (status != cluster::ForwardStatus::kOk) {
      s = absl::UnavailableError("the receiving node could not store it, or the link was lost");
    }
    node_.worker(worker).confirmDurable(std::move(tokens), std::move(s));
  }

  void onPeerDead(uint32_t node) override {
    node_.maybePromote(node);
    // Its routes stay while a node holding its replica takes over its sessions:
    // what matches them meanwhile is kept for it, then goes there.
    if (!node_.keepRoutesOfDead(node)) dropRoutes(node);
  }

  // Filters learnt from node `node` (its routes here), and of them shared ones.
  Node::PeerRoutes routes(uint32_t node) {
    Node::PeerRoutes r;
    r.peer = node;
    std::lock_guard lock(mu_);
    auto it = remote_.find(node);
    if (it == remote_.end()) return r;
    r.filters = it->second.size();
    for (const std::string& f : it->second) r.shared += f.starts_with("$share/") ? 1 : 0;
    return r;
  }

  void dropRoutes(uint32_t node) {
    const router::Destination dest{node, router::kRemoteWorker};
    std::lock_guard lock(mu_);
    auto it = remote_.find(node);
    if (it == remote_.end()) return;
    for (const std::string& f : it->second) node_.router().unsubscribe(f, dest);
    remote_.erase(it);
  }

  std::vector<cluster::ReplicaState> replicaStates() override {
    std::vector<cluster::ReplicaState> out;
    if (node_.replica_stores_ == nullptr) return out;
    for (const ReplicaStores::State& s : node_.replica_stores_->states()) {
      out.push_back({s.owner, s.epoch, s.promoted});
    }
    return out;
  }
  void onPeerReplicas(uint32_t node, std::vector<cluster::ReplicaState> replicas) override {
    node_.onPeerReplicas(node, std::move(replicas));
  }

  void onSessionClaim(uint32_t node, uint64_t request_id, std::string client_id,
                      uint64_t stamp, bool pull) override {
    clock_.observe(stamp);
    const int64_t home = node_.registry().find(client_id);
    if (home < 0) {
      cluster::SessionAnswer answer;
      // In this node's replica of another node's sessions: that node answers
      // the claim itself (SESSION, which the claimer takes) unless it is down,
      // and then the session is taken over here once it is declared dead. The
      // claimer asks again until one of the two happened (a client reconnecting
      // the moment its node crashed must not start empty).
      if (node_.replica_stores_ != nullptr) {
        const uint32_t owner = node_.replica_stores_->ownerHolding(client_id);
        if (owner != 0 && owner != node) answer.kind = cluster::SessionAnswer::Kind::kPending;
      }
      // Else no session, no connect in progress: nothing to hand over.
      if (cluster_ != nullptr) cluster_->answerClaim(node, request_id, std::move(answer));
      return;
    }
    Worker& w = node_.worker(static_cast<uint32_t>(home));
    w.post([&w, node, request_id, client_id = std::move(client_id), stamp, pull] {
      w.onSessionClaim(node, request_id, client_id, stamp, pull);
    });
  }

  void onHandoverDone(std::string client_id, uint64_t handover_id) override {
    const int64_t home = node_.registry().find(client_id);
    if (home < 0) return;
    Worker& w = node_.worker(static_cast<uint32_t>(home));
    w.post([&w, client_id = std::move(client_id), handover_id] {
      w.onHandoverDone(client_id, handover_id);
    });
  }

  void onSessionAppend(uint32_t node, std::string client_id, uint64_t handover_id,
                       std::string transfer) override {
    const uint32_t home = node_.registry().claim(client_id, node_.homeWorker(client_id));
    Worker& w = node_.worker(home);
    w.post([&w, node, client_id = std::move(client_id), handover_id,
            transfer = std::move(transfer)] {
      w.onSessionAppend(node, client_id, handover_id, transfer);
    });
  }

  uint64_t claimStamp() { return clock_.now(); }

  // --- session replication ---
  bool onReplicaBatch(uint32_t node, uint64_t epoch, uint32_t worker, uint64_t sequence,
                      bool snapshot, std::string operations) override {
    absl::Status s = node_.replica_stores_->apply(node, epoch, snapshot, std::move(operations));
    if (!s.ok()) {
      base::logger("cluster").warn("replica batch {} of node {} (worker {}, epoch {}) not stored: {}",
                                   sequence, node, worker, epoch, base::toStd(s.message()));
    }
    return s.ok();
  }
  void onReplicaAck(uint32_t node, uint64_t epoch, uint32_t worker, uint64_t sequence,
                    bool ok) override {
    if (node_.replicator_ != nullptr) node_.replicator_->onAck(node, epoch, worker, sequence, ok);
  }
  void onLinkChanged(uint32_t node, bool up) override {
    if (node_.replicator_ != nullptr) node_.replicator_->onLinkChanged(node, up);
  }

  void onLocalSubscribe(std::string_view filter) override {
    if (cluster_ != nullptr) cluster_->localRouteAdded(filter);
  }
  void onLocalUnsubscribe(std::string_view filter) override {
    if (cluster_ != nullptr) cluster_->localRouteRemoved(filter);
  }
  void setCluster(cluster::ClusterNode* cluster) { cluster_ = cluster; }

  // --- retained messages: last writer wins by (hlc, origin node) ---
  struct Stamp {
    uint64_t hlc = 0;
    uint32_t origin = 0;
    bool cleared = false;
    bool newerThan(const Stamp& o) const { return std::tie(hlc, origin) > std::tie(o.hlc, o.origin); }
  };

  void stamp(router::Message& m) {
    m.hlc = clock_.now();
    m.origin_node = node_.options().node_id;
  }

  // A retained message (or clear) now in this node's index, written here or loaded.
  void noteRetained(const router::Message& m) {
    std::lock_guard lock(retained_mu_);
    Stamp& s = stamps_[m.topic];
    Stamp next{m.hlc, m.origin_node, m.payload.empty()};
    if (next.newerThan(s) || s.hlc == 0) s = next;
    clock_.observe(m.hlc);
  }

  // Sets or clears `m` in the index if it is the newest write of its topic: the
  // decision and the index update under one lock, so that a newer write from
  // another node applied in between is never overwritten by an older one.
  bool applyIfNewest(const router::MessagePtr& m) {
    std::lock_guard lock(retained_mu_);
    return applyLocked(m);
  }

  void replicate(const router::MessagePtr& m) {
    if (m->hlc == 0) return;  // not stamped: not from a client of this node
    cluster::RetainedEntry e = toEntry(*m);
    if (cluster_ != nullptr) cluster_->replicateRetained(e);
  }

  void onRetained(std::vector<cluster::RetainedEntry> entries) override {
    std::vector<router::MessagePtr> newer;
    const int64_t now = base::monotonicMs();
    {
      std::lock_guard lock(retained_mu_);
      for (cluster::RetainedEntry& e : entries) {
        const uint64_t hlc = e.hlc;
        const uint32_t origin = e.origin_node;
        const bool cleared = e.cleared;
        std::shared_ptr<router::Message> m = fromWire(std::move(e), now);
        m->retain = true;
        m->hlc = hlc;
        m->origin_node = origin;
        if (cleared) m->payload.clear();
        if (applyLocked(m)) newer.push_back(std::move(m));
      }
    }
    if (newer.empty()) return;
    // Into the store on one worker, in the order they were applied.
    Worker& w = node_.worker(0);
    w.post([&w, newer = std::move(newer)] { w.persistReplicatedRetained(newer); });
  }

  std::vector<cluster::RetainedEntry> retainedSnapshot() override {
    std::vector<std::string> topics;
    {
      std::lock_guard lock(retained_mu_);
      for (const auto& [topic, s] : stamps_) {
        if (!s.cleared) topics.push_back(topic);
      }
    }
    std::vector<cluster::RetainedEntry> out;
    const int64_t now = base::monotonicMs();
    for (const std::string& topic : topics) {
      node_.retained().forEachMatch(topic, now, [&](const router::MessagePtr& m) {
        if (m->topic == topic && m->hlc != 0) out.push_back(toEntry(*m));
      });
    }
    return out;
  }

 private:
  static cluster::RetainedEntry toEntry(const router::Message& m) {
    cluster::RetainedEntry e;
    toWire(m, base::monotonicMs(), e);
    e.cleared = m.payload.empty();
    e.hlc = m.hlc;
    e.origin_node = m.origin_node;
    return e;
  }

  // Under retained_mu_: `m` (a clear when its payload is empty) into the index
  // if newer than what this node has for its topic.
  bool applyLocked(const router::MessagePtr& m) {
    clock_.observe(m->hlc);
    Stamp incoming{m->hlc, m->origin_node, m->payload.empty()};
    Stamp& current = stamps_[m->topic];
    if (current.hlc != 0 && !incoming.newerThan(current)) return false;
    current = incoming;
    if (incoming.cleared) {
      node_.retained().clear(m->topic);
    } else {
      node_.retained().set(m);
    }
    return true;
  }

  cluster::HybridClock clock_;
  std::mutex retained_mu_;
  absl::flat_hash_map<std::string, Stamp> stamps_;

  Node& node_;
  cluster::ClusterNode* cluster_ = nullptr;
  std::mutex mu_;
  absl::flat_hash_map<uint32_t, absl::flat_hash_set<std::string>> remote_;
};

void Node::ackForwards(uint32_t node, uint32_t worker, std::vector<uint64_t> tokens,
                       cluster::ForwardStatus status) {
  if (node == options_.node_id) {
    // Kept here for a dead node and delivered here (NodeSpool::redirect).
    if (cluster_host_ != nullptr) cluster_host_->onForwardAck(worker, std::move(tokens), status);
    return;
  }
  if (cluster_ != nullptr) cluster_->ackForwards(node, worker, std::move(tokens), status);
}

std::vector<Node::PeerRoutes> Node::remoteRoutes() {
  std::vector<PeerRoutes> out;
  if (cluster_host_ == nullptr) return out;
  for (const cluster::PeerAddress& p : options_.peers) out.push_back(cluster_host_->routes(p.id));
  return out;
}

void Node::noteRetained(const router::Message& message) {
  if (cluster_host_ != nullptr) cluster_host_->noteRetained(message);
}

bool Node::setRetainedIfNewest(const router::MessagePtr& message) {
  return cluster_host_ == nullptr || cluster_host_->applyIfNewest(message);
}

void Node::stampRetained(router::Message& message) {
  if (cluster_host_ != nullptr) cluster_host_->stamp(message);
}

void Node::replicateRetained(const router::MessagePtr& message) {
  if (cluster_host_ != nullptr) cluster_host_->replicate(message);
}

uint64_t Node::claimStamp() { return cluster_host_ != nullptr ? cluster_host_->claimStamp() : 0; }

void Node::claimSession(const std::string& client_id, uint64_t stamp, bool pull,
                        cluster::ClusterNode::ClaimDone done) {
  if (cluster_ == nullptr) {
    done({});
    return;
  }
  cluster_->claimSession(client_id, stamp, pull, std::move(done));
}

void Node::answerClaim(uint32_t node, uint64_t request_id, cluster::SessionAnswer answer) {
  if (cluster_ != nullptr) cluster_->answerClaim(node, request_id, std::move(answer));
}

void Node::confirmHandover(uint32_t node, const std::string& client_id, uint64_t handover_id) {
  if (cluster_ != nullptr) cluster_->confirmHandover(node, client_id, handover_id);
}

void Node::routeRemoved(const std::string& filter) {
  if (cluster_ != nullptr) cluster_->localRouteRemoved(filter);
}

void Node::routeAdded(const std::string& filter) {
  if (cluster_ != nullptr) cluster_->localRouteAdded(filter);
}

void Node::pullSession(uint32_t node, const std::string& client_id) {
  if (cluster_ != nullptr) cluster_->pullSession(node, client_id);
}

bool Node::requestDrain() {
  if (cluster_ == nullptr || draining_.exchange(true)) return false;
  drain_thread_ = std::thread([this] { drain(); });
  return true;
}

void Node::drain() {
  auto& log = base::logger("node");
  const int64_t start = base::monotonicMs();
  const int64_t deadline = start + options_.drain_timeout_ms;
  NodeTotals t = totals();
  log.info("draining: handing {} sessions over to the other nodes and moving {} connections "
           "(--drain_timeout {} ms)", t.sessions, t.connections_current, options_.drain_timeout_ms);
  for (auto& w : workers_) {
    Worker* wp = w.get();
    wp->post([wp] { wp->stopAccepting(); });
  }
  auto targets = cluster_->takeoverPeers();
  bool first = true;
  int64_t next_round = 0;
  int64_t next_log = start + 1000;
  std::string outcome = "done";
  while (true) {
    const int64_t now = base::monotonicMs();
    t = totals();
    drain_remaining_.store(t.sessions, std::memory_order_relaxed);
    if (t.sessions == 0 && t.connections_current == 0) break;
    if (stop_requested_) {
      outcome = "interrupted by a stop";
      break;
    }
    if (now >= deadline) {
      outcome = absl::StrCat("timed out with ", t.sessions, " sessions left (kept on disk)");
      break;
    }
    if (now >= next_round) {
      // Again every 2 s: a peer may have refused one (its own connect of that
      // client id was newer), or died meanwhile.
      if (!first) targets = cluster_->takeoverPeers();
      if (targets.empty()) {
        outcome = absl::StrCat("no peer to take them over: ", t.sessions,
                               " sessions stay on disk for the next start");
        // Clients still go (MQTT 5: 0x8B at the stop).
        break;
      }
      for (auto& w : workers_) {
        Worker* wp = w.get();
        wp->post([wp, targets, first] { wp->handOver(targets, first); });
      }
      first = false;
      next_round = now + 2000;
    }
    if (now >= next_log) {
      log.info("draining: {} sessions and {} connections left", t.sessions, t.connections_current);
      next_log = now + 1000;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // What this node still forwards (acks of publishes made before the drain).
  while (cluster_->pendingOutbound() > 0 && base::monotonicMs() < deadline && !stop_requested_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The peers apply the removal of this node's last routes one link delivery
  // after it is sent; what they forwarded before that is still answered here
  // (acknowledged: nothing matches any more) rather than failed by a lost link.
  const int64_t linger_until =
      std::min(deadline, base::monotonicMs() + 2 * options_.cluster_timeouts.heartbeat_ms + 200);
  while (base::monotonicMs() < linger_until && !stop_requested_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  log.info("drain {} after {} ms", outcome, base::monotonicMs() - start);
  drained_ = true;
}

void Node::appendToSession(uint32_t node, const std::string& client_id, uint64_t handover_id,
                           std::string transfer) {
  if (cluster_ != nullptr) cluster_->appendToSession(node, client_id, handover_id, std::move(transfer));
}

bool Node::forwardToNode(uint32_t node, cluster::PackedForwards batch) {
  return cluster_ != nullptr && cluster_->forward(node, std::move(batch));
}

absl::Status Node::createCluster() {
  if (options_.cluster_listen.empty()) return absl::OkStatus();
  cluster::ClusterOptions co;
  co.node_id = options_.node_id;
  co.listen = options_.cluster_listen;
  co.peers = options_.peers;
  co.secret = options_.cluster_secret;
  co.timeouts = options_.cluster_timeouts;
  co.tls = options_.cluster_tls;
  co.mqtt_address = options_.mqtt_advertise.empty() ? options_.mqtt_listen : options_.mqtt_advertise;
  cluster_host_ = std::make_unique<ClusterHostImpl>(*this);
  cluster_ = std::make_unique<cluster::ClusterNode>(std::move(co), *cluster_host_);
  cluster_host_->setCluster(cluster_.get());
  // Before the store's sessions subscribe: their filters are routes too.
  router_.setListener(cluster_host_.get());
  spool_ = std::make_unique<NodeSpool>(*store_, *cluster_, options_.cluster_spool_max_messages,
                                       options_.cluster_timeouts.dead_ms);
  spool_->setLocalDelivery(options_.node_id, [this](std::string packed, uint32_t on_behalf_of) {
    Worker& w = *workers_[options_.node_id % workers_.size()];
    w.post([&w, self = options_.node_id, packed = std::move(packed), on_behalf_of]() mutable {
      w.deliverForwarded(self, std::move(packed), on_behalf_of);
    });
  });
  std::vector<uint32_t> peer_ids;
  for (const cluster::PeerAddress& p : options_.peers) peer_ids.push_back(p.id);
  replica_stores_ = std::make_unique<ReplicaStores>(absl::StrCat(options_.data_dir, "/replicas"),
                                                    options_.fsync, options_.journal_segment_bytes);
  replica_stores_->openExisting();
  {
    std::ifstream in(epochFile());
    std::string text;
    if (std::getline(in, text) && !absl::SimpleAtoi(text, &previous_epoch_)) previous_epoch_ = 0;
  }
  if (options_.replication_factor >= 2 && !peer_ids.empty()) {
    Replicator::Callbacks callbacks;
    callbacks.replicated = [this](uint32_t w, uint64_t epoch, uint64_t sequence, absl::Status st) {
      if (w >= workers_.size()) return;
      Worker& worker = *workers_[w];
      worker.post([&worker, epoch, sequence, st = std::move(st)] {
        worker.onReplicated(epoch, sequence, st);
      });
    };
    callbacks.epoch_changed = [this] {
      // Wakes each worker: its iteration sends the new epoch's snapshot.
      for (auto& w : workers_) w->post([] {});
    };
    callbacks.persist_epoch = [this](uint64_t epoch) {
      const std::string file = epochFile();
      std::ofstream out(file + ".tmp", std::ios::trunc);
      out << epoch << "\n";
      out.close();
      std::error_code ec;
      std::filesystem::rename(file + ".tmp", file, ec);
      if (!out || ec) base::logger("cluster").error("cannot write {}", file);
    };
    replicator_ = std::make_unique<Replicator>(options_.node_id, options_.replication_factor,
                                               peer_ids, std::move(callbacks));
    replicator_->setCluster(cluster_.get());
  }
  return spool_->load(peer_ids);
}

std::string Node::epochFile() const { return absl::StrCat(options_.data_dir, "/replication-epoch"); }

bool Node::takeUnverified(const std::string& client_id) {
  std::lock_guard lock(reconcile_mu_);
  return reconciling_ && unverified_.erase(client_id) > 0;
}

void Node::resolveRestored(bool taken_over, const std::string& why) {
  absl::flat_hash_set<std::string> ids;
  {
    std::lock_guard lock(reconcile_mu_);
    if (!reconciling_) return;
    reconciling_ = false;
    ids = std::move(unverified_);
    unverified_.clear();
  }
  if (taken_over) {
    base::logger("cluster").info("{}: the {} sessions restored here are gone (taken over there)",
                                 why, ids.size());
    std::vector<std::vector<std::string>> per_worker(workers_.size());
    for (const std::string& id : ids) {
      const int64_t w = registry_.find(id);
      if (w >= 0) per_worker[static_cast<size_t>(w)].push_back(id);
    }
    for (size_t w = 0; w < workers_.size(); ++w) {
      if (per_worker[w].empty()) continue;
      Worker& worker = *workers_[w];
      worker.post([&worker, stale = std::move(per_worker[w])] { worker.dropStale(stale); });
    }
  } else {
    base::logger("cluster").info("{}: the {} sessions restored here stay", why, ids.size());
  }
  if (replicator_ != nullptr) replicator_->setHeld(false);
}

void Node::tickQuorum() {
  if (cluster_ == nullptr || cluster_->clusterSize() < 2) return;
  if (replicator_ != nullptr &&
      replicator_->targets().size() + 1 < std::min<size_t>(replicator_->factor(),
                                                           cluster_->clusterSize())) {
    // Under-replicated: a peer may have become usable (alive, not draining)
    // since its link came up.
    replicator_->reconsider();
  }
  const bool quorum = cluster_->hasQuorum();
  if (!quorum && !quorum_lost_) {
    quorum_lost_ = true;
    quorum_seen_ = true;
    base::logger("cluster").warn("this node does not reach a majority of the cluster: clients "
                                 "with persistent sessions are disconnected and refused (0x88)");
    for (auto& w : workers_) {
      Worker& worker = *w;
      worker.post([&worker] { worker.onQuorumLost(); });
    }
  } else if (quorum && quorum_lost_) {
    quorum_lost_ = false;
    if (quorum_seen_) {
      base::logger("cluster").info("a majority of the cluster is reachable again: checking the "
                                   "owners of the sessions here");
    }
    quorum_seen_ = true;
    for (auto& w : workers_) {
      Worker& worker = *w;
      worker.post([&worker] { worker.verifyOwnership(); });
    }
  }
}

void Node::tickReconciliation(int64_t now_ms) {
  std::vector<uint32_t> expired;
  {
    std::lock_guard lock(promote_mu_);
    for (const auto& [node, until] : routes_kept_) {
      if (now_ms >= until) expired.push_back(node);
    }
  }
  for (uint32_t node : expired) {
    base::logger("cluster").warn("no node reported taking over the sessions of dead node {}", node);
    dropRoutesOf(node);
  }
  {
    std::lock_guard lock(reconcile_mu_);
    if (!reconciling_) return;
  }
  if (now_ms - started_ms_ < 2 * int64_t{options_.cluster_timeouts.dead_ms}) return;
  resolveRestored(false, "no peer reported what became of this node's sessions before its restart "
                         "(is its replica node down?)");
}

void Node::onPeerReplicas(uint32_t node, std::vector<cluster::ReplicaState> replicas) {
  std::vector<uint32_t> taken_over;  // dead nodes whose sessions `node` took over
  {
    std::lock_guard lock(promote_mu_);
    auto& slot = peer_replicas_[node];
    if (slot == replicas) return;
    for (const cluster::ReplicaState& r : replicas) {
      if (r.promoted && routes_kept_.contains(r.owner)) taken_over.push_back(r.owner);
    }
    slot = replicas;
  }
  for (uint32_t owner : taken_over) {
    // Its route updates came before this heartbeat: its new routes are in place.
    if (spool_ != nullptr) spool_->redirect(owner, node);
    dropRoutesOf(owner);
  }
  if (previous_epoch_ == 0) return;
  for (const cluster::ReplicaState& r : replicas) {
    if (r.owner != options_.node_id || r.epoch != previous_epoch_) continue;
    resolveRestored(r.promoted, absl::StrCat("node ", node,
                                             r.promoted ? " took over" : " holds the replica of",
                                             " this node's sessions of epoch ", r.epoch));
  }
}

void Node::noteAdopted(uint32_t owner, uint64_t session_id) {
  std::lock_guard lock(promote_mu_);
  adopted_.insert({owner, session_id});
}

bool Node::adoptedFrom(uint32_t owner, uint64_t session_id) {
  std::lock_guard lock(promote_mu_);
  return adopted_.contains({owner, session_id});
}

bool Node::keepRoutesOfDead(uint32_t node) {
  bool held = false;
  if (replica_stores_ != nullptr) {
    for (const ReplicaStores::State& st : replica_stores_->states()) {
      held |= st.owner == node && !st.promoted;
    }
  }
  std::lock_guard lock(promote_mu_);
  for (const auto& [peer, states] : peer_replicas_) {
    if (peer == node || !cluster_->linkLive(peer)) continue;
    for (const cluster::ReplicaState& st : states) held |= st.owner == node && !st.promoted;
  }
  if (held) routes_kept_[node] = base::monotonicMs() + 2 * int64_t{options_.cluster_timeouts.dead_ms};
  return held;
}

void Node::promotedHere(uint32_t owner) {
  if (spool_ != nullptr) spool_->redirect(owner, options_.node_id);
  dropRoutesOf(owner);
}

void Node::dropRoutesOf(uint32_t node) {
  {
    std::lock_guard lock(promote_mu_);
    if (routes_kept_.erase(node) == 0) return;
  }
  if (cluster_host_ != nullptr) cluster_host_->dropRoutes(node);
  base::logger("cluster").info("routes kept for dead node {} dropped", node);
}

void Node::maybePromote(uint32_t owner) {
  if (replica_stores_ == nullptr) return;
  uint64_t mine = 0;
  for (const ReplicaStores::State& st : replica_stores_->states()) {
    if (st.owner == owner && !st.promoted) mine = st.epoch;
  }
  if (mine == 0) return;
  // One node takes over: of the live ones holding the newest replica, the first
  // after the owner in ring order.
  auto ring_pos = [owner](uint32_t id) { return std::pair(id < owner, id); };
  const std::vector<cluster::MemberView> views = cluster_->membership().snapshot();
  std::lock_guard lock(promote_mu_);
  for (const auto& [peer, states] : peer_replicas_) {
    bool alive = false;
    for (const cluster::MemberView& v : views) {
      alive |= v.peer.id == peer && v.state == cluster::MemberState::kAlive;
    }
    if (!alive || peer == owner) continue;
    for (const cluster::ReplicaState& st : states) {
      if (st.owner != owner || st.promoted) continue;
      if (st.epoch > mine || (st.epoch == mine && ring_pos(peer) < ring_pos(options_.node_id))) {
        return;  // that one takes over
      }
    }
  }
  if (!promoting_.insert(owner).second) return;
  promote_threads_.emplace_back([this, owner] { promote(owner); });
}

namespace {
// Released when every imported session is committed (and replicated): the
// replica goes and "promoted" is reported.
struct Promotion {
  ReplicaStores* stores = nullptr;
  uint32_t owner = 0;
  uint64_t epoch = 0;
  size_t sessions = 0;
  Node* node = nullptr;
  ~Promotion() {
    stores->promoted(owner, epoch);
    node->promotedHere(owner);
    base::logger("cluster").info("took over {} sessions of node {} (epoch {})", sessions, owner,
                                 epoch);
  }
};
}  // namespace

void Node::promote(uint32_t owner) {
  auto contents = replica_stores_->read(owner);
  if (!contents.ok()) {
    base::logger("cluster").error("cannot take over the sessions of node {}: {}", owner,
                                  contents.status().ToString());
  } else if (contents->epoch != 0) {
    // Ownership moves by consensus: only the sessions the cluster still has
    // as the dead node's come here (one moved since is not this replica's).
    std::vector<std::string> keys;
    for (const records::SessionTransfer& t : contents->sessions) keys.push_back(t.session().client_id());
    // The other nodes declare the dead node dead within a heartbeat or two of
    // this one; until they do, they refuse to move its sessions: ask again.
    std::vector<cluster::OwnershipResult> results(keys.size());
    const int64_t give_up = base::monotonicMs() + options_.cluster_timeouts.dead_ms;
    while (true) {
      std::vector<std::string> open;
      std::vector<size_t> index;
      for (size_t i = 0; i < keys.size(); ++i) {
        if (!results[i].decided) {
          open.push_back(keys[i]);
          index.push_back(i);
        }
      }
      if (open.empty() || stop_requested_) break;
      std::promise<std::vector<cluster::OwnershipResult>> decided;
      auto future = decided.get_future();
      cluster_->decideOwners(open, cluster::OwnershipOp::kTake, owner, {},
                             [&decided](std::vector<cluster::OwnershipResult> r) {
                               decided.set_value(std::move(r));
                             });
      const std::vector<cluster::OwnershipResult> got = future.get();
      for (size_t k = 0; k < got.size() && k < index.size(); ++k) results[index[k]] = got[k];
      if (base::monotonicMs() >= give_up) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.cluster_timeouts.heartbeat_ms));
    }
    std::vector<records::SessionTransfer> mine;
    for (size_t i = 0; i < contents->sessions.size() && i < results.size(); ++i) {
      if (results[i].decided && results[i].owner == options_.node_id) {
        mine.push_back(std::move(contents->sessions[i]));
      } else {
        base::logger("cluster").warn(
            "session of client '{}' in the replica of node {} not taken over: {}", keys[i], owner,
            results[i].decided ? absl::StrCat("owned by node ", results[i].owner)
                               : std::string("no majority decided"));
      }
    }
    contents->sessions = std::move(mine);
    base::logger("cluster").info("node {} is dead: taking over its {} persistent sessions", owner,
                                 contents->sessions.size());
    auto promotion = std::make_shared<Promotion>();
    promotion->stores = replica_stores_.get();
    promotion->owner = owner;
    promotion->epoch = contents->epoch;
    promotion->sessions = contents->sessions.size();
    promotion->node = this;
    for (records::SessionTransfer& t : contents->sessions) {
      const std::string client_id = t.session().client_id();
      Worker& w = *workers_[registry_.claim(client_id, homeWorker(client_id))];
      w.post([&w, owner, t = std::move(t), promotion] { w.adoptPromoted(owner, t, promotion); });
    }
  }
  std::lock_guard lock(promote_mu_);
  promoting_.erase(owner);
}

absl::Status Node::startCluster() {
  if (cluster_ == nullptr) return absl::OkStatus();
  if (options_.mqtt_advertise.empty()) {
    // --mqtt_listen with the port it got (port 0 picks one).
    auto addr = net::parseHostPort(options_.mqtt_listen);
    if (addr.ok()) {
      cluster_->setMqttAddress(
          absl::StrCat(addr->host.empty() ? "0.0.0.0" : addr->host, ":", mqtt_port_));
    }
  }
  auto port = cluster_->start();
  if (!port.ok()) return port.status();
  cluster_port_ = *port;
  spool_->start();
  return absl::OkStatus();
}

absl::Status Node::startMetrics() {
  if (options_.metrics_listen.empty()) return absl::OkStatus();
  auto addr = net::parseHostPort(options_.metrics_listen);
  if (!addr.ok()) return addr.status();
  std::string bind = absl::StrCat(addr->host.empty() ? "0.0.0.0" : addr->host, ":", addr->port);
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(bind, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", options_.metrics_listen, ": ", e.what()));
  }
  metrics_ = std::make_shared<MetricsCollector>(*this);
  exposer_->RegisterCollectable(metrics_);
  auto ports = exposer_->GetListeningPorts();
  metrics_port_ = ports.empty() ? addr->port : static_cast<uint16_t>(ports.front());
  base::logger("node").info("metrics listener on {}:{}",
                            addr->host.empty() ? "0.0.0.0" : addr->host, *metrics_port_);
  return absl::OkStatus();
}

void Node::stop() {
  stop_requested_ = true;
  if (drain_thread_.joinable() && std::this_thread::get_id() != drain_thread_.get_id()) {
    drain_thread_.join();
  }
  for (auto& w : workers_) w->stop();
  if (spool_) spool_->stop();
  if (cluster_) cluster_->stop();
}

void Node::wait() {
  for (auto& w : workers_) w->join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(promote_mu_);
    threads = std::move(promote_threads_);
  }
  for (std::thread& t : threads) t.join();
}

NodeTotals Node::totals() const {
  NodeTotals t;
  uint64_t opened[handlers::kListenerCount][handlers::kProtocolCount] = {};
  uint64_t closed[handlers::kListenerCount][handlers::kProtocolCount] = {};
  uint64_t sinc = 0, sdec = 0;
  for (const auto& wp : workers_) {
    const handlers::WorkerStats& s = std::as_const(*wp).stats();
    for (int l = 0; l < handlers::kListenerCount; ++l) {
      t.connections_accepted[l] += s.connections_accepted[l].get();
      for (int p = 0; p < handlers::kProtocolCount; ++p) {
        opened[l][p] += s.connections_opened[l][p].get();
        closed[l][p] += s.connections_closed[l][p].get();
      }
    }
    sinc += s.sessions_current_inc.get();
    sdec += s.sessions_current_dec.get();
    for (int r = 0; r < static_cast<int>(handlers::ConnectRefusal::kCount); ++r) {
      t.connects_refused[r] += s.connects_refused[r].get();
    }
    for (int q = 0; q < 3; ++q) {
      t.messages_received[q] += s.messages_received[q].get();
      t.messages_sent[q] += s.messages_sent[q].get();
      t.message_bytes_received[q] += s.message_bytes_received[q].get();
      t.message_bytes_sent[q] += s.message_bytes_sent[q].get();
    }
    t.bytes_received += s.bytes_received.get();
    t.bytes_sent += s.bytes_sent.get();
    for (int r = 0; r < static_cast<int>(handlers::DropReason::kCount); ++r) {
      t.dropped[r] += s.dropped[r].get();
    }
    t.protocol_errors += s.protocol_errors.get();
    for (int r = 0; r < static_cast<int>(handlers::ConnectionRejection::kCount); ++r) {
      t.connections_rejected[r] += s.connections_rejected[r].get();
    }
    for (int r = 0; r < static_cast<int>(handlers::LimitRefusal::kCount); ++r) {
      t.limit_refusals[r] += s.limit_refusals[r].get();
    }
    t.store_commits += s.store_commits.get();
    t.store_commit_duration.add(s.store_commit_duration.snapshot());
    t.inflight_messages += s.inflight_messages.get();
    t.queued_messages += s.queued_messages.get();
    t.queued_bytes += s.queued_bytes.get();
    t.drain_handed_over += s.drain_handed_over.get();
    t.store_commit_failures += s.store_commit_failures.get();
    t.messages_stored += s.messages_stored.get();
    t.journal_records_moved += s.journal_records_moved.get();
    t.forwards_spooled += s.forwards_spooled.get();
    t.journal_disk_bytes += wp->journalDiskBytes();
    t.publishes_failed_store += s.publishes_failed_store.get();
  }
  for (int l = 0; l < handlers::kListenerCount; ++l) {
    for (int p = 0; p < handlers::kProtocolCount; ++p) {
      // Read worker by worker while they run: a close may be seen before its open.
      t.connections[l][p] = opened[l][p] >= closed[l][p] ? opened[l][p] - closed[l][p] : 0;
      t.connections_current += t.connections[l][p];
    }
  }
  t.sessions = sinc >= sdec ? sinc - sdec : 0;
  // Every open MQTT connection is attached to its session: the connected
  // sessions are the connections (the rest are offline).
  t.sessions_connected = std::min(t.connections_current, t.sessions);
  if (spool_ != nullptr) t.forwards_kept = spool_->kept();
  return t;
}

void Node::checkDiskUse(int64_t now_ms) {
  const uint64_t limit = options_.broker.max_disk_bytes;
  if (limit == 0 || store_ == nullptr || now_ms < next_disk_check_ms_) return;
  next_disk_check_ms_ = now_ms + 1000;
  uint64_t used = store_->approximateDiskBytes();
  for (const auto& w : workers_) used += w->journalDiskBytes();
  const bool full = used > limit;
  if (full != store_full_.exchange(full, std::memory_order_relaxed)) {
    if (full) {
      base::logger("node").warn(
          "store uses {} bytes, over --max_disk_bytes={}: refusing retained QoS>=1 publishes "
          "and new persistent sessions (0x97) until it shrinks", used, limit);
    } else {
      base::logger("node").info("store back under --max_disk_bytes ({} of {} bytes)", used, limit);
    }
  }
}

void Node::publishSys(Worker& w) {
  if (options_.sys_interval_s == 0) return;
  static thread_local int64_t next_ms = 0;  // only worker 0's thread calls this
  const int64_t now = w.now();
  if (now < next_ms) return;
  next_ms = now + int64_t{options_.sys_interval_s} * 1000;
  NodeTotals t = totals();
  uint64_t received = t.messages_received[0] + t.messages_received[1] + t.messages_received[2];
  uint64_t sent = t.messages_sent[0] + t.messages_sent[1] + t.messages_sent[2];
  auto put = [&](const char* topic, std::string value) {
    auto m = std::make_shared<router::Message>();
    m->topic = absl::StrCat("$SYS/broker/", topic);
    m->payload = std::move(value);
    m->retain = true;
    retained_.set(m);
    w.publish(m);
  };
  put("version", absl::StrCat("gannet ", GANNET_VERSION));
  put("uptime", absl::StrCat((now - started_ms_) / 1000, " seconds"));
  put("clients/connected", absl::StrCat(t.connections_current));
  put("clients/total", absl::StrCat(t.sessions));
  put("messages/received", absl::StrCat(received));
  put("messages/sent", absl::StrCat(sent));
  put("load/bytes/received", absl::StrCat(t.bytes_received));
  put("load/bytes/sent", absl::StrCat(t.bytes_sent));
  put("subscriptions/count", absl::StrCat(router_.subscriptionCount()));
  put("retained messages/count", absl::StrCat(retained_.size()));
}

}  // namespace gannet::server
