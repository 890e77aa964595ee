#include "broker/server/durable.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace gannet::server {

MessageIds::MessageIds(storage::SessionStore* store, records::MetaRecord meta)
    : store_(store), meta_(std::move(meta)) {
  if (meta_.next_message_id() == 0) meta_.set_next_message_id(1);
  first_of_run_ = meta_.next_message_id();
}

absl::StatusOr<std::pair<uint64_t, uint64_t>> MessageIds::reserveBlock() {
  absl::MutexLock lock(&mu_);
  const uint64_t first = meta_.next_message_id();
  records::MetaRecord next = meta_;
  next.set_next_message_id(first + kBlock);
  if (store_ != nullptr) {
    storage::WriteSet ws;
    ws.putMeta(next);
    absl::Status s = store_->commit(std::move(ws));
    if (!s.ok()) return s;
  }
  meta_ = std::move(next);
  return std::make_pair(first, first + kBlock);
}

void MessageRefs::set(uint64_t id, uint32_t count) {
  Shard& s = shard(id);
  absl::MutexLock lock(&s.mu);
  s.refs[id] = count;
}

bool MessageRefs::release(uint64_t id) {
  Shard& s = shard(id);
  absl::MutexLock lock(&s.mu);
  auto it = s.refs.find(id);
  if (it == s.refs.end()) return true;  // a sole reference
  if (--it->second > 0) return false;
  s.refs.erase(it);
  return true;
}

size_t MessageRefs::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    absl::MutexLock lock(&s.mu);
    n += s.refs.size();
  }
  return n;
}

void DurableSessions::add(uint64_t session_id, std::shared_ptr<const std::string> client_id) {
  absl::MutexLock lock(&mu_);
  by_session_[session_id] = std::move(client_id);
}

void DurableSessions::remove(uint64_t session_id) {
  absl::MutexLock lock(&mu_);
  by_session_.erase(session_id);
}

std::shared_ptr<const std::string> DurableSessions::find(uint64_t session_id) const {
  absl::MutexLock lock(&mu_);
  auto it = by_session_.find(session_id);
  return it == by_session_.end() ? nullptr : it->second;
}

}  // namespace gannet::server
