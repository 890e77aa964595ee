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
  // The ACL in force (--acl_file), or null when there is none (everything is
  // allowed). Handlers read the ACL only through this, once per check: the
  // worker may swap it (a reload), never during a handler call.
  virtual const auth::Acl* acl() const { return config().acl.get(); }
  // The password file CONNECTs are checked against now (reloaded on SIGHUP);
  // null: none.
  virtual const auth::PasswordFile* passwords() const { return config().passwords.get(); }
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
  // The broker's own messages (wills, $SYS): stored for persistent sessions like
  // a client's QoS >= 1 publish, but nobody waits for an ack (and a store over
  // its limit does not stop a will: it is delivered in memory then).
  size_t publish(const router::MessagePtr& message) {
    size_t n = match(message);
    if (message->qos > 0) persistMatched(message, nullptr, 0);
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
  // In a cluster: claims `connect`'s session from the other nodes first
  // (docs/architecture.md, "Session ownership"). True: the client waits
  // (Client::awaitCluster) and the worker calls Client::resumeConnect(connect)
  // once they answered, their sessions imported here. False: go on now (one
  // node, or the claim is done).
  virtual bool claimInCluster(Client& client, codec::ConnectPacket& connect) { return false; }
  // The session was handed over to another node and its client connects here
  // again before this copy ended: it stays here.
  virtual void cancelHandover(session::Session& session) { session.handed_over = 0; }
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
  // dropped to 0. On the message path, see "the durable QoS >= 1 message path" below.
  //
  // The session's own facts changed (connected, disconnected, expiry, will).
  virtual void persistSession(session::Session& session) = 0;
  virtual void persistSubscription(const session::Session& session, const std::string& filter,
                                   const router::SubscriptionOptions& options) = 0;
  virtual void forgetSubscription(const session::Session& session, const std::string& filter) = 0;
  // Retained messages are node-wide; any worker records the ones it sets or clears.
  virtual void persistRetained(const router::MessagePtr& message) = 0;
  virtual void forgetRetained(const std::string& topic) = 0;
  // Cluster: stamps a retained message (or clear) published here with the
  // node's hybrid logical clock, and replicates it to the other nodes once
  // stored. No-ops on a single node.
  virtual void stampRetained(router::Message& message) {}
  // Sets (or, with an empty payload, clears) `message` in the retained index.
  // In a cluster only if it is the newest write of its topic (last writer
  // wins, decided together with the index update); false: superseded.
  virtual bool setRetained(const router::MessagePtr& message) {
    if (message->payload.empty()) {
      retained().clear(message->topic);
    } else {
      retained().set(message);
    }
    return true;
  }
  virtual void replicateRetained(const router::MessagePtr& message) {}

  // --- the durable QoS >= 1 message path (docs/storage.md) ---
  // A QoS >= 1 message matched a persistent session: it is stored once, with a
  // queue entry per such session, in the publisher's batch; the PUBACK / PUBREC
  // waits for that batch. The subscriber's worker then moves an entry to an
  // inflight record when it sends the message, and deletes it (and the message
  // with its last reference) when the flow completes or the message is dropped.
  enum class Durability : uint8_t {
    kNone,     // nothing was written: acknowledge now
    kStored,   // written: acknowledge with ackAfterCommit()
    kRefused,  // the store is over --max_disk_bytes: nothing written, answer 0x97
  };
  // After match(): records `message` and a queue entry for every matched durable
  // session (the deliveries of deliverMatched() then carry the stored id), and
  // for QoS 2 from a persistent `publisher` session `packet_id` as awaiting PUBREL
  // (`publisher` is null for the broker's own messages: wills).
  virtual Durability persistMatched(const router::MessagePtr& message,
                                    session::Session* publisher, uint16_t packet_id) = 0;
  // Drops the deliveries found by the last match() without making them.
  virtual void discardMatched() = 0;
  // Sends `ack` (the PUBACK / PUBREC of a publish) once this iteration's batch is
  // committed. If the commit fails, an MQTT 5 client gets the ack with 0x97
  // (disk full) or 0x80 instead, and a 3.1.1 connection is closed: never a
  // false acknowledgement.
  virtual void ackAfterCommit(Client& client, const codec::PubAckPacket& ack) = 0;
  // A durable delivery is about to be queued: its queue entry is written (if the
  // publisher's worker has not already).
  virtual void persistQueued(session::Session& session, session::OutboundMessage& out) = 0;
  // A delivery was sent (its queue entry becomes an inflight record), or a QoS 2
  // one got its PUBREC (the record keeps only the packet id; the message is released).
  virtual void persistInflight(session::Session& session, uint16_t packet_id,
                               session::InflightMessage& in) = 0;
  // An inflight message completed or was dropped: its record and reference go.
  virtual void forgetInflight(session::Session& session, uint16_t packet_id,
                              session::InflightMessage& in) = 0;
  // A queued message was dropped (queue full, expired): its entry and reference go.
  virtual void forgetQueued(session::Session& session, session::OutboundMessage& out) = 0;
  // Inbound QoS 2 packet ids PUBREC'd and awaiting PUBREL.
  virtual void forgetAwaitingPubrel(session::Session& session, uint16_t packet_id) = 0;
  // Reads the next chunk of a restored session's disk backlog into session.backlog.
  virtual void refillBacklog(session::Session& session) = 0;

  // Commits what was recorded so far in this iteration, now. For the rare paths
  // that write a connection's output before the end of the iteration (a close
  // flushes at once), so that they keep the same ordering.
  virtual void commitDurable() = 0;
  // True while the store is over --max_disk_bytes: what would add durable state
  // (a retained QoS >= 1 publish, a new persistent session) is refused with 0x97
  // (quota exceeded) instead. Checked about once a second.
  virtual bool storeFull() const = 0;
  // True while the node is overloaded (--max_memory_bytes; server::Admission):
  // new CONNECTs are refused with 0x89 Server busy (3.1.1: 3), connected
  // clients are served as usual.
  virtual bool overloaded() const { return false; }
};

}  // namespace gannet::handlers
