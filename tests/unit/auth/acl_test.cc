// broker/auth/acl.h: Mosquitto-format ACL files parse as Mosquitto parses them,
// damaged ones are refused naming the line, and the checks follow
// docs/security.md ("Authorisation (ACL)").

#include "broker/auth/acl.h"

#include <gtest/gtest.h>

namespace gannet::auth {
namespace {

std::shared_ptr<const Acl> mustParse(std::string_view text) {
  auto acl = Acl::parse(text, "acl");
  EXPECT_TRUE(acl.ok()) << acl.status();
  return acl.ok() ? *acl : Acl::parse("", "empty").value();
}

AclIdentity anon(std::string_view client_id = "c1") { return AclIdentity{std::nullopt, client_id}; }
AclIdentity user(std::string_view name, std::string_view client_id = "c1") {
  return AclIdentity{name, client_id};
}

// Mosquitto's own aclfile.example, as shipped.
constexpr const char* kMosquittoExample =
    "# This affects access control for clients with no username.\n"
    "topic read $SYS/#\n"
    "\n"
    "# This only affects clients with username \"roger\".\n"
    "user roger\n"
    "topic foo/bar\n"
    "\n"
    "# This affects all clients.\n"
    "pattern write $SYS/broker/connection/%c/state\n";

TEST(AclTest, ParsesMosquittosExampleFile) {
  auto acl = mustParse(kMosquittoExample);
  EXPECT_EQ(acl->ruleCount(), 3u);
  // Anonymous: read $SYS only.
  EXPECT_TRUE(acl->canRead(anon(), "$SYS/broker/uptime"));
  EXPECT_FALSE(acl->canWrite(anon(), "$SYS/broker/uptime"));
  EXPECT_FALSE(acl->canRead(anon(), "foo/bar"));
  // roger: "topic foo/bar" without an access word is readwrite.
  EXPECT_TRUE(acl->canRead(user("roger"), "foo/bar"));
  EXPECT_TRUE(acl->canWrite(user("roger"), "foo/bar"));
  EXPECT_FALSE(acl->canRead(user("roger"), "$SYS/broker/uptime"));  // anonymous rules only
  EXPECT_FALSE(acl->canWrite(user("roger"), "foo/baz"));
  // Everyone: the pattern with its own client id.
  EXPECT_TRUE(acl->canWrite(user("roger", "dev7"), "$SYS/broker/connection/dev7/state"));
  EXPECT_TRUE(acl->canWrite(anon("dev7"), "$SYS/broker/connection/dev7/state"));
  EXPECT_FALSE(acl->canWrite(anon("dev7"), "$SYS/broker/connection/dev8/state"));
  EXPECT_FALSE(acl->canRead(anon("dev7"), "foo/bar"));
}

TEST(AclTest, WhitespaceCommentsCrlfAndSpacesInFilters) {
  auto acl = mustParse(
      "   # indented comment\r\n"
      "\t\n"
      "user  alice \r\n"
      "\ttopic\t read   a/b c/d  \r\n"  // the filter "a/b c/d" has a space
      "topic readwrite x/#\n"
      "user bob smith\n"  // a user name with a space, as Mosquitto allows
      "topic write b/#\n");
  EXPECT_TRUE(acl->canRead(user("alice"), "a/b c/d"));
  EXPECT_FALSE(acl->canRead(user("alice"), "a/b"));
  EXPECT_TRUE(acl->canWrite(user("alice"), "x/y/z"));
  EXPECT_TRUE(acl->canWrite(user("bob smith"), "b/1"));
  EXPECT_FALSE(acl->canRead(user("bob smith"), "b/1"));
  EXPECT_FALSE(acl->canWrite(user("bob"), "b/1"));
}

TEST(AclTest, DamagedLinesAreRefusedWithTheirNumber) {
  struct Case {
    const char* text;
    const char* expect;
  };
  for (const Case& c : {
           Case{"topic read a\nfrobnicate a/b\n", "acl line 2: unknown keyword 'frobnicate'"},
           Case{"topic reed a/b\n", "line 1: unknown access 'reed'"},
           Case{"\n\npattern rw a/%u\n", "line 3: unknown access 'rw'"},
           Case{"topic\n", "line 1: 'topic' without a topic"},
           Case{"# c\ntopic read\n", "line 2: 'topic' without a topic"},
           Case{"pattern deny   \n", "line 1: 'pattern' without a topic"},
           Case{"user\n", "line 1: 'user' without a user name"},
           Case{"user a\ntopic read a/#/b\n", "line 2: invalid topic filter 'a/#/b'"},
           Case{"topic read a/b#\n", "line 1: invalid topic filter"},
           Case{"topic write a+/b\n", "line 1: invalid topic filter"},
           Case{"Topic read a\n", "line 1: unknown keyword 'Topic'"},
       }) {
    std::string_view text = c.text;
    auto acl = Acl::parse(text, "acl");
    ASSERT_FALSE(acl.ok()) << c.text;
    EXPECT_NE(acl.status().message().find(c.expect), std::string::npos)
        << acl.status().message() << " (expected " << c.expect << ")";
  }
  auto nul = Acl::parse(std::string_view("topic read a\0/b\n", 16), "acl");
  ASSERT_FALSE(nul.ok());
  EXPECT_NE(nul.status().message().find("line 1: invalid topic filter"), std::string::npos);
}

TEST(AclTest, EmptyFileDeniesEverything) {
  auto acl = mustParse("# nothing\n\n");
  EXPECT_FALSE(acl->canRead(anon(), "a"));
  EXPECT_FALSE(acl->canWrite(user("x"), "a"));
  EXPECT_FALSE(acl->canSubscribe(anon(), "#"));
}

TEST(AclTest, AnonymousRulesApplyOnlyWithoutUserName) {
  auto acl = mustParse(
      "topic readwrite public/#\n"
      "user alice\n"
      "topic read private/#\n");
  EXPECT_TRUE(acl->canWrite(anon(), "public/x"));
  EXPECT_FALSE(acl->canWrite(user("alice"), "public/x"));
  EXPECT_FALSE(acl->canRead(anon(), "private/x"));
  EXPECT_TRUE(acl->canRead(user("alice"), "private/x"));
  // An unknown user has no section: only patterns (none here).
  EXPECT_FALSE(acl->canRead(user("mallory"), "public/x"));
  // An empty user name is a user name, not anonymous.
  EXPECT_FALSE(acl->canRead(user(""), "public/x"));
}

TEST(AclTest, UserSectionsMergeAndAccessKindsDiffer) {
  auto acl = mustParse(
      "user a\n"
      "topic read r/#\n"
      "user b\n"
      "topic write w/#\n"
      "user a\n"  // a second section of the same user adds to the first
      "topic write w/a\n");
  EXPECT_TRUE(acl->canRead(user("a"), "r/1"));
  EXPECT_FALSE(acl->canWrite(user("a"), "r/1"));
  EXPECT_TRUE(acl->canWrite(user("a"), "w/a"));
  EXPECT_FALSE(acl->canRead(user("a"), "w/a"));
  EXPECT_TRUE(acl->canWrite(user("b"), "w/a"));
  EXPECT_FALSE(acl->canRead(user("b"), "r/1"));
}

TEST(AclTest, PatternsSubstituteUserAndClientId) {
  auto acl = mustParse(
      "pattern readwrite users/%u/#\n"
      "pattern read devices/%c/cmd\n"
      "pattern write devices/%c/state\n"
      "pattern read in/%u-%c/x\n");
  EXPECT_TRUE(acl->canWrite(user("alice"), "users/alice/a/b"));
  EXPECT_TRUE(acl->canRead(user("alice"), "users/alice"));
  EXPECT_FALSE(acl->canRead(user("alice"), "users/bob/a"));
  EXPECT_FALSE(acl->canRead(user("alice"), "users/alicex/a"));
  EXPECT_FALSE(acl->canRead(anon(), "users//a"));  // %u never matches without a user name
  EXPECT_TRUE(acl->canRead(anon("d1"), "devices/d1/cmd"));
  EXPECT_FALSE(acl->canWrite(anon("d1"), "devices/d1/cmd"));
  EXPECT_TRUE(acl->canWrite(anon("d1"), "devices/d1/state"));
  EXPECT_FALSE(acl->canRead(anon("d1"), "devices/d2/cmd"));
  EXPECT_TRUE(acl->canRead(user("al", "c9"), "in/al-c9/x"));
  EXPECT_FALSE(acl->canRead(user("al", "c9"), "in/al-c8/x"));
  // "topic" lines do not substitute: %u is literal there.
  auto lit = mustParse("topic read t/%u\n");
  EXPECT_TRUE(lit->canRead(anon(), "t/%u"));
  EXPECT_FALSE(lit->canRead(anon(), "t/c1"));
}

TEST(AclTest, SubstitutionNeverWidens) {
  auto acl = mustParse(
      "pattern readwrite users/%u/#\n"
      "pattern readwrite dev/%c\n");
  // A user name with wildcards or a separator: the pattern does not match at all.
  for (std::string_view bad : {"+", "#", "a/b", "a+", "x#", "/", ""}) {
    const AclIdentity who = user(bad, "c1");
    EXPECT_FALSE(acl->canRead(who, "users/a/b")) << bad;
    EXPECT_FALSE(acl->canRead(who, "users/x")) << bad;
    EXPECT_FALSE(acl->canRead(who, std::string("users/") + std::string(bad))) << bad;
    EXPECT_FALSE(acl->canSubscribe(who, "users/#")) << bad;
    EXPECT_FALSE(acl->canSubscribe(who, std::string("users/") + std::string(bad) + "/#")) << bad;
  }
  for (std::string_view bad : {"+", "#", "a/b", ""}) {
    EXPECT_FALSE(acl->canWrite(anon(bad), "dev/a/b")) << bad;
    EXPECT_FALSE(acl->canWrite(anon(bad), std::string("dev/") + std::string(bad))) << bad;
    EXPECT_FALSE(acl->canSubscribe(anon(bad), "dev/+")) << bad;
  }
  // The same user is fine with a safe client id and vice versa.
  EXPECT_TRUE(acl->canWrite(user("a+", "ok"), "dev/ok"));
}

TEST(AclTest, DenyWinsOverAnyGrant) {
  auto acl = mustParse(
      "topic readwrite a/#\n"
      "topic deny a/secret\n"
      "user u\n"
      "topic readwrite #\n"
      "pattern deny +/private/#\n"
      "pattern deny own/%u/locked\n"
      "pattern readwrite own/%u/#\n");
  EXPECT_TRUE(acl->canWrite(anon(), "a/open"));
  EXPECT_FALSE(acl->canWrite(anon(), "a/secret"));
  EXPECT_FALSE(acl->canRead(anon(), "a/secret"));
  EXPECT_TRUE(acl->canRead(user("u"), "x/y"));
  EXPECT_FALSE(acl->canRead(user("u"), "x/private/1"));   // a pattern deny beats a user grant
  EXPECT_FALSE(acl->canWrite(anon(), "a/private"));
  EXPECT_TRUE(acl->canWrite(user("u"), "own/u/open"));
  EXPECT_FALSE(acl->canWrite(user("u"), "own/u/locked"));
  // Deny rule order does not matter: deny listed after the grant wins too.
  auto later = mustParse("topic read t/#\ntopic deny t/x\n");
  auto earlier = mustParse("topic deny t/x\ntopic read t/#\n");
  EXPECT_FALSE(later->canRead(anon(), "t/x"));
  EXPECT_FALSE(earlier->canRead(anon(), "t/x"));
  EXPECT_TRUE(earlier->canRead(anon(), "t/y"));
}

TEST(AclTest, WildcardRules) {
  auto acl = mustParse(
      "topic read s/+/temp\n"
      "topic read t/#\n"
      "topic write +\n");
  EXPECT_TRUE(acl->canRead(anon(), "s/kitchen/temp"));
  EXPECT_TRUE(acl->canRead(anon(), "s//temp"));
  EXPECT_FALSE(acl->canRead(anon(), "s/a/b/temp"));
  EXPECT_FALSE(acl->canRead(anon(), "s/kitchen"));
  EXPECT_TRUE(acl->canRead(anon(), "t"));  // "t/#" matches its parent (§4.7.1.2)
  EXPECT_TRUE(acl->canRead(anon(), "t/a/b/c"));
  EXPECT_FALSE(acl->canRead(anon(), "tt/a"));
  EXPECT_TRUE(acl->canWrite(anon(), "single"));
  EXPECT_FALSE(acl->canWrite(anon(), "two/levels"));
}

TEST(AclTest, DollarTopicsAreNotMatchedByFirstLevelWildcards) {
  auto acl = mustParse(
      "topic readwrite #\n"
      "topic read +/broker/#\n"
      "user admin\n"
      "topic read $SYS/#\n");
  EXPECT_TRUE(acl->canRead(anon(), "a/b"));
  EXPECT_FALSE(acl->canRead(anon(), "$SYS/broker/uptime"));
  EXPECT_FALSE(acl->canWrite(anon(), "$SYS/x"));
  EXPECT_FALSE(acl->canRead(anon(), "$share/x"));
  EXPECT_FALSE(acl->canSubscribe(anon(), "$SYS/#"));
  EXPECT_TRUE(acl->canSubscribe(anon(), "#"));  // covers everything "#" gets: not $ topics
  EXPECT_TRUE(acl->canRead(user("admin"), "$SYS/broker/uptime"));
  EXPECT_TRUE(acl->canSubscribe(user("admin"), "$SYS/broker/+"));
  // A deny on "#" does not reach $ topics either.
  auto deny = mustParse("topic read $SYS/#\ntopic deny #\n");
  EXPECT_TRUE(deny->canRead(anon(), "$SYS/x"));
  EXPECT_TRUE(deny->canSubscribe(anon(), "$SYS/#"));
  EXPECT_TRUE(deny->readsAll(anon(), "$SYS/#"));
  EXPECT_FALSE(deny->canRead(anon(), "x"));
}

TEST(AclTest, SubscribeNeedsAReadRuleCoveringTheFilter) {
  auto acl = mustParse(
      "topic read a/#\n"
      "topic read b/+/c\n"
      "topic write w/#\n"
      "topic readwrite rw/+\n"
      "topic deny a/secret/#\n");
  EXPECT_TRUE(acl->canSubscribe(anon(), "a/#"));
  EXPECT_TRUE(acl->canSubscribe(anon(), "a"));
  EXPECT_TRUE(acl->canSubscribe(anon(), "a/+/x"));
  EXPECT_TRUE(acl->canSubscribe(anon(), "a/x/#"));
  EXPECT_FALSE(acl->canSubscribe(anon(), "#"));     // wider than a/#
  EXPECT_FALSE(acl->canSubscribe(anon(), "+/x"));   // would get b/x too
  EXPECT_TRUE(acl->canSubscribe(anon(), "b/+/c"));
  EXPECT_TRUE(acl->canSubscribe(anon(), "b/x/c"));
  EXPECT_FALSE(acl->canSubscribe(anon(), "b/#"));
  EXPECT_FALSE(acl->canSubscribe(anon(), "b/x/#"));  // b/x/c/d is not readable
  EXPECT_FALSE(acl->canSubscribe(anon(), "w/#"));    // write only
  EXPECT_TRUE(acl->canSubscribe(anon(), "rw/x"));
  EXPECT_FALSE(acl->canSubscribe(anon(), "rw/#"));  // rw/+ does not cover rw or rw/a/b
  // A deny covering the filter refuses it; one covering part of it does not,
  // but then not all of it is readable (checked per message).
  EXPECT_FALSE(acl->canSubscribe(anon(), "a/secret/#"));
  EXPECT_FALSE(acl->canSubscribe(anon(), "a/secret/x"));
  EXPECT_TRUE(acl->canSubscribe(anon(), "a/#"));
  EXPECT_FALSE(acl->readsAll(anon(), "a/#"));
  EXPECT_FALSE(acl->readsAll(anon(), "a/+/x"));  // meets a/secret/x
  EXPECT_TRUE(acl->readsAll(anon(), "a/open/#"));
  EXPECT_TRUE(acl->readsAll(anon(), "a/open"));
  EXPECT_TRUE(acl->readsAll(anon(), "b/+/c"));
  EXPECT_FALSE(acl->readsAll(anon(), "b/#"));  // not covered
}

TEST(AclTest, ReadsAllSeesEveryDenyThatCouldMeetTheFilter) {
  auto acl = mustParse(
      "topic read #\n"
      "topic deny x/+/z\n"
      "topic deny y\n"
      "topic deny q/#\n");
  EXPECT_FALSE(acl->readsAll(anon(), "#"));
  EXPECT_FALSE(acl->readsAll(anon(), "x/#"));
  EXPECT_FALSE(acl->readsAll(anon(), "x/a/+"));
  EXPECT_FALSE(acl->readsAll(anon(), "+/a/z"));
  EXPECT_TRUE(acl->readsAll(anon(), "x/a/y"));
  EXPECT_TRUE(acl->readsAll(anon(), "x/a"));
  EXPECT_TRUE(acl->readsAll(anon(), "x/a/z/w"));
  EXPECT_FALSE(acl->readsAll(anon(), "y/#"));  // y/# matches y
  EXPECT_TRUE(acl->readsAll(anon(), "y/+"));
  EXPECT_FALSE(acl->readsAll(anon(), "q"));    // q/# matches q
  EXPECT_FALSE(acl->readsAll(anon(), "$SYS/#"));  // "#" does not cover $ topics
  EXPECT_FALSE(acl->canSubscribe(anon(), "$SYS/#"));
  EXPECT_TRUE(acl->readsAll(anon(), "a/b"));
}

TEST(AclTest, SubscribeWithPatterns) {
  auto acl = mustParse(
      "pattern read users/%u/#\n"
      "pattern deny users/%u/hidden\n");
  EXPECT_TRUE(acl->canSubscribe(user("al"), "users/al/#"));
  EXPECT_TRUE(acl->canSubscribe(user("al"), "users/al/+/x"));
  EXPECT_FALSE(acl->canSubscribe(user("al"), "users/+/x"));
  EXPECT_FALSE(acl->canSubscribe(user("al"), "users/bo/#"));
  EXPECT_FALSE(acl->canSubscribe(user("al"), "users/al/hidden"));
  EXPECT_FALSE(acl->readsAll(user("al"), "users/al/#"));
  EXPECT_TRUE(acl->readsAll(user("al"), "users/al/open/#"));
  EXPECT_FALSE(acl->canSubscribe(anon(), "users/al/#"));
}

}  // namespace
}  // namespace gannet::auth
