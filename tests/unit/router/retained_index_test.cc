#include "broker/router/retained_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace gannet::router {
namespace {

MessagePtr msg(std::string topic, std::string payload, int64_t expiry_deadline_ms = 0) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->retain = true;
  m->expiry_deadline_ms = expiry_deadline_ms;
  return m;
}

constexpr int64_t kNow = 1'000'000;

// "topic=payload" of every match, sorted.
std::vector<std::string> matches(const RetainedIndex& index, std::string_view filter,
                                 int64_t now_ms = kNow) {
  std::vector<std::string> got;
  index.forEachMatch(filter, now_ms,
                     [&](const MessagePtr& m) { got.push_back(m->topic + "=" + m->payload); });
  std::sort(got.begin(), got.end());
  return got;
}

using Strings = std::vector<std::string>;

TEST(RetainedIndexTest, SetReplaceAndClear) {
  RetainedIndex index;
  EXPECT_EQ(index.size(), 0u);
  index.set(msg("a/b", "1"));
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(matches(index, "a/b"), (Strings{"a/b=1"}));

  index.set(msg("a/b", "2"));  // replaces
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(matches(index, "a/b"), (Strings{"a/b=2"}));

  index.set(msg("a/b", ""));  // §3.3.1.3: an empty payload clears the topic
  EXPECT_EQ(index.size(), 0u);
  EXPECT_TRUE(matches(index, "a/b").empty());
  index.set(msg("a/b", ""));  // clearing nothing is fine
  EXPECT_EQ(index.size(), 0u);

  index.set(msg("a", "x"));
  index.set(msg("a/b/c", "y"));
  index.clear("a/b");  // nothing retained there; "a/b/c" stays
  EXPECT_EQ(index.size(), 2u);
  index.clear("a");
  EXPECT_EQ(matches(index, "#"), (Strings{"a/b/c=y"}));
  index.clear("a/b/c");
  EXPECT_EQ(index.size(), 0u);
  EXPECT_TRUE(matches(index, "#").empty());
}

TEST(RetainedIndexTest, ExactTopicsWithEmptyLevels) {
  RetainedIndex index;
  index.set(msg("/finance", "1"));
  index.set(msg("finance", "2"));
  index.set(msg("finance/", "3"));
  index.set(msg("a//b", "4"));
  EXPECT_EQ(matches(index, "/finance"), (Strings{"/finance=1"}));
  EXPECT_EQ(matches(index, "finance"), (Strings{"finance=2"}));
  EXPECT_EQ(matches(index, "finance/"), (Strings{"finance/=3"}));
  EXPECT_EQ(matches(index, "a//b"), (Strings{"a//b=4"}));
  EXPECT_TRUE(matches(index, "a/b").empty());
}

TEST(RetainedIndexTest, Wildcards) {
  RetainedIndex index;
  for (const char* t : {"sport", "sport/tennis", "sport/tennis/player1", "sport/golf", "sport/",
                        "/finance", "a//b", "news"}) {
    index.set(msg(t, "p"));
  }
  EXPECT_EQ(matches(index, "sport/+"), (Strings{"sport/=p", "sport/golf=p", "sport/tennis=p"}));
  EXPECT_EQ(matches(index, "sport/#"), (Strings{"sport/=p", "sport/golf=p",
                                                "sport/tennis/player1=p", "sport/tennis=p",
                                                "sport=p"}));
  EXPECT_EQ(matches(index, "sport/tennis/#"),
            (Strings{"sport/tennis/player1=p", "sport/tennis=p"}));
  EXPECT_EQ(matches(index, "+"), (Strings{"news=p", "sport=p"}));
  EXPECT_EQ(matches(index, "+/+"), (Strings{"/finance=p", "sport/=p", "sport/golf=p",
                                            "sport/tennis=p"}));
  EXPECT_EQ(matches(index, "+/tennis/+"), (Strings{"sport/tennis/player1=p"}));
  EXPECT_EQ(matches(index, "a/+/b"), (Strings{"a//b=p"}));
  EXPECT_EQ(matches(index, "#").size(), 8u);
  EXPECT_TRUE(matches(index, "nothing/#").empty());
  EXPECT_TRUE(matches(index, "sport/+/+/+").empty());
}

TEST(RetainedIndexTest, DollarTopicsNeedAnExplicitFirstLevel) {
  RetainedIndex index;
  index.set(msg("$SYS/broker/uptime", "1"));
  index.set(msg("$SYS", "2"));
  index.set(msg("plain/$x", "3"));
  EXPECT_EQ(matches(index, "#"), (Strings{"plain/$x=3"}));
  EXPECT_TRUE(matches(index, "+/broker/uptime").empty());
  EXPECT_TRUE(matches(index, "+").empty());
  EXPECT_EQ(matches(index, "$SYS/#"), (Strings{"$SYS/broker/uptime=1", "$SYS=2"}));
  EXPECT_EQ(matches(index, "$SYS/+/uptime"), (Strings{"$SYS/broker/uptime=1"}));
  EXPECT_EQ(matches(index, "plain/+"), (Strings{"plain/$x=3"}));
}

TEST(RetainedIndexTest, ExpiredMessagesAreSkippedAndRemoved) {
  RetainedIndex index;
  index.set(msg("a/old", "1", kNow - 1));
  index.set(msg("a/now", "2", kNow));  // expires strictly after its deadline
  index.set(msg("a/new", "3", kNow + 1000));
  index.set(msg("a/never", "4", 0));
  EXPECT_EQ(index.size(), 4u);
  EXPECT_EQ(matches(index, "a/+"), (Strings{"a/never=4", "a/new=3", "a/now=2"}));
  EXPECT_EQ(index.size(), 3u);  // removed lazily by the lookup

  EXPECT_TRUE(matches(index, "a/new", kNow + 1001).empty());
  EXPECT_EQ(index.size(), 2u);

  EXPECT_EQ(index.removeExpired(kNow + 1), 1u);  // "a/now"
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(index.removeExpired(INT64_MAX), 0u);
  EXPECT_EQ(matches(index, "#", INT64_MAX), (Strings{"a/never=4"}));
}

TEST(RetainedIndexTest, AnExpiredTopicCanBeRetainedAgain) {
  RetainedIndex index;
  index.set(msg("t", "old", kNow - 1));
  bool called = false;
  index.forEachMatch("#", kNow, [&](const MessagePtr&) { called = true; });
  EXPECT_FALSE(called);
  EXPECT_EQ(index.size(), 0u);
  index.set(msg("t", "fresh", 0));
  EXPECT_EQ(matches(index, "t"), (Strings{"t=fresh"}));
  // A newer message replacing an expired one is not removed with it.
  index.set(msg("u", "old", kNow - 1));
  index.set(msg("u", "new", kNow + 1));
  EXPECT_EQ(matches(index, "u"), (Strings{"u=new"}));
  EXPECT_EQ(index.size(), 2u);
}

TEST(RetainedIndexTest, CallbackMayCallBackIntoTheIndex) {
  RetainedIndex index;
  for (int i = 0; i < 10; ++i) index.set(msg("k/" + std::to_string(i), "v"));
  int seen = 0;
  index.forEachMatch("k/#", kNow, [&](const MessagePtr& m) {
    ++seen;
    index.clear(m->topic);
  });
  EXPECT_EQ(seen, 10);
  EXPECT_EQ(index.size(), 0u);
}

TEST(RetainedIndexTest, ManyTopics) {
  RetainedIndex index;
  for (int s = 0; s < 100; ++s) {
    for (int d = 0; d < 100; ++d) {
      index.set(msg("site/" + std::to_string(s) + "/dev/" + std::to_string(d), "v"));
    }
  }
  EXPECT_EQ(index.size(), 10000u);
  EXPECT_EQ(matches(index, "site/7/dev/+").size(), 100u);
  EXPECT_EQ(matches(index, "site/+/dev/42").size(), 100u);
  EXPECT_EQ(matches(index, "site/#").size(), 10000u);
  for (int s = 0; s < 100; ++s) {
    for (int d = 0; d < 100; ++d) index.clear("site/" + std::to_string(s) + "/dev/" + std::to_string(d));
  }
  EXPECT_EQ(index.size(), 0u);
  EXPECT_TRUE(matches(index, "#").empty());
}

TEST(RetainedIndexTest, VeryDeepTopic) {
  std::string topic = "a";
  for (int i = 0; i < 32000; ++i) topic += "/a";
  RetainedIndex index;
  index.set(msg(topic, "deep"));
  EXPECT_EQ(matches(index, "#").size(), 1u);
  EXPECT_EQ(matches(index, topic).size(), 1u);
}  // destroyed with a deep trie

}  // namespace
}  // namespace gannet::router
