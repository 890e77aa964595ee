#pragma once
// Acl: who may publish to, receive from and subscribe to which topics, read from
// a file in Mosquitto 2.0's acl_file format (docs/security.md, "Authorisation
// (ACL)"), so that a Mosquitto user's existing file works unchanged:
//
//   # comment
//   topic [read|write|readwrite|deny] FILTER   before any "user" line: anonymous
//                                             clients (no user name); after one:
//                                             that user
//   user NAME                                 starts NAME's section
//   pattern [read|write|readwrite|deny] FILTER every client, with %u (user name)
//                                             and %c (client id) substituted
//
// The access word may be left out ("topic FILTER"): readwrite, as in Mosquitto.
// FILTER is the rest of the line (it may contain spaces). Anything else is an
// error naming the file and line.
//
// Semantics: deny by default; a matching deny rule wins over any grant
// (whichever section it is in); otherwise a matching grant of the right kind
// allows. Rules of the client's own section (its user name's, or the
// anonymous one for a client without a user name) and every pattern apply.
// A pattern using %u does not apply to a client without a user name, nor (%u
// or %c) to one whose user name / client id contains '/', '+' or '#': a
// substitution never widens the filter.
//
// Immutable once loaded: shared by every worker thread (a reload builds a new
// one). The checks allocate nothing.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace gannet::auth {

// Who asks: the user name (none: anonymous) and the client id.
struct AclIdentity {
  std::optional<std::string_view> username;
  std::string_view client_id;
};

class Acl {
 public:
  static absl::StatusOr<std::shared_ptr<const Acl>> load(const std::string& path);
  // Parses the text of an ACL file; `name` is used in errors ("NAME line N: ...").
  static absl::StatusOr<std::shared_ptr<const Acl>> parse(std::string_view text,
                                                          std::string_view name);

  // PUBLISH to topic name `topic` (also a will's topic).
  bool canWrite(const AclIdentity& who, std::string_view topic) const;
  // Receive a message published to `topic`.
  bool canRead(const AclIdentity& who, std::string_view topic) const;
  // SUBSCRIBE to topic filter `filter` (the filter part of a "$share/G/F"):
  // allowed when a read grant's filter covers `filter` (every topic `filter`
  // matches, the grant matches too) and no deny rule covers it. A deny rule
  // that covers only part of it leaves the subscription allowed; what it
  // denies is held back at delivery (canRead).
  bool canSubscribe(const AclIdentity& who, std::string_view filter) const;
  // True when every message a subscription to `filter` receives is readable:
  // a read grant covers it and no deny rule could match any of its topics. A
  // delivery through such a subscription needs no canRead().
  bool readsAll(const AclIdentity& who, std::string_view filter) const;

  size_t ruleCount() const;

 private:
  enum Access : uint8_t { kNone = 0, kRead = 1, kWrite = 2 };
  // One level of a rule's filter.
  struct Level {
    enum class Kind : uint8_t { kLiteral, kPlus, kHash, kPattern } kind;
    std::string text;  // kLiteral: the level; kPattern: the level with %u / %c in it
  };
  struct Rule {
    uint8_t access = kNone;  // kNone: deny
    bool uses_user = false;  // a pattern with %u
    bool uses_client = false;
    std::vector<Level> levels;
  };
  using Rules = std::vector<Rule>;

  // How a rule relates to a topic or filter, for `who` (patterns substituted).
  bool matchesTopic(const Rule& r, const AclIdentity& who, std::string_view topic) const;
  bool covers(const Rule& r, const AclIdentity& who, std::string_view filter) const;
  bool intersects(const Rule& r, const AclIdentity& who, std::string_view filter) const;
  // Whether a pattern applies to `who` at all (substitution safe).
  static bool applicable(const Rule& r, const AclIdentity& who);
  const Rules* ownRules(const AclIdentity& who) const;
  bool checkTopic(const AclIdentity& who, std::string_view topic, uint8_t access) const;
  // A read rule covers `filter` and no deny rule covers it (or, with
  // deny_if_intersects, could match any topic it matches).
  bool readGranted(const AclIdentity& who, std::string_view filter, bool deny_if_intersects) const;

  Rules anonymous_;
  absl::flat_hash_map<std::string, Rules> users_;
  Rules patterns_;
};

}  // namespace gannet::auth
