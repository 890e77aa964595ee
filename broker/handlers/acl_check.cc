#include "broker/handlers/acl_check.h"

#include "broker/router/topic_router.h"

namespace gannet::handlers {

namespace {

std::string_view plainFilter(std::string_view filter) {
  std::string_view group, inner;
  return router::parseSharedFilter(filter, group, inner) ? inner : filter;
}

}  // namespace

SubscribeAccess maySubscribe(BrokerContext& ctx, const session::Session& s,
                             std::string_view filter) {
  const auth::Acl* acl = ctx.acl();
  if (acl == nullptr) return SubscribeAccess::kReadsAll;
  const auth::AclIdentity who = aclIdentity(s);
  filter = plainFilter(filter);
  if (!acl->canSubscribe(who, filter)) return SubscribeAccess::kDenied;
  return acl->readsAll(who, filter) ? SubscribeAccess::kReadsAll : SubscribeAccess::kCheckEach;
}

void refreshReadAll(BrokerContext& ctx, session::Session& s) {
  const auth::Acl* acl = ctx.acl();
  const router::Destination dest{s.id(), ctx.workerIndex()};
  for (auto& [filter, opts] : s.subscriptions) {
    // A subscription the ACL no longer allows stays (as in Mosquitto): its
    // deliveries are checked one by one.
    const bool read_all = acl == nullptr || acl->readsAll(aclIdentity(s), plainFilter(filter));
    if (opts.read_all == read_all) continue;
    opts.read_all = read_all;
    ctx.router().subscribe(filter, dest, opts);  // replaces the options
  }
}

}  // namespace gannet::handlers
