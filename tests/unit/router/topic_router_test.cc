#include "broker/router/topic_router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace gannet::router {
namespace {

Destination dest(uint64_t session, uint32_t worker = 0) { return Destination{session, worker}; }

SubscriptionOptions qos(uint8_t q, uint32_t subscription_id = 0) {
  SubscriptionOptions o;
  o.qos = q;
  o.subscription_id = subscription_id;
  return o;
}

std::vector<Delivery> matchAll(const TopicRouter& r, std::string_view topic,
                               uint64_t publisher = 0) {
  std::vector<Delivery> out;
  r.match(topic, publisher, out);
  return out;
}

// Session ids of the deliveries, sorted (duplicates kept, so a double delivery shows).
std::vector<uint64_t> sessions(const std::vector<Delivery>& deliveries) {
  std::vector<uint64_t> ids;
  for (const Delivery& d : deliveries) ids.push_back(d.destination.session_id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<uint64_t> matchSessions(const TopicRouter& r, std::string_view topic,
                                    uint64_t publisher = 0) {
  return sessions(matchAll(r, topic, publisher));
}

using Ids = std::vector<uint64_t>;

// A router with one subscriber (session 1) on `filter`; tells whether `topic` reaches it.
bool routes(std::string_view filter, std::string_view topic) {
  TopicRouter r;
  r.subscribe(filter, dest(1), qos(0));
  const bool matched = !matchAll(r, topic).empty();
  EXPECT_EQ(matched, topicMatches(filter, topic)) << filter << " vs " << topic;
  return matched;
}

TEST(TopicRouterTest, ExactTopic) {
  EXPECT_TRUE(routes("a/b/c", "a/b/c"));
  EXPECT_FALSE(routes("a/b/c", "a/b"));
  EXPECT_FALSE(routes("a/b/c", "a/b/c/d"));
  EXPECT_FALSE(routes("a/b/c", "a/b/C"));  // §4.7.3: case-sensitive
  EXPECT_TRUE(routes("a b/ c", "a b/ c"));  // spaces are ordinary characters
  EXPECT_FALSE(routes("ab", "a"));
}

TEST(TopicRouterTest, PlusMatchesExactlyOneLevel) {
  // §4.7.1.3 examples.
  EXPECT_TRUE(routes("sport/tennis/+", "sport/tennis/player1"));
  EXPECT_TRUE(routes("sport/tennis/+", "sport/tennis/player2"));
  EXPECT_FALSE(routes("sport/tennis/+", "sport/tennis/player1/ranking"));
  EXPECT_FALSE(routes("sport/+", "sport"));
  EXPECT_TRUE(routes("sport/+", "sport/"));
  EXPECT_TRUE(routes("+", "sport"));
  EXPECT_TRUE(routes("+/tennis/#", "sport/tennis/player1"));
  EXPECT_TRUE(routes("sport/+/player1", "sport/tennis/player1"));
}

TEST(TopicRouterTest, HashMatchesParentAndAnyNumberOfLevels) {
  // §4.7.1.2 examples.
  EXPECT_TRUE(routes("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_TRUE(routes("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(routes("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  EXPECT_TRUE(routes("sport/#", "sport"));
  EXPECT_TRUE(routes("sport/#", "sport/"));
  EXPECT_FALSE(routes("sport/#", "sports"));
  EXPECT_FALSE(routes("sport/tennis/#", "sport"));
}

TEST(TopicRouterTest, HashAloneMatchesEverythingButDollarTopics) {
  EXPECT_TRUE(routes("#", "a"));
  EXPECT_TRUE(routes("#", "a/b/c/d/e/f"));
  EXPECT_TRUE(routes("#", "/"));
  EXPECT_TRUE(routes("#", "/finance"));
  EXPECT_TRUE(routes("#", "a/$b"));  // the '$' rule is about the first level only
  EXPECT_FALSE(routes("#", "$SYS"));
  EXPECT_FALSE(routes("#", "$SYS/broker/uptime"));
}

TEST(TopicRouterTest, PlusPlusAndLeadingSlash) {
  // §4.7.1.3: "+/+" and "/+" match "/finance", "+" does not.
  EXPECT_TRUE(routes("+/+", "/finance"));
  EXPECT_TRUE(routes("/+", "/finance"));
  EXPECT_FALSE(routes("+", "/finance"));
  EXPECT_TRUE(routes("+/+", "a/b"));
  EXPECT_FALSE(routes("+/+", "a"));
  EXPECT_FALSE(routes("+/+", "a/b/c"));
}

TEST(TopicRouterTest, LeadingAndTrailingEmptyLevelsAreDistinct) {
  // §4.7.1.1: "/finance" differs from "finance"; a trailing '/' adds an empty level.
  EXPECT_TRUE(routes("/finance", "/finance"));
  EXPECT_FALSE(routes("/finance", "finance"));
  EXPECT_FALSE(routes("finance", "/finance"));
  EXPECT_TRUE(routes("finance/", "finance/"));
  EXPECT_FALSE(routes("finance/", "finance"));
  EXPECT_FALSE(routes("finance", "finance/"));
  EXPECT_TRUE(routes("a//b", "a//b"));
  EXPECT_FALSE(routes("a//b", "a/b"));
  EXPECT_TRUE(routes("/", "/"));
  EXPECT_TRUE(routes("//", "//"));
  EXPECT_FALSE(routes("/", "//"));
}

TEST(TopicRouterTest, PlusMatchesEmptyLevels) {
  EXPECT_TRUE(routes("a/+/b", "a//b"));
  EXPECT_TRUE(routes("+/+/+", "//"));
  EXPECT_FALSE(routes("+", "/"));  // "/" has two levels
  EXPECT_TRUE(routes("+/+", "/"));
  EXPECT_TRUE(routes("a/+", "a/"));
  EXPECT_TRUE(routes("+/a", "/a"));
}

TEST(TopicRouterTest, DollarTopicsNeedAnExplicitFirstLevel) {
  // §4.7.2.
  EXPECT_FALSE(routes("+/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_FALSE(routes("+", "$foo"));
  EXPECT_FALSE(routes("+/#", "$SYS/a"));
  EXPECT_TRUE(routes("$SYS/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(routes("$SYS/#", "$SYS"));
  EXPECT_TRUE(routes("$SYS/monitor/+", "$SYS/monitor/Clients"));
  EXPECT_TRUE(routes("$SYS/+/Clients", "$SYS/monitor/Clients"));
  EXPECT_TRUE(routes("$foo", "$foo"));
  EXPECT_TRUE(routes("a/+", "a/$b"));
  EXPECT_FALSE(routes("$SYS/#", "SYS/a"));

  TopicRouter r;
  r.subscribe("#", dest(1), qos(0));
  r.subscribe("+/broker/uptime", dest(2), qos(0));
  r.subscribe("$SYS/#", dest(3), qos(0));
  r.subscribe("$SYS/broker/+", dest(4), qos(0));
  EXPECT_EQ(matchSessions(r, "$SYS/broker/uptime"), (Ids{3, 4}));
  EXPECT_EQ(matchSessions(r, "SYS/broker/uptime"), (Ids{1, 2}));
}

TEST(TopicRouterTest, OverlappingSubscriptionsAreAggregatedPerDestination) {
  TopicRouter r;
  SubscriptionOptions o1 = qos(1, 11);
  SubscriptionOptions o2 = qos(2, 12);
  o2.retain_as_published = true;
  SubscriptionOptions o3 = qos(0);  // no subscription id
  EXPECT_TRUE(r.subscribe("a/+", dest(1, 3), o1));
  EXPECT_TRUE(r.subscribe("a/#", dest(1, 3), o2));
  EXPECT_TRUE(r.subscribe("a/b", dest(1, 3), o3));
  EXPECT_TRUE(r.subscribe("#", dest(1, 3), qos(1, 11)));  // same id twice: listed once
  EXPECT_TRUE(r.subscribe("a/b", dest(2, 0), qos(1, 7)));

  std::vector<Delivery> out = matchAll(r, "a/b");
  ASSERT_EQ(out.size(), 2u);
  std::sort(out.begin(), out.end(), [](const Delivery& a, const Delivery& b) {
    return a.destination.session_id < b.destination.session_id;
  });
  EXPECT_EQ(out[0].destination, dest(1, 3));
  EXPECT_EQ(out[0].qos, 2);
  EXPECT_TRUE(out[0].retain_as_published);
  EXPECT_FALSE(out[0].shared);
  std::vector<uint32_t> ids(out[0].subscription_ids.begin(), out[0].subscription_ids.end());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<uint32_t>{11, 12}));

  EXPECT_EQ(out[1].destination, dest(2, 0));
  EXPECT_EQ(out[1].qos, 1);
  EXPECT_FALSE(out[1].retain_as_published);
  EXPECT_EQ(std::vector<uint32_t>(out[1].subscription_ids.begin(), out[1].subscription_ids.end()),
            (std::vector<uint32_t>{7}));

  // Only "a/#" and "#" match "a": QoS 2 from "a/#".
  out = matchAll(r, "a");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].qos, 2);
  EXPECT_TRUE(out[0].retain_as_published);
}

TEST(TopicRouterTest, DestinationsDifferingOnlyByWorkerAreDistinct) {
  TopicRouter r;
  r.subscribe("a", dest(1, 0), qos(0));
  r.subscribe("+", dest(1, 1), qos(1));
  std::vector<Delivery> out = matchAll(r, "a");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(out[0].destination, out[1].destination);
}

TEST(TopicRouterTest, NoSubscriptionIdsWhenNoneWereGiven) {
  TopicRouter r;
  r.subscribe("a", dest(1), qos(1));
  r.subscribe("+", dest(1), qos(0));
  std::vector<Delivery> out = matchAll(r, "a");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].subscription_ids.empty());
  EXPECT_EQ(out[0].qos, 1);
}

TEST(TopicRouterTest, MatchAppendsToOut) {
  TopicRouter r;
  r.subscribe("a", dest(1), qos(0));
  std::vector<Delivery> out(1);
  r.match("a", 0, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].destination, dest(1));
}

TEST(TopicRouterTest, NoLocalSkipsOnlyThePublisher) {
  TopicRouter r;
  SubscriptionOptions no_local = qos(1);
  no_local.no_local = true;
  r.subscribe("a/b", dest(5), no_local);
  r.subscribe("a/b", dest(6), no_local);
  r.subscribe("a/b", dest(7), qos(0));
  EXPECT_EQ(matchSessions(r, "a/b", /*publisher=*/5), (Ids{6, 7}));
  EXPECT_EQ(matchSessions(r, "a/b", /*publisher=*/7), (Ids{5, 6, 7}));
  EXPECT_EQ(matchSessions(r, "a/b", /*publisher=*/0), (Ids{5, 6, 7}));

  // No Local is per subscription: another matching subscription without it still
  // delivers, with that subscription's options only.
  r.subscribe("a/#", dest(5), qos(0, 99));
  std::vector<Delivery> out = matchAll(r, "a/b", /*publisher=*/5);
  ASSERT_EQ(sessions(out), (Ids{5, 6, 7}));
  for (const Delivery& d : out) {
    if (d.destination.session_id != 5) continue;
    EXPECT_EQ(d.qos, 0);
    EXPECT_EQ(std::vector<uint32_t>(d.subscription_ids.begin(), d.subscription_ids.end()),
              (std::vector<uint32_t>{99}));
  }
}

TEST(TopicRouterTest, SubscribeAgainReplacesTheOptions) {
  TopicRouter r;
  EXPECT_TRUE(r.subscribe("a/+", dest(1), qos(0, 1)));
  EXPECT_FALSE(r.subscribe("a/+", dest(1), qos(2, 2)));
  EXPECT_EQ(r.subscriptionCount(), 1u);
  std::vector<Delivery> out = matchAll(r, "a/x");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].qos, 2);
  EXPECT_EQ(std::vector<uint32_t>(out[0].subscription_ids.begin(), out[0].subscription_ids.end()),
            (std::vector<uint32_t>{2}));

  SubscriptionOptions o = qos(1);
  o.no_local = true;
  EXPECT_FALSE(r.subscribe("a/+", dest(1), o));
  EXPECT_TRUE(matchAll(r, "a/x", /*publisher=*/1).empty());
}

TEST(TopicRouterTest, Unsubscribe) {
  TopicRouter r;
  r.subscribe("a/b", dest(1), qos(0));
  r.subscribe("a/b", dest(2), qos(0));
  r.subscribe("a/#", dest(1), qos(0));
  EXPECT_EQ(r.subscriptionCount(), 3u);

  EXPECT_TRUE(r.unsubscribe("a/b", dest(1)));
  EXPECT_FALSE(r.unsubscribe("a/b", dest(1)));
  EXPECT_FALSE(r.unsubscribe("a/c", dest(1)));     // no such filter
  EXPECT_FALSE(r.unsubscribe("a/b/c", dest(2)));   // deeper than any filter
  EXPECT_FALSE(r.unsubscribe("a/+", dest(2)));     // no '+' child
  EXPECT_FALSE(r.unsubscribe("a/b", dest(2, 1)));  // same session, other worker
  EXPECT_EQ(r.subscriptionCount(), 2u);
  EXPECT_EQ(matchSessions(r, "a/b"), (Ids{1, 2}));  // 1 still has "a/#"

  EXPECT_TRUE(r.unsubscribe("a/#", dest(1)));
  EXPECT_EQ(matchSessions(r, "a/b"), (Ids{2}));
  EXPECT_TRUE(r.unsubscribe("a/b", dest(2)));
  EXPECT_TRUE(matchAll(r, "a/b").empty());
  EXPECT_EQ(r.subscriptionCount(), 0u);
}

TEST(TopicRouterTest, UnsubscribePrunesEmptyNodes) {
  TopicRouter r;
  r.subscribe("a/b/c/d", dest(1), qos(0));
  EXPECT_EQ(r.nodeCount(), 4u);
  r.subscribe("a/b/x", dest(2), qos(0));
  r.subscribe("a/+/#", dest(3), qos(0));
  r.subscribe("$share/g/a/b/c/d/e", dest(4), qos(0));
  EXPECT_EQ(r.nodeCount(), 8u);  // a b c d x + # e

  // Keeps "a/b" because "a/b/x" needs it; drops "c", "d", "e".
  EXPECT_TRUE(r.unsubscribe("a/b/c/d", dest(1)));
  EXPECT_EQ(r.nodeCount(), 8u);  // "d" still carries "e"
  EXPECT_TRUE(r.unsubscribe("$share/g/a/b/c/d/e", dest(4)));
  EXPECT_EQ(r.nodeCount(), 5u);  // a b x + #
  EXPECT_TRUE(r.unsubscribe("a/+/#", dest(3)));
  EXPECT_EQ(r.nodeCount(), 3u);
  EXPECT_TRUE(r.unsubscribe("a/b/x", dest(2)));
  EXPECT_EQ(r.nodeCount(), 0u);

  // Churn leaves nothing behind.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1000; ++i) {
      r.subscribe("s/" + std::to_string(i) + "/+/t/#", dest(i + 1), qos(1));
      r.subscribe("$share/g" + std::to_string(i % 7) + "/s/" + std::to_string(i), dest(i + 1),
                  qos(1));
    }
    EXPECT_EQ(r.subscriptionCount(), 2000u);
    for (int i = 0; i < 1000; ++i) {
      EXPECT_TRUE(r.unsubscribe("s/" + std::to_string(i) + "/+/t/#", dest(i + 1)));
      EXPECT_TRUE(r.unsubscribe("$share/g" + std::to_string(i % 7) + "/s/" + std::to_string(i),
                                dest(i + 1)));
    }
    EXPECT_EQ(r.subscriptionCount(), 0u);
    EXPECT_EQ(r.sharedSubscriptionCount(), 0u);
    EXPECT_EQ(r.nodeCount(), 0u);
  }
}

TEST(TopicRouterTest, SharedGroupDeliversToExactlyOneMemberRoundRobin) {
  TopicRouter r;
  for (uint64_t s = 1; s <= 3; ++s) {
    EXPECT_TRUE(r.subscribe("$share/g/sensors/+", dest(s), qos(1)));
  }
  EXPECT_EQ(r.subscriptionCount(), 3u);
  EXPECT_EQ(r.sharedSubscriptionCount(), 3u);

  std::map<uint64_t, int> per_member;
  uint64_t previous = 0;
  for (int i = 0; i < 30; ++i) {
    std::vector<Delivery> out = matchAll(r, "sensors/t1");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(out[0].shared);
    EXPECT_EQ(out[0].qos, 1);
    EXPECT_NE(out[0].destination.session_id, previous);  // round-robin, not random
    previous = out[0].destination.session_id;
    ++per_member[previous];
  }
  EXPECT_EQ(per_member, (std::map<uint64_t, int>{{1, 10}, {2, 10}, {3, 10}}));

  EXPECT_TRUE(matchAll(r, "sensors").empty());
  EXPECT_TRUE(matchAll(r, "sensors/t1/x").empty());
}

TEST(TopicRouterTest, EachSharedGroupGetsOneCopy) {
  TopicRouter r;
  r.subscribe("$share/g1/a/b", dest(1), qos(0));
  r.subscribe("$share/g1/a/b", dest(2), qos(0));
  r.subscribe("$share/g2/a/b", dest(3), qos(0));
  r.subscribe("$share/g2/a/b", dest(4), qos(0));
  // Same group name, other filter: another shared subscription (§4.8.2).
  r.subscribe("$share/g1/a/+", dest(5), qos(0));
  for (int i = 0; i < 10; ++i) {
    std::vector<uint64_t> got = matchSessions(r, "a/b");
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(std::count_if(got.begin(), got.end(), [](uint64_t s) { return s <= 2; }), 1);
    EXPECT_EQ(std::count_if(got.begin(), got.end(), [](uint64_t s) { return s == 3 || s == 4; }),
              1);
    EXPECT_EQ(std::count(got.begin(), got.end(), 5u), 1);
  }
}

TEST(TopicRouterTest, SharedAndNonSharedOfOneDestinationDeliverTwice) {
  TopicRouter r;
  r.subscribe("$share/g/a/b", dest(1), qos(1, 1));
  r.subscribe("a/b", dest(1), qos(0, 2));
  std::vector<Delivery> out = matchAll(r, "a/b");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].destination, dest(1));
  EXPECT_EQ(out[1].destination, dest(1));
  EXPECT_NE(out[0].shared, out[1].shared);
  for (const Delivery& d : out) {
    EXPECT_EQ(d.qos, d.shared ? 1 : 0);
    EXPECT_EQ(d.subscription_ids[0], d.shared ? 1u : 2u);
  }
  EXPECT_EQ(r.subscriptionCount(), 2u);
  EXPECT_EQ(r.sharedSubscriptionCount(), 1u);
}

TEST(TopicRouterTest, SharedSubscriptionReplaceAndUnsubscribe) {
  TopicRouter r;
  EXPECT_TRUE(r.subscribe("$share/g/a", dest(1), qos(0)));
  EXPECT_FALSE(r.subscribe("$share/g/a", dest(1), qos(2)));
  EXPECT_EQ(matchAll(r, "a").at(0).qos, 2);
  EXPECT_TRUE(r.subscribe("$share/g/a", dest(2), qos(0)));

  EXPECT_FALSE(r.unsubscribe("$share/other/a", dest(1)));
  EXPECT_FALSE(r.unsubscribe("a", dest(1)));  // not the same subscription
  EXPECT_TRUE(r.unsubscribe("$share/g/a", dest(1)));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(matchSessions(r, "a"), (Ids{2}));
  EXPECT_TRUE(r.unsubscribe("$share/g/a", dest(2)));
  EXPECT_FALSE(r.unsubscribe("$share/g/a", dest(2)));
  EXPECT_TRUE(matchAll(r, "a").empty());
  EXPECT_EQ(r.subscriptionCount(), 0u);
  EXPECT_EQ(r.sharedSubscriptionCount(), 0u);
  EXPECT_EQ(r.nodeCount(), 0u);
}

TEST(TopicRouterTest, SharedFiltersFollowTheWildcardAndDollarRules) {
  TopicRouter r;
  r.subscribe("$share/g/#", dest(1), qos(0));
  r.subscribe("$share/g/$SYS/#", dest(2), qos(0));
  r.subscribe("$share/h/sport/#", dest(3), qos(0));
  EXPECT_EQ(matchSessions(r, "$SYS/broker/load"), (Ids{2}));
  EXPECT_EQ(matchSessions(r, "sport"), (Ids{1, 3}));
  EXPECT_EQ(matchSessions(r, "x/y"), (Ids{1}));
}

TEST(TopicRouterTest, SharedMemberThatIsThePublisherWithNoLocalIsPassedOver) {
  // A Protocol Error the handler rejects (§3.8.3.1); the router still never
  // sends a No Local subscriber its own message.
  TopicRouter r;
  SubscriptionOptions no_local = qos(0);
  no_local.no_local = true;
  r.subscribe("$share/g/a", dest(1), no_local);
  r.subscribe("$share/g/a", dest(2), qos(0));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(matchSessions(r, "a", /*publisher=*/1), (Ids{2}));
  r.unsubscribe("$share/g/a", dest(2));
  EXPECT_TRUE(matchAll(r, "a", /*publisher=*/1).empty());
  EXPECT_EQ(matchSessions(r, "a", /*publisher=*/3), (Ids{1}));
}

TEST(SharedFilterTest, ParseAndValidate) {
  std::string_view group;
  std::string_view filter;
  ASSERT_TRUE(parseSharedFilter("$share/grp/a/b/#", group, filter));
  EXPECT_EQ(group, "grp");
  EXPECT_EQ(filter, "a/b/#");
  ASSERT_TRUE(parseSharedFilter("$share/grp/", group, filter));
  EXPECT_EQ(group, "grp");
  EXPECT_EQ(filter, "");
  ASSERT_TRUE(parseSharedFilter("$share/grp", group, filter));
  EXPECT_EQ(group, "grp");
  EXPECT_EQ(filter, "");
  EXPECT_FALSE(parseSharedFilter("$share", group, filter));
  EXPECT_FALSE(parseSharedFilter("$sharex/g/a", group, filter));
  EXPECT_FALSE(parseSharedFilter("share/g/a", group, filter));
  EXPECT_FALSE(parseSharedFilter("$SHARE/g/a", group, filter));  // case-sensitive
  EXPECT_FALSE(parseSharedFilter("a/$share/g/a", group, filter));

  for (const char* valid : {"$share/g/a", "$share/g/#", "$share/g/+", "$share/g/+/x/#",
                            "$share/g/$SYS/#", "$share/group-1/a/b", "$share/g//", "$share/g$/a",
                            "$share/g/a//b"}) {
    EXPECT_TRUE(isValidSharedFilter(valid)) << valid;
  }
  for (const char* invalid :
       {"$share", "$share/", "$share/g", "$share/g/", "$share//a", "$share/+/a", "$share/#/a",
        "$share/g+/a", "$share/g#/a", "$share/g/a/#/b", "$share/g/a+", "$share/g/a#",
        "$share/g/#/", "$sharex/g/a", "a/b", "#"}) {
    EXPECT_FALSE(isValidSharedFilter(invalid)) << invalid;
  }
  EXPECT_FALSE(isValidSharedFilter(std::string_view("$share/g/a\0b", 12)));
}

TEST(TopicMatchesTest, AgreesWithTheTrieOnRandomFiltersAndTopics) {
  // Every filter and topic over a tiny alphabet, so that collisions are frequent.
  std::mt19937 rng(42);
  const std::vector<std::string> topic_levels = {"a", "b", "", "$x"};
  const std::vector<std::string> filter_levels = {"a", "b", "", "$x", "+", "#"};
  auto randomPath = [&](const std::vector<std::string>& alphabet) {
    const int depth = 1 + static_cast<int>(rng() % 4);
    std::string s;
    for (int i = 0; i < depth; ++i) {
      if (i > 0) s += '/';
      std::string level = alphabet[rng() % alphabet.size()];
      if (level == "#" && i + 1 < depth) level = "+";  // '#' only last
      s += level;
    }
    return s.empty() ? std::string("/") : s;  // "" is neither a filter nor a topic
  };
  std::vector<std::string> filters;
  TopicRouter r;
  for (int i = 0; i < 300; ++i) {
    filters.push_back(randomPath(filter_levels));
    r.subscribe(filters.back(), dest(i + 1), qos(0));
  }
  for (int i = 0; i < 2000; ++i) {
    const std::string topic = randomPath(topic_levels);
    Ids expected;
    for (size_t f = 0; f < filters.size(); ++f) {
      if (topicMatches(filters[f], topic)) expected.push_back(f + 1);
    }
    ASSERT_EQ(matchSessions(r, topic), expected) << topic;
  }
}

TEST(TopicRouterTest, ManyDestinationsOnOneFilter) {
  TopicRouter r;
  constexpr uint64_t kCount = 20000;
  for (uint64_t s = 1; s <= kCount; ++s) ASSERT_TRUE(r.subscribe("fan/out", dest(s, s % 4), qos(1)));
  EXPECT_FALSE(r.subscribe("fan/out", dest(77, 77 % 4), qos(2)));  // replaced, via the index
  std::vector<Delivery> out = matchAll(r, "fan/out");
  ASSERT_EQ(out.size(), kCount);
  Ids got = sessions(out);
  for (uint64_t s = 1; s <= kCount; ++s) ASSERT_EQ(got[s - 1], s);
  for (const Delivery& d : out) EXPECT_EQ(d.qos, d.destination.session_id == 77 ? 2 : 1);

  for (uint64_t s = 1; s <= kCount; s += 2) ASSERT_TRUE(r.unsubscribe("fan/out", dest(s, s % 4)));
  got = matchSessions(r, "fan/out");
  ASSERT_EQ(got.size(), kCount / 2);
  for (uint64_t s : got) ASSERT_EQ(s % 2, 0u);
  for (uint64_t s = 2; s <= kCount; s += 2) ASSERT_TRUE(r.unsubscribe("fan/out", dest(s, s % 4)));
  EXPECT_EQ(r.subscriptionCount(), 0u);
  EXPECT_EQ(r.nodeCount(), 0u);
}

TEST(TopicRouterTest, ManyDestinationsWithOverlappingFilters) {
  TopicRouter r;
  for (uint64_t s = 1; s <= 5000; ++s) {
    r.subscribe("site/" + std::to_string(s % 10) + "/temp", dest(s), qos(0, 1));
    r.subscribe("site/+/temp", dest(s), qos(1, 2));
    r.subscribe("site/#", dest(s), qos(2, 3));
  }
  std::vector<Delivery> out = matchAll(r, "site/3/temp");
  ASSERT_EQ(out.size(), 5000u);
  for (const Delivery& d : out) {
    EXPECT_EQ(d.qos, 2);
    EXPECT_EQ(d.subscription_ids.size(), d.destination.session_id % 10 == 3 ? 3u : 2u);
  }
}

TEST(TopicRouterTest, VeryDeepFiltersAndTopicsDoNotExhaustTheStack) {
  // 65535 bytes allow ~32k levels (§1.5.4); recursion that deep would overflow.
  std::string filter;
  std::string topic;
  for (int i = 0; i < 32000; ++i) {
    filter += i == 0 ? "+" : "/+";
    topic += i == 0 ? "a" : "/a";
  }
  {
    TopicRouter r;
    r.subscribe(filter, dest(1), qos(0));
    r.subscribe(topic, dest(2), qos(0));
    r.subscribe(topic + "/#", dest(3), qos(0));
    EXPECT_EQ(matchSessions(r, topic), (Ids{1, 2, 3}));
    EXPECT_TRUE(r.unsubscribe(topic, dest(2)));
    EXPECT_EQ(matchSessions(r, topic), (Ids{1, 3}));
  }  // destroyed with deep subtrees
}

TEST(TopicRouterTest, ConcurrentMatchWhileSubscribing) {
  TopicRouter r;
  // Stable subscriptions every match must see exactly once.
  r.subscribe("plant/+/line/7", dest(1), qos(1));
  r.subscribe("plant/#", dest(2), qos(0));
  r.subscribe("plant/a/line/7", dest(2), qos(2));  // overlaps "plant/#" for session 2
  r.subscribe("$share/workers/plant/+/line/+", dest(3), qos(1));
  r.subscribe("$share/workers/plant/+/line/+", dest(4), qos(1));

  constexpr int kWriterRounds = 40;
  constexpr uint64_t kChurn = 64;  // churned sessions are 100..163
  std::atomic<bool> writer_done{false};
  std::atomic<int> failures{0};
  std::atomic<uint64_t> matches{0};

  auto reader = [&] {
    std::vector<Delivery> out;
    // At least some matches per thread, and keep going until the writer is done.
    for (int i = 0; i < 200 || !writer_done.load(std::memory_order_acquire); ++i) {
      out.clear();
      r.match("plant/a/line/7", 0, out);
      matches.fetch_add(1, std::memory_order_relaxed);
      int stable1 = 0, stable2 = 0, shared = 0;
      std::set<uint64_t> seen;
      for (const Delivery& d : out) {
        const uint64_t s = d.destination.session_id;
        if (d.shared) {
          ++shared;
          if (s != 3 && s != 4 && (s < 100 || s >= 100 + kChurn)) failures.fetch_add(1);
          continue;
        }
        if (!seen.insert(s).second) failures.fetch_add(1);  // aggregated: once each
        if (s == 1) ++stable1;
        if (s == 2) {
          ++stable2;
          if (d.qos != 2) failures.fetch_add(1);
        }
        if (s != 1 && s != 2 && (s < 100 || s >= 100 + kChurn)) failures.fetch_add(1);
      }
      if (stable1 != 1 || stable2 != 1 || shared != 1) failures.fetch_add(1);
    }
  };
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) readers.emplace_back(reader);

  std::thread writer([&] {
    for (int round = 0; round < kWriterRounds; ++round) {
      for (uint64_t s = 100; s < 100 + kChurn; ++s) {
        r.subscribe("plant/a/line/" + std::to_string(s % 9), dest(s), qos(1));
        r.subscribe("plant/+/+/7", dest(s), qos(0));
        r.subscribe("$share/workers/plant/+/line/+", dest(s), qos(1));
        r.subscribe("other/" + std::to_string(round) + "/x", dest(s), qos(0));
      }
      for (uint64_t s = 100; s < 100 + kChurn; ++s) {
        r.unsubscribe("plant/a/line/" + std::to_string(s % 9), dest(s));
        r.unsubscribe("plant/+/+/7", dest(s));
        r.unsubscribe("$share/workers/plant/+/line/+", dest(s));
        r.unsubscribe("other/" + std::to_string(round) + "/x", dest(s));
      }
    }
    writer_done.store(true, std::memory_order_release);
  });
  writer.join();
  for (std::thread& t : readers) t.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(matches.load(), 600u);
  EXPECT_EQ(r.subscriptionCount(), 5u);
  EXPECT_EQ(matchSessions(r, "plant/a/line/7").size(), 3u);
}

}  // namespace
}  // namespace gannet::router

namespace gannet::router {
namespace {

struct CountingListener : RouteListener {
  std::vector<std::string> events;
  void onLocalSubscribe(std::string_view f) override { events.push_back("+" + std::string(f)); }
  void onLocalUnsubscribe(std::string_view f) override { events.push_back("-" + std::string(f)); }
};

TEST(TopicRouterClusterTest, ListenerHearsLocalChangesOnly) {
  TopicRouter r;
  CountingListener l;
  r.setListener(&l);
  const Destination remote{7, kRemoteWorker};
  r.subscribe("a/#", Destination{1, 0}, SubscriptionOptions{});
  r.subscribe("a/#", Destination{1, 0}, SubscriptionOptions{.qos = 1});  // replaced: not new
  r.subscribe("a/#", remote, SubscriptionOptions{});
  r.subscribe("$share/g/b", Destination{2, 1}, SubscriptionOptions{});
  r.unsubscribe("a/#", remote);
  r.unsubscribe("a/#", Destination{1, 0});
  r.unsubscribe("a/#", Destination{1, 0});  // not there: nothing
  EXPECT_EQ(l.events, (std::vector<std::string>{"+a/#", "+$share/g/b", "-a/#"}));
}

TEST(TopicRouterClusterTest, LocalOnlyMatchLeavesRemoteDestinationsOut) {
  TopicRouter r;
  const Destination remote{7, kRemoteWorker};
  r.subscribe("t", remote, SubscriptionOptions{.qos = 2});
  r.subscribe("t", Destination{1, 0}, SubscriptionOptions{});
  // A share group with one remote and one local member: a local-only match must
  // pick the local member every time, never drop the message on the remote one.
  r.subscribe("$share/g/t", remote, SubscriptionOptions{.qos = 2});
  r.subscribe("$share/g/t", Destination{2, 0}, SubscriptionOptions{});
  for (int i = 0; i < 4; ++i) {
    std::vector<Delivery> out;
    r.match("t", 0, out, /*local_only=*/true);
    EXPECT_EQ(sessions(out), (Ids{1, 2})) << i;
  }
  std::vector<Delivery> all;
  r.match("t", 0, all);
  bool has_remote = false;
  for (const Delivery& d : all) has_remote |= d.destination.remote();
  EXPECT_TRUE(has_remote);
}

TEST(TopicRouterClusterTest, ARemoteNodeGetsOneDeliveryWhateverMatchedThere) {
  // Node 7 has a plain subscription and members of two share groups: one
  // delivery to it (it delivers to its own subscribers), the highest QoS, and
  // shared when a group's member there was picked.
  TopicRouter r;
  const Destination remote{7, kRemoteWorker};
  r.subscribe("t/#", remote, SubscriptionOptions{.qos = 1});
  r.subscribe("$share/g/t/#", remote, SubscriptionOptions{.qos = 2});
  r.subscribe("$share/h/t/+", remote, SubscriptionOptions{});
  std::vector<Delivery> out;
  r.match("t/x", 0, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].destination.remote());
  EXPECT_EQ(out[0].qos, 2);
  EXPECT_TRUE(out[0].shared);
  // A plain subscription only: not shared.
  TopicRouter plain;
  plain.subscribe("t/#", remote, SubscriptionOptions{});
  out.clear();
  plain.match("t/x", 0, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].shared);
}

TEST(TopicRouterClusterTest, AForwardWithoutSharedGroupsSkipsThem) {
  TopicRouter r;
  r.subscribe("t", Destination{1, 0}, SubscriptionOptions{});
  r.subscribe("$share/g/t", Destination{2, 0}, SubscriptionOptions{});
  std::vector<Delivery> out;
  r.match("t", 0, out, /*local_only=*/true, /*shared_groups=*/false);
  EXPECT_EQ(sessions(out), (Ids{1}));
  out.clear();
  r.match("t", 0, out, /*local_only=*/true, /*shared_groups=*/true);
  EXPECT_EQ(sessions(out), (Ids{1, 2}));
}

}  // namespace
}  // namespace gannet::router
