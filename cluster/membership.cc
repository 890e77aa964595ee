#include "cluster/membership.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/strings.h"

namespace gannet::cluster {

absl::StatusOr<std::vector<PeerAddress>> parsePeers(std::string_view spec, uint32_t self_id) {
  std::vector<PeerAddress> peers;
  absl::flat_hash_set<uint32_t> seen;
  for (absl::string_view entry : absl::StrSplit(base::toAbsl(spec), ',', absl::SkipWhitespace())) {
    const std::string e(entry);
    const size_t at = e.find('@');
    uint32_t id = 0;
    if (at == std::string::npos || !absl::SimpleAtoi(e.substr(0, at), &id) || id == 0 ||
        at + 1 >= e.size() || e.find(':', at) == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--peers: '", e, "' is not ID@HOST:PORT (e.g. 2@gannet-1.gannet:7946)"));
    }
    if (!seen.insert(id).second) {
      return absl::InvalidArgumentError(absl::StrCat("--peers: node id ", id, " appears twice"));
    }
    // The node itself may be listed: every node of a cluster can then have the
    // same --peers (one ConfigMap for a StatefulSet). A peer with our id is
    // refused when it dials us ("two nodes have --node_id=N").
    if (id == self_id) continue;
    peers.push_back({id, e.substr(at + 1)});
  }
  return peers;
}

std::string_view memberStateName(MemberState state) {
  switch (state) {
    case MemberState::kUnreachable: return "unreachable";
    case MemberState::kAlive: return "alive";
    case MemberState::kSuspect: return "suspect";
    case MemberState::kDead: return "dead";
  }
  return "unknown";
}

Membership::Membership(std::vector<PeerAddress> peers, MembershipTimeouts timeouts)
    : peers_(std::move(peers)), timeouts_(timeouts) {
  for (const PeerAddress& p : peers_) members_.push_back({MemberView{p}, false});
}

bool Membership::isPeer(uint32_t id) const {
  return std::any_of(peers_.begin(), peers_.end(), [&](const PeerAddress& p) { return p.id == id; });
}

Membership::Member* Membership::find(uint32_t id) {
  for (Member& m : members_) {
    if (m.view.peer.id == id) return &m;
  }
  return nullptr;
}

void Membership::heardIncarnation(uint32_t id, uint64_t incarnation, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Member* m = find(id);
  if (m == nullptr) return;
  if (m->view.report.incarnation != 0 && m->view.report.incarnation != incarnation) {
    m->restarted = true;
  }
  m->view.report.incarnation = incarnation;
  m->view.last_heard_ms = std::max(m->view.last_heard_ms, now_ms);
}

void Membership::heard(uint32_t id, const PeerReport& report, int64_t now_ms, bool routes) {
  std::lock_guard lock(mu_);
  Member* m = find(id);
  if (m == nullptr) return;
  if (m->view.report.incarnation != 0 && m->view.report.incarnation != report.incarnation) {
    m->restarted = true;
  }
  const uint64_t known_routes = m->view.report.routes;
  m->view.report = report;
  if (!routes) m->view.report.routes = known_routes;
  m->view.last_heard_ms = std::max(m->view.last_heard_ms, now_ms);
}

MemberState Membership::stateAt(const Member& m, int64_t now_ms) const {
  if (m.view.last_heard_ms == 0) return MemberState::kUnreachable;
  const int64_t silent = now_ms - m.view.last_heard_ms;
  if (silent >= timeouts_.dead_ms) return MemberState::kDead;
  if (silent >= timeouts_.suspect_ms) return MemberState::kSuspect;
  return MemberState::kAlive;
}

std::vector<Transition> Membership::tick(int64_t now_ms) {
  std::lock_guard lock(mu_);
  std::vector<Transition> out;
  for (Member& m : members_) {
    const MemberState now = stateAt(m, now_ms);
    if (now != m.view.state || m.restarted) {
      out.push_back({m.view.peer.id, m.view.state, now, m.view.report.incarnation, m.restarted});
      m.view.state = now;
      m.restarted = false;
    }
  }
  return out;
}

std::vector<MemberView> Membership::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<MemberView> out;
  for (const Member& m : members_) out.push_back(m.view);
  return out;
}

}  // namespace gannet::cluster
