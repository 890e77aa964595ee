#include "storage/replica_inflight.h"

#include <algorithm>
#include <limits>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "storage/keys.h"

namespace gannet::storage {

namespace {

constexpr uint64_t kAll = std::numeric_limits<uint64_t>::max();

absl::Status badKey(std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed inflight key in a replica batch (", std::string(what), ")"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicaInflight>> ReplicaInflight::open(std::string dir, bool sync,
                                                                       uint64_t segment_bytes,
                                                                       SessionStore* store) {
  auto recovered = recoverJournal(dir);
  if (!recovered.ok()) return recovered.status();
  if (!recovered->entries.empty()) {
    WriteSet moved;
    for (const RecoveredInflight& e : recovered->entries) {
      moved.putInflightBytes(e.client_id, e.sequence, e.record);
    }
    if (absl::Status s = store->commit(std::move(moved)); !s.ok()) return s;
  }
  if (absl::Status s = removeJournalFiles(dir); !s.ok()) return s;
  JournalOptions jo;
  jo.dir = std::move(dir);
  jo.sync = sync;
  jo.segment_bytes = segment_bytes;
  auto journal = Journal::open(jo);
  if (!journal.ok()) return journal.status();
  auto held = store->countKeys(Table::kInflight);
  if (!held.ok()) return held.status();
  return std::unique_ptr<ReplicaInflight>(
      new ReplicaInflight(std::move(jo.dir), store, std::move(*journal), *held != 0));
}

ReplicaInflight::Client* ReplicaInflight::clientOf(std::string_view client_id, bool create) {
  // Batches are runs of one client's operations: the previous one first.
  if (last_ != nullptr && *last_id_ == client_id) return last_;
  auto it = clients_.find(absl::string_view(client_id.data(), client_id.size()));
  if (it == clients_.end()) {
    if (!create) return nullptr;
    it = clients_.emplace(std::string(client_id), Client{}).first;
    it->second.id = next_id_++;
  }
  last_id_ = &it->first;
  last_ = &it->second;
  return last_;
}

absl::Status ReplicaInflight::apply(const WriteSet& batch, WriteSet* to_store) {
  size_t pos = 0;
  WriteSet::Op op;
  while (batch.next(&pos, &op)) {
    if (op.table != Table::kInflight) {
      to_store->add(op);
      continue;
    }
    std::string_view client_id, rest;
    if (!keys::splitClientKey(op.key, &client_id, &rest)) return badKey("no client id");
    if (op.kind == WriteSet::OpKind::kPut) {
      if (rest.size() != 8) return badKey("no sequence");
      const uint64_t sequence = keys::readU64(rest);
      Client& c = *clientOf(client_id, /*create=*/true);
      Entry& e = c.entries[sequence];
      const uint32_t segment = journal_->put(c.id, client_id, sequence, op.value);
      if (e.segment != 0) {
        journal_->release(e.segment);
      } else {
        ++live_;
      }
      e.segment = segment;
      continue;
    }
    // A delete of one record or of a range: [C + from, C + to) or the whole
    // session ([C, the next client's prefix)).
    uint64_t from = 0, to = kAll;
    if (rest.size() == 8) {
      from = keys::readU64(rest);
    } else if (!rest.empty()) {
      return badKey("bad sequence");
    }
    if (op.kind == WriteSet::OpKind::kDelete) {
      if (rest.size() != 8) return badKey("no sequence");
      to = from + 1;
    } else {
      std::string_view end_client, end_rest;
      if (keys::splitClientKey(op.value, &end_client, &end_rest) && end_client == client_id &&
          end_rest.size() == 8) {
        to = keys::readU64(end_rest);
      }
    }
    bool in_store = store_may_hold_all_;
    if (Client* found = clientOf(client_id, /*create=*/false); found != nullptr) {
      Client& c = *found;
      auto first = c.entries.lower_bound(from);
      auto last = to == kAll ? c.entries.end() : c.entries.lower_bound(to);
      bool in_journal = false;
      for (auto it = first; it != last; ++it) {
        if (it->second.in_store) in_store = true;
        if (it->second.segment != 0) {
          journal_->release(it->second.segment);
          --live_;
          in_journal = true;
        }
      }
      if (in_journal) journal_->done(c.id, from, to);
      c.entries.erase(first, last);
      if (c.entries.empty()) {
        last_ = nullptr;
        clients_.erase(absl::string_view(client_id.data(), client_id.size()));
      }
    }
    if (in_store) to_store->add(op);
  }
  return absl::OkStatus();
}

absl::Status ReplicaInflight::commit() {
  if (!journal_->pending()) return absl::OkStatus();
  return journal_->commit();
}

absl::Status ReplicaInflight::maintain() {
  if (const uint32_t evict = journal_->evictBefore(); evict != 0) {
    if (absl::Status s = moveToStore(evict); !s.ok()) return s;
  }
  journal_->collect();
  return absl::OkStatus();
}

absl::Status ReplicaInflight::moveAllToStore() { return moveToStore(0); }

absl::Status ReplicaInflight::moveToStore(uint32_t through) {
  std::vector<std::pair<const std::string*, std::pair<const uint64_t, Entry>*>> entries;
  for (auto& [client_id, c] : clients_) {
    for (auto& entry : c.entries) {
      const Entry& e = entry.second;
      if (e.segment == 0 || (through != 0 && e.segment > through)) continue;
      entries.emplace_back(&client_id, &entry);
    }
  }
  if (entries.empty()) return absl::OkStatus();
  // The records, as recovery after a restart would find them (every frame is
  // written: commit() came first).
  auto journal = recoverJournal(dir_);
  if (!journal.ok()) return journal.status();
  const std::vector<RecoveredInflight>& found = journal->entries;  // by client id, sequence
  WriteSet moved;
  uint64_t missing = 0;
  for (const auto& [client_id, entry] : entries) {
    auto it = std::lower_bound(found.begin(), found.end(), std::make_pair(client_id, entry->first),
                               [](const RecoveredInflight& r, const auto& key) {
                                 return std::tie(r.client_id, r.sequence) <
                                        std::tie(*key.first, key.second);
                               });
    if (it == found.end() || it->client_id != *client_id || it->sequence != entry->first) {
      // Its frame was never written (a failed write, answered as such to the
      // owner): nothing to move.
      ++missing;
      continue;
    }
    moved.putInflightBytes(*client_id, entry->first, it->record);
  }
  if (missing != 0) {
    base::logger("storage").warn("replica journal in {}: {} inflight records were not in its files "
                                 "(writes that failed earlier)", dir_, missing);
  }
  if (!moved.empty()) {
    if (absl::Status s = store_->commit(std::move(moved)); !s.ok()) return s;
  }
  for (const auto& [client_id, entry] : entries) {
    Entry& e = entry->second;
    journal_->release(e.segment);
    e.segment = 0;
    e.in_store = true;
  }
  live_ -= entries.size();
  return absl::OkStatus();
}

}  // namespace gannet::storage
