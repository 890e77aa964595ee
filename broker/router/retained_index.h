#pragma once
// Retained messages by topic (§3.3.1.3): set, replace, clear, and find every
// retained message whose topic matches a subscription filter. Thread-safe; reads
// (lookups on SUBSCRIBE) take a shared lock.

#include <functional>
#include <memory>
#include <string_view>

#include "broker/router/message.h"

namespace gannet::router {

class RetainedIndex {
 public:
  RetainedIndex();
  ~RetainedIndex();

  // Stores `message` as the retained message of its topic, replacing any; a message
  // with an empty payload clears the topic instead (§3.3.1.3).
  void set(MessagePtr message);
  void clear(std::string_view topic);

  // Calls `fn` for every retained message whose topic matches `filter` (a plain,
  // non-shared filter), with the '$' rule of topicMatches. Expired messages
  // (expiry_deadline_ms < now_ms, when set) are skipped and removed lazily.
  // `fn` runs after the lock is released, so it may call back into the index.
  void forEachMatch(std::string_view filter, int64_t now_ms,
                    const std::function<void(const MessagePtr&)>& fn) const;

  // Removes every expired message (expiry_deadline_ms < now_ms, when set); returns
  // how many. A full scan under the exclusive lock: for a periodic timer, so that
  // expired messages on topics nobody subscribes to again do not stay forever.
  size_t removeExpired(int64_t now_ms);

  size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gannet::router
