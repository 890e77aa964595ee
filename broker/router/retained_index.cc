// Retained messages in a trie over topic levels, so that a wildcard filter on
// SUBSCRIBE visits only the topics it can match. See retained_index.h.

#include "broker/router/retained_index.h"

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace gannet::router {
namespace {

// Debian's Abseil 20220623 is built with its own absl::string_view rather than an
// alias of std::string_view; the transparent string hash takes absl::string_view,
// so lookups convert explicitly (no copy, no allocation).
absl::string_view asAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Splits on '/': "a//b/" is "a", "", "b", ""; "" is one empty level (§4.7.1.1).
absl::InlinedVector<std::string_view, 16> splitLevels(std::string_view s) {
  absl::InlinedVector<std::string_view, 16> levels;
  size_t start = 0;
  while (true) {
    const size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      levels.push_back(s.substr(start));
      return levels;
    }
    levels.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

bool expired(const Message& m, int64_t now_ms) {
  return m.expiry_deadline_ms != 0 && m.expiry_deadline_ms < now_ms;
}

struct Node {
  // Transparent string hash: find(std::string_view) does not allocate.
  absl::node_hash_map<std::string, Node> children;
  MessagePtr message;  // null when no message is retained at exactly this topic
};

// Without recursion: a topic may have ~32k levels.
void destroyIteratively(Node& root) {
  std::vector<Node> work;
  auto detach = [&work](Node& n) {
    for (auto& [level, child] : n.children) work.push_back(std::move(child));
    n.children.clear();
  };
  detach(root);
  while (!work.empty()) {
    Node n = std::move(work.back());
    work.pop_back();
    detach(n);
  }
}

}  // namespace

struct RetainedIndex::Impl {
  mutable absl::Mutex mu;
  Node root ABSL_GUARDED_BY(mu);
  std::atomic<size_t> count{0};  // written under `mu`

  ~Impl() {
    absl::MutexLock lock(&mu);
    destroyIteratively(root);
  }

  // Removes the message retained at `topic` if it is `expected` (any message when
  // `expected` is null) and prunes the nodes left empty. Returns whether it removed one.
  bool removeLocked(std::string_view topic, const Message* expected)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const auto levels = splitLevels(topic);
    absl::InlinedVector<Node*, 16> path;
    Node* node = &root;
    for (std::string_view level : levels) {
      auto it = node->children.find(asAbsl(level));
      if (it == node->children.end()) return false;
      path.push_back(node);
      node = &it->second;
    }
    if (!node->message || (expected != nullptr && node->message.get() != expected)) return false;
    node->message.reset();
    count.fetch_sub(1, std::memory_order_relaxed);
    for (size_t i = levels.size(); i > 0 && node->children.empty() && !node->message; --i) {
      Node* parent = path[i - 1];
      parent->children.erase(parent->children.find(asAbsl(levels[i - 1])));
      node = parent;
    }
    return true;
  }
};

RetainedIndex::RetainedIndex() : impl_(std::make_unique<Impl>()) {}
RetainedIndex::~RetainedIndex() = default;

void RetainedIndex::set(MessagePtr message) {
  if (!message) return;
  if (message->payload.empty()) {
    clear(message->topic);
    return;
  }
  absl::MutexLock lock(&impl_->mu);
  Node* node = &impl_->root;
  for (std::string_view level : splitLevels(message->topic)) {
    auto it = node->children.find(asAbsl(level));
    if (it == node->children.end()) it = node->children.try_emplace(std::string(level)).first;
    node = &it->second;
  }
  if (!node->message) impl_->count.fetch_add(1, std::memory_order_relaxed);
  node->message = std::move(message);
}

void RetainedIndex::clear(std::string_view topic) {
  absl::MutexLock lock(&impl_->mu);
  impl_->removeLocked(topic, nullptr);
}

void RetainedIndex::forEachMatch(std::string_view filter, int64_t now_ms,
                                 const std::function<void(const MessagePtr&)>& fn) const {
  const auto levels = splitLevels(filter);
  // §4.7.2: a filter starting with a wildcard does not match topics starting with '$'.
  const bool skip_dollar_at_root = levels[0] == "+" || levels[0] == "#";
  std::vector<MessagePtr> found;
  std::vector<MessagePtr> stale;
  auto take = [&](const MessagePtr& m) {
    if (!m) return;
    (expired(*m, now_ms) ? stale : found).push_back(m);
  };
  auto skip = [&](size_t depth, const std::string& level) {
    return depth == 0 && skip_dollar_at_root && !level.empty() && level[0] == '$';
  };

  {
    absl::ReaderMutexLock lock(&impl_->mu);
    struct Frame {
      const Node* node;
      size_t level;  // index of the next filter level to apply
    };
    std::vector<Frame> stack{{&impl_->root, 0}};
    std::vector<const Node*> subtree;
    while (!stack.empty()) {
      const auto [node, i] = stack.back();
      stack.pop_back();
      if (i == levels.size()) {
        take(node->message);
        continue;
      }
      const std::string_view level = levels[i];
      if (level == "#") {
        // Matches this level's parent ("sport/#" matches "sport") and everything below.
        take(node->message);
        for (const auto& [key, child] : node->children) {
          if (!skip(i, key)) subtree.push_back(&child);
        }
        while (!subtree.empty()) {
          const Node* n = subtree.back();
          subtree.pop_back();
          take(n->message);
          for (const auto& [key, child] : n->children) subtree.push_back(&child);
        }
      } else if (level == "+") {
        for (const auto& [key, child] : node->children) {
          if (!skip(i, key)) stack.push_back({&child, i + 1});
        }
      } else {
        auto it = node->children.find(asAbsl(level));
        if (it != node->children.end()) stack.push_back({&it->second, i + 1});
      }
    }
  }

  if (!stale.empty()) {
    absl::MutexLock lock(&impl_->mu);
    // Only if still the same message: a new one may have replaced it meanwhile.
    for (const MessagePtr& m : stale) impl_->removeLocked(m->topic, m.get());
  }
  // Outside the lock, so that `fn` may call back into the index.
  for (const MessagePtr& m : found) fn(m);
}

size_t RetainedIndex::removeExpired(int64_t now_ms) {
  absl::MutexLock lock(&impl_->mu);
  std::vector<MessagePtr> stale;
  std::vector<const Node*> stack{&impl_->root};
  while (!stack.empty()) {
    const Node* n = stack.back();
    stack.pop_back();
    if (n->message && expired(*n->message, now_ms)) stale.push_back(n->message);
    for (const auto& [key, child] : n->children) stack.push_back(&child);
  }
  size_t removed = 0;
  for (const MessagePtr& m : stale) removed += impl_->removeLocked(m->topic, m.get());
  return removed;
}

size_t RetainedIndex::size() const { return impl_->count.load(std::memory_order_relaxed); }

}  // namespace gannet::router
