// MessageIds against a real RocksDB store in a temp dir; MessageRefs and
// DurableSessions, also from several threads.
#include "broker/server/durable.h"

#include <filesystem>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "storage/rocksdb/rocksdb_session_store.h"

namespace gannet::server {
namespace {

namespace fs = std::filesystem;

class MessageIdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gannet-ids-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<storage::SessionStore> open() {
    storage::StoreOptions o;
    o.data_dir = dir_.string();
    auto s = storage::openRocksDbSessionStore(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return std::move(*s);
  }
  records::MetaRecord meta(storage::SessionStore& store) {
    struct V : storage::LoadVisitor {
      records::MetaRecord meta;
      void onMeta(records::MetaRecord m) override { meta = std::move(m); }
    } v;
    EXPECT_TRUE(store.load(v).ok());
    return v.meta;
  }

  fs::path dir_;
};

TEST_F(MessageIdsTest, BlocksAreRecordedSoARestartNeverReusesAnId) {
  uint64_t last_end = 0;
  {
    auto store = open();
    MessageIds ids(store.get(), meta(*store));
    EXPECT_EQ(ids.firstOfRun(), 1u);
    auto a = ids.reserveBlock();
    auto b = ids.reserveBlock();
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->first, 1u);
    EXPECT_EQ(a->second, b->first);  // consecutive, disjoint
    EXPECT_EQ(b->second - b->first, MessageIds::kBlock);
    last_end = b->second;
  }
  auto store = open();  // as after kill -9: only the committed meta record counts
  MessageIds ids(store.get(), meta(*store));
  EXPECT_EQ(ids.firstOfRun(), last_end);
  auto c = ids.reserveBlock();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->first, last_end);
}

TEST(MessageRefsTest, OnlySharedMessagesAreCountedAndTheLastReleaseDeletes) {
  MessageRefs refs;
  EXPECT_TRUE(refs.release(5));  // never entered: a sole reference
  refs.set(9, 3);
  EXPECT_FALSE(refs.release(9));
  EXPECT_FALSE(refs.release(9));
  EXPECT_TRUE(refs.release(9));
  EXPECT_EQ(refs.size(), 0u);
}

TEST(MessageRefsTest, ConcurrentReleasesReportTheLastExactlyOnce) {
  MessageRefs refs;
  constexpr int kMessages = 2000, kThreads = 4;
  for (int id = 1; id <= kMessages; ++id) refs.set(id, kThreads);
  std::vector<int> lasts(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int id = 1; id <= kMessages; ++id) lasts[t] += refs.release(id) ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  int total = 0;
  for (int n : lasts) total += n;
  EXPECT_EQ(total, kMessages);
  EXPECT_EQ(refs.size(), 0u);
}

TEST(DurableSessionsTest, FindsOnlyStoredSessions) {
  DurableSessions d;
  d.add(1, std::make_shared<const std::string>("dev-1"));
  ASSERT_NE(d.find(1), nullptr);
  EXPECT_EQ(*d.find(1), "dev-1");
  EXPECT_EQ(d.find(2), nullptr);
  d.remove(1);
  EXPECT_EQ(d.find(1), nullptr);
}

}  // namespace
}  // namespace gannet::server
