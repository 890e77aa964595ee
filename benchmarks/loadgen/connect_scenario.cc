// connect: open N connections as fast as the broker takes them, keeping at most
// --connect_window handshakes (TCP connect → CONNACK) in progress, then hold them
// idle so that the broker's memory per connection can be read from outside.
//
// The window exists because a listen backlog that overflows makes the kernel
// drop handshakes and retry them a second later; that would measure the
// backlog length, not the broker. Mosquitto listens with a backlog of 100.

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks/loadgen/cpu_time.h"
#include "benchmarks/loadgen/report.h"
#include "benchmarks/loadgen/run_support.h"
#include "benchmarks/loadgen/scenarios.h"

namespace gannet::loadgen {
namespace {

// One worker's share of the connections. Lives on the worker's thread; the
// main thread reads the timings after joining it.
class ConnectDriver final : public Worker::Driver, public Client::Listener {
 public:
  ConnectDriver(Worker& worker, int first_index, int count, int window)
      : worker_(worker), count_(count), window_(window) {
    for (int i = 0; i < count; ++i) {
      // Client ids of 23 bytes at most: MQTT 3.1.1 §3.1.3.1 obliges brokers to
      // accept those.
      clients_.push_back(&worker.addClient(
          *this, static_cast<uint32_t>(i),
          "lg" + std::to_string(getpid()) + "c" + std::to_string(first_index + i)));
    }
    connack_ns_.reserve(count);
  }

  void onIteration(Worker& w) override {
    Phase phase = w.state().phase.load(std::memory_order_acquire);
    if (phase == Phase::kStop) {
      if (!done_) {
        for (Client* c : clients_) c->disconnect();
        done_ = true;
      }
      return;
    }
    if (!reported_ready_ && connected_ == count_) {
      reported_ready_ = true;
      w.state().ready_workers.fetch_add(1, std::memory_order_acq_rel);
    }
    while (opened_ < count_ && handshaking_ < window_ && !w.state().failed()) {
      if (opened_ == 0) first_open_ns_ = monotonicNs();
      Client* c = clients_[opened_++];
      ++handshaking_;
      c->open(w.keepaliveS());
      if (c->state() != Client::State::kClosed) c->markDirty();
    }
  }

  int64_t wakeAtNs(Worker& w) override {
    if (opened_ < count_ && handshaking_ < window_) return 0;
    if (!reported_ready_ && connected_ == count_) return 0;
    return std::numeric_limits<int64_t>::max();
  }

  bool done(Worker& w) override { return done_; }

  void onConnack(Client& c, int code) override {
    if (code != 0) {
      worker_.state().fail("broker refused CONNECT of " + c.clientId() + ": return code " +
                           std::to_string(code) + " (" + wire::connackCodeText(code) + ")");
      return;
    }
    --handshaking_;
    ++connected_;
    const int64_t now = worker_.now();
    connack_ns_.push_back(now - c.openedNs());
    if (connected_ == count_) last_connack_ns_ = now;
    c.out().shrinkIfEmpty();  // idle from now on: hold no buffer
  }

  void onLost(Client& c, std::string_view why) override {
    if (worker_.state().phase.load(std::memory_order_acquire) == Phase::kStop) return;
    worker_.state().fail(std::string(connected_ == count_ ? "idle connection " : "connection ") +
                         c.clientId() + " lost: " + std::string(why));
  }

  int64_t firstOpenNs() const { return first_open_ns_; }
  int64_t lastConnackNs() const { return last_connack_ns_; }
  std::vector<int64_t>& connackNs() { return connack_ns_; }

 private:
  Worker& worker_;
  const int count_;
  const int window_;
  std::vector<Client*> clients_;
  int opened_ = 0;
  int handshaking_ = 0;
  int connected_ = 0;
  bool reported_ready_ = false;
  bool done_ = false;
  int64_t first_open_ns_ = std::numeric_limits<int64_t>::max();
  int64_t last_connack_ns_ = 0;
  std::vector<int64_t> connack_ns_;
};

}  // namespace

int runConnectScenario(const Options& o, const Endpoint& endpoint) {
  RunState state;
  Workers workers;
  std::vector<std::unique_ptr<ConnectDriver>> drivers;
  const int threads = o.threads;
  const int window = std::max(1, o.connect_window / threads);
  int first = 0;
  for (int t = 0; t < threads; ++t) {
    const int count = o.connections / threads + (t < o.connections % threads ? 1 : 0);
    auto w = std::make_unique<Worker>(t, state, endpoint, static_cast<uint16_t>(o.keepalive));
    auto d = std::make_unique<ConnectDriver>(*w, first, count, window);
    first += count;
    w->setDriver(d.get());
    workers.push_back(std::move(w));
    drivers.push_back(std::move(d));
  }
  const Snapshot before = takeSnapshot(workers, o.broker_pid);
  for (auto& w : workers) {
    if (!w->start()) return abortRun(state, workers);
  }
  std::fprintf(stderr, "connect: opening %d connections to %s...\n", o.connections,
               endpoint.text.c_str());
  if (!waitReady(state, threads, 60 + o.connections / 500.0, "CONNACKs")) {
    return abortRun(state, workers);
  }
  const Snapshot connected = takeSnapshot(workers, o.broker_pid);

  // The comparison script reads the broker's RSS while the connections idle.
  std::printf("HOLDING connections=%d hold_s=%.1f\n", o.connections, o.hold);
  std::fflush(stdout);
  if (!sleepUntil(state, monotonicNs() + static_cast<int64_t>(o.hold * 1e9))) {
    return abortRun(state, workers);
  }
  stopWorkers(state, workers);

  int64_t first_open = std::numeric_limits<int64_t>::max();
  int64_t last_connack = 0;
  std::vector<int64_t> handshakes;
  for (auto& d : drivers) {
    first_open = std::min(first_open, d->firstOpenNs());
    last_connack = std::max(last_connack, d->lastConnackNs());
    handshakes.insert(handshakes.end(), d->connackNs().begin(), d->connackNs().end());
  }
  const double connect_s = std::max<int64_t>(last_connack - first_open, 1) / 1e9;
  const double rate = o.connections / connect_s;
  LatencySummary hs = summarize(handshakes);

  ResultLine r("connect");
  r.add("connections", static_cast<int64_t>(o.connections))
      .add("connect_s", connect_s, 3)
      .add("conn_per_s", rate, 0)
      .add("handshake_p50_us", hs.p50_us, 0)
      .add("handshake_p99_us", hs.p99_us, 0)
      .add("handshake_max_us", hs.max_us, 0)
      .add("connect_window", static_cast<int64_t>(o.connect_window))
      .add("hold_s", o.hold, 1)
      .add("threads", static_cast<int64_t>(threads));
  addCpuFields(r, before, connected, threads);
  if (endpoint.tls != nullptr) {
    const std::string tls = endpoint.tls->negotiated();
    r.add("tls", tls.empty() ? std::string_view("none") : std::string_view(tls));
  }
  std::printf("%s\n", r.str().c_str());
  std::printf(
      "connect: %s connections in %.2f s = %s conn/s (handshake p50 %.0f us, p99 %.0f us), "
      "held %.1f s idle\n%s\n",
      withCommas(o.connections).c_str(), connect_s, withCommas(rate).c_str(), hs.p50_us, hs.p99_us,
      o.hold, cpuNote(before, connected, threads).c_str());
  return 0;
}

}  // namespace gannet::loadgen
