// The storage layer against a real RocksDB in a temporary directory.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "storage/rocksdb/rocksdb_session_store.h"

namespace gannet::storage {
namespace {

namespace fs = std::filesystem;
using records::InflightRecord;
using records::MessageRecord;
using records::QueueEntryRecord;
using records::SessionRecord;
using records::SubscriptionRecord;

// A mkdtemp directory, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gannet-storage-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Everything load() reports, keyed for easy assertions.
struct Loaded : LoadVisitor {
  records::MetaRecord meta;
  std::map<std::string, SessionRecord> sessions;
  std::map<std::string, SubscriptionRecord> subscriptions;  // client + '|' + filter
  std::map<std::string, InflightRecord> inflight;            // client + '|' + packet id
  std::map<std::string, std::string> inflight_topic;         // ... its message's topic
  std::vector<std::string> pubrel;                           // client + '|' + packet id
  std::map<std::string, MessageRecord> retained;
  std::map<std::string, QueueSummary> queues;
  std::map<uint64_t, uint32_t> references;

  static std::string key(std::string_view client, std::string_view rest) {
    return std::string(client) + "|" + std::string(rest);
  }
  void onMeta(records::MetaRecord m) override { meta = std::move(m); }
  void onSession(SessionRecord s) override { sessions[s.client_id()] = std::move(s); }
  void onSubscription(std::string_view c, std::string_view f, SubscriptionRecord s) override {
    subscriptions[key(c, f)] = std::move(s);
  }
  void onInflight(std::string_view c, uint16_t id, InflightRecord r,
                  const MessageRecord* m) override {
    inflight[key(c, std::to_string(id))] = std::move(r);
    inflight_topic[key(c, std::to_string(id))] = m ? m->topic() : "<none>";
  }
  void onAwaitingPubrel(std::string_view c, uint16_t id) override {
    pubrel.push_back(key(c, std::to_string(id)));
  }
  void onRetained(std::string_view t, MessageRecord m) override { retained[std::string(t)] = m; }
  void onQueue(std::string_view c, const QueueSummary& s) override { queues[std::string(c)] = s; }
  void onMessageReferences(uint64_t id, uint32_t n) override { references[id] = n; }
};

MessageRecord makeMessage(std::string topic, std::string payload, uint64_t expiry_ms = 0) {
  MessageRecord m;
  m.set_topic(std::move(topic));
  m.set_payload(std::move(payload));
  m.set_qos(1);
  m.set_expiry_ms(expiry_ms);
  return m;
}

QueueEntryRecord makeEntry(uint64_t message_id, uint64_t expiry_ms = 0) {
  QueueEntryRecord e;
  e.set_message_id(message_id);
  e.set_qos(1);
  e.set_expiry_ms(expiry_ms);
  e.set_message_bytes(10);
  return e;
}

SessionRecord makeSession(std::string client_id) {
  SessionRecord s;
  s.set_client_id(std::move(client_id));
  s.set_protocol_version(5);
  s.set_session_expiry_interval(3600);
  return s;
}

class StorageTest : public ::testing::Test {
 protected:
  StoreOptions options() {
    StoreOptions o;
    o.data_dir = (fs::path(tmp_.path()) / "data").string();
    o.wall_clock_ms = [this] { return now_ms_.load(); };
    return o;
  }
  std::unique_ptr<SessionStore> open(StoreOptions o) {
    auto store = openRocksDbSessionStore(o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(store).value() : nullptr;
  }
  std::unique_ptr<SessionStore> open() { return open(options()); }
  Loaded load(SessionStore& store, LoadStats* stats = nullptr) {
    Loaded l;
    auto s = store.load(l);
    EXPECT_TRUE(s.ok()) << s.status();
    if (stats != nullptr && s.ok()) *stats = *s;
    return l;
  }
  void commit(SessionStore& store, WriteSet& ws) {
    absl::Status s = store.commit(std::move(ws));
    ASSERT_TRUE(s.ok()) << s;
    ws.clear();
  }
  uint64_t count(SessionStore& store, Table t) {
    auto n = store.countKeys(t);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : 0;
  }

  TempDir tmp_;
  std::atomic<int64_t> now_ms_{1'700'000'000'000};
};

TEST_F(StorageTest, RoundTripOfEveryRecordKindAcrossReopen) {
  SessionRecord session = makeSession("dev-1");
  session.set_last_seen_ms(1234);
  session.set_next_queue_sequence(7);
  session.set_will_due_ms(99);
  auto* will = session.mutable_will();
  will->set_topic("dev/1/status");
  will->set_payload("offline");
  will->set_qos(1);
  will->set_retain(true);
  will->set_will_delay_interval(30);
  will->set_message_expiry_interval(60);
  will->mutable_properties()->set_content_type("text/plain");
  will->mutable_properties()->set_response_topic("r/t");
  will->mutable_properties()->set_correlation_data(std::string("\x00\x01", 2));
  will->mutable_properties()->set_payload_format_indicator(1);
  auto* up = will->mutable_properties()->add_user_properties();
  up->set_key("k");
  up->set_value("v");

  SubscriptionRecord sub;
  sub.set_qos(2);
  sub.set_no_local(true);
  sub.set_retain_as_published(true);
  sub.set_retain_handling(2);
  sub.set_subscription_id(42);

  MessageRecord message = makeMessage("a/b", std::string(64, 'x'), now_ms_ + 60'000);
  message.set_publisher_client_id("pub");
  message.mutable_properties()->set_content_type("json");

  InflightRecord by_ref;
  by_ref.set_message_id(5);
  by_ref.set_qos(1);
  by_ref.set_sequence(3);
  by_ref.add_subscription_ids(42);
  InflightRecord embedded;
  *embedded.mutable_message() = makeMessage("e/f", "embedded");
  embedded.set_qos(2);
  InflightRecord pubrec;
  pubrec.set_qos(2);
  pubrec.set_pubrec_received(true);

  QueueEntryRecord entry = makeEntry(5, now_ms_ + 60'000);
  entry.add_subscription_ids(42);
  entry.set_retain(true);

  records::MetaRecord meta;
  meta.set_format_version(kFormatVersion);
  meta.set_node_id(3);
  meta.set_next_message_id(1000);

  {
    auto store = open();
    WriteSet ws;
    ws.putSession(session);
    ws.putSubscription("dev-1", "$share/g/a/+", sub);
    ws.putMessage(5, message);
    by_ref.set_packet_id(1);
    embedded.set_packet_id(2);
    pubrec.set_packet_id(300);
    ws.putInflight("dev-1", 10, by_ref);
    ws.putInflight("dev-1", 11, embedded);
    ws.putInflight("dev-1", 12, pubrec);
    ws.putAwaitingPubrel("dev-1", 65535);
    ws.putQueueEntry("dev-1", 6, entry);
    ws.putRetained("a/b", message);
    ws.putMeta(meta);
    commit(*store, ws);
  }
  auto store = open();
  LoadStats stats;
  Loaded l = load(*store, &stats);
  EXPECT_EQ(l.meta.SerializeAsString(), meta.SerializeAsString());
  ASSERT_EQ(l.sessions.count("dev-1"), 1u);
  EXPECT_EQ(l.sessions["dev-1"].SerializeAsString(), session.SerializeAsString());
  EXPECT_EQ(l.subscriptions[Loaded::key("dev-1", "$share/g/a/+")].SerializeAsString(),
            sub.SerializeAsString());
  EXPECT_EQ(l.inflight[Loaded::key("dev-1", "1")].SerializeAsString(), by_ref.SerializeAsString());
  EXPECT_EQ(l.inflight_topic[Loaded::key("dev-1", "1")], "a/b");  // joined
  EXPECT_EQ(l.inflight[Loaded::key("dev-1", "2")].SerializeAsString(),
            embedded.SerializeAsString());
  EXPECT_EQ(l.inflight_topic[Loaded::key("dev-1", "2")], "e/f");
  EXPECT_TRUE(l.inflight[Loaded::key("dev-1", "300")].pubrec_received());
  EXPECT_EQ(l.pubrel, std::vector<std::string>{Loaded::key("dev-1", "65535")});
  EXPECT_EQ(l.retained["a/b"].SerializeAsString(), message.SerializeAsString());
  ASSERT_EQ(l.queues.count("dev-1"), 1u);
  EXPECT_EQ(l.queues["dev-1"].first_sequence, 6u);
  EXPECT_EQ(l.queues["dev-1"].count, 1u);
  EXPECT_EQ(l.queues["dev-1"].bytes, 10u);
  EXPECT_EQ(l.references[5], 2u);  // the inflight entry and the queue entry
  EXPECT_EQ(stats.orphan_messages_deleted, 0u);
  EXPECT_EQ(stats.dangling_references, 0u);

  auto q = store->readQueue("dev-1", 0, 10);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->size(), 1u);
  EXPECT_EQ((*q)[0].sequence, 6u);
  EXPECT_EQ((*q)[0].state, QueuedMessage::State::kOk);
  EXPECT_EQ((*q)[0].entry.SerializeAsString(), entry.SerializeAsString());
  EXPECT_EQ((*q)[0].message.SerializeAsString(), message.SerializeAsString());
}

TEST_F(StorageTest, FreshStoreHasMeta) {
  auto store = open();
  Loaded l = load(*store);
  EXPECT_EQ(l.meta.format_version(), kFormatVersion);
  EXPECT_EQ(l.meta.created_ms(), now_ms_.load());
  EXPECT_TRUE(l.sessions.empty());
}

TEST_F(StorageTest, OperationsApplyInOrderWithinABatch) {
  auto store = open();
  WriteSet ws;
  ws.putSession(makeSession("a"));
  ws.deleteSession("a");
  ws.putSession(makeSession("b"));
  ws.deleteSubscription("b", "x");  // absent: harmless
  ws.putSubscription("b", "x", SubscriptionRecord());
  commit(*store, ws);
  Loaded l = load(*store);
  EXPECT_EQ(l.sessions.count("a"), 0u);
  EXPECT_EQ(l.sessions.count("b"), 1u);
  EXPECT_EQ(l.subscriptions.count(Loaded::key("b", "x")), 1u);
}

TEST_F(StorageTest, QueueOrderAcross10000EntriesCrossingByteBoundaries) {
  auto store = open();
  // Sequences from 65536 - 5000: cross 0xFFFF -> 0x10000 and many 0xFF -> 0x100.
  const uint64_t first = 65536 - 5000;
  const int n = 10'000;
  WriteSet ws;
  ws.putMessage(1, makeMessage("t", "p"));
  for (int i = 0; i < n; ++i) {
    ws.putQueueEntry("abc", first + static_cast<uint64_t>(i), makeEntry(1));
    if (i % 1000 == 999) commit(*store, ws);
  }
  // A neighbour whose client id extends "abc": must not show up in its queue.
  ws.putQueueEntry("abcd", 1, makeEntry(1));
  ws.putQueueEntry("ab", 1 << 20, makeEntry(1));
  commit(*store, ws);

  uint64_t expect = first;
  uint64_t from = 0;
  size_t total = 0;
  for (;;) {
    auto q = store->readQueue("abc", from, 777);
    ASSERT_TRUE(q.ok()) << q.status();
    if (q->empty()) break;
    for (const auto& m : *q) {
      ASSERT_EQ(m.sequence, expect);
      ASSERT_EQ(m.state, QueuedMessage::State::kOk);
      ASSERT_EQ(m.message.topic(), "t");
      ++expect;
    }
    total += q->size();
    from = q->back().sequence + 1;
  }
  EXPECT_EQ(total, static_cast<size_t>(n));
  // Beyond uint32: 2^32 - 1 then 2^32.
  WriteSet big;
  big.putQueueEntry("big", (1ULL << 32), makeEntry(1));
  big.putQueueEntry("big", (1ULL << 32) - 1, makeEntry(1));
  commit(*store, big);
  auto q = store->readQueue("big", 0, 10);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 2u);
  EXPECT_EQ((*q)[0].sequence, (1ULL << 32) - 1);
  EXPECT_EQ((*q)[1].sequence, 1ULL << 32);
}

TEST_F(StorageTest, RangeDeleteOfDeliveredEntriesSurvivesReopenAndCompaction) {
  {
    auto store = open();
    WriteSet ws;
    ws.putMessage(1, makeMessage("t", "p"));
    for (uint64_t s = 1; s <= 1000; ++s) ws.putQueueEntry("c", s, makeEntry(1));
    commit(*store, ws);
    ASSERT_TRUE(store->compact().ok());  // the entries are in an SST now
    ws.deleteQueueRange("c", 1, 501);      // delivered: 1..500
    ws.deleteQueueEntry("c", 600);         // a single one
    commit(*store, ws);
  }
  auto store = open();
  auto q = store->readQueue("c", 0, 2000);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 499u);
  EXPECT_EQ(q->front().sequence, 501u);
  EXPECT_EQ(q->back().sequence, 1000u);
  Loaded l = load(*store);
  EXPECT_EQ(l.queues["c"].first_sequence, 501u);
  EXPECT_EQ(l.queues["c"].count, 499u);
  ASSERT_TRUE(store->compact().ok());
  EXPECT_EQ(count(*store, Table::kQueue), 499u);
}

TEST_F(StorageTest, EmbeddedQueueEntryNeedsNoMessageRecordAndHoldsNoReference) {
  {
    auto store = open();
    WriteSet ws;
    QueueEntryRecord embedded = makeEntry(7);
    *embedded.mutable_message() = makeMessage("a/b", "inline");
    ws.putQueueEntry("c", 7, embedded);
    ws.putMessage(8, makeMessage("a/b", "shared"));
    ws.putQueueEntry("c", 8, makeEntry(8));
    QueueEntryRecord expired = makeEntry(9, now_ms_ - 1);
    *expired.mutable_message() = makeMessage("a/b", "old");
    ws.putQueueEntry("c", 9, expired);
    commit(*store, ws);
  }
  auto store = open();
  LoadStats stats;
  Loaded l = load(*store, &stats);
  // Only the shared record is referenced; nothing is an orphan.
  EXPECT_EQ(l.references.size(), 1u);
  EXPECT_EQ(l.references[8], 1u);
  EXPECT_EQ(stats.orphan_messages_deleted, 0u);
  auto q = store->readQueue("c", 0, 10);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 3u);
  EXPECT_EQ((*q)[0].state, QueuedMessage::State::kOk);
  EXPECT_TRUE((*q)[0].embedded);
  EXPECT_EQ((*q)[0].message.payload(), "inline");
  EXPECT_FALSE((*q)[0].entry.has_message());  // moved out, not copied
  EXPECT_EQ((*q)[1].state, QueuedMessage::State::kOk);
  EXPECT_FALSE((*q)[1].embedded);
  EXPECT_EQ((*q)[1].message.payload(), "shared");
  EXPECT_EQ((*q)[2].state, QueuedMessage::State::kExpired);
}

TEST_F(StorageTest, InflightRangeDeleteRemovesACompletedRunOnly) {
  {
    auto store = open();
    WriteSet ws;
    for (uint64_t seq = 1; seq <= 100; ++seq) {
      InflightRecord r;
      *r.mutable_message() = makeMessage("t", "p");
      r.set_qos(1);
      r.set_sequence(seq);
      r.set_packet_id(static_cast<uint32_t>(seq));
      ws.putInflight("c", seq, r);
      ws.putInflight("cd", seq, r);  // another client with a longer id
    }
    commit(*store, ws);
    ws.deleteInflightRange("c", 1, 61);  // acknowledged: 1..60
    ws.deleteInflight("c", 70);
    commit(*store, ws);
  }
  auto store = open();
  LoadStats stats;
  Loaded l = load(*store, &stats);
  EXPECT_EQ(stats.inflight, 139u);  // 39 of "c" + 100 of "cd"
  EXPECT_EQ(l.inflight.count(Loaded::key("c", "60")), 0u);
  EXPECT_EQ(l.inflight.count(Loaded::key("c", "61")), 1u);
  EXPECT_EQ(l.inflight.count(Loaded::key("c", "70")), 0u);
  EXPECT_EQ(l.inflight.count(Loaded::key("cd", "1")), 1u);
}

TEST_F(StorageTest, DeleteSessionRemovesEverythingOfThatSessionOnly) {
  auto fill = [](WriteSet& ws, const std::string& c) {
    ws.putSession(makeSession(c));
    ws.putSubscription(c, "a/#", SubscriptionRecord());
    ws.putSubscription(c, "b", SubscriptionRecord());
    InflightRecord r;
    r.set_message_id(1);
    r.set_packet_id(1);
    ws.putInflight(c, 1, r);
    r.set_packet_id(65535);
    ws.putInflight(c, 65535, r);
    ws.putAwaitingPubrel(c, 7);
    for (uint64_t s = 0; s < 300; ++s) ws.putQueueEntry(c, s, makeEntry(1));
  };
  {
    auto store = open();
    WriteSet ws;
    ws.putMessage(1, makeMessage("t", "p"));
    fill(ws, "ab");
    fill(ws, "abc");  // "ab" is a prefix of "abc"
    fill(ws, "aa");   // sorts before "ab"
    commit(*store, ws);
    ASSERT_TRUE(store->compact().ok());
    ws.deleteSession("ab");
    commit(*store, ws);
  }
  auto store = open();
  Loaded l = load(*store);
  EXPECT_EQ(l.sessions.size(), 2u);
  EXPECT_EQ(l.sessions.count("ab"), 0u);
  for (const auto& [k, v] : l.subscriptions) EXPECT_NE(k.substr(0, 3), "ab|") << k;
  EXPECT_EQ(l.subscriptions.size(), 4u);
  EXPECT_EQ(l.inflight.size(), 4u);
  EXPECT_EQ(l.pubrel.size(), 2u);
  EXPECT_EQ(l.queues.count("ab"), 0u);
  EXPECT_EQ(l.queues["abc"].count, 300u);
  EXPECT_EQ(l.queues["aa"].count, 300u);
  auto q = store->readQueue("ab", 0, 10);
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(q->empty());
  ASSERT_TRUE(store->compact().ok());
  EXPECT_EQ(count(*store, Table::kQueue), 600u);
  EXPECT_EQ(count(*store, Table::kSession), 2u);
  EXPECT_EQ(count(*store, Table::kMessage), 1u);  // refcounted by the broker, not deleted here
}

TEST_F(StorageTest, MessageReferencedBy100QueueEntriesIsStoredOnce) {
  auto store = open();
  WriteSet ws;
  ws.putMessage(77, makeMessage("fan/out", std::string(1000, 'p')));
  for (int i = 0; i < 100; ++i) {
    std::string c = "sub-" + std::to_string(i);
    ws.putSession(makeSession(c));
    ws.putQueueEntry(c, 1, makeEntry(77));
  }
  commit(*store, ws);
  EXPECT_EQ(count(*store, Table::kMessage), 1u);
  EXPECT_EQ(count(*store, Table::kQueue), 100u);
  for (int i = 0; i < 100; i += 33) {
    auto q = store->readQueue("sub-" + std::to_string(i), 0, 10);
    ASSERT_TRUE(q.ok());
    ASSERT_EQ(q->size(), 1u);
    EXPECT_EQ((*q)[0].message.payload().size(), 1000u);
  }
  Loaded l = load(*store);
  EXPECT_EQ(l.references[77], 100u);
  // The broker's refcount reaches 0: it deletes the message with the last entry.
  for (int i = 0; i < 100; ++i) ws.deleteQueueRange("sub-" + std::to_string(i), 0, 2);
  ws.deleteMessage(77);
  commit(*store, ws);
  EXPECT_EQ(count(*store, Table::kMessage), 0u);
}

TEST_F(StorageTest, RetainedPutAndClear) {
  {
    auto store = open();
    WriteSet ws;
    ws.putRetained("s/1", makeMessage("s/1", "on"));
    ws.putRetained("s/2", makeMessage("s/2", "off"));
    commit(*store, ws);
    ws.putRetained("s/1", makeMessage("s/1", "on-again"));
    ws.deleteRetained("s/2");  // an empty retained PUBLISH clears the topic
    commit(*store, ws);
  }
  auto store = open();
  Loaded l = load(*store);
  ASSERT_EQ(l.retained.size(), 1u);
  EXPECT_EQ(l.retained["s/1"].payload(), "on-again");
}

TEST_F(StorageTest, LoadDeletesOrphanMessagesAndCountsDanglingReferences) {
  auto store = open();
  WriteSet ws;
  ws.putMessage(1, makeMessage("t", "orphan"));
  ws.putMessage(2, makeMessage("t", "referenced"));
  ws.putQueueEntry("c", 1, makeEntry(2));
  ws.putQueueEntry("c", 2, makeEntry(3));                // missing, not expired
  ws.putQueueEntry("c", 3, makeEntry(4, now_ms_ - 1));   // expired: not a reference
  commit(*store, ws);
  LoadStats stats;
  Loaded l = load(*store, &stats);
  EXPECT_EQ(stats.orphan_messages_deleted, 1u);
  EXPECT_EQ(stats.dangling_references, 1u);
  EXPECT_EQ(l.references.size(), 1u);
  EXPECT_EQ(count(*store, Table::kMessage), 1u);
  auto q = store->readQueue("c", 0, 10);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 3u);
  EXPECT_EQ((*q)[0].state, QueuedMessage::State::kOk);
  EXPECT_EQ((*q)[1].state, QueuedMessage::State::kMissing);
  EXPECT_EQ((*q)[2].state, QueuedMessage::State::kExpired);
}

TEST_F(StorageTest, CompactionDropsExpiredMessages) {
  auto store = open();
  WriteSet ws;
  const int64_t t0 = now_ms_;
  ws.putMessage(1, makeMessage("t", "expires", t0 + 1000));
  ws.putMessage(2, makeMessage("t", "forever"));
  ws.putMessage(3, makeMessage("t", "later", t0 + 10'000'000));
  ws.putQueueEntry("c", 1, makeEntry(1, t0 + 1000));
  ws.putQueueEntry("c", 2, makeEntry(2));
  commit(*store, ws);
  ASSERT_TRUE(store->compact().ok());
  EXPECT_EQ(count(*store, Table::kMessage), 3u);  // nothing expired yet
  now_ms_ = t0 + 2000;
  ASSERT_TRUE(store->compact().ok());
  EXPECT_EQ(count(*store, Table::kMessage), 2u);
  auto q = store->readQueue("c", 0, 10);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 2u);
  EXPECT_EQ((*q)[0].state, QueuedMessage::State::kExpired);
  EXPECT_EQ((*q)[1].state, QueuedMessage::State::kOk);
}

TEST_F(StorageTest, ConcurrentCommitsFromSeveralThreads) {
  auto store = open();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) {
        WriteSet ws;
        uint64_t id = static_cast<uint64_t>(t) * 1000 + static_cast<uint64_t>(i);
        ws.putMessage(id, makeMessage("t", "p"));
        ws.putQueueEntry("w" + std::to_string(t), static_cast<uint64_t>(i), makeEntry(id));
        if (!store->commit(std::move(ws)).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(count(*store, Table::kMessage), 1000u);
  EXPECT_EQ(count(*store, Table::kQueue), 1000u);
}

TEST_F(StorageTest, ApproximateDiskBytesGrows) {
  auto store = open();
  uint64_t before = store->approximateDiskBytes();
  EXPECT_GT(before, 0u);
  WriteSet ws;
  for (uint64_t i = 0; i < 200; ++i) ws.putMessage(i, makeMessage("t", std::string(1000, 'x')));
  commit(*store, ws);
  EXPECT_GT(store->approximateDiskBytes(), before + 100'000);
}

// --- fsync option, disk full, atomicity under failure ---

TEST_F(StorageTest, SyncOptionIsHonoured) {
  for (bool sync : {false, true}) {
    TempDir dir;
    StoreOptions o = options();
    o.data_dir = dir.path();
    o.sync = sync;
    o.io_hooks = std::make_shared<IoHooks>();
    auto store = open(o);
    uint64_t syncs_before = o.io_hooks->wal_syncs.load();
    uint64_t wal_before = o.io_hooks->wal_bytes_written.load();
    for (int i = 0; i < 10; ++i) {
      WriteSet ws;
      ws.putMessage(static_cast<uint64_t>(i), makeMessage("t", "p"));
      ASSERT_TRUE(store->commit(std::move(ws)).ok());
    }
    uint64_t syncs = o.io_hooks->wal_syncs.load() - syncs_before;
    EXPECT_GT(o.io_hooks->wal_bytes_written.load(), wal_before);
    if (sync) {
      EXPECT_GE(syncs, 10u) << "sync=true must fsync the WAL on every commit";
    } else {
      EXPECT_EQ(syncs, 0u) << "sync=false must not fsync the WAL on commit";
    }
  }
}

TEST_F(StorageTest, DiskFullFailsTheCommitAtomicallyAndTheStoreRecovers) {
  StoreOptions o = options();
  o.io_hooks = std::make_shared<IoHooks>();
  {
    auto store = open(o);
    WriteSet ws;
    ws.putSession(makeSession("before"));
    commit(*store, ws);

    o.io_hooks->fail_writes = true;
    WriteSet lost;
    lost.putSession(makeSession("lost"));
    lost.putMessage(1, makeMessage("t", "p"));
    for (uint64_t s = 0; s < 100; ++s) lost.putQueueEntry("lost", s, makeEntry(1));
    absl::Status s = store->commit(std::move(lost));
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_NE(s.message().find("disk full"), absl::string_view::npos) << s;
    // Still full: still refused, no crash.
    WriteSet again;
    again.putSession(makeSession("also-lost"));
    EXPECT_FALSE(store->commit(std::move(again)).ok());

    o.io_hooks->fail_writes = false;  // space freed
    // RocksDB's recovery re-checks free space every 5 s: commits fail (with the
    // same code) until it has resumed, then succeed.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      WriteSet after;
      after.putSession(makeSession("after"));
      s = store->commit(std::move(after));
      if (s.ok() || std::chrono::steady_clock::now() > deadline) break;
      EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(s.ok()) << "the store must resume once space is back: " << s;
  }
  o.io_hooks = nullptr;
  auto store = open(o);
  Loaded l = load(*store);
  EXPECT_EQ(l.sessions.count("before"), 1u);
  EXPECT_EQ(l.sessions.count("after"), 1u);
  EXPECT_EQ(l.sessions.count("lost"), 0u);  // all or nothing
  EXPECT_EQ(l.sessions.count("also-lost"), 0u);
  EXPECT_EQ(l.queues.count("lost"), 0u);
  EXPECT_EQ(count(*store, Table::kMessage), 0u);
}

// --- open-time faults ---

TEST_F(StorageTest, LockedDirectoryGivesAClearError) {
  auto first = open();
  auto second = openRocksDbSessionStore(options());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  std::string msg(second.status().message());
  EXPECT_NE(msg.find(options().data_dir), std::string::npos) << msg;
  EXPECT_NE(msg.find("--data_dir"), std::string::npos) << msg;
}

// Runs this test binary again in child mode (see main() below): it opens the
// store in `dir` and exits. Returns its
// exit code (0 = opened) and output. `as_nobody` drops root first.
std::pair<int, std::string> openInChildProcess(const std::string& dir, bool as_nobody) {
  std::string cmd = "GANNET_TEST_CHILD_OPEN='" + dir + "' GANNET_TEST_CHILD_NOBODY=" +
                    (as_nobody ? "1" : "0") +
                    " /proc/self/exe 2>&1";
  // /proc/self/exe of the shell would be the shell: resolve ours first.
  std::string self = fs::read_symlink("/proc/self/exe").string();
  cmd.replace(cmd.find("/proc/self/exe"), 14, self);
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  int rc = p ? ::pclose(p) : -1;
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

TEST_F(StorageTest, DirectoryLockedByAnotherProcessGivesAClearError) {
  auto store = open();
  auto [rc, out] = openInChildProcess(options().data_dir, false);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("FAILED_PRECONDITION"), std::string::npos) << out;
  EXPECT_NE(out.find("in use by another gannet process"), std::string::npos) << out;
  EXPECT_NE(out.find(options().data_dir), std::string::npos) << out;
}

TEST_F(StorageTest, UnreadableDirectoryGivesAClearError) {
  { auto store = open(); }
  const std::string dir = options().data_dir;
  fs::permissions(tmp_.path(), fs::perms::owner_all | fs::perms::others_exec |
                                   fs::perms::group_exec);
  fs::permissions(dir, fs::perms::none);
  // Root ignores permissions: check as "nobody" in a child process (a fresh
  // process, so no RocksDB thread is running when it drops privileges).
  auto [rc, out] = openInChildProcess(dir, /*as_nobody=*/true);
  fs::permissions(dir, fs::perms::owner_all);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("PERMISSION_DENIED"), std::string::npos) << out;
  EXPECT_NE(out.find(dir), std::string::npos) << out;
  EXPECT_NE(out.find("permission"), std::string::npos) << out;
}

TEST_F(StorageTest, PathThatIsAFileGivesAClearError) {
  std::ofstream(options().data_dir) << "not a directory";
  auto store = openRocksDbSessionStore(options());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_NE(store.status().message().find("not a directory"), absl::string_view::npos);
}

class CorruptStoreTest : public StorageTest {
 protected:
  void SetUp() override {
    auto store = open();
    WriteSet ws;
    ws.putSession(makeSession("dev"));
    for (uint64_t s = 0; s < 100; ++s) ws.putQueueEntry("dev", s, makeEntry(1));
    commit(*store, ws);
    ASSERT_TRUE(store->compact().ok());
  }
  std::vector<fs::path> files(std::string_view prefix, std::string_view suffix) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(options().data_dir)) {
      std::string n = e.path().filename().string();
      if (n.starts_with(prefix) && n.ends_with(suffix)) out.push_back(e.path());
    }
    return out;
  }
  static void garbage(const fs::path& p, std::ios::openmode mode = std::ios::trunc) {
    std::ofstream f(p, std::ios::binary | std::ios::out | mode);
    for (int i = 0; i < 4096; ++i) f.put(static_cast<char>((i * 131 + 7) & 0xFF));
  }
  // Opening (and, if that succeeds, loading) must fail with DataLoss.
  void expectDataLoss() {
    auto store = openRocksDbSessionStore(options());
    absl::Status s = store.status();
    if (store.ok()) {
      Loaded l;
      s = (*store)->load(l).status();
    }
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find("corrupt"), absl::string_view::npos) << s;
  }
};

TEST_F(CorruptStoreTest, GarbageInCurrent) {
  garbage(fs::path(options().data_dir) / "CURRENT");
  expectDataLoss();
  auto store = openRocksDbSessionStore(options());
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(options().data_dir), absl::string_view::npos);
  EXPECT_NE(store.status().message().find("backup"), absl::string_view::npos);
}

TEST_F(CorruptStoreTest, GarbageInManifest) {
  auto manifests = files("MANIFEST-", "");
  ASSERT_FALSE(manifests.empty());
  for (const auto& m : manifests) garbage(m);
  expectDataLoss();
}

TEST_F(CorruptStoreTest, GarbageInSst) {
  auto ssts = files("", ".sst");
  ASSERT_FALSE(ssts.empty());
  for (const auto& f : ssts) garbage(f);
  expectDataLoss();
}

TEST_F(CorruptStoreTest, MissingCurrent) {
  fs::remove(fs::path(options().data_dir) / "CURRENT");
  expectDataLoss();
}

}  // namespace
}  // namespace gannet::storage

// Child mode for the multi-process tests above: started with
// GANNET_TEST_CHILD_OPEN=DIR, the binary opens the store there, prints the
// status and exits 0 (opened) or 3 (refused), without running any test.
namespace {
int runChild(const char* dir) {
  using gannet::storage::StoreOptions;
  const char* nobody = std::getenv("GANNET_TEST_CHILD_NOBODY");
  if (nobody != nullptr && std::string(nobody) == "1" && ::geteuid() == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 4;
  }
  StoreOptions o;
  o.data_dir = dir;
  auto store = gannet::storage::openRocksDbSessionStore(o);
  std::printf("CHILD-STATUS: %s\n", store.status().ToString().c_str());
  std::fflush(stdout);
  std::_Exit(store.ok() ? 0 : 3);
}
}  // namespace

int main(int argc, char** argv) {
  if (const char* dir = std::getenv("GANNET_TEST_CHILD_OPEN")) return runChild(dir);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
