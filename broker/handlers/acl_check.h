#pragma once
// The ACL checks of the packet handlers (docs/security.md, "Authorisation
// (ACL)"): who a session is for the ACL, and what it may publish, receive and
// subscribe to. Every check goes through BrokerContext::acl(); with no ACL
// loaded everything is allowed and nothing else is looked at.

#include <optional>
#include <string_view>

#include "broker/auth/acl.h"
#include "broker/handlers/context.h"
#include "broker/session/session.h"

namespace gannet::handlers {

// The session's user name (of its last CONNECT) and client id.
inline auth::AclIdentity aclIdentity(const session::Session& s) {
  return auth::AclIdentity{
      s.username ? std::optional<std::string_view>(*s.username) : std::nullopt, s.clientId()};
}

// PUBLISH (or a will) to `topic`.
inline bool mayWrite(BrokerContext& ctx, const session::Session& s, std::string_view topic) {
  const auth::Acl* acl = ctx.acl();
  return acl == nullptr || acl->canWrite(aclIdentity(s), topic);
}

// A message published to `topic` may be delivered to `s`.
inline bool mayRead(BrokerContext& ctx, const session::Session& s, std::string_view topic) {
  const auth::Acl* acl = ctx.acl();
  return acl == nullptr || acl->canRead(aclIdentity(s), topic);
}

enum class SubscribeAccess : uint8_t {
  kDenied,    // SUBACK 0x87 / 0x80
  kReadsAll,  // every message the filter matches is readable: no check per delivery
  kCheckEach, // allowed; each delivery is checked (a deny rule meets the filter)
};
// SUBSCRIBE to `filter` (the filter as subscribed; of "$share/G/F", F is checked).
SubscribeAccess maySubscribe(BrokerContext& ctx, const session::Session& s,
                             std::string_view filter);

// The session's subscriptions were made by an earlier connection, perhaps with
// another user name: their read_all marks are worked out again for the
// session's identity now (in the router too), so that no delivery skips a
// check it needs.
void refreshReadAll(BrokerContext& ctx, session::Session& s);

}  // namespace gannet::handlers
