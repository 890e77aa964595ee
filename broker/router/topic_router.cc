// The topic trie. See topic_router.h for the contract and README.md for the layout.

#include "broker/router/topic_router.h"

#include "broker/codec/decoder.h"

#include <algorithm>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "base/assert.h"

namespace gannet::router {
namespace {

// Debian's Abseil 20220623 is built with its own absl::string_view rather than an
// alias of std::string_view; the transparent string hash takes absl::string_view,
// so lookups convert explicitly (no copy, no allocation).
absl::string_view asAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr std::string_view kSharePrefix = "$share/";

// Reads the levels of a topic name or filter one by one: "a//b/" has the four
// levels "a", "", "b", "" and "" has one empty level (§4.7.1.1).
class LevelReader {
 public:
  explicit LevelReader(std::string_view s) : s_(s) {}

  bool next(std::string_view& level) {
    if (done_) return false;
    size_t slash = s_.find('/', pos_);
    if (slash == std::string_view::npos) {
      level = s_.substr(pos_);
      done_ = true;
    } else {
      level = s_.substr(pos_, slash - pos_);
      pos_ = slash + 1;
    }
    return true;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  bool done_ = false;
};

bool startsWithDollar(std::string_view topic) { return !topic.empty() && topic[0] == '$'; }

// A plain (non-shared) filter: the codec's rules (§4.7.1, §4.7.3), and no NUL.
bool isValidPlainFilter(std::string_view filter) {
  return filter.find('\0') == std::string_view::npos && codec::isValidTopicFilter(filter);
}

// One subscription at a trie node, packed to 24 bytes: one destination and its options.
struct Subscriber {
  uint64_t session_id = 0;
  uint32_t worker = 0;
  uint32_t subscription_id = 0;
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  bool durable = false;
  bool read_all = false;

  static Subscriber make(const Destination& d, const SubscriptionOptions& o) {
    return Subscriber{d.session_id, d.worker,           o.subscription_id,  o.qos,
                      o.no_local,   o.retain_as_published, o.retain_handling, o.durable,
                      o.read_all};
  }
  Destination destination() const { return Destination{session_id, worker}; }
  bool is(const Destination& d) const { return session_id == d.session_id && worker == d.worker; }
  // MQTT 5 §3.8.3.1: with No Local, a message is not sent back to the connection
  // that published it. Session 0 is the broker itself, never a subscriber.
  bool skippedFor(uint64_t publisher_session_id) const {
    return no_local && publisher_session_id != 0 && session_id == publisher_session_id;
  }
};
static_assert(sizeof(Subscriber) == 24);

// The subscribers of one filter (or the members of one share group): at most one
// entry per destination. A vector for fast iteration in match(); above
// kIndexThreshold entries a hash index keeps subscribe/unsubscribe O(1), so a filter
// with 100k subscribers does not make subscribing quadratic. The order of entries is
// not meaningful (erase swaps the last one in).
class SubscriberList {
 public:
  // Inserts or replaces; returns true when `d` was not in the list.
  bool upsert(const Destination& d, const SubscriptionOptions& o) {
    if (Subscriber* s = find(d)) {
      *s = Subscriber::make(d, o);
      return false;
    }
    items_.push_back(Subscriber::make(d, o));
    if (index_) {
      index_->emplace(d, static_cast<uint32_t>(items_.size() - 1));
    } else if (items_.size() > kIndexThreshold) {
      index_ = std::make_unique<absl::flat_hash_map<Destination, uint32_t>>();
      index_->reserve(items_.size());
      for (size_t i = 0; i < items_.size(); ++i) {
        index_->emplace(items_[i].destination(), static_cast<uint32_t>(i));
      }
    }
    return true;
  }

  // Returns false when `d` was not in the list.
  bool erase(const Destination& d) {
    size_t i = 0;
    if (index_) {
      auto it = index_->find(d);
      if (it == index_->end()) return false;
      i = it->second;
      index_->erase(it);
    } else {
      while (i < items_.size() && !items_[i].is(d)) ++i;
      if (i == items_.size()) return false;
    }
    if (i + 1 != items_.size()) {
      items_[i] = items_.back();
      if (index_) (*index_)[items_[i].destination()] = static_cast<uint32_t>(i);
    }
    items_.pop_back();
    if (index_ && items_.size() < kIndexThreshold / 2) index_.reset();
    // Give memory back when a large fan-out shrinks, so churn does not pin it.
    if (items_.capacity() > 8 && items_.size() < items_.capacity() / 4) items_.shrink_to_fit();
    return true;
  }

  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  const Subscriber& operator[](size_t i) const { return items_[i]; }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  static constexpr size_t kIndexThreshold = 16;

  Subscriber* find(const Destination& d) {
    if (index_) {
      auto it = index_->find(d);
      return it == index_->end() ? nullptr : &items_[it->second];
    }
    for (Subscriber& s : items_) {
      if (s.is(d)) return &s;
    }
    return nullptr;
  }

  // One subscriber inline: most filters have exactly one.
  absl::InlinedVector<Subscriber, 1> items_;
  std::unique_ptr<absl::flat_hash_map<Destination, uint32_t>> index_;
};

// A shared subscription "$share/NAME/filter" (MQTT 5 §4.8.2): each matching message
// goes to one member, chosen round-robin. `next` advances under the reader lock.
struct SharedGroup {
  SubscriberList members;
  mutable std::atomic<uint64_t> next{0};
};

struct Node;

// The children of a trie node by level text. Most nodes have one child (the "M"
// in site/N/dev/M/temp has only "temp"), so up to kFew children live in a small
// vector scanned linearly: the key sits next to the child pointer, which costs one
// cache miss per level on match() where a hash map costs three (control bytes,
// slot, node). Above kFew, a hash map. Children are heap nodes that never move, so
// pointers to them stay valid while the map changes.
class Children {
 public:
  const Node* find(std::string_view level) const {
    if (many_) {
      // Fetch the control bytes and the slots of the probe at once: with large
      // tables both are cache misses, and find() alone would take them in turn.
      many_->prefetch(asAbsl(level));
      auto it = many_->find(asAbsl(level));
      return it == many_->end() ? nullptr : it->second.get();
    }
    for (const auto& [k, child] : few_) {
      if (k == level) return child.get();
    }
    return nullptr;
  }

  // Sets `created` when it had to add the child.
  Node* findOrAdd(std::string_view level, bool& created);
  void erase(std::string_view level);
  bool empty() const { return many_ ? many_->empty() : few_.empty(); }

  // Moves every child into `out`, leaving this empty.
  void takeAll(std::vector<std::unique_ptr<Node>>& out) {
    for (auto& entry : few_) out.push_back(std::move(entry.second));
    few_.clear();
    if (many_) {
      for (auto& entry : *many_) out.push_back(std::move(entry.second));
      many_.reset();
    }
  }

 private:
  static constexpr size_t kFew = 4;
  using Entry = std::pair<std::string, std::unique_ptr<Node>>;

  absl::InlinedVector<Entry, 1> few_;  // used while many_ is null
  // absl's string hash is transparent: find(key) does not allocate.
  std::unique_ptr<absl::flat_hash_map<std::string, std::unique_ptr<Node>>> many_;
};

// A trie node: one topic level. '+' and '#' children are kept apart from the
// others so that match() finds them without a lookup. A '#' node is always a leaf
// (§4.7.1.2: '#' is the last level).
struct Node {
  Children children;
  std::unique_ptr<Node> plus;
  std::unique_ptr<Node> hash;
  SubscriberList subscribers;
  // By share name; null when the filter of this node has no shared subscription.
  std::unique_ptr<absl::node_hash_map<std::string, SharedGroup>> shared;

  bool empty() const {
    return children.empty() && !plus && !hash && subscribers.empty() && !shared;
  }

  const Node* findChild(std::string_view level) const {
    if (level == "+") return plus.get();
    if (level == "#") return hash.get();
    return children.find(level);
  }
  Node* findChild(std::string_view level) {
    return const_cast<Node*>(static_cast<const Node*>(this)->findChild(level));
  }

  // Sets `created` when it had to add the child.
  Node* findOrAddChild(std::string_view level, bool& created) {
    if (level == "+" || level == "#") {
      std::unique_ptr<Node>& child = level == "+" ? plus : hash;
      created = !child;
      if (created) child = std::make_unique<Node>();
      return child.get();
    }
    return children.findOrAdd(level, created);
  }

  void removeChild(std::string_view level) {
    if (level == "+") {
      plus.reset();
    } else if (level == "#") {
      hash.reset();
    } else {
      children.erase(level);
    }
  }
};

Node* Children::findOrAdd(std::string_view level, bool& created) {
  if (Node* existing = const_cast<Node*>(find(level))) {
    created = false;
    return existing;
  }
  created = true;
  auto child = std::make_unique<Node>();
  Node* raw = child.get();
  if (!many_ && few_.size() < kFew) {
    few_.emplace_back(std::string(level), std::move(child));
    return raw;
  }
  if (!many_) {
    many_ = std::make_unique<absl::flat_hash_map<std::string, std::unique_ptr<Node>>>();
    many_->reserve(kFew + 1);
    for (auto& entry : few_) many_->emplace(std::move(entry.first), std::move(entry.second));
    few_.clear();
    few_.shrink_to_fit();
  }
  many_->emplace(std::string(level), std::move(child));
  return raw;
}

void Children::erase(std::string_view level) {
  if (!many_) {
    for (size_t i = 0; i < few_.size(); ++i) {
      if (few_[i].first != level) continue;
      if (i + 1 != few_.size()) few_[i] = std::move(few_.back());
      few_.pop_back();
      return;
    }
    return;
  }
  auto it = many_->find(asAbsl(level));
  if (it != many_->end()) many_->erase(it);
  // Back to the vector well below kFew, so that a count hovering around it does
  // not convert back and forth.
  if (many_->size() <= kFew / 2) {
    for (auto& entry : *many_) few_.emplace_back(entry.first, std::move(entry.second));
    many_.reset();
  }
}

// Destroys a subtree without recursion: a topic filter may have ~32k levels
// (65535 bytes of "+/+/..."), too deep for recursive destructors on a worker stack.
void destroyIteratively(Node& root) {
  std::vector<std::unique_ptr<Node>> work;
  auto detach = [&work](Node& n) {
    n.children.takeAll(work);
    if (n.plus) work.push_back(std::move(n.plus));
    if (n.hash) work.push_back(std::move(n.hash));
  };
  detach(root);
  while (!work.empty()) {
    std::unique_ptr<Node> n = std::move(work.back());
    work.pop_back();
    detach(*n);
  }  // `n` dies here with no children left
}

// Per-thread scratch for match(), so that a match allocates nothing but what it
// appends to `out` once the vectors have grown to the thread's high-water mark.
struct MatchScratch {
  std::vector<std::string_view> levels;
  struct Frame {
    const Node* node;
    uint32_t level;  // index of the next topic level to consume
  };
  std::vector<Frame> stack;
  std::vector<const Subscriber*> hits;  // non-shared matches, aggregated at the end
};

thread_local MatchScratch tls_scratch;

void appendDelivery(const Subscriber& s, bool shared, std::vector<Delivery>& out) {
  Delivery& d = out.emplace_back();
  d.destination = s.destination();
  d.qos = s.qos;
  d.retain_as_published = s.retain_as_published;
  if (s.subscription_id != 0) d.subscription_ids.push_back(s.subscription_id);
  d.shared = shared;
  d.durable = s.durable;
  d.read_all = s.read_all;
}

// One delivery per destination (MQTT 5 §3.3.4): maximum QoS, every subscription
// identifier, retain_as_published when any subscription asks for it.
void appendAggregated(std::vector<const Subscriber*>& hits, std::vector<Delivery>& out) {
  std::sort(hits.begin(), hits.end(), [](const Subscriber* a, const Subscriber* b) {
    return a->session_id != b->session_id ? a->session_id < b->session_id
                                          : a->worker < b->worker;
  });
  for (size_t i = 0; i < hits.size();) {
    appendDelivery(*hits[i], /*shared=*/false, out);
    Delivery& d = out.back();
    size_t j = i + 1;
    for (; j < hits.size() && hits[j]->is(d.destination); ++j) {
      const Subscriber& s = *hits[j];
      d.qos = std::max(d.qos, s.qos);
      d.retain_as_published = d.retain_as_published || s.retain_as_published;
      d.durable = d.durable || s.durable;
      // The topic is in a wholly readable filter's range: readable.
      d.read_all = d.read_all || s.read_all;
      if (s.subscription_id != 0 &&
          std::find(d.subscription_ids.begin(), d.subscription_ids.end(), s.subscription_id) ==
              d.subscription_ids.end()) {
        d.subscription_ids.push_back(s.subscription_id);
      }
    }
    i = j;
  }
}

// One delivery per remote node among out[first..]: a node's non-shared routes
// are aggregated already, but each $share group whose member there was picked
// adds one more. The message goes to that node once (MQTT 5 §4.8.2: once per
// group; the node delivers it to its own subscribers and, when `shared`, its
// own group members).
void mergeRemote(std::vector<Delivery>& out, size_t first) {
  size_t remote = 0;
  for (size_t i = first; i < out.size(); ++i) remote += out[i].destination.remote();
  if (remote < 2) return;
  for (size_t i = first; i < out.size(); ++i) {
    if (!out[i].destination.remote()) continue;
    for (size_t j = i + 1; j < out.size();) {
      if (out[j].destination.remote() && out[j].destination.session_id == out[i].destination.session_id) {
        out[i].qos = std::max(out[i].qos, out[j].qos);
        out[i].durable = out[i].durable || out[j].durable;
        out[i].shared = out[i].shared || out[j].shared;
        out[j] = std::move(out.back());
        out.pop_back();
      } else {
        ++j;
      }
    }
  }
}

}  // namespace

struct TopicRouter::Impl {
  mutable absl::Mutex mu;
  Node root ABSL_GUARDED_BY(mu);
  // Written under `mu`, read without it.
  std::atomic<size_t> subscriptions{0};
  std::atomic<size_t> shared_subscriptions{0};
  std::atomic<size_t> nodes{0};

  ~Impl() {
    absl::MutexLock lock(&mu);
    destroyIteratively(root);
  }

  // Collects the subscriptions of node `n`: non-shared ones into `hits`, one
  // delivery per share group straight into `out`. Returns whether it added a hit.
  static bool collect(const Node& n, uint64_t publisher, bool local_only, bool shared_groups,
                      std::vector<const Subscriber*>& hits, std::vector<Delivery>& out) {
    bool added = false;
    for (const Subscriber& s : n.subscribers) {
      if (s.skippedFor(publisher) || (local_only && s.worker == kRemoteWorker)) continue;
      hits.push_back(&s);
      added = true;
    }
    if (n.shared && shared_groups) {
      for (const auto& [name, group] : *n.shared) {
        const size_t size = group.members.size();
        if (size == 0) continue;
        const uint64_t start = group.next.fetch_add(1, std::memory_order_relaxed);
        // No Local on a shared subscription is a Protocol Error (MQTT 5 §3.8.3.1)
        // that the handler rejects; should one get here, pass to the next member.
        for (size_t k = 0; k < size; ++k) {
          const Subscriber& s = group.members[(start + k) % size];
          if (s.skippedFor(publisher) || (local_only && s.worker == kRemoteWorker)) continue;
          appendDelivery(s, /*shared=*/true, out);
          break;
        }
      }
    }
    return added;
  }
};

TopicRouter::TopicRouter() : impl_(std::make_unique<Impl>()) {}
TopicRouter::~TopicRouter() = default;

bool TopicRouter::subscribe(std::string_view filter, const Destination& destination,
                            const SubscriptionOptions& options) {
  const bool added = subscribeLocked(filter, destination, options);
  if (added && listener_ != nullptr && !destination.remote()) listener_->onLocalSubscribe(filter);
  return added;
}

bool TopicRouter::unsubscribe(std::string_view filter, const Destination& destination,
                              bool notify) {
  const bool removed = unsubscribeLocked(filter, destination);
  if (removed && notify && listener_ != nullptr && !destination.remote()) {
    listener_->onLocalUnsubscribe(filter);
  }
  return removed;
}

bool TopicRouter::subscribeLocked(std::string_view filter, const Destination& destination,
                                  const SubscriptionOptions& options) {
  std::string_view group;
  std::string_view topic_filter = filter;
  const bool is_shared = parseSharedFilter(filter, group, topic_filter);
  GANNET_ASSERT(is_shared ? isValidSharedFilter(filter) : isValidPlainFilter(filter),
                "the handler validates filters before subscribing");

  absl::MutexLock lock(&impl_->mu);
  Node* node = &impl_->root;
  LevelReader reader(topic_filter);
  std::string_view level;
  while (reader.next(level)) {
    bool created = false;
    node = node->findOrAddChild(level, created);
    if (created) impl_->nodes.fetch_add(1, std::memory_order_relaxed);
  }

  bool added;
  if (is_shared) {
    if (!node->shared) node->shared = std::make_unique<absl::node_hash_map<std::string, SharedGroup>>();
    auto it = node->shared->find(asAbsl(group));
    if (it == node->shared->end()) it = node->shared->try_emplace(std::string(group)).first;
    added = it->second.members.upsert(destination, options);
    if (added) impl_->shared_subscriptions.fetch_add(1, std::memory_order_relaxed);
  } else {
    added = node->subscribers.upsert(destination, options);
  }
  if (added) impl_->subscriptions.fetch_add(1, std::memory_order_relaxed);
  return added;
}

bool TopicRouter::unsubscribeLocked(std::string_view filter, const Destination& destination) {
  std::string_view group;
  std::string_view topic_filter = filter;
  const bool is_shared = parseSharedFilter(filter, group, topic_filter);

  absl::MutexLock lock(&impl_->mu);
  // The path from the root, to prune nodes left empty bottom-up.
  absl::InlinedVector<std::pair<Node*, std::string_view>, 16> path;
  Node* node = &impl_->root;
  LevelReader reader(topic_filter);
  std::string_view level;
  while (reader.next(level)) {
    Node* child = node->findChild(level);
    if (child == nullptr) return false;
    path.emplace_back(node, level);
    node = child;
  }

  if (is_shared) {
    if (!node->shared) return false;
    auto it = node->shared->find(asAbsl(group));
    if (it == node->shared->end() || !it->second.members.erase(destination)) return false;
    if (it->second.members.empty()) node->shared->erase(it);
    if (node->shared->empty()) node->shared.reset();
    impl_->shared_subscriptions.fetch_sub(1, std::memory_order_relaxed);
  } else if (!node->subscribers.erase(destination)) {
    return false;
  }
  impl_->subscriptions.fetch_sub(1, std::memory_order_relaxed);

  // Prune so that memory follows the live subscriptions, not their history.
  while (!path.empty() && node->empty()) {
    auto [parent, parent_level] = path.back();
    path.pop_back();
    parent->removeChild(parent_level);
    impl_->nodes.fetch_sub(1, std::memory_order_relaxed);
    node = parent;
  }
  return true;
}

void TopicRouter::match(std::string_view topic, uint64_t publisher_session_id,
                        std::vector<Delivery>& out, bool local_only, bool shared_groups) const {
  const size_t first = out.size();
  MatchScratch& scratch = tls_scratch;
  scratch.levels.clear();
  scratch.stack.clear();
  scratch.hits.clear();
  {
    LevelReader reader(topic);
    std::string_view level;
    while (reader.next(level)) scratch.levels.push_back(level);
  }
  const uint32_t depth = static_cast<uint32_t>(scratch.levels.size());
  // §4.7.2: a filter starting with a wildcard does not match a topic starting with '$'.
  const bool dollar = startsWithDollar(topic);
  size_t nodes_with_hits = 0;

  absl::ReaderMutexLock lock(&impl_->mu);
  scratch.stack.push_back({&impl_->root, 0});
  while (!scratch.stack.empty()) {
    const auto [node, i] = scratch.stack.back();
    scratch.stack.pop_back();
    if (i == depth) {
      nodes_with_hits +=
          Impl::collect(*node, publisher_session_id, local_only, shared_groups, scratch.hits, out);
      // '#' also matches no level at all: "sport/#" matches "sport" (§4.7.1.2).
      // (i == depth >= 1 here, so the '$' rule of the first level does not apply.)
      if (node->hash) {
        nodes_with_hits += Impl::collect(*node->hash, publisher_session_id, local_only,
                                         shared_groups, scratch.hits, out);
      }
      continue;
    }
    // Wildcard branches are visited after the literal one (LIFO): prefetch them now so
    // that their cache misses overlap with that walk; with 1M filters installed,
    // misses are most of the cost of a match. A '#' node is a leaf: as a frame at
    // level `depth` it is just collected.
    if (!(dollar && i == 0)) {
      if (const Node* hash = node->hash.get()) {
        __builtin_prefetch(hash);
        scratch.stack.push_back({hash, depth});
      }
      if (const Node* plus = node->plus.get()) {
        __builtin_prefetch(plus);
        scratch.stack.push_back({plus, i + 1});
      }
    }
    if (const Node* child = node->children.find(scratch.levels[i])) {
      scratch.stack.push_back({child, i + 1});
    }
  }

  // A node lists a destination once, so hits from one node need no aggregation.
  if (nodes_with_hits <= 1) {
    for (const Subscriber* s : scratch.hits) appendDelivery(*s, /*shared=*/false, out);
  } else {
    appendAggregated(scratch.hits, out);
  }
  if (!local_only) mergeRemote(out, first);
}

size_t TopicRouter::subscriptionCount() const {
  return impl_->subscriptions.load(std::memory_order_relaxed);
}

size_t TopicRouter::sharedSubscriptionCount() const {
  return impl_->shared_subscriptions.load(std::memory_order_relaxed);
}

size_t TopicRouter::nodeCount() const { return impl_->nodes.load(std::memory_order_relaxed); }

bool parseSharedFilter(std::string_view filter, std::string_view& group,
                       std::string_view& topic_filter) {
  if (!filter.starts_with(kSharePrefix)) return false;
  std::string_view rest = filter.substr(kSharePrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    group = rest;
    topic_filter = {};
  } else {
    group = rest.substr(0, slash);
    topic_filter = rest.substr(slash + 1);
  }
  return true;
}

bool isValidSharedFilter(std::string_view filter) {
  std::string_view group;
  std::string_view topic_filter;
  if (!parseSharedFilter(filter, group, topic_filter)) return false;
  // The group cannot contain '/' by construction: the first '/' ends it. A missing
  // filter part ("$share/g") leaves topic_filter empty, which is invalid too.
  return !group.empty() && group.find_first_of("+#") == std::string_view::npos &&
         group.find('\0') == std::string_view::npos && isValidPlainFilter(topic_filter);
}

bool topicMatches(std::string_view filter, std::string_view topic) {
  if (startsWithDollar(topic) && !filter.empty() && (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  LevelReader f(filter);
  LevelReader t(topic);
  std::string_view fl;
  std::string_view tl;
  while (f.next(fl)) {
    if (fl == "#") return true;
    if (!t.next(tl)) return false;
    if (fl != "+" && fl != tl) return false;
  }
  return !t.next(tl);
}

}  // namespace gannet::router
