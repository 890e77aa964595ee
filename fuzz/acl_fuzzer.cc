// libFuzzer target for the ACL file parser and checks (broker/auth/acl.h). The
// input is the text of an ACL file. Whatever parses is checked with fixed
// identities (anonymous, plain, empty, and user names / client ids with '+',
// '#', '/') against fixed topics and filters, and the checks must agree with
// each other:
//  - for a topic name, subscribing is allowed exactly when reading is (a
//    topic name is a filter that covers only itself);
//  - readsAll(F) implies canSubscribe(F), and canRead(T) for each topic T
//    that F matches (the per-subscription shortcut never lets through what the
//    per-message check would hold back).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "broker/auth/acl.h"

namespace {

using gannet::auth::Acl;
using gannet::auth::AclIdentity;

[[noreturn]] void fail(const char* what, const AclIdentity& who, std::string_view a,
                       std::string_view b = {}) {
  std::fprintf(stderr, "acl_fuzzer: %s (user %.*s, client %.*s): '%.*s' '%.*s'\n", what,
               who.username ? static_cast<int>(who.username->size()) : 6,
               who.username ? who.username->data() : "(none)",
               static_cast<int>(who.client_id.size()), who.client_id.data(),
               static_cast<int>(a.size()), a.data(), static_cast<int>(b.size()), b.data());
  std::abort();
}

constexpr std::string_view kTopics[] = {
    "a",         "a/b",   "a/b/c",   "a//c",         "/a",        "$SYS/broker/uptime",
    "$SYS",      "users/alice/x",    "users/+/x",    "users/a/b/x", "clients/c1/state",
    "b c/d",     "",      "x/y/z/w", "users/alice",  "%u",
};

// Filters; the topics of kTopics each matches are found with topicMatches().
constexpr std::string_view kFilters[] = {
    "#",     "+",        "a/#",          "a/+",           "a/+/c",  "+/b/#",  "$SYS/#",
    "users/alice/#",     "users/+/x",    "users/#",       "clients/c1/#", "a",  "/+",
    "+/+",   "b c/#",    "x/+/z/#",
};

bool topicMatches(std::string_view filter, std::string_view topic) {
  // A plain MQTT matcher, for the invariant (§4.7): '$' topics are not
  // matched by a wildcard first level; "x/#" matches "x".
  if (!topic.empty() && topic[0] == '$' && !filter.empty() && (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  size_t f = 0, t = 0;
  while (true) {
    const size_t fe = filter.find('/', f);
    const std::string_view fl = filter.substr(f, fe == std::string_view::npos ? filter.npos : fe - f);
    if (fl == "#") return true;
    if (t > topic.size()) {
      return false;
    }
    const size_t te = topic.find('/', t);
    const std::string_view tl = topic.substr(t, te == std::string_view::npos ? topic.npos : te - t);
    if (fl != "+" && fl != tl) return false;
    if (fe == std::string_view::npos || te == std::string_view::npos) {
      if (fe == std::string_view::npos && te == std::string_view::npos) return true;
      // "x/#" matches "x"
      return te == std::string_view::npos && filter.substr(fe + 1) == "#";
    }
    f = fe + 1;
    t = te + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = Acl::parse(text, "fuzz");
  if (!parsed.ok()) return 0;
  const Acl& acl = **parsed;
  const AclIdentity identities[] = {
      {std::nullopt, "c1"},  {std::string_view("alice"), "c1"}, {std::string_view(""), ""},
      {std::string_view("+"), "#"}, {std::string_view("a/b"), "c/d"}, {std::string_view("roger"), "+"},
  };
  for (const AclIdentity& who : identities) {
    for (std::string_view topic : kTopics) {
      const bool read = acl.canRead(who, topic);
      (void)acl.canWrite(who, topic);
      const bool topic_is_name = topic.find_first_of("+#") == std::string_view::npos;
      if (topic_is_name && !topic.empty() && acl.canSubscribe(who, topic) != read) {
        fail("canSubscribe(topic) != canRead(topic)", who, topic);
      }
    }
    for (std::string_view filter : kFilters) {
      const bool sub = acl.canSubscribe(who, filter);
      if (!acl.readsAll(who, filter)) continue;
      if (!sub) fail("readsAll without canSubscribe", who, filter);
      for (std::string_view topic : kTopics) {
        if (topic.empty() || topic.find_first_of("+#") != std::string_view::npos) continue;
        if (topicMatches(filter, topic) && !acl.canRead(who, topic)) {
          fail("readsAll(filter) but not canRead(topic)", who, filter, topic);
        }
      }
    }
  }
  return 0;
}
