#include "broker/server/replica_stores.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "storage/rocksdb/rocksdb_session_store.h"

namespace gannet::server {

namespace fs = std::filesystem;

namespace {

spdlog::logger& log() { return base::logger("cluster"); }

constexpr const char* kEpochFile = "EPOCH";

}  // namespace

storage::StoreOptions ReplicaStores::storeOptions(const std::string& dir) const {
  storage::StoreOptions so;
  so.data_dir = absl::StrCat(dir, "/store");
  so.sync = fsync_;
  return so;
}

std::string ReplicaStores::dirOf(uint32_t owner) const {
  return absl::StrCat(dir_, "/node-", owner);
}

ReplicaStores::Replica& ReplicaStores::replicaOf(uint32_t owner) {
  std::lock_guard lock(mu_);
  auto& slot = replicas_[owner];
  if (!slot) slot = std::make_unique<Replica>();
  return *slot;
}

absl::Status ReplicaStores::open(uint32_t owner, Replica& r) {
  if (r.store != nullptr) return absl::OkStatus();
  const std::string dir = dirOf(owner);
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / kEpochFile, ec)) return absl::OkStatus();  // none yet
  std::ifstream in(fs::path(dir) / kEpochFile);
  std::string text;
  uint64_t epoch = 0;
  if (!std::getline(in, text) || !absl::SimpleAtoi(text, &epoch)) {
    return absl::DataLossError(absl::StrCat("unreadable ", dir, "/", kEpochFile));
  }
  auto store = storage::openRocksDbSessionStore(storeOptions(dir));
  if (!store.ok()) return store.status();
  auto inflight = openInflight(dir, store->get());
  if (!inflight.ok()) return inflight.status();
  r.store = std::move(*store);
  r.inflight = std::move(*inflight);
  r.epoch = epoch;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<storage::ReplicaInflight>> ReplicaStores::openInflight(
    const std::string& dir, storage::SessionStore* store) const {
  return storage::ReplicaInflight::open(absl::StrCat(dir, "/journal"), fsync_,
                                        journal_segment_bytes_, store);
}

namespace {

// Builds one SessionTransfer per session of a replica store.
struct TransferBuilder : storage::LoadVisitor {
  absl::flat_hash_map<std::string, records::SessionTransfer> sessions;
  absl::flat_hash_map<std::string, storage::QueueSummary> queues;
  records::SessionTransfer* of(std::string_view client_id) {
    auto it = sessions.find(std::string(client_id));
    return it == sessions.end() ? nullptr : &it->second;
  }
  void onSession(records::SessionRecord session) override {
    std::string id = session.client_id();
    *sessions[id].mutable_session() = std::move(session);
  }
  void onSubscription(std::string_view client_id, std::string_view filter,
                      records::SubscriptionRecord subscription) override {
    if (auto* t = of(client_id)) {
      auto* sub = t->add_subscriptions();
      sub->set_filter(std::string(filter));
      *sub->mutable_options() = std::move(subscription);
    }
  }
  void onInflight(std::string_view client_id, uint16_t packet_id, records::InflightRecord inflight,
                  const records::MessageRecord* message) override {
    auto* t = of(client_id);
    if (t == nullptr) return;
    if (!inflight.pubrec_received()) {
      if (message == nullptr) return;  // nothing to resend
      *inflight.mutable_message() = *message;
    }
    inflight.set_packet_id(packet_id);
    *t->add_inflight() = std::move(inflight);
  }
  void onAwaitingPubrel(std::string_view client_id, uint16_t packet_id) override {
    if (auto* t = of(client_id)) t->add_awaiting_pubrel(packet_id);
  }
  void onQueue(std::string_view client_id, const storage::QueueSummary& summary) override {
    queues[std::string(client_id)] = summary;
  }
};

}  // namespace

absl::StatusOr<ReplicaStores::Contents> ReplicaStores::read(uint32_t owner) {
  Replica& r = replicaOf(owner);
  std::lock_guard lock(r.mu);
  RETURN_IF_ERROR(open(owner, r));
  Contents out;
  if (r.store == nullptr) return out;
  RETURN_IF_ERROR(r.inflight->moveAllToStore());
  TransferBuilder b;
  auto loaded = r.store->load(b);
  if (!loaded.ok()) return loaded.status();
  for (auto& [client_id, t] : b.sessions) {
    // Inflight in send order, then the queue oldest first.
    std::sort(t.mutable_inflight()->begin(), t.mutable_inflight()->end(),
              [](const auto& a, const auto& c) { return a.sequence() < c.sequence(); });
    if (auto q = b.queues.find(client_id); q != b.queues.end()) {
      auto entries = r.store->readQueue(client_id, q->second.first_sequence, q->second.count);
      if (!entries.ok()) return entries.status();
      for (storage::QueuedMessage& m : *entries) {
        if (m.state != storage::QueuedMessage::State::kOk) continue;
        auto* e = t.add_queue();
        *e = std::move(m.entry);
        *e->mutable_message() = std::move(m.message);
      }
    }
    out.sessions.push_back(std::move(t));
  }
  out.epoch = r.epoch;
  return out;
}

void ReplicaStores::promoted(uint32_t owner, uint64_t epoch) {
  {
    std::lock_guard lock(mu_);
    promoted_[owner] = epoch;
  }
  const std::string marker = absl::StrCat(dir_, "/node-", owner, ".promoted");
  {
    std::ofstream out(marker + ".tmp", std::ios::trunc);
    out << epoch << "\n";
  }
  std::error_code ec;
  fs::rename(marker + ".tmp", marker, ec);
  if (ec) log().error("cannot write {}: {}", marker, ec.message());
  Replica& r = replicaOf(owner);
  std::lock_guard lock(r.mu);
  if (r.epoch != epoch) return;  // the owner is back with a newer epoch already
  r.inflight.reset();
  r.store.reset();
  r.epoch = 0;
  fs::remove_all(dirOf(owner), ec);
}

std::vector<ReplicaStores::State> ReplicaStores::states() {
  std::vector<State> out;
  std::vector<std::pair<uint32_t, Replica*>> all;
  {
    std::lock_guard lock(mu_);
    for (const auto& [owner, epoch] : promoted_) out.push_back({owner, epoch, true});
    for (auto& [owner, r] : replicas_) all.emplace_back(owner, r.get());
  }
  for (auto& [owner, r] : all) {
    std::lock_guard lock(r->mu);
    if (r->store != nullptr) out.push_back({owner, r->epoch, false});
  }
  return out;
}

uint32_t ReplicaStores::ownerHolding(const std::string& client_id) {
  std::vector<std::pair<uint32_t, Replica*>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [owner, r] : replicas_) all.emplace_back(owner, r.get());
  }
  for (auto& [owner, r] : all) {
    std::lock_guard lock(r->mu);
    if (r->store == nullptr) continue;
    auto has = r->store->hasSession(client_id);
    if (has.ok() && *has) return owner;
  }
  return 0;
}

void ReplicaStores::openExisting() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    uint32_t owner = 0;
    if (name.rfind("node-", 0) == 0 && name.size() > 14 &&
        name.compare(name.size() - 9, 9, ".promoted") == 0) {
      std::ifstream in(entry.path());
      std::string text;
      uint64_t epoch = 0;
      if (absl::SimpleAtoi(name.substr(5, name.size() - 14), &owner) && std::getline(in, text) &&
          absl::SimpleAtoi(text, &epoch)) {
        std::lock_guard lock(mu_);
        promoted_[owner] = epoch;
      }
      continue;
    }
    if (name.rfind("node-", 0) != 0 || !absl::SimpleAtoi(name.substr(5), &owner)) continue;
    Replica& r = replicaOf(owner);
    std::lock_guard lock(r.mu);
    if (absl::Status s = open(owner, r); !s.ok()) {
      log().error("replica of node {} in {}: {}", owner, dirOf(owner), base::toStd(s.message()));
    }
  }
}

absl::Status ReplicaStores::reset(uint32_t owner, Replica& r, uint64_t epoch) {
  r.inflight.reset();
  r.store.reset();
  const std::string dir = dirOf(owner);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot remove ", dir, ": ", ec.message()));
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  auto store = storage::openRocksDbSessionStore(storeOptions(dir));
  if (!store.ok()) return store.status();
  auto inflight = openInflight(dir, store->get());
  if (!inflight.ok()) return inflight.status();
  // The epoch last: a directory without it is an unfinished reset (the next
  // snapshot starts over).
  const fs::path tmp = fs::path(dir) / "EPOCH.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << epoch << "\n";
    out.flush();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp.string()));
  }
  fs::rename(tmp, fs::path(dir) / kEpochFile, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot write ", dir, "/", kEpochFile));
  r.store = std::move(*store);
  r.inflight = std::move(*inflight);
  r.epoch = epoch;
  r.batches = 0;
  return absl::OkStatus();
}

absl::Status ReplicaStores::apply(uint32_t owner, uint64_t epoch, bool snapshot,
                                  std::string operations) {
  Replica& r = replicaOf(owner);
  std::lock_guard lock(r.mu);
  if (absl::Status s = open(owner, r); !s.ok()) {
    log().error("replica of node {}: {}; starting it anew", owner, base::toStd(s.message()));
    r.epoch = 0;
  }
  if (epoch < r.epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("epoch ", epoch, " of node ", owner, " is older than ", r.epoch));
  }
  if (epoch > r.epoch) {
    if (!snapshot) {
      return absl::FailedPreconditionError(
          absl::StrCat("epoch ", epoch, " of node ", owner, " did not start with a snapshot"));
    }
    if (absl::Status s = reset(owner, r, epoch); !s.ok()) return s;
    log().info("replicating the sessions of node {} (epoch {})", owner, epoch);
  }
  storage::WriteSet ws;
  if (!storage::WriteSet::parse(std::move(operations), &ws)) {
    return absl::InvalidArgumentError(absl::StrCat("malformed replica batch from node ", owner));
  }
  ++r.batches;
  if (ws.empty()) return absl::OkStatus();
  // Inflight records into the journal first (as on the owner), the rest into the store.
  storage::WriteSet to_store;
  RETURN_IF_ERROR(r.inflight->apply(ws, &to_store));
  RETURN_IF_ERROR(r.inflight->commit());
  if (!to_store.empty()) RETURN_IF_ERROR(r.store->commit(std::move(to_store)));
  // The batch is stored; moving old records along can wait for the next one.
  if (absl::Status s = r.inflight->maintain(); !s.ok()) {
    log().warn("replica of node {}: cannot move old inflight records from its journal into its "
               "store: {}", owner, base::toStd(s.message()));
  }
  return absl::OkStatus();
}

std::vector<ReplicaStores::Held> ReplicaStores::held(bool count) {
  std::vector<std::pair<uint32_t, Replica*>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [owner, r] : replicas_) all.emplace_back(owner, r.get());
  }
  std::vector<Held> out;
  for (auto& [owner, r] : all) {
    std::lock_guard lock(r->mu);
    if (r->store == nullptr) continue;
    Held h{owner, r->epoch, r->batches, 0, 0};
    if (count) {
      auto n = r->store->countKeys(storage::Table::kSession);
      if (n.ok()) h.sessions = *n;
      for (storage::Table t : {storage::Table::kQueue, storage::Table::kInflight}) {
        auto m = r->store->countKeys(t);
        if (m.ok()) h.messages += *m;
      }
      h.messages += r->inflight->size();
    }
    out.push_back(h);
  }
  return out;
}

}  // namespace gannet::server
