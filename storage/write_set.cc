#include "storage/write_set.h"

#include "base/assert.h"
#include "storage/keys.h"

namespace gannet::storage {
namespace {

void appendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// The buffer is our own, so a malformed one is a bug: asserted, not returned.
uint64_t readVarint(const std::string& in, size_t* pos) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    GANNET_RELEASE_ASSERT(*pos < in.size(), "truncated WriteSet");
    auto byte = static_cast<uint8_t>(in[(*pos)++]);
    v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return v;
  }
  GANNET_RELEASE_ASSERT(false, "bad varint in WriteSet");
  return 0;
}

}  // namespace

std::string_view tableName(Table table) {
  switch (table) {
    case Table::kSession: return "session";
    case Table::kSubscription: return "subscription";
    case Table::kInflight: return "inflight";
    case Table::kPubrel: return "pubrel";
    case Table::kQueue: return "queue";
    case Table::kMessage: return "message";
    case Table::kRetained: return "retained";
    case Table::kMeta: return "meta";
    case Table::kNodeQueue: return "node_queue";
    case Table::kOwnership: return "ownership";
  }
  return "unknown";
}

void WriteSet::appendHeader(OpKind kind, Table table, std::string_view key) {
  buffer_.push_back(static_cast<char>(kind));
  buffer_.push_back(static_cast<char>(table));
  appendVarint(buffer_, key.size());
  buffer_.append(key);
  ++ops_;
}

void WriteSet::append(OpKind kind, Table table, std::string_view key, std::string_view value) {
  const size_t start = buffer_.size();
  appendHeader(kind, table, key);
  appendVarint(buffer_, value.size());
  buffer_.append(value);
  mirrorFrom(table, start);
}

void WriteSet::appendRecord(Table table, std::string_view key,
                            const google::protobuf::MessageLite& record) {
  const size_t start = buffer_.size();
  appendHeader(OpKind::kPut, table, key);
  size_t n = record.ByteSizeLong();
  appendVarint(buffer_, n);
  size_t at = buffer_.size();
  buffer_.resize(at + n);
  record.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(buffer_.data() + at));
  mirrorFrom(table, start);
}

bool WriteSet::parse(std::string bytes, WriteSet* out) {
  auto varint = [&](size_t* pos, uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *pos < bytes.size(); shift += 7) {
      auto byte = static_cast<uint8_t>(bytes[(*pos)++]);
      *v |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  };
  size_t ops = 0;
  for (size_t pos = 0; pos < bytes.size(); ++ops) {
    if (pos + 2 > bytes.size()) return false;
    const auto kind = static_cast<uint8_t>(bytes[pos]);
    const auto table = static_cast<uint8_t>(bytes[pos + 1]);
    if (kind < static_cast<uint8_t>(OpKind::kPut) || kind > static_cast<uint8_t>(OpKind::kDeleteRange) ||
        table >= kTableCount) {
      return false;
    }
    pos += 2;
    for (int field = 0; field < 2; ++field) {  // key, value
      uint64_t n = 0;
      if (!varint(&pos, &n) || n > bytes.size() - pos) return false;
      pos += n;
    }
  }
  out->buffer_ = std::move(bytes);
  out->ops_ = ops;
  return true;
}

bool WriteSet::next(size_t* pos, Op* op) const {
  if (*pos >= buffer_.size()) return false;
  GANNET_RELEASE_ASSERT(*pos + 2 <= buffer_.size(), "truncated WriteSet");
  op->kind = static_cast<OpKind>(buffer_[*pos]);
  op->table = static_cast<Table>(buffer_[*pos + 1]);
  *pos += 2;
  size_t n = readVarint(buffer_, pos);
  op->key = std::string_view(buffer_).substr(*pos, n);
  *pos += n;
  // Every op has a value field (empty for deletes): one layout for all.
  n = readVarint(buffer_, pos);
  op->value = std::string_view(buffer_).substr(*pos, n);
  *pos += n;
  return true;
}

void WriteSet::putSession(const records::SessionRecord& session) {
  appendRecord(Table::kSession, keys::session(session.client_id()), session);
}

void WriteSet::deleteSession(std::string_view client_id) {
  std::string begin = keys::clientPrefix(client_id);
  std::string end = keys::prefixEnd(begin);
  append(OpKind::kDelete, Table::kSession, begin, {});
  for (Table t : {Table::kSubscription, Table::kInflight, Table::kPubrel, Table::kQueue}) {
    append(OpKind::kDeleteRange, t, begin, end);
  }
}

void WriteSet::putSubscription(std::string_view client_id, std::string_view filter,
                               const records::SubscriptionRecord& subscription) {
  appendRecord(Table::kSubscription, keys::subscription(client_id, filter), subscription);
}

void WriteSet::deleteSubscription(std::string_view client_id, std::string_view filter) {
  append(OpKind::kDelete, Table::kSubscription, keys::subscription(client_id, filter), {});
}

void WriteSet::putMessage(uint64_t message_id, const records::MessageRecord& message) {
  appendRecord(Table::kMessage, keys::message(message_id), message);
}

void WriteSet::deleteMessage(uint64_t message_id) {
  append(OpKind::kDelete, Table::kMessage, keys::message(message_id), {});
}

void WriteSet::putNodeQueue(uint32_t node, uint64_t sequence, const records::MessageRecord& message) {
  appendRecord(Table::kNodeQueue, keys::nodeQueue(node, sequence), message);
}

void WriteSet::deleteNodeQueueRange(uint32_t node, uint64_t from, uint64_t to) {
  if (from >= to) return;
  append(OpKind::kDeleteRange, Table::kNodeQueue, keys::nodeQueue(node, from),
         keys::nodeQueue(node, to));
}

void WriteSet::putQueueEntry(std::string_view client_id, uint64_t sequence,
                             const records::QueueEntryRecord& entry) {
  appendRecord(Table::kQueue, keys::queue(client_id, sequence), entry);
}

void WriteSet::deleteQueueEntry(std::string_view client_id, uint64_t sequence) {
  append(OpKind::kDelete, Table::kQueue, keys::queue(client_id, sequence), {});
}

void WriteSet::deleteQueueRange(std::string_view client_id, uint64_t from, uint64_t to) {
  if (from >= to) return;
  append(OpKind::kDeleteRange, Table::kQueue, keys::queue(client_id, from),
         keys::queue(client_id, to));
}

void WriteSet::putInflight(std::string_view client_id, uint64_t sequence,
                           const records::InflightRecord& inflight) {
  appendRecord(Table::kInflight, keys::inflight(client_id, sequence), inflight);
}

void WriteSet::putInflightBytes(std::string_view client_id, uint64_t sequence,
                                std::string_view record) {
  append(OpKind::kPut, Table::kInflight, keys::inflight(client_id, sequence), record);
}

void WriteSet::deleteInflight(std::string_view client_id, uint64_t sequence) {
  append(OpKind::kDelete, Table::kInflight, keys::inflight(client_id, sequence), {});
}

void WriteSet::deleteInflightRange(std::string_view client_id, uint64_t from, uint64_t to) {
  append(OpKind::kDeleteRange, Table::kInflight, keys::inflight(client_id, from),
         keys::inflight(client_id, to));
}

void WriteSet::putAwaitingPubrel(std::string_view client_id, uint16_t packet_id) {
  append(OpKind::kPut, Table::kPubrel, keys::pubrel(client_id, packet_id), {});
}

void WriteSet::deleteAwaitingPubrel(std::string_view client_id, uint16_t packet_id) {
  append(OpKind::kDelete, Table::kPubrel, keys::pubrel(client_id, packet_id), {});
}

void WriteSet::putRetained(std::string_view topic, const records::MessageRecord& message) {
  appendRecord(Table::kRetained, keys::retained(topic), message);
}

void WriteSet::deleteRetained(std::string_view topic) {
  append(OpKind::kDelete, Table::kRetained, keys::retained(topic), {});
}

void WriteSet::putOwnership(std::string_view client_id, const records::OwnershipRecord& record) {
  appendRecord(Table::kOwnership, client_id, record);
}

void WriteSet::putMeta(const records::MetaRecord& meta) {
  appendRecord(Table::kMeta, keys::kMeta, meta);
}

}  // namespace gannet::storage
