// fanin, fanout and latency: P publishers and S subscribers on one broker.
//
//   fanin    P publishers on P topics → S (1) subscribers on one '+' filter
//   fanout   P (1) publishers on one topic → S subscribers of that topic
//   latency  K pairs, publisher i → subscriber i on its own topic, paced
//
// Publishers either send as fast as their socket accepts (--rate=0: the broker's
// TCP backpressure sets the pace, so what the subscribers receive is the
// broker's maximum throughput; --max_ahead only keeps kernel socket buffers
// from filling with hundreds of MB) or follow a fixed global schedule: message
// n is due at start + n/rate and goes to publisher n mod P, so sends are spread
// evenly in time, not in bursts. Paced messages carry their scheduled time
// (CLOCK_MONOTONIC ns) and sequence number in the first 16 payload bytes;
// latency is receipt minus *scheduled* time, so a generator or broker stall
// shows up in the figures instead of silently delaying the schedule (no
// coordinated omission). How late sends were queued (the generator's lateness,
// or a full QoS 1 window) is reported apart (send_lag). Unpaced messages carry
// the time they were queued for sending in the same place; one received message
// in kUnpacedSampleEvery is sampled (at millions of messages per second, all of
// them would take hundreds of MB).
//
// --persistent: subscribers connect with cleanSession=0 and client ids derived
// from the topic prefix, so a second run resumes their sessions (and receives
// first whatever the broker kept for them: counted as `stale`, not as received).

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks/loadgen/cpu_time.h"
#include "benchmarks/loadgen/mqtt_wire.h"
#include "benchmarks/loadgen/report.h"
#include "benchmarks/loadgen/run_support.h"
#include "benchmarks/loadgen/scenarios.h"

namespace gannet::loadgen {
namespace {

// A publisher refills its output up to this many bytes, then writes it in one
// send(); it refills only once the socket took everything.
constexpr size_t kFillBytes = 128 * 1024;
constexpr uint16_t kSubscribePacketId = 1;
// How often a publisher held back by --max_ahead looks at the subscribers again
// when they are on other workers.
constexpr int64_t kCappedPollNs = 200'000;
// Capped with no delivery for this long: the outstanding ones are written off.
constexpr int64_t kStallNs = 100'000'000;
// Unpaced QoS 0 subscribers wake when this much is queued, not for every packet: a
// broker that writes packet by packet would otherwise cost the generator a
// wake-up and a read per message. Small enough that progress stays visible to
// the stall check above at 500 msg/s.
constexpr int kSubscriberLowWater = 4096;
// QoS 1 publishers read their PUBACKs (4 bytes each) 16 at a time when their
// window allows it: a broker that writes each PUBACK on its own would
// otherwise wake the generator once per message, which is what costs here,
// not bytes. The window stays at least 3/4 full; latency is measured at the
// subscriber and is unaffected.
constexpr int kPubackBatch = 16;
constexpr int kPublisherLowWater = kPubackBatch * 4;
// Unpaced runs sample the latency of one received message in this many. Prime,
// so that it does not beat with the number of publishers.
constexpr uint64_t kUnpacedSampleEvery = 17;
// Payloads this large carry a timestamp (and, paced, a sequence number).
constexpr size_t kStampBytes = 16;

// "lg" + 12 hex digits of FNV-1a(prefix): a client id part that is the same for
// the same --topic_prefix, and short and plain enough for any broker (MQTT
// 3.1.1 §3.1.3.1 guarantees 23 characters of [0-9a-zA-Z]).
std::string sessionTag(const std::string& prefix) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : prefix) {
    h ^= ch;
    h *= 1099511628211ULL;
  }
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%012llx", static_cast<unsigned long long>(h >> 16));
  return std::string("lg") + buf;
}

struct Plan {
  const Endpoint* sub_endpoint = nullptr;  // where subscribers connect
  int publishers = 0;
  int subscribers = 0;
  int fan = 1;  // deliveries per published message
  uint8_t qos = 0;
  size_t payload = 0;
  double rate = 0;  // total msg/s; 0 = as fast as the sockets accept
  int window = 64;
  int64_t max_ahead = 0;                  // unpaced: deliveries in flight at most; 0 = no limit
  bool persistent = false;                // subscribers: cleanSession=0, fixed client ids
  std::string session_tag;                // client id stem of persistent subscribers
  std::vector<WorkerCounters*> counters;  // of every worker, to sum for max_ahead
  std::vector<std::string> pub_topics;
  std::vector<std::string> sub_filters;
};

Plan makePlan(const Options& o) {
  Plan p;
  p.qos = static_cast<uint8_t>(o.qos);
  p.payload = static_cast<size_t>(o.payload);
  p.rate = o.rate;
  p.window = o.window;
  p.max_ahead = o.max_ahead;
  p.persistent = o.persistent;
  p.session_tag = sessionTag(o.topic_prefix);
  const std::string& prefix = o.topic_prefix;
  if (o.scenario == "fanin") {
    p.publishers = o.publishers;
    p.subscribers = o.subscribers;
    p.fan = o.subscribers;
    for (int i = 0; i < p.publishers; ++i)
      p.pub_topics.push_back(prefix + "/in/" + std::to_string(i));
    p.sub_filters.assign(p.subscribers, prefix + "/in/+");
  } else if (o.scenario == "fanout") {
    p.publishers = o.publishers;
    p.subscribers = o.subscribers;
    p.fan = o.subscribers;
    p.pub_topics.assign(p.publishers, prefix + "/out");
    p.sub_filters.assign(p.subscribers, prefix + "/out");
  } else {  // latency
    p.publishers = p.subscribers = o.pairs;
    p.fan = 1;
    for (int i = 0; i < o.pairs; ++i) {
      p.pub_topics.push_back(prefix + "/lat/" + std::to_string(i));
      p.sub_filters.push_back(p.pub_topics.back());
    }
  }
  return p;
}

// One worker's publishers and subscribers. Lives on the worker's thread; the
// main thread reads the samples only after joining it.
class PubSubDriver final : public Worker::Driver, public Client::Listener {
 public:
  PubSubDriver(Worker& worker, const Plan& plan, int connect_window)
      : worker_(worker),
        plan_(plan),
        connect_window_(connect_window),
        by_global_(plan.publishers, nullptr) {}

  void addSubscriber(int global) {
    Role role{false, subs_.size()};
    subs_.push_back(Subscriber{&newClient('s', global), plan_.sub_filters[global]});
    roles_.push_back(role);
  }

  void addPublisher(int global) {
    Role role{true, pubs_.size()};
    pubs_.push_back(std::make_unique<Publisher>(
        &newClient('p', global),
        wire::PublishTemplate(plan_.pub_topics[global], plan_.payload, plan_.qos)));
    if (plan_.qos > 0) pubs_.back()->in_use.assign(65536, 0);
    by_global_[global] = pubs_.back().get();
    roles_.push_back(role);
  }

  // Worker::Driver
  void onIteration(Worker& w) override {
    phase_ = w.state().phase.load(std::memory_order_acquire);
    if (run_start_ns_ == 0 && phase_ != Phase::kSetup) {
      run_start_ns_ = w.state().start_ns.load(std::memory_order_acquire);
    }
    switch (phase_) {
      case Phase::kSetup:
        openMore();
        break;
      case Phase::kRun:
      case Phase::kMeasure:
        if (plan_.rate > 0) {
          sendDue();
        } else if (!pubs_.empty()) {
          capped_ = tooFarAhead();
          if (!capped_) {
            for (auto& p : pubs_) {
              if (canFill(*p)) fill(*p);
            }
          }
        }
        break;
      case Phase::kDrain:
        if (!low_water_reset_) {
          // The last bytes of the run may stay below the mark.
          low_water_reset_ = true;
          for (Client* c : clients_) {
            c->setReceiveLowWater(1);
            c->readNow();
          }
        }
        break;
      case Phase::kStop:
        if (!done_) {
          for (Client* c : clients_) c->disconnect();
          done_ = true;
        }
        break;
    }
  }

  int64_t wakeAtNs(Worker& w) override {
    constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
    switch (phase_) {
      case Phase::kSetup:
        return opened_ < clients_.size() && handshaking_ < connect_window_ ? 0 : kNever;
      case Phase::kRun:
      case Phase::kMeasure:
        if (pubs_.empty()) return kNever;
        if (plan_.rate > 0) return dueNs(next_seq_);
        for (auto& p : pubs_) {
          if (!canFill(*p)) continue;
          if (!capped_) return 0;
          // Capped: a subscriber's progress wakes this loop only if it is on
          // this worker; poll otherwise. Wake in any case for the stall check.
          return plan_.counters.size() > 1 ? monotonicNs() + kCappedPollNs
                                           : last_progress_ns_ + kStallNs;
        }
        return kNever;
      default:
        return kNever;
    }
  }

  bool done(Worker& w) override { return done_; }

  // Client::Listener
  void onConnack(Client& c, int code) override {
    if (code != 0) {
      worker_.state().fail("broker refused CONNECT of " + c.clientId() + ": return code " +
                           std::to_string(code) + " (" + wire::connackCodeText(code) + ")");
      return;
    }
    --handshaking_;
    const Role& role = roles_[c.index()];
    if (role.publisher) {
      if (plan_.qos > 0 && plan_.window >= 4 * kPubackBatch) {
        c.setReceiveLowWater(kPublisherLowWater);
        c.dropWriteInterest();
      }
      markReady();
    } else {
      if (c.sessionPresent()) ++sessions_resumed_;
      wire::appendSubscribe(c.out(), kSubscribePacketId, subs_[role.i].filter, plan_.qos);
      c.markDirty();
    }
  }

  void onSuback(Client& c, uint16_t packet_id, uint8_t code) override {
    if (code == 0x80 || packet_id != kSubscribePacketId) {
      worker_.state().fail("broker refused SUBSCRIBE of " + c.clientId() + " to '" +
                           subs_[roles_[c.index()].i].filter + "'");
      return;
    }
    // Not at QoS 1: a broker that keeps few deliveries in flight (Mosquitto's
    // default is 20, 1.7 KB here) would wait for PUBACKs that a subscriber
    // sleeping until 4 KiB arrive never sends.
    if (plan_.rate == 0 && plan_.qos == 0) {
      c.setReceiveLowWater(kSubscriberLowWater);
      c.dropWriteInterest();
    }
    markReady();
  }

  void onPublish(Client& c, const wire::PublishView& publish, int64_t now_ns) override {
    if (publish.qos == 1) {
      wire::appendPuback(c.out(), publish.packet_id);
      c.markDirty();
    }
    // Kept for a resumed session by an earlier run: arrives before anything was
    // published, or carries a time from before this run.
    int64_t stamped = 0;
    const bool has_stamp = publish.payload.size() >= kStampBytes;
    if (has_stamp) std::memcpy(&stamped, publish.payload.data(), sizeof(stamped));
    if (phase_ == Phase::kSetup || (has_stamp && stamped < run_start_ns_)) {
      ++stale_;
      return;
    }
    bump(worker_.counters().received);
    if (phase_ == Phase::kMeasure && has_stamp &&
        (plan_.rate > 0 || ++sample_tick_ % kUnpacedSampleEvery == 0)) {
      latencies_.push_back(now_ns - stamped);
    }
  }

  void onPuback(Client& c, uint16_t packet_id) override {
    const Role& role = roles_[c.index()];
    if (!role.publisher || plan_.qos == 0) {
      bump(worker_.counters().protocol_errors);
      return;
    }
    Publisher& p = *pubs_[role.i];
    if (!p.in_use[packet_id]) {
      bump(worker_.counters().protocol_errors);
      return;
    }
    p.in_use[packet_id] = 0;
    --p.inflight;
    bump(worker_.counters().acked);
    if (!p.backlog.empty() && (phase_ == Phase::kRun || phase_ == Phase::kMeasure)) {
      auto [scheduled, seq] = p.backlog.front();
      p.backlog.pop_front();
      sendPaced(p, scheduled, seq);
    }
  }

  void onLost(Client& c, std::string_view why) override {
    if (worker_.state().phase.load(std::memory_order_acquire) == Phase::kStop) return;
    worker_.state().fail("connection " + c.clientId() + " lost: " + std::string(why));
  }

  std::vector<int64_t>& latencies() { return latencies_; }
  uint64_t stale() const { return stale_; }
  int sessionsResumed() const { return sessions_resumed_; }
  std::vector<int64_t>& sendLags() { return send_lags_; }

 private:
  struct Role {
    bool publisher;
    size_t i;  // into pubs_ or subs_
  };
  struct Subscriber {
    Client* client;
    std::string filter;
  };
  struct Publisher {
    Publisher(Client* c, wire::PublishTemplate t) : client(c), tmpl(std::move(t)) {}
    Client* client;
    wire::PublishTemplate tmpl;
    uint16_t next_id = 1;
    int inflight = 0;
    std::vector<uint8_t> in_use;  // by packet id, QoS 1 only
    // Paced sends that found the QoS 1 window full: (scheduled ns, sequence).
    std::deque<std::pair<int64_t, uint64_t>> backlog;
  };

  Client& newClient(char role, int global) {
    std::string id = plan_.persistent && role == 's'
                         ? plan_.session_tag + role + std::to_string(global)
                         : "lg" + std::to_string(getpid()) + role + std::to_string(global);
    Client& c = worker_.addClient(*this, static_cast<uint32_t>(clients_.size()), std::move(id));
    clients_.push_back(&c);
    return c;
  }

  void openMore() {
    if (!reported_ready_ && ready_ == clients_.size()) {
      reported_ready_ = true;
      // Pacing needs the start time, known only once every worker is ready.
      worker_.state().ready_workers.fetch_add(1, std::memory_order_acq_rel);
    }
    while (opened_ < clients_.size() && handshaking_ < connect_window_ &&
           !worker_.state().failed()) {
      Client* c = clients_[opened_++];
      ++handshaking_;
      const bool publisher = roles_[c->index()].publisher;
      c->open(worker_.keepaliveS(), !(plan_.persistent && !publisher),
              publisher ? nullptr : plan_.sub_endpoint);
      if (c->state() != Client::State::kClosed) c->markDirty();
    }
  }

  void markReady() { ++ready_; }

  // Whether the publishers are --max_ahead deliveries ahead of the subscribers
  // (summed over all workers: relaxed reads of counters other threads write).
  // A broker may drop messages, which then never arrive: if nothing
  // arrives for kStallNs while capped, what is outstanding is written off
  // (counted in cap_releases) so that the run goes on.
  bool tooFarAhead() {
    if (plan_.max_ahead <= 0) return false;
    uint64_t published = 0, received = 0;
    for (WorkerCounters* c : plan_.counters) {
      published += c->published.load(std::memory_order_relaxed);
      received += c->received.load(std::memory_order_relaxed);
    }
    const int64_t now = worker_.now();
    const uint64_t deliveries = published * static_cast<uint64_t>(plan_.fan) - written_off_;
    const bool capped =
        deliveries > received && deliveries - received >= static_cast<uint64_t>(plan_.max_ahead);
    if (!capped || received != last_received_) {
      last_received_ = received;
      last_progress_ns_ = now;
      return capped;
    }
    if (now - last_progress_ns_ < kStallNs) return true;
    written_off_ += deliveries - received;
    last_progress_ns_ = now;
    bump(worker_.counters().cap_releases);
    return false;
  }

  bool canFill(const Publisher& p) const {
    return p.client->isOpen() && !p.client->blocked() && p.client->out().size() < kFillBytes &&
           (plan_.qos == 0 || p.inflight < plan_.window);
  }

  uint16_t takePacketId(Publisher& p) {
    uint16_t id = p.next_id;
    while (p.in_use[id]) id = id == 65535 ? 1 : id + 1;  // at most `window` are taken
    p.in_use[id] = 1;
    p.next_id = id == 65535 ? 1 : id + 1;
    ++p.inflight;
    return id;
  }

  // As fast as the socket accepts: top the output up to kFillBytes.
  // Every message carries the time of the fill (latency at the subscriber).
  void fill(Publisher& p) {
    ByteBuffer& out = p.client->out();
    const size_t size = p.tmpl.size();
    const size_t stamp_at = p.tmpl.payloadOffset();
    const bool stamp = plan_.payload >= kStampBytes;
    const int64_t now = stamp ? monotonicNs() : 0;
    size_t count = 0;
    if (plan_.qos == 0) {
      count = std::max<size_t>((kFillBytes - out.size()) / size, 1);
      char* dst = out.reserve(count * size);
      const char* src = p.tmpl.bytes().data();
      for (size_t i = 0; i < count; ++i) {
        std::memcpy(dst + i * size, src, size);
        if (stamp) std::memcpy(dst + i * size + stamp_at, &now, sizeof(now));
      }
      out.commit(count * size);
    } else {
      while (p.inflight < plan_.window && out.size() < kFillBytes) {
        char* pkt = p.tmpl.appendTo(out);
        wire::putU16(pkt + p.tmpl.packetIdOffset(), takePacketId(p));
        if (stamp) std::memcpy(pkt + stamp_at, &now, sizeof(now));
        ++count;
      }
    }
    bump(worker_.counters().published, count);
    p.client->markDirty();
  }

  int64_t dueNs(uint64_t seq) const {
    return start_ns_ +
           static_cast<int64_t>(std::llround(static_cast<double>(seq) * 1e9 / plan_.rate));
  }

  // Paced: every message whose time has come, on this worker's publishers.
  void sendDue() {
    if (pubs_.empty()) return;
    if (start_ns_ == 0) {
      start_ns_ = worker_.state().start_ns.load(std::memory_order_acquire);
      skipToOwned();
    }
    const int64_t now = monotonicNs();
    while (dueNs(next_seq_) <= now) {
      Publisher& p = *by_global_[next_seq_ % plan_.publishers];
      if (p.inflight >= plan_.window && plan_.qos > 0) {
        p.backlog.emplace_back(dueNs(next_seq_), next_seq_);
        bump(worker_.counters().window_stalls);
      } else {
        sendPaced(p, dueNs(next_seq_), next_seq_);
      }
      ++next_seq_;
      skipToOwned();
    }
  }

  void skipToOwned() {
    while (by_global_[next_seq_ % plan_.publishers] == nullptr) ++next_seq_;
  }

  void sendPaced(Publisher& p, int64_t scheduled, uint64_t seq) {
    if (!p.client->isOpen()) return;
    char* pkt = p.tmpl.appendTo(p.client->out());
    if (plan_.qos > 0) wire::putU16(pkt + p.tmpl.packetIdOffset(), takePacketId(p));
    if (plan_.payload >= kStampBytes) {
      std::memcpy(pkt + p.tmpl.payloadOffset(), &scheduled, 8);
      std::memcpy(pkt + p.tmpl.payloadOffset() + 8, &seq, 8);
    }
    if (phase_ == Phase::kMeasure) send_lags_.push_back(monotonicNs() - scheduled);
    bump(worker_.counters().published);
    p.client->markDirty();
  }

  Worker& worker_;
  const Plan& plan_;
  const int connect_window_;
  Phase phase_ = Phase::kSetup;
  std::vector<Client*> clients_;  // by Client::index()
  std::vector<Role> roles_;       // by Client::index()
  std::vector<Subscriber> subs_;
  std::vector<std::unique_ptr<Publisher>> pubs_;
  std::vector<Publisher*> by_global_;  // publishers of this worker, by global index
  size_t opened_ = 0;
  int handshaking_ = 0;
  size_t ready_ = 0;
  bool reported_ready_ = false;
  bool done_ = false;
  bool capped_ = false;
  bool low_water_reset_ = false;
  uint64_t written_off_ = 0;  // deliveries given up on by tooFarAhead()
  uint64_t last_received_ = 0;
  int64_t last_progress_ns_ = 0;
  int64_t start_ns_ = 0;
  int64_t run_start_ns_ = 0;  // RunState::start_ns, once past kSetup
  uint64_t next_seq_ = 0;
  uint64_t sample_tick_ = 0;  // unpaced: received in the window, for sampling
  uint64_t stale_ = 0;        // received before the run started
  int sessions_resumed_ = 0;  // CONNACKs with session present
  std::vector<int64_t> latencies_;
  std::vector<int64_t> send_lags_;
};

const char* plural(int n, const char* word_one, const char* word_many) {
  return n == 1 ? word_one : word_many;
}

}  // namespace

int runPubSubScenario(const Options& o, const Endpoint& endpoint, const Endpoint& sub_endpoint) {
  Plan plan = makePlan(o);
  plan.sub_endpoint = &sub_endpoint;
  RunState state;
  Workers workers;
  std::vector<std::unique_ptr<PubSubDriver>> drivers;
  const int threads = o.threads;
  for (int t = 0; t < threads; ++t) {
    auto w = std::make_unique<Worker>(t, state, endpoint, static_cast<uint16_t>(o.keepalive));
    auto d = std::make_unique<PubSubDriver>(*w, plan, std::max(1, o.connect_window / threads));
    w->setDriver(d.get());
    workers.push_back(std::move(w));
    drivers.push_back(std::move(d));
  }
  for (auto& w : workers) plan.counters.push_back(&w->counters());
  // Subscribers first, then publishers, dealt round-robin over the workers.
  for (int i = 0; i < plan.subscribers; ++i) drivers[i % threads]->addSubscriber(i);
  for (int i = 0; i < plan.publishers; ++i) {
    drivers[(plan.subscribers + i) % threads]->addPublisher(i);
  }

  for (auto& w : workers) {
    if (!w->start()) return abortRun(state, workers);
  }
  if (!waitReady(state, threads, 30 + (plan.publishers + plan.subscribers) / 500.0,
                 "CONNACKs and SUBACKs")) {
    return abortRun(state, workers);
  }

  // Warm-up, then the measured window.
  const int64_t start = monotonicNs();
  state.start_ns.store(start, std::memory_order_release);
  state.phase.store(Phase::kRun, std::memory_order_release);
  if (!sleepUntil(state, start + static_cast<int64_t>(o.warmup * 1e9))) {
    return abortRun(state, workers);
  }
  const Snapshot a = takeSnapshot(workers, o.broker_pid);
  state.phase.store(Phase::kMeasure, std::memory_order_release);
  if (!sleepUntil(state, a.ns + static_cast<int64_t>(o.duration * 1e9))) {
    return abortRun(state, workers);
  }
  const Snapshot b = takeSnapshot(workers, o.broker_pid);
  state.phase.store(Phase::kDrain, std::memory_order_release);

  // Drain: let the subscribers receive what is queued in sockets and in the
  // broker, to check that nothing was lost. Stops once everything arrived, after
  // a second without progress, or after 5 s.
  sleepUntil(state, monotonicNs() + 50'000'000);  // workers see kDrain, stop queuing
  Snapshot d = takeSnapshot(workers, o.broker_pid);
  const uint64_t expected = d.published * static_cast<uint64_t>(plan.fan);
  const int64_t drain_deadline = d.ns + 5'000'000'000;
  int64_t last_progress = d.ns;
  uint64_t last_received = d.received;
  while (d.received < expected && d.ns < drain_deadline && d.ns - last_progress < 1'000'000'000 &&
         !state.failed()) {
    sleepUntil(state, d.ns + 20'000'000);
    d = takeSnapshot(workers, o.broker_pid);
    if (d.received != last_received) {
      last_received = d.received;
      last_progress = d.ns;
    }
  }
  if (state.failed()) return abortRun(state, workers);
  stopWorkers(state, workers);
  // complete: every delivery arrived. stalled: deliveries stopped arriving short
  // of the expected count (the broker dropped some). timeout: still arriving.
  const char* drain = d.received >= expected                  ? "complete"
                      : d.ns - last_progress >= 1'000'000'000 ? "stalled"
                                                              : "timeout";

  const double window_s = (b.ns - a.ns) / 1e9;
  const double recv_rate = (b.received - a.received) / window_s;
  const double pub_rate = (b.published - a.published) / window_s;
  const double delivered_pct = expected == 0 ? 0 : 100.0 * d.received / expected;

  ResultLine r(o.scenario);
  r.add("qos", static_cast<int64_t>(plan.qos))
      .add("publishers", static_cast<int64_t>(plan.publishers))
      .add("subscribers", static_cast<int64_t>(plan.subscribers))
      .add("payload", static_cast<int64_t>(plan.payload))
      .add("rate_target", plan.rate, 0)
      .add("duration_s", window_s, 2)
      .add("recv_rate", recv_rate, 0)
      .add("pub_rate", pub_rate, 0);
  if (plan.qos > 0) r.add("ack_rate", (b.acked - a.acked) / window_s, 0);
  r.add("published", static_cast<int64_t>(d.published))
      .add("received", static_cast<int64_t>(d.received))
      .add("delivered_pct", delivered_pct, 2)
      .add("drain", drain)
      .add("max_ahead", plan.rate > 0 ? int64_t{0} : plan.max_ahead);
  LatencySummary lat, lag;
  if (plan.payload >= kStampBytes) {
    std::vector<int64_t> latencies, lags;
    for (auto& drv : drivers) {
      latencies.insert(latencies.end(), drv->latencies().begin(), drv->latencies().end());
      lags.insert(lags.end(), drv->sendLags().begin(), drv->sendLags().end());
    }
    lat = summarize(latencies);
    lag = summarize(lags);
    r.add("samples", static_cast<int64_t>(lat.count))
        .add("sample_every", static_cast<int64_t>(plan.rate > 0 ? 1 : kUnpacedSampleEvery))
        .add("p50_us", lat.p50_us, 1)
        .add("p99_us", lat.p99_us, 1)
        .add("p999_us", lat.p999_us, 1)
        .add("max_us", lat.max_us, 1)
        .add("mean_us", lat.mean_us, 1);
    if (plan.rate > 0) {
      r.add("send_lag_p99_us", lag.p99_us, 1)
          .add("send_lag_max_us", lag.max_us, 1)
          .add("window_stalls", static_cast<int64_t>(b.window_stalls - a.window_stalls));
    }
  }
  uint64_t stale = 0;
  int resumed = 0;
  for (auto& drv : drivers) {
    stale += drv->stale();
    resumed += drv->sessionsResumed();
  }
  if (plan.persistent) {
    r.add("persistent", int64_t{1})
        .add("sessions_resumed", static_cast<int64_t>(resumed))
        .add("stale", static_cast<int64_t>(stale));
  }
  // Broker disk writes in the window, per message received in it.
  const uint64_t window_received = b.received - a.received;
  const bool have_disk = a.broker_write_bytes >= 0 && b.broker_write_bytes >= 0;
  const int64_t disk_bytes = have_disk ? b.broker_write_bytes - a.broker_write_bytes : 0;
  if (have_disk) {
    r.add("broker_write_bytes", disk_bytes)
        .add("disk_bytes_per_msg",
             window_received == 0
                 ? 0.0
                 : static_cast<double>(disk_bytes) / static_cast<double>(window_received),
             1);
  }
  if (plan.rate == 0 && plan.max_ahead > 0) {
    r.add("cap_releases", static_cast<int64_t>(d.cap_releases));
  }
  r.add("protocol_errors", static_cast<int64_t>(d.protocol_errors))
      .add("threads", static_cast<int64_t>(threads));
  addCpuFields(r, a, b, threads);
  if (endpoint.tls != nullptr) {
    const std::string tls = endpoint.tls->negotiated();
    r.add("tls", tls.empty() ? std::string_view("none") : std::string_view(tls));
  }
  std::printf("%s\n", r.str().c_str());

  const std::string shape =
      std::to_string(plan.publishers) + " " + plural(plan.publishers, "publisher", "publishers") +
      " -> " + std::to_string(plan.subscribers) + " " + (plan.persistent ? "persistent " : "") +
      plural(plan.subscribers, "subscriber", "subscribers");
  std::printf("%s qos%d: %s, %zu B payload, %s over %.1f s: %s msg/s received, %s published",
              o.scenario.c_str(), plan.qos, shape.c_str(), plan.payload,
              plan.rate > 0 ? ("paced at " + withCommas(plan.rate) + " msg/s").c_str() : "unpaced",
              window_s, withCommas(recv_rate).c_str(), withCommas(pub_rate).c_str());
  std::printf(", delivered %.2f%% (drain %s)\n", delivered_pct, drain);
  if (lat.count > 0 && plan.rate > 0) {
    std::printf(
        "latency (us, %s samples): p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f;"
        " generator send lag p99 %.1f max %.1f\n",
        withCommas(static_cast<double>(lat.count)).c_str(), lat.p50_us, lat.p99_us, lat.p999_us,
        lat.max_us, lag.p99_us, lag.max_us);
  } else if (lat.count > 0) {
    std::printf(
        "latency from queued to received (us, %s samples, 1 in %d): p50 %.1f  p99 %.1f"
        "  p99.9 %.1f  max %.1f\n",
        withCommas(static_cast<double>(lat.count)).c_str(), static_cast<int>(kUnpacedSampleEvery),
        lat.p50_us, lat.p99_us, lat.p999_us, lat.max_us);
  }
  if (plan.persistent) {
    std::printf("persistent subscribers: %d of %d resumed a session, %s stale messages received\n",
                resumed, plan.subscribers, withCommas(static_cast<double>(stale)).c_str());
  }
  if (have_disk) {
    std::printf("broker disk writes (write_bytes) in the window: %s bytes, %.1f per message\n",
                withCommas(static_cast<double>(disk_bytes)).c_str(),
                window_received == 0
                    ? 0.0
                    : static_cast<double>(disk_bytes) / static_cast<double>(window_received));
  }
  std::printf("%s\n", cpuNote(a, b, threads).c_str());
  return 0;
}

}  // namespace gannet::loadgen
