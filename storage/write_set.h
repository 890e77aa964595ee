#pragma once
// WriteSet: the durable changes of one event-loop iteration, committed as one
// atomic batch by SessionStore::commit(). Backend-neutral.
//
// Owned by one worker thread while it is filled; moved into commit(). Records
// are serialised as they are added (into one contiguous buffer, no allocation
// per operation), so the caller may drop or change its records right after.
// Operations apply in the order they were added: a put followed by a delete of
// the same key leaves nothing.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/records.pb.h"
#include "storage/table.h"

namespace gannet::storage {

class WriteSet {
 public:
  enum class OpKind : uint8_t { kPut = 1, kDelete = 2, kDeleteRange = 3 };
  // One operation as the backend reads it back. Views into the WriteSet.
  struct Op {
    OpKind kind;
    Table table;
    std::string_view key;
    std::string_view value;  // kPut: the serialised record; kDeleteRange: end key (exclusive)
  };

  WriteSet() = default;
  WriteSet(WriteSet&&) = default;
  WriteSet& operator=(WriteSet&&) = default;
  WriteSet(const WriteSet&) = delete;
  WriteSet& operator=(const WriteSet&) = delete;

  // --- sessions ---
  void putSession(const records::SessionRecord& session);  // key: session.client_id()
  // The session and everything under it: subscriptions, inflight, awaiting-PUBREL
  // ids and the whole offline queue (range deletes). Not the messages the queue
  // referenced: those are refcounted by the broker, which deletes them by id.
  void deleteSession(std::string_view client_id);

  // --- subscriptions (filter as subscribed, $share/... included) ---
  void putSubscription(std::string_view client_id, std::string_view filter,
                       const records::SubscriptionRecord& subscription);
  void deleteSubscription(std::string_view client_id, std::string_view filter);

  // --- messages, stored once by id and referenced from queues and inflight ---
  void putMessage(uint64_t message_id, const records::MessageRecord& message);
  void deleteMessage(uint64_t message_id);

  // --- offline queue ---
  void putQueueEntry(std::string_view client_id, uint64_t sequence,
                     const records::QueueEntryRecord& entry);
  void deleteQueueEntry(std::string_view client_id, uint64_t sequence);
  // Entries with from <= sequence < to (delivered ones). One range tombstone:
  // prefer one call per delivered run over one deleteQueueEntry per message.
  void deleteQueueRange(std::string_view client_id, uint64_t from, uint64_t to);

  // --- outbound inflight (QoS 1/2 sent, not completed) ---
  // Keyed by send sequence (inflight.sequence(); the record holds the packet id).
  void putInflight(std::string_view client_id, uint64_t sequence,
                   const records::InflightRecord& inflight);
  // The same record already serialised (the broker encodes it directly).
  void putInflightBytes(std::string_view client_id, uint64_t sequence, std::string_view record);
  void deleteInflight(std::string_view client_id, uint64_t sequence);
  // Entries with from <= sequence < to: one range tombstone for a run of
  // completed messages (QoS 1 acks arrive in send order, §4.6).
  void deleteInflightRange(std::string_view client_id, uint64_t from, uint64_t to);

  // --- inbound QoS 2: packet ids PUBREC'd and awaiting PUBREL ---
  void putAwaitingPubrel(std::string_view client_id, uint16_t packet_id);
  void deleteAwaitingPubrel(std::string_view client_id, uint16_t packet_id);

  // --- retained messages (topic → message) ---
  void putRetained(std::string_view topic, const records::MessageRecord& message);
  void deleteRetained(std::string_view topic);

  void putMeta(const records::MetaRecord& meta);

  // --- cluster: acceptor state of client id owner registers (key: client id) ---
  void putOwnership(std::string_view client_id, const records::OwnershipRecord& record);

  // --- cluster: messages kept for a peer whose link is down ---
  void putNodeQueue(uint32_t node, uint64_t sequence, const records::MessageRecord& message);
  // Entries of `node` with from <= sequence < to (sent and acknowledged).
  void deleteNodeQueueRange(uint32_t node, uint64_t from, uint64_t to);

  bool empty() const { return ops_ == 0; }
  size_t operationCount() const { return ops_; }
  size_t byteSize() const { return buffer_.size(); }
  void clear() {
    buffer_.clear();
    ops_ = 0;
  }

  // Reads the operation at *pos and advances *pos; false at the end.
  // `size_t pos = 0; Op op; while (ws.next(&pos, &op)) ...`
  bool next(size_t* pos, Op* op) const;

  // --- replication (docs/architecture.md, "Session replication") ---
  // Every later operation on one of `tables` (a bit per Table) is also appended
  // to `*mirror`, in order; null: none. The mirror must outlive the calls.
  void setMirror(WriteSet* mirror, uint32_t tables) {
    mirror_ = mirror;
    mirror_tables_ = tables;
  }
  static constexpr uint32_t bit(Table t) { return 1u << static_cast<uint8_t>(t); }
  // The encoded operations (to send to another node).
  const std::string& bytes() const { return buffer_; }
  // Moves the encoded operations out; the set is empty after.
  std::string takeBytes() {
    std::string out;
    out.swap(buffer_);
    ops_ = 0;
    return out;
  }
  // Operations encoded by bytes() elsewhere: validated here (a malformed
  // buffer from the network is an error, never a crash). False: malformed.
  static bool parse(std::string bytes, WriteSet* out);
  // Appends an operation read from another set (next()).
  void add(const Op& op) { append(op.kind, op.table, op.key, op.value); }

 private:
  void append(OpKind kind, Table table, std::string_view key, std::string_view value);
  void appendRecord(Table table, std::string_view key, const google::protobuf::MessageLite& record);
  void appendHeader(OpKind kind, Table table, std::string_view key);
  // Copies the operation that starts at `start` to the mirror if it wants it.
  void mirrorFrom(Table table, size_t start) {
    if (mirror_ != nullptr && (mirror_tables_ & bit(table)) != 0) {
      mirror_->buffer_.append(buffer_, start, std::string::npos);
      ++mirror_->ops_;
    }
  }

  // [kind u8][table u8][key length varint][key][value length varint][value] ...
  std::string buffer_;
  size_t ops_ = 0;
  WriteSet* mirror_ = nullptr;
  uint32_t mirror_tables_ = 0;
};

}  // namespace gannet::storage
