#pragma once
// The subscription table of one node: a trie over topic levels that maps a topic
// name to the destinations whose filters match it.
//
// Shared by all workers. Matching is read-mostly and must not serialise the
// workers: match() takes a shared (reader) lock; subscribe/unsubscribe take the
// exclusive lock briefly. Thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"

namespace gannet::router {

// Where a message goes: a session on a worker of this node. (The cluster adds
// remote nodes as destinations later: a distinct `kind`.)
// `worker` of a destination that is another node of the cluster (its node id in
// session_id): messages matching it are forwarded there.
inline constexpr uint32_t kRemoteWorker = 0xFFFFFFFF;

struct Destination {
  uint64_t session_id = 0;  // unique per session for the life of the process
  uint32_t worker = 0;      // the worker thread that owns the session
  bool remote() const { return worker == kRemoteWorker; }
  bool operator==(const Destination&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Destination& d) {
    return H::combine(std::move(h), d.session_id, d.worker);
  }
};

// MQTT 5 §3.8.3.1 subscription options, plus the subscription identifier.
struct SubscriptionOptions {
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  uint32_t subscription_id = 0;  // 0 = none
  // Not MQTT: the destination's session outlives its connection and is in the
  // node's store, so QoS >= 1 deliveries to it are written to disk before the
  // publisher is acknowledged. Kept up to date by the session's owner.
  bool durable = false;
  // Not MQTT: the ACL lets the subscriber read every topic the filter matches
  // (auth::Acl::readsAll; always with no ACL), so deliveries through this
  // subscription skip the per-message read check. Set by the session's owner;
  // not stored (a restored subscription is checked per message until its
  // client connects again).
  bool read_all = false;
  bool operator==(const SubscriptionOptions&) const = default;
};

// One delivery of a message to one destination.
struct Delivery {
  Destination destination;
  uint8_t qos = 0;                   // the maximum granted QoS of the matching subscriptions
  bool retain_as_published = false;  // true when any matching subscription asks for it
  absl::InlinedVector<uint32_t, 2> subscription_ids;  // of every matching subscription
  bool shared = false;               // from a $share group
  bool durable = false;              // the destination is durable (SubscriptionOptions)
  bool read_all = false;             // a matching subscription has read_all: no ACL check
};

// Told when a local destination's subscription to a filter is added or removed
// (not remote ones, not replaced options): the cluster keeps its route table
// from it. Called from the subscribing thread, outside the router's lock.
class RouteListener {
 public:
  virtual ~RouteListener() = default;
  virtual void onLocalSubscribe(std::string_view filter) = 0;
  virtual void onLocalUnsubscribe(std::string_view filter) = 0;
};

class TopicRouter {
 public:
  TopicRouter();
  // Before any subscribe; null: none.
  void setListener(RouteListener* listener) { listener_ = listener; }
  ~TopicRouter();
  TopicRouter(const TopicRouter&) = delete;
  TopicRouter& operator=(const TopicRouter&) = delete;

  // Adds or replaces the subscription of `destination` to `filter`. `filter` may be
  // a shared subscription "$share/GROUP/FILTER". Returns true when it is new
  // (false when it replaced an existing one: MQTT §3.8.4 replaces the options).
  // The filter is valid (the caller checked it).
  bool subscribe(std::string_view filter, const Destination& destination,
                 const SubscriptionOptions& options);

  // Removes it; returns false when there was no such subscription. Without
  // `notify` the RouteListener is not told (the caller already told the
  // cluster the route is gone: a session handed over to another node).
  bool unsubscribe(std::string_view filter, const Destination& destination, bool notify = true);

  // Appends to `out` the deliveries for a message published to `topic` by session
  // `publisher_session_id`:
  //  - non-shared subscriptions are aggregated per destination: one Delivery with
  //    the maximum QoS, retain_as_published if any, all subscription ids (MQTT 5
  //    §3.3.4 overlapping subscriptions);
  //  - a subscription with no_local is skipped when its destination's session is
  //    the publisher (§3.8.3.1);
  //  - each $share group whose filter matches yields exactly one Delivery
  //    (shared = true) to one of its members, chosen round-robin;
  //  - topics starting with '$' are not matched by filters whose first level is
  //    '+' or '#' (§4.7.2);
  //  - "sport/#" matches "sport" too (§4.7.1.2).
  // The order of the appended deliveries is unspecified.
  //  - with `local_only`, remote destinations (other nodes) are left out, also
  //    when choosing a $share group's member (a message forwarded from another
  //    node goes to this node's subscribers only); without `shared_groups`,
  //    $share groups are left out (the sending node chose their member elsewhere);
  //  - one Delivery per remote node, whatever matched there (its subscriptions
  //    and $share members picked there): the node gets the message once and
  //    delivers it to its own subscribers; shared = true when a $share member
  //    was picked there (it then serves its $share groups too).
  void match(std::string_view topic, uint64_t publisher_session_id,
             std::vector<Delivery>& out, bool local_only = false,
             bool shared_groups = true) const;

  // Number of (filter, destination) subscriptions, shared ones included.
  size_t subscriptionCount() const;

  // Of which shared ($share/GROUP/FILTER) subscriptions: one per (group, filter,
  // destination). For metrics.
  size_t sharedSubscriptionCount() const;

  // Trie nodes, the root excluded. Unsubscribe prunes the nodes it leaves empty, so
  // this is 0 again once every subscription is gone. For tests and metrics.
  size_t nodeCount() const;

 private:
  bool subscribeLocked(std::string_view filter, const Destination& destination,
                       const SubscriptionOptions& options);
  bool unsubscribeLocked(std::string_view filter, const Destination& destination);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  RouteListener* listener_ = nullptr;
};

// Splits "$share/group/filter" into group and filter. Returns false when `filter` is
// not a shared subscription. A "$share/" filter with an empty or wildcard group or
// no filter part is invalid: see isValidSharedFilter.
bool parseSharedFilter(std::string_view filter, std::string_view& group,
                       std::string_view& topic_filter);

// MQTT 5 §4.8.2: "$share/{ShareName}/{filter}", ShareName non-empty without '/', '+',
// '#'; filter a valid topic filter.
bool isValidSharedFilter(std::string_view filter);

// True when topic filter `filter` (not a shared one) matches topic name `topic`,
// with the '$' rule above. The same rules as TopicRouter::match, for single checks
// (retained messages on subscribe).
bool topicMatches(std::string_view filter, std::string_view topic);

}  // namespace gannet::router
