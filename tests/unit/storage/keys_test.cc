// Key layout: prefix-free client prefixes, numeric order of big-endian integers.
#include "storage/keys.h"

#include <gtest/gtest.h>

namespace gannet::storage {
namespace {

TEST(KeysTest, ClientPrefixIsPrefixFree) {
  // "ab" must not be a prefix of "abc": a session range delete of "ab" would
  // otherwise take "abc" with it.
  std::string ab = keys::clientPrefix("ab");
  std::string abc = keys::clientPrefix("abc");
  EXPECT_NE(abc.compare(0, ab.size(), ab), 0);
  EXPECT_FALSE(keys::queue("abc", 0) >= ab && keys::queue("abc", 0) < keys::prefixEnd(ab));
  EXPECT_TRUE(keys::queue("ab", ~0ULL) >= ab && keys::queue("ab", ~0ULL) < keys::prefixEnd(ab));
  EXPECT_TRUE(keys::subscription("ab", "\xff\xff/#") < keys::prefixEnd(ab));
}

TEST(KeysTest, PrefixEnd) {
  EXPECT_EQ(keys::prefixEnd("ab"), "ac");
  EXPECT_EQ(keys::prefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(keys::prefixEnd("\xff\xff"), "");
  EXPECT_EQ(keys::prefixEnd(""), "");
}

TEST(KeysTest, SequencesSortNumericallyAcrossByteBoundaries) {
  const uint64_t seqs[] = {0, 1, 255, 256, 257, 65535, 65536, (1ULL << 32) - 1, 1ULL << 32,
                           (1ULL << 56) + 3, ~0ULL};
  for (size_t i = 1; i < std::size(seqs); ++i) {
    EXPECT_LT(keys::queue("c", seqs[i - 1]), keys::queue("c", seqs[i])) << seqs[i];
    EXPECT_EQ(keys::readU64(keys::message(seqs[i])), seqs[i]);
  }
  EXPECT_LT(keys::inflight("c", 255), keys::inflight("c", 256));
  EXPECT_LT(keys::inflight("c", 0xFFFFFFFF), keys::inflight("c", 0x100000000));
}

TEST(KeysTest, SplitClientKey) {
  std::string_view client, rest;
  ASSERT_TRUE(keys::splitClientKey(keys::subscription("dev-1", "a/+/c"), &client, &rest));
  EXPECT_EQ(client, "dev-1");
  EXPECT_EQ(rest, "a/+/c");
  ASSERT_TRUE(keys::splitClientKey(keys::session(""), &client, &rest));
  EXPECT_EQ(client, "");
  EXPECT_FALSE(keys::splitClientKey(std::string("\x00\x05" "ab", 4), &client, &rest));
  EXPECT_FALSE(keys::splitClientKey("x", &client, &rest));
}

}  // namespace
}  // namespace gannet::storage
