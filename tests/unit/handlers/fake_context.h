#pragma once
// A BrokerContext for handler tests: one worker (index 0) with a real TopicRouter
// and RetainedIndex, a session table, a clock the test sets, and no threads.
// It does what server::Worker does for a single worker, minus the timers (the
// tests call what a timer would) and migration (never expected: every client id
// is claimed by worker 0).
//
// Owned by the test fixture; used on the test thread only.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker/handlers/client.h"
#include "broker/handlers/context.h"

namespace gannet::handlers::testing {

class FakeContext : public BrokerContext {
 public:
  // Tweak before the clients connect: a Client reads some limits when created.
  BrokerConfig cfg;
  int64_t now_ms = 1'000'000;
  // Clients whose connection closed, in order.
  std::vector<Client*> closed_clients;

  void advance(int64_t ms) { now_ms += ms; }
  // The session of `client_id`, or null.
  session::Session* session(const std::string& client_id) { return findSession(client_id); }
  size_t sessionCount() const { return sessions_.size(); }
  uint64_t dropped(DropReason r) const { return stats_.dropped[static_cast<int>(r)].get(); }

  // --- BrokerContext ---
  const BrokerConfig& config() const override { return cfg; }
  router::TopicRouter& router() override { return router_; }
  router::RetainedIndex& retained() override { return retained_; }
  WorkerStats& stats() override { return stats_; }
  uint32_t workerIndex() const override { return 0; }
  int64_t now() const override { return now_ms; }
  size_t match(const router::MessagePtr& message) override;
  void deliverMatched(const router::MessagePtr& message) override;
  uint32_t claimClientId(const std::string&) override { return 0; }
  session::Session* findSession(const std::string& client_id) override;
  session::Session& createSession(const std::string& client_id) override;
  void endSession(session::Session& session) override;
  void migrate(Client&, uint32_t worker) override;
  std::string assignClientId() override;
  void clientClosed(Client& client) override { closed_clients.push_back(&client); }
  // Durable state: the handler tests run without a store.
  void persistSession(session::Session&) override {}
  void persistSubscription(const session::Session&, const std::string&,
                           const router::SubscriptionOptions&) override {}
  void forgetSubscription(const session::Session&, const std::string&) override {}
  void persistRetained(const router::MessagePtr&) override {}
  void forgetRetained(const std::string&) override {}
  void commitDurable() override {}
  // No store: nothing is durable, acks go out at once.
  Durability persistMatched(const router::MessagePtr&, session::Session*, uint16_t) override {
    return Durability::kNone;
  }
  void discardMatched() override { matched_.clear(); }
  void ackAfterCommit(Client& client, const codec::PubAckPacket& ack) override { client.send(ack); }
  void persistQueued(session::Session&, session::OutboundMessage&) override {}
  void persistInflight(session::Session&, uint16_t, session::InflightMessage&) override {}
  void forgetInflight(session::Session&, uint16_t, session::InflightMessage&) override {}
  void forgetQueued(session::Session&, session::OutboundMessage&) override {}
  void forgetAwaitingPubrel(session::Session&, uint16_t) override {}
  void refillBacklog(session::Session&) override {}
  bool storeFull() const override { return store_full; }
  bool store_full = false;

 private:
  router::TopicRouter router_;
  router::RetainedIndex retained_;
  WorkerStats stats_;
  std::map<std::string, std::unique_ptr<session::Session>> sessions_;
  std::vector<router::Delivery> matched_;
  uint64_t next_session_id_ = 0;
  uint64_t assigned_ids_ = 0;
};

}  // namespace gannet::handlers::testing
