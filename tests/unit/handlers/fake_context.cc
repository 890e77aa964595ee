#include "fake_context.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "broker/handlers/delivery.h"

namespace gannet::handlers::testing {

size_t FakeContext::match(const router::MessagePtr& message) {
  matched_.clear();
  router_.match(message->topic, message->publisher_session_id, matched_);
  return matched_.size();
}

// As Worker::deliverMatched for sessions on this worker.
void FakeContext::deliverMatched(const router::MessagePtr& message) {
  std::vector<router::Delivery> matched;
  matched.swap(matched_);
  for (const router::Delivery& d : matched) {
    EXPECT_EQ(d.destination.worker, 0u);
    session::Session* target = nullptr;
    for (auto& [id, s] : sessions_) {
      if (s->id() == d.destination.session_id) target = s.get();
    }
    if (target == nullptr) continue;  // the session ended meanwhile
    deliver(*this, *target, outboundFor(message, d));
  }
}

session::Session* FakeContext::findSession(const std::string& client_id) {
  auto it = sessions_.find(client_id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

session::Session& FakeContext::createSession(const std::string& client_id) {
  EXPECT_EQ(sessions_.count(client_id), 0u) << "session '" << client_id << "' created twice";
  auto s = std::make_unique<session::Session>(++next_session_id_, client_id);
  session::Session& ref = *s;
  sessions_[client_id] = std::move(s);
  return ref;
}

void FakeContext::endSession(session::Session& s) {
  EXPECT_EQ(s.client, nullptr) << "endSession on a session that has a client";
  const router::Destination dest{s.id(), 0};
  for (const auto& [filter, opts] : s.subscriptions) router_.unsubscribe(filter, dest);
  sessions_.erase(s.clientId());  // destroys `s`
}

void FakeContext::migrate(Client&, uint32_t worker) {
  ADD_FAILURE() << "migrate() to worker " << worker << " in a single-worker test";
}

std::string FakeContext::assignClientId() { return "auto-" + std::to_string(++assigned_ids_); }

}  // namespace gannet::handlers::testing
