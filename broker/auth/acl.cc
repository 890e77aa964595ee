#include "broker/auth/acl.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"

namespace gannet::auth {

namespace {

absl::Status lineError(std::string_view name, int line, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(base::toAbsl(name), " line ", line, ": ", base::toAbsl(why)));
}

bool isBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (isBlank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (isBlank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Splits off the first blank-separated word of `s` (already trimmed at the front).
std::string_view firstWord(std::string_view& s) {
  size_t end = 0;
  while (end < s.size() && !isBlank(s[end])) ++end;
  std::string_view word = s.substr(0, end);
  s = trim(s.substr(end));
  return word;
}

// MQTT §4.7: a valid topic filter: non-empty, '#' only as the whole last level,
// '+' only as a whole level, no NUL.
bool validFilter(std::string_view f) {
  if (f.empty() || f.find('\0') != std::string_view::npos) return false;
  size_t start = 0;
  while (true) {
    size_t slash = f.find('/', start);
    std::string_view level = f.substr(start, slash == std::string_view::npos ? f.npos : slash - start);
    if (level.find('#') != std::string_view::npos) {
      if (level != "#" || slash != std::string_view::npos) return false;
    }
    if (level.find('+') != std::string_view::npos && level != "+") return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// Walks the levels of a topic name or filter without copying.
class Levels {
 public:
  explicit Levels(std::string_view s) : rest_(s) {}
  bool done() const { return done_; }
  std::string_view next() {
    const size_t slash = rest_.find('/');
    std::string_view level = rest_.substr(0, slash);
    if (slash == std::string_view::npos) {
      done_ = true;
      rest_ = {};
    } else {
      rest_.remove_prefix(slash + 1);
    }
    return level;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

bool unsafeForPattern(std::string_view s) {
  return s.empty() || s.find_first_of("/+#") != std::string_view::npos;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Acl>> Acl::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ACL file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

absl::StatusOr<std::shared_ptr<const Acl>> Acl::parse(std::string_view text,
                                                      std::string_view name) {
  auto acl = std::make_shared<Acl>();
  Rules* section = &acl->anonymous_;  // "topic" lines before any "user" line
  int number = 0;
  for (absl::string_view raw : absl::StrSplit(base::toAbsl(text), '\n')) {
    ++number;
    std::string_view line = trim(base::toStd(raw));
    if (line.empty() || line[0] == '#') continue;
    const std::string_view keyword = firstWord(line);
    if (keyword == "user") {
      // As Mosquitto: the rest of the line is the user name (it may hold spaces).
      if (line.empty()) return lineError(name, number, "'user' without a user name");
      section = &acl->users_[base::toAbsl(line)];
      continue;
    }
    const bool pattern = keyword == "pattern";
    if (!pattern && keyword != "topic") {
      return lineError(name, number,
                       absl::StrCat("unknown keyword '", base::toAbsl(keyword),
                                    "' (expected topic, pattern or user)"));
    }
    Rule rule;
    rule.access = kRead | kWrite;  // "topic FILTER": readwrite, as in Mosquitto
    std::string_view rest = line;
    std::string_view word = firstWord(rest);
    if (word == "read") {
      rule.access = kRead;
    } else if (word == "write") {
      rule.access = kWrite;
    } else if (word == "readwrite") {
      rule.access = kRead | kWrite;
    } else if (word == "deny") {
      rule.access = kNone;
    } else if (!rest.empty()) {
      // "topic WORD MORE": WORD must be an access word. (Mosquitto would take
      // "WORD MORE" as a readwrite filter; a typo in the access word must not
      // silently become a grant.)
      return lineError(name, number,
                       absl::StrCat("unknown access '", base::toAbsl(word),
                                    "' (expected read, write, readwrite or deny)"));
    } else {
      rest = word;  // "topic FILTER"
    }
    if (rest.empty()) {
      return lineError(name, number, absl::StrCat("'", base::toAbsl(keyword), "' without a topic"));
    }
    if (!validFilter(rest)) {
      return lineError(name, number,
                       absl::StrCat("invalid topic filter '", base::toAbsl(rest), "'"));
    }
    Levels levels(rest);
    while (!levels.done()) {
      const std::string_view level = levels.next();
      Level l;
      if (level == "+") {
        l.kind = Level::Kind::kPlus;
      } else if (level == "#") {
        l.kind = Level::Kind::kHash;
      } else {
        const bool has_u = pattern && level.find("%u") != std::string_view::npos;
        const bool has_c = pattern && level.find("%c") != std::string_view::npos;
        rule.uses_user |= has_u;
        rule.uses_client |= has_c;
        l.kind = has_u || has_c ? Level::Kind::kPattern : Level::Kind::kLiteral;
        l.text = std::string(level);
      }
      rule.levels.push_back(std::move(l));
    }
    (pattern ? acl->patterns_ : *section).push_back(std::move(rule));
  }
  return std::shared_ptr<const Acl>(std::move(acl));
}

size_t Acl::ruleCount() const {
  size_t n = anonymous_.size() + patterns_.size();
  for (const auto& [user, rules] : users_) n += rules.size();
  return n;
}

namespace {

// A rule level against a literal level, with %u / %c substituted in a pattern
// level (the caller checked that the substitution is safe).
bool levelEquals(std::string_view pat, bool is_pattern, std::string_view level,
                 const AclIdentity& who) {
  if (!is_pattern) return pat == level;
  size_t i = 0;
  while (i < pat.size()) {
    if (pat[i] == '%' && i + 1 < pat.size() && (pat[i + 1] == 'u' || pat[i + 1] == 'c')) {
      const std::string_view sub = pat[i + 1] == 'u' ? *who.username : who.client_id;
      if (!level.starts_with(sub)) return false;
      level.remove_prefix(sub.size());
      i += 2;
      continue;
    }
    if (level.empty() || level.front() != pat[i]) return false;
    level.remove_prefix(1);
    ++i;
  }
  return level.empty();
}

// Whether a rule level, substituted, starts with '$' (MQTT §4.7.2: wildcards at
// the first level do not match topics starting with '$').
bool levelStartsWithDollar(std::string_view pat, bool is_pattern, const AclIdentity& who) {
  if (pat.empty()) return false;
  if (is_pattern && pat.size() >= 2 && pat[0] == '%' && (pat[1] == 'u' || pat[1] == 'c')) {
    const std::string_view sub = pat[1] == 'u' ? *who.username : who.client_id;
    // Safe substitutions are never empty.
    return !sub.empty() && sub.front() == '$';
  }
  return pat.front() == '$';
}

}  // namespace

bool Acl::applicable(const Rule& r, const AclIdentity& who) {
  if (r.uses_user && (!who.username || unsafeForPattern(*who.username))) return false;
  if (r.uses_client && unsafeForPattern(who.client_id)) return false;
  return true;
}

// Every topic `filter` matches (a topic name: `filter` without wildcards) is
// matched by the rule.
bool Acl::covers(const Rule& r, const AclIdentity& who, std::string_view filter) const {
  Levels f(filter);
  size_t i = 0;
  for (; i < r.levels.size(); ++i) {
    const Level& a = r.levels[i];
    if (f.done()) {
      // "a/#" matches "a" too (§4.7.1.2).
      return a.kind == Level::Kind::kHash && i > 0 && i + 1 == r.levels.size();
    }
    const std::string_view level = f.next();
    const bool wild = level == "+" || level == "#";
    if (a.kind == Level::Kind::kHash) {
      return !(i == 0 && !wild && level.starts_with('$'));
    }
    if (level == "#") return false;  // only a '#' covers a '#'
    if (a.kind == Level::Kind::kPlus) {
      if (i == 0 && !wild && level.starts_with('$')) return false;
      continue;
    }
    if (wild) return false;  // a literal level does not cover '+'
    if (!levelEquals(a.text, a.kind == Level::Kind::kPattern, level, who)) return false;
  }
  return f.done();
}

bool Acl::matchesTopic(const Rule& r, const AclIdentity& who, std::string_view topic) const {
  // A topic name holds no wildcards (the codec checked): covering it is matching it.
  return covers(r, who, topic);
}

// Some topic is matched by both the rule and `filter`.
bool Acl::intersects(const Rule& r, const AclIdentity& who, std::string_view filter) const {
  Levels f(filter);
  for (size_t i = 0; i < r.levels.size(); ++i) {
    const Level& a = r.levels[i];
    if (f.done()) return a.kind == Level::Kind::kHash && i > 0;
    const std::string_view level = f.next();
    const bool fwild = level == "+" || level == "#";
    const bool awild = a.kind == Level::Kind::kPlus || a.kind == Level::Kind::kHash;
    if (i == 0 && fwild != awild) {
      // A wildcard first level never meets a '$' topic.
      if (fwild && levelStartsWithDollar(a.text, a.kind == Level::Kind::kPattern, who)) return false;
      if (awild && level.starts_with('$')) return false;
    }
    if (a.kind == Level::Kind::kHash || level == "#") return true;
    if (awild || fwild) continue;
    if (!levelEquals(a.text, a.kind == Level::Kind::kPattern, level, who)) return false;
  }
  if (f.done()) return true;
  // The rule ended: "x" meets "x/#".
  return f.next() == "#" && f.done();
}

const Acl::Rules* Acl::ownRules(const AclIdentity& who) const {
  if (!who.username) return &anonymous_;
  auto it = users_.find(base::toAbsl(*who.username));
  return it == users_.end() ? nullptr : &it->second;
}

bool Acl::checkTopic(const AclIdentity& who, std::string_view topic, uint8_t access) const {
  bool granted = false;
  auto scan = [&](const Rules& rules, bool patterns) {
    for (const Rule& r : rules) {
      if (patterns && !applicable(r, who)) continue;
      if (!matchesTopic(r, who, topic)) continue;
      if (r.access == kNone) return false;  // a matching deny wins
      granted = granted || (r.access & access) != 0;
    }
    return true;
  };
  if (const Rules* own = ownRules(who); own != nullptr && !scan(*own, false)) return false;
  if (!scan(patterns_, true)) return false;
  return granted;
}

bool Acl::canWrite(const AclIdentity& who, std::string_view topic) const {
  return checkTopic(who, topic, kWrite);
}

bool Acl::canRead(const AclIdentity& who, std::string_view topic) const {
  return checkTopic(who, topic, kRead);
}

bool Acl::canSubscribe(const AclIdentity& who, std::string_view filter) const {
  return readGranted(who, filter, /*deny_if_intersects=*/false);
}

bool Acl::readsAll(const AclIdentity& who, std::string_view filter) const {
  return readGranted(who, filter, /*deny_if_intersects=*/true);
}

bool Acl::readGranted(const AclIdentity& who, std::string_view filter,
                      bool deny_if_intersects) const {
  bool granted = false;
  auto scan = [&](const Rules& rules, bool patterns) {
    for (const Rule& r : rules) {
      if (patterns && !applicable(r, who)) continue;
      if (r.access == kNone) {
        if (deny_if_intersects ? intersects(r, who, filter) : covers(r, who, filter)) return false;
      } else if (!granted && (r.access & kRead) && covers(r, who, filter)) {
        granted = true;
      }
    }
    return true;
  };
  if (const Rules* own = ownRules(who); own != nullptr && !scan(*own, false)) return false;
  if (!scan(patterns_, true)) return false;
  return granted;
}

}  // namespace gannet::auth
