// The acceptor of client id owner registers: Paxos promises and accepts, the
// lease that keeps ownership on a node still heard from, and persistence.
#include "cluster/ownership.h"

#include <gtest/gtest.h>

#include <set>

namespace gannet::cluster {
namespace {

struct Fixture {
  std::set<uint32_t> heard;  // nodes this acceptor heard from recently
  std::vector<std::pair<std::string, OwnerRecord>> persisted;
  OwnershipAcceptor acceptor{OwnershipAcceptor::Rules{
      1, [this](uint32_t n) { return heard.contains(n); },
      [this](const std::vector<std::pair<std::string, OwnerRecord>>& c) {
        persisted.insert(persisted.end(), c.begin(), c.end());
      }}};
};

uint64_t ballot(uint64_t counter, uint32_t node) { return (counter << 16) | node; }

TEST(OwnershipAcceptorTest, PromisesOnlyHigherBallotsAndReportsWhatItAccepted) {
  Fixture f;
  auto p = f.acceptor.prepare(ballot(1, 2), {"dev"});
  ASSERT_TRUE(p[0].ok);
  EXPECT_EQ(p[0].accepted, 0u);
  EXPECT_EQ(f.acceptor.accept(ballot(1, 2), {"dev"}, {2}, {}), std::vector<bool>{true});
  // A lower or equal ballot is refused, with the promise it made instead.
  p = f.acceptor.prepare(ballot(1, 2), {"dev"});
  EXPECT_FALSE(p[0].ok);
  EXPECT_EQ(p[0].promised, ballot(1, 2));
  p = f.acceptor.prepare(ballot(2, 3), {"dev"});
  ASSERT_TRUE(p[0].ok);
  EXPECT_EQ(p[0].accepted, ballot(1, 2));
  EXPECT_EQ(p[0].owner, 2u);
  // An accept of a ballot below the promise is refused.
  EXPECT_EQ(f.acceptor.accept(ballot(1, 3), {"dev"}, {3}, {}), std::vector<bool>{false});
  EXPECT_EQ(f.acceptor.acceptedOwner("dev"), 2u);
  // Every change was persisted before the answer.
  ASSERT_FALSE(f.persisted.empty());
  EXPECT_EQ(f.persisted.back().second.owner, 2u);
}

TEST(OwnershipAcceptorTest, OwnershipStaysOnANodeStillHeardFromUnlessItReleasedIt) {
  Fixture f;
  f.acceptor.prepare(ballot(1, 2), {"dev"});
  ASSERT_EQ(f.acceptor.accept(ballot(1, 2), {"dev"}, {2}, {}), std::vector<bool>{true});
  f.heard = {2};
  f.acceptor.prepare(ballot(2, 3), {"dev"});
  // Node 3 cannot take it while node 2 may still serve it ...
  EXPECT_EQ(f.acceptor.accept(ballot(2, 3), {"dev"}, {3}, {}), std::vector<bool>{false});
  // ... unless node 2 answered node 3's claim (handed it over, or had none).
  EXPECT_EQ(f.acceptor.accept(ballot(2, 3), {"dev"}, {3}, {2}), std::vector<bool>{true});
  EXPECT_EQ(f.acceptor.acceptedOwner("dev"), 3u);
  // Not heard from for the dead timeout: it may move without its word.
  f.heard.clear();
  f.acceptor.prepare(ballot(3, 2), {"dev"});
  EXPECT_EQ(f.acceptor.accept(ballot(3, 2), {"dev"}, {2}, {}), std::vector<bool>{true});
}

TEST(OwnershipAcceptorTest, NeverAwayFromItselfWithoutItsWord) {
  Fixture f;  // this acceptor is node 1
  f.acceptor.prepare(ballot(1, 1), {"dev"});
  ASSERT_EQ(f.acceptor.accept(ballot(1, 1), {"dev"}, {1}, {}), std::vector<bool>{true});
  f.acceptor.prepare(ballot(2, 2), {"dev"});
  EXPECT_EQ(f.acceptor.accept(ballot(2, 2), {"dev"}, {2}, {}), std::vector<bool>{false});
  EXPECT_EQ(f.acceptor.accept(ballot(2, 2), {"dev"}, {2}, {1}), std::vector<bool>{true});
}

TEST(OwnershipAcceptorTest, KeysAreIndependentAndStateSurvivesALoad) {
  Fixture f;
  f.acceptor.prepare(ballot(5, 2), {"a", "b"});
  EXPECT_EQ(f.acceptor.accept(ballot(5, 2), {"a", "b"}, {2, 3}, {}),
            (std::vector<bool>{true, true}));
  Fixture g;
  g.acceptor.load(f.persisted);
  EXPECT_EQ(g.acceptor.acceptedOwner("a"), 2u);
  EXPECT_EQ(g.acceptor.acceptedOwner("b"), 3u);
  EXPECT_FALSE(g.acceptor.prepare(ballot(5, 2), {"a"})[0].ok) << "the promise survived";
  EXPECT_EQ(g.acceptor.size(), 2u);
}

}  // namespace
}  // namespace gannet::cluster
