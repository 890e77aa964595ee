// The inflight journal against real files in a temp dir: what is written is
// what recovery returns; done, drop and newer sessions; segments rolled,
// evicted and removed; torn tails tolerated; damage and full disks reported.

#include "storage/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "storage/crc32c.h"

namespace gannet::storage {
namespace {

namespace fs = std::filesystem;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gannet-journal-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Journal> open(uint32_t writer = 0, uint64_t segment_bytes = 1 << 20,
                                std::shared_ptr<IoHooks> hooks = nullptr) {
    JournalOptions o;
    o.dir = dir_;
    o.writer = writer;
    o.segment_bytes = segment_bytes;
    o.io_hooks = std::move(hooks);
    auto j = Journal::open(o);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? std::move(*j) : nullptr;
  }

  JournalRecovery recover() {
    auto r = recoverJournal(dir_);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : JournalRecovery{};
  }

  std::vector<std::string> files() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  static std::string summary(const JournalRecovery& r) {
    std::string out;
    for (const auto& e : r.entries) out += e.client_id + "/" + std::to_string(e.sequence) + "=" + e.record + " ";
    return out;
  }

  std::string dir_;
};

TEST(Crc32cTest, KnownValues) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  // Continuation equals one pass, across the 8-byte steps.
  const std::string text = "The quick brown fox jumps over the lazy dog";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    EXPECT_EQ(crc32c(text.substr(cut), crc32c(text.substr(0, cut))), crc32c(text)) << cut;
  }
}

TEST_F(JournalTest, RecoversWhatWasCommittedNotWhatWasPending) {
  auto j = open();
  j->put(1, "sensor-1", 10, "a");
  j->put(1, "sensor-1", 11, "b");
  j->put(2, "sensor-2", 5, "c");
  ASSERT_TRUE(j->commit().ok());
  j->put(1, "sensor-1", 12, "not committed");
  EXPECT_EQ(summary(recover()), "sensor-1/10=a sensor-1/11=b sensor-2/5=c ");
}

TEST_F(JournalTest, DoneRangeDropAndReplacement) {
  auto j = open();
  for (uint64_t seq = 1; seq <= 5; ++seq) j->put(7, "c", seq, "m" + std::to_string(seq));
  j->put(8, "d", 1, "x");
  ASSERT_TRUE(j->commit().ok());
  j->done(7, 2, 4);           // 2 and 3 delivered
  j->put(7, "c", 5, "pubrec");  // QoS 2 state replaces the message
  j->drop(8);
  ASSERT_TRUE(j->commit().ok());
  EXPECT_EQ(summary(recover()), "c/1=m1 c/4=m4 c/5=pubrec ");
}

TEST_F(JournalTest, OnlyTheNewestSessionOfAClientIdCounts) {
  auto a = open(0);
  auto b = open(1);
  a->put(3, "same", 1, "old session");
  ASSERT_TRUE(a->commit().ok());
  b->put(9, "same", 1, "new session");
  b->put(9, "same", 2, "new session 2");
  ASSERT_TRUE(b->commit().ok());
  EXPECT_EQ(summary(recover()), "same/1=new session same/2=new session 2 ");
}

TEST_F(JournalTest, SegmentsRollEvictAndGoWhenEmpty) {
  auto j = open(0, /*segment_bytes=*/64);
  const std::string big(100, 'x');
  const uint32_t s1 = j->put(1, "slow", 1, big);  // never acknowledged
  ASSERT_TRUE(j->commit().ok());                  // full: the next frame starts segment 2
  EXPECT_EQ(j->evictBefore(), 0u) << "segment 1 is the one before the active one";
  const uint32_t s2 = j->put(2, "fast", 1, big);
  ASSERT_TRUE(j->commit().ok());
  EXPECT_EQ(s2, s1 + 1);
  EXPECT_EQ(j->evictBefore(), s1) << "two segments behind and still live";
  j->done(2, 1, 2);
  j->release(s2);
  ASSERT_TRUE(j->commit().ok());  // segment 3: only the done
  j->collect();
  EXPECT_EQ(files().size(), 3u) << "segment 2 is empty, but segment 1 before it is live";
  // The owner stores segment 1's entry elsewhere: everything up to it is empty.
  j->releaseThrough(j->evictBefore());
  j->collect();
  EXPECT_EQ(files().size(), 1u);
  EXPECT_EQ(summary(recover()), "");
  EXPECT_EQ(j->diskBytes(), fs::file_size(fs::path(dir_) / files()[0]));
}

TEST_F(JournalTest, TornTailIsTheEndDamageInTheMiddleIsAnError) {
  auto j = open();
  j->put(1, "c", 1, "first");
  ASSERT_TRUE(j->commit().ok());
  j->put(1, "c", 2, "second");
  ASSERT_TRUE(j->commit().ok());
  j.reset();
  const std::string file = (fs::path(dir_) / files()[0]).string();
  const auto size = fs::file_size(file);
  {
    std::ofstream out(file, std::ios::app | std::ios::binary);
    out.write("\x40\x00\x00\x00\x12\x34", 6);  // a frame cut short
  }
  auto r = recover();
  EXPECT_EQ(summary(r), "c/1=first c/2=second ");
  EXPECT_EQ(r.torn_tails, 1u);
  // Flip a byte inside the first frame: the second follows it, so it is damage.
  fs::resize_file(file, size);
  {
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(20);
    io.put('#');
  }
  auto damaged = recoverJournal(dir_);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(damaged.status().message().find(file), std::string::npos) << damaged.status();
}

TEST_F(JournalTest, NotAJournalFileIsReported) {
  std::ofstream(fs::path(dir_) / "w0-0000000001.journal") << "something else entirely";
  auto r = recoverJournal(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(JournalTest, FullDiskFailsTheCommitAndLeavesNothingBehind) {
  auto hooks = std::make_shared<IoHooks>();
  auto j = open(0, 1 << 20, hooks);
  j->put(1, "c", 1, "kept");
  ASSERT_TRUE(j->commit().ok());
  hooks->fail_writes = true;
  j->put(1, "c", 2, "refused");
  absl::Status s = j->commit();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_FALSE(j->pending());
  hooks->fail_writes = false;
  // The session is defined again in the next frame (the failed one had its Define).
  j->put(1, "c", 3, "after");
  ASSERT_TRUE(j->commit().ok());
  EXPECT_EQ(summary(recover()), "c/1=kept c/3=after ");
}

TEST_F(JournalTest, RemoveJournalFilesLeavesOtherFiles) {
  auto j = open();
  j->put(1, "c", 1, "x");
  ASSERT_TRUE(j->commit().ok());
  std::ofstream(fs::path(dir_) / "README") << "keep";
  ASSERT_TRUE(removeJournalFiles(dir_).ok());
  EXPECT_EQ(files(), std::vector<std::string>{"README"});
  EXPECT_EQ(summary(recover()), "");
  auto missing = recoverJournal(dir_ + "/nonexistent");
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->entries.empty());
}

}  // namespace
}  // namespace gannet::storage
