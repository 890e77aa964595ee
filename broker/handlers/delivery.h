#pragma once
// Delivery of messages to a session on this worker: straight to its connection
// when the flow-control window and the output bound allow, into its queue
// otherwise (bounded), dropped and counted when the rules say so.

#include "broker/handlers/client.h"
#include "broker/handlers/context.h"
#include "broker/session/session.h"

namespace gannet::handlers {

// What one matched delivery of `message` sends: the QoS granted (the lower of the
// message's and the subscription's), the RETAIN flag (cleared unless Retain As
// Published, §3.3.1.3) and the subscription identifiers.
session::OutboundMessage outboundFor(const router::MessagePtr& message,
                                     const router::Delivery& delivery);
// Delivers `out` to `session` (which lives on this worker).
void deliver(BrokerContext& ctx, session::Session& session, session::OutboundMessage&& out);
// Sends queued messages while the window and the output bound allow.
void pumpQueue(Client& client);
// After a reconnect to an existing session (§4.4): resends unacknowledged
// PUBLISHes with DUP set and PUBRELs, in their original order, then the queue.
void resendInflight(Client& client);
// The properties that travel with a message to its subscribers (payload format,
// content type, response topic, correlation data, user properties), moved out of
// `in`; null when there are none, so 3.1.1 traffic does not pay for them.
std::shared_ptr<const codec::Properties> passThroughProperties(codec::Properties& in);
// §3.3.1.3: stores a retained message for its topic (an empty payload clears the
// topic), in memory and in the iteration's durable changes.
void storeRetained(BrokerContext& ctx, const router::MessagePtr& message);
// Builds the message a will publishes and routes it.
void publishWill(BrokerContext& ctx, const codec::Will& will, uint64_t session_id);
// The same for the will of session `s`, if the ACL lets `s` write its topic
// (a denied will is dropped and counted as not_authorized).
void publishWill(BrokerContext& ctx, const codec::Will& will, const session::Session& s);

}  // namespace gannet::handlers
