#pragma once
// Delivery of messages to a session on this worker: straight to its connection
// when the flow-control window and the output bound allow, into its queue
// otherwise (bounded), dropped and counted when the rules say so.

#include "broker/handlers/client.h"
#include "broker/handlers/context.h"
#include "broker/session/session.h"

namespace gannet::handlers {

// Delivers `out` to `session` (which lives on this worker).
void deliver(BrokerContext& ctx, session::Session& session, session::OutboundMessage&& out);
// Sends queued messages while the window and the output bound allow.
void pumpQueue(Client& client);
// After a reconnect to an existing session (§4.4): resends unacknowledged
// PUBLISHes with DUP set and PUBRELs, in their original order, then the queue.
void resendInflight(Client& client);
// Builds the message a will publishes and routes it.
void publishWill(BrokerContext& ctx, const codec::Will& will, uint64_t session_id);

}  // namespace gannet::handlers
