// A replica's inflight records against a real RocksDB store and real journal
// files: records live in the journal (not the store) until acknowledged,
// survive a reopen, move to the store when they outlive two segments (and are
// then deleted there too), and everything is in the store before it is read.

#include "storage/replica_inflight.h"

#include <stdlib.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "storage/keys.h"
#include "storage/rocksdb/rocksdb_session_store.h"

namespace gannet::storage {
namespace {

namespace fs = std::filesystem;

class ReplicaInflightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gannet-replica-inflight-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    StoreOptions o;
    o.data_dir = dir_ + "/store";
    auto store = openRocksDbSessionStore(o);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    reopen();
  }
  void TearDown() override {
    inflight_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  void reopen(uint64_t segment_bytes = 1 << 20) {
    inflight_.reset();
    auto r = ReplicaInflight::open(dir_ + "/journal", false, segment_bytes, store_.get());
    ASSERT_TRUE(r.ok()) << r.status();
    inflight_ = std::move(*r);
  }
  // Applies a batch as ReplicaStores does: journal first, then the store.
  // Returns how many operations went to the store.
  size_t apply(WriteSet& batch) {
    WriteSet to_store;
    absl::Status s = inflight_->apply(batch, &to_store);
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_TRUE(inflight_->commit().ok());
    const size_t n = to_store.operationCount();
    if (n != 0) {
      EXPECT_TRUE(store_->commit(std::move(to_store)).ok());
    }
    EXPECT_TRUE(inflight_->maintain().ok());
    batch.clear();
    return n;
  }
  // Another client's records, each acknowledged right away (never in the
  // store): `n` of them roll a 4 KiB-segment journal over several segments.
  void rollSegments(uint64_t n) {
    WriteSet b;
    for (uint64_t seq = 1; seq <= n; ++seq) {
      b.putInflightBytes("fast", seq, std::string(200, 'x'));
      apply(b);
      b.deleteInflight("fast", seq);
      EXPECT_EQ(apply(b), 0u);
    }
  }
  uint64_t stored(Table t = Table::kInflight) {
    auto n = store_->countKeys(t);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : 0;
  }
  size_t journalFiles() {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_ + "/journal")) n += e.is_regular_file();
    return n;
  }

  std::string dir_;
  std::unique_ptr<SessionStore> store_;
  std::unique_ptr<ReplicaInflight> inflight_;
};

TEST_F(ReplicaInflightTest, InflightRecordsGoToTheJournalTheRestToTheStore) {
  WriteSet b;
  records::SessionRecord session;
  session.set_client_id("dev-1");
  b.putSession(session);
  for (uint64_t seq = 1; seq <= 10; ++seq) b.putInflightBytes("dev-1", seq, "record");
  EXPECT_EQ(apply(b), 1u);  // the session only
  EXPECT_EQ(stored(Table::kSession), 1u);
  EXPECT_EQ(stored(), 0u);
  EXPECT_EQ(inflight_->size(), 10u);

  // Acknowledged (a range, as the owner sends it): nothing for the store.
  b.deleteInflightRange("dev-1", 1, 8);
  EXPECT_EQ(apply(b), 0u);
  EXPECT_EQ(inflight_->size(), 3u);
  b.deleteInflight("dev-1", 8);
  EXPECT_EQ(apply(b), 0u);
  EXPECT_EQ(inflight_->size(), 2u);
}

TEST_F(ReplicaInflightTest, WhatIsLiveSurvivesAReopenInTheStore) {
  WriteSet b;
  for (uint64_t seq = 1; seq <= 5; ++seq) b.putInflightBytes("dev-1", seq, "r" + std::to_string(seq));
  b.putInflightBytes("dev-2", 7, "other");
  apply(b);
  b.deleteInflightRange("dev-1", 1, 4);
  apply(b);
  reopen();  // as after a restart: the journal's live records move into the store
  EXPECT_EQ(stored(), 3u);  // dev-1 4 and 5, dev-2 7
  EXPECT_EQ(inflight_->size(), 0u);
  // The store held inflight records before this run: deletes reach it.
  b.deleteInflightRange("dev-1", 4, 6);
  EXPECT_EQ(apply(b), 1u);
  EXPECT_EQ(stored(), 1u);
}

TEST_F(ReplicaInflightTest, LongLivedRecordsMoveToTheStoreAndAreDeletedThere) {
  reopen(/*segment_bytes=*/4096);
  WriteSet b;
  b.putInflightBytes("slow", 1, "never acknowledged for a while");
  apply(b);
  // Traffic of another client rolls the journal over several segments.
  rollSegments(200);
  EXPECT_EQ(stored(), 1u);  // "slow" 1 moved out
  EXPECT_EQ(inflight_->size(), 0u);
  EXPECT_LE(journalFiles(), 3u);  // the old segments went
  // Its acknowledgement deletes it from the store.
  b.deleteInflight("slow", 1);
  EXPECT_EQ(apply(b), 1u);
  EXPECT_EQ(stored(), 0u);
}

TEST_F(ReplicaInflightTest, AnEndedSessionTakesItsRecordsWherever) {
  reopen(/*segment_bytes=*/4096);
  WriteSet b;
  b.putInflightBytes("gone", 1, "in the store soon");
  apply(b);
  rollSegments(100);
  ASSERT_EQ(stored(), 1u);
  b.putInflightBytes("gone", 2, "in the journal");
  apply(b);
  EXPECT_EQ(inflight_->size(), 1u);
  b.deleteSession("gone");
  apply(b);
  EXPECT_EQ(stored(), 0u);
  EXPECT_EQ(inflight_->size(), 0u);
  reopen();
  EXPECT_EQ(stored(), 0u);  // nothing comes back from the journal either
}

TEST_F(ReplicaInflightTest, MoveAllToStoreBeforeReading) {
  WriteSet b;
  b.putInflightBytes("dev-1", 3, "v1");
  b.putInflightBytes("dev-1", 3, "v2");  // replaced (e.g. PUBREC received)
  b.putInflightBytes("dev-1", 4, "v1");
  apply(b);
  ASSERT_TRUE(inflight_->moveAllToStore().ok());
  EXPECT_EQ(stored(), 2u);
  EXPECT_EQ(inflight_->size(), 0u);
}

TEST_F(ReplicaInflightTest, AMalformedInflightKeyIsAnError) {
  // A put whose key has a client id but no sequence.
  WriteSet bad;
  WriteSet::Op op{WriteSet::OpKind::kPut, Table::kInflight, keys::clientPrefix("dev-1"), "x"};
  bad.add(op);
  WriteSet to_store;
  absl::Status s = inflight_->apply(bad, &to_store);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

}  // namespace
}  // namespace gannet::storage
