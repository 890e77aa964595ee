#include "broker/server/replica_stores.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/strings.h"
#include "storage/rocksdb/rocksdb_session_store.h"

namespace gannet::server {

namespace fs = std::filesystem;

namespace {

spdlog::logger& log() { return base::logger("cluster"); }

constexpr const char* kEpochFile = "EPOCH";

}  // namespace

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
  storage::StoreOptions so;
  so.data_dir = absl::StrCat(dir, "/store");
  so.sync = fsync_;
  auto store = storage::openRocksDbSessionStore(so);
  if (!store.ok()) return store.status();
  r.store = std::move(*store);
  r.epoch = epoch;
  return absl::OkStatus();
}

void ReplicaStores::openExisting() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    uint32_t owner = 0;
    if (name.rfind("node-", 0) != 0 || !absl::SimpleAtoi(name.substr(5), &owner)) continue;
    Replica& r = replicaOf(owner);
    std::lock_guard lock(r.mu);
    if (absl::Status s = open(owner, r); !s.ok()) {
      log().error("replica of node {} in {}: {}", owner, dirOf(owner), base::toStd(s.message()));
    }
  }
}

absl::Status ReplicaStores::reset(uint32_t owner, Replica& r, uint64_t epoch) {
  r.store.reset();
  const std::string dir = dirOf(owner);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot remove ", dir, ": ", ec.message()));
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  storage::StoreOptions so;
  so.data_dir = absl::StrCat(dir, "/store");
  so.sync = fsync_;
  auto store = storage::openRocksDbSessionStore(so);
  if (!store.ok()) return store.status();
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
  return r.store->commit(std::move(ws));
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
    }
    out.push_back(h);
  }
  return out;
}

}  // namespace gannet::server
