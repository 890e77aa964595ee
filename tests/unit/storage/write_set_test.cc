// WriteSet mirroring and parsing: what a worker replicates to other nodes.
#include "storage/write_set.h"

#include <gtest/gtest.h>

#include <vector>

namespace gannet::storage {
namespace {

std::vector<std::pair<Table, std::string>> opsOf(const WriteSet& ws) {
  std::vector<std::pair<Table, std::string>> out;
  size_t pos = 0;
  WriteSet::Op op;
  while (ws.next(&pos, &op)) out.emplace_back(op.table, std::string(op.key));
  return out;
}

TEST(WriteSetTest, MirrorGetsTheOperationsOfItsTablesInOrder) {
  WriteSet ws, mirror;
  ws.setMirror(&mirror, WriteSet::bit(Table::kSession) | WriteSet::bit(Table::kQueue));
  records::SessionRecord rec;
  rec.set_client_id("c1");
  ws.putSession(rec);
  ws.putRetained("t", records::MessageRecord());  // not mirrored
  records::QueueEntryRecord e;
  e.set_qos(1);
  ws.putQueueEntry("c1", 7, e);
  ws.deleteQueueEntry("c1", 7);
  ws.putNodeQueue(2, 1, records::MessageRecord());  // not mirrored
  EXPECT_EQ(ws.operationCount(), 5u);
  ASSERT_EQ(mirror.operationCount(), 3u);
  auto ops = opsOf(mirror);
  EXPECT_EQ(ops[0].first, Table::kSession);
  EXPECT_EQ(ops[1].first, Table::kQueue);
  EXPECT_EQ(ops[2].first, Table::kQueue);
  EXPECT_EQ(ops[1].second, ops[2].second);
  // A session delete is several operations: the ones on mirrored tables go.
  ws.deleteSession("c1");
  EXPECT_EQ(mirror.operationCount(), 5u);
}

TEST(WriteSetTest, ParseRoundTripsAndRejectsMalformedBytes) {
  WriteSet ws;
  records::SessionRecord rec;
  rec.set_client_id("dev");
  ws.putSession(rec);
  ws.putInflightBytes("dev", 3, "record");
  ws.deleteInflightRange("dev", 1, 9);
  WriteSet back;
  ASSERT_TRUE(WriteSet::parse(ws.bytes(), &back));
  EXPECT_EQ(back.operationCount(), 3u);
  EXPECT_EQ(opsOf(back), opsOf(ws));

  const std::string good = ws.bytes();
  WriteSet bad;
  // Truncated anywhere inside the last operation, a bad kind, a bad table, a
  // length past the end: refused, never read out of bounds.
  for (size_t cut = 1; cut < good.size(); ++cut) {
    WriteSet tmp;
    const bool ok = WriteSet::parse(good.substr(0, cut), &tmp);
    if (ok) EXPECT_LE(tmp.operationCount(), 3u);
  }
  EXPECT_FALSE(WriteSet::parse(good.substr(0, good.size() - 1), &bad));
  std::string kind = good;
  kind[0] = 9;
  EXPECT_FALSE(WriteSet::parse(kind, &bad));
  std::string table = good;
  table[1] = static_cast<char>(kTableCount);
  EXPECT_FALSE(WriteSet::parse(table, &bad));
  EXPECT_FALSE(WriteSet::parse(std::string("\x01\x00\xff\xff\xff\xff\x0f", 7), &bad));
  EXPECT_EQ(bad.operationCount(), 0u);
  WriteSet empty;
  EXPECT_TRUE(WriteSet::parse("", &empty));
  EXPECT_TRUE(empty.empty());
}

}  // namespace
}  // namespace gannet::storage
