// cluster/membership.h: --peers parsing and the alive / suspect / dead states.

#include "cluster/membership.h"

#include <gtest/gtest.h>

namespace gannet::cluster {
namespace {

TEST(ParsePeersTest, ParsesAndRejectsClearly) {
  auto p = parsePeers("2@host2:7946, 3@gannet-2.gannet.default.svc:7946", 1);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].id, 2u);
  EXPECT_EQ((*p)[0].address, "host2:7946");
  EXPECT_EQ((*p)[1].address, "gannet-2.gannet.default.svc:7946");
  EXPECT_TRUE(parsePeers("", 1)->empty());
  for (const char* bad : {"host2:7946", "x@host:1", "0@host:1", "2@", "2@host"}) {
    auto r = parsePeers(bad, 1);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("ID@HOST:PORT"), std::string::npos) << r.status();
  }
  // Every node may get the same list: its own entry is left out.
  auto all = parsePeers("1@a:1,2@b:1,3@c:1", 2);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, 1u);
  EXPECT_EQ((*all)[1].id, 3u);
  auto twice = parsePeers("2@a:1,2@b:1", 1);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("twice"), std::string::npos);
}

TEST(MembershipTest, StatesFollowTheTimeSinceLastHeard) {
  Membership m({{2, "a:1"}, {3, "b:1"}}, MembershipTimeouts{100, 500, 2000});
  EXPECT_TRUE(m.isPeer(2));
  EXPECT_FALSE(m.isPeer(4));
  EXPECT_TRUE(m.tick(1000).empty()) << "never heard: unreachable from the start";
  m.heard(2, PeerReport{77, 5, 9, "h:1883"}, 1000);
  auto t = m.tick(1000);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].id, 2u);
  EXPECT_EQ(t[0].from, MemberState::kUnreachable);
  EXPECT_EQ(t[0].to, MemberState::kAlive);
  EXPECT_TRUE(m.tick(1499).empty());
  t = m.tick(1500);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, MemberState::kSuspect);
  t = m.tick(3000);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, MemberState::kDead);
  // Back with a new incarnation: alive, and flagged as restarted.
  m.heard(2, PeerReport{78, 0, 0, "h:1883"}, 4000);
  t = m.tick(4000);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].to, MemberState::kAlive);
  EXPECT_TRUE(t[0].restarted);
  EXPECT_EQ(t[0].incarnation, 78u);
  const auto views = m.snapshot();
  EXPECT_EQ(views[0].report.connections, 0u);
  EXPECT_EQ(views[1].state, MemberState::kUnreachable);
  // A restart noticed while alive is reported too, without a state change.
  m.heard(2, PeerReport{79, 0, 0, ""}, 4100);
  t = m.tick(4100);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(t[0].restarted);
  EXPECT_EQ(t[0].from, t[0].to);
}

}  // namespace
}  // namespace gannet::cluster

#include "cluster/hlc.h"

namespace gannet::cluster {
namespace {

TEST(HybridClockTest, MonotonicAfterWhatItObserved) {
  int64_t wall = 1000;
  HybridClock c([&] { return wall; });
  const uint64_t a = c.now();
  EXPECT_EQ(HybridClock::physicalMs(a), 1000u);
  const uint64_t b = c.now();  // same millisecond: the logical part counts
  EXPECT_GT(b, a);
  EXPECT_EQ(HybridClock::physicalMs(b), 1000u);
  wall = 900;  // the wall clock steps back: stamps do not
  EXPECT_GT(c.now(), b);
  // Another node is ahead: the next local stamp comes after its stamp.
  const uint64_t remote = (uint64_t{5000} << 16) | 7;
  c.observe(remote);
  EXPECT_GT(c.now(), remote);
  wall = 6000;
  EXPECT_EQ(c.now(), uint64_t{6000} << 16);
}

}  // namespace
}  // namespace gannet::cluster
