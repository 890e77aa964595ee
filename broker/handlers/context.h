#pragma once
// What the packet handlers need from the node around them. Implemented by
// server::Worker; one per worker thread, used only on that thread.

#include <cstdint>
#include <string>

#include "broker/handlers/config.h"
#include "broker/handlers/stats.h"
#include "broker/router/message.h"
#include "broker/router/retained_index.h"
#include "broker/router/topic_router.h"
#include "broker/session/session.h"

namespace gannet::handlers {

class Client;

class BrokerContext {
 public:
  virtual ~BrokerContext() = default;

  virtual const BrokerConfig& config() const = 0;
  virtual router::TopicRouter& router() = 0;
  virtual router::RetainedIndex& retained() = 0;
  virtual WorkerStats& stats() = 0;
  virtual uint32_t workerIndex() const = 0;
  // Monotonic ms of the current loop iteration.
  virtual int64_t now() const = 0;

  // Routing in two steps, so that a publisher's PUBACK can be written before a
  // delivery of its own message to itself: match() finds the deliveries of
  // `message` and returns how many; deliverMatched() then makes them (local
  // sessions at once, other workers' sessions through their inboxes at the end
  // of the iteration).
  virtual size_t match(const router::MessagePtr& message) = 0;
  virtual void deliverMatched(const router::MessagePtr& message) = 0;
  size_t publish(const router::MessagePtr& message) {
    size_t n = match(message);
    deliverMatched(message);
    return n;
  }

  // Makes this worker the home of `client_id` unless another worker already is.
  // Returns this worker's index, or the index of the worker that holds the session.
  virtual uint32_t claimClientId(const std::string& client_id) = 0;
  // The session of `client_id` on this worker, or null.
  virtual session::Session* findSession(const std::string& client_id) = 0;
  virtual session::Session& createSession(const std::string& client_id) = 0;
  // Ends a session for good: its subscriptions leave the router, its queue is
  // dropped, the client id is released. The session must have no client.
  virtual void endSession(session::Session& session) = 0;
  // Hands `client`'s socket (and its unconsumed input, starting with the CONNECT)
  // to `worker`, which handles the CONNECT again there.
  virtual void migrate(Client& client, uint32_t worker) = 0;
  // A client id for a client that sent an empty one (§3.1.3.1).
  virtual std::string assignClientId() = 0;
  // The client's connection closed; the worker destroys it at the end of the
  // iteration.
  virtual void clientClosed(Client& client) = 0;

  // --- durable state ---
  // Handlers record what must survive a restart; the worker collects it in the
  // iteration's WriteSet and commits it at the end of the iteration, before any
  // client output of that iteration is written (so a CONNACK / SUBACK never goes
  // out before the state it reports is in the store's WAL). Only sessions that
  // outlive their connection (expiry_interval > 0) touch the disk: the worker
  // ignores the calls for the others, and forgets a stored session whose expiry
  // dropped to 0. On the message path only a retained publish records anything.
  //
  // The session's own facts changed (connected, disconnected, expiry, will).
  virtual void persistSession(session::Session& session) = 0;
  virtual void persistSubscription(const session::Session& session, const std::string& filter,
                                   const router::SubscriptionOptions& options) = 0;
  virtual void forgetSubscription(const session::Session& session, const std::string& filter) = 0;
  // Retained messages are node-wide; any worker records the ones it sets or clears.
  virtual void persistRetained(const router::MessagePtr& message) = 0;
  virtual void forgetRetained(const std::string& topic) = 0;
  // Commits what was recorded so far in this iteration, now. For the rare paths
  // that write a connection's output before the end of the iteration (a close
  // flushes at once), so that they keep the same ordering.
  virtual void commitDurable() = 0;
  // True while the store is over --max_disk_bytes: what would add durable state
  // (a retained QoS >= 1 publish, a new persistent session) is refused with 0x97
  // (quota exceeded) instead. Checked about once a second.
  virtual bool storeFull() const = 0;
};

}  // namespace gannet::handlers
