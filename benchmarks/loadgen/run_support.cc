#include "benchmarks/loadgen/run_support.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "benchmarks/loadgen/cpu_time.h"

namespace gannet::loadgen {

Snapshot takeSnapshot(Workers& workers, pid_t broker_pid) {
  Snapshot s;
  s.ns = monotonicNs();
  s.loadgen_cpu_s = processCpuSeconds();
  s.loadgen_wait_s = runQueueWaitSeconds(getpid());
  if (broker_pid > 0) {
    s.broker_cpu_s = processCpuSeconds(broker_pid);
    s.broker_wait_s = runQueueWaitSeconds(broker_pid);
    s.broker_write_bytes = processWriteBytes(broker_pid);
  }
  for (auto& w : workers) {
    WorkerCounters& c = w->counters();
    s.published += c.published.load(std::memory_order_relaxed);
    s.acked += c.acked.load(std::memory_order_relaxed);
    s.received += c.received.load(std::memory_order_relaxed);
    s.window_stalls += c.window_stalls.load(std::memory_order_relaxed);
    s.protocol_errors += c.protocol_errors.load(std::memory_order_relaxed);
    s.cap_releases += c.cap_releases.load(std::memory_order_relaxed);
  }
  return s;
}

bool sleepUntil(RunState& state, int64_t deadline_ns) {
  while (true) {
    if (state.failed()) return false;
    int64_t left = deadline_ns - monotonicNs();
    if (left <= 0) return true;
    std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(left, 20'000'000)));
  }
}

bool waitReady(RunState& state, int workers, double timeout_s, const std::string& what) {
  const int64_t deadline = monotonicNs() + static_cast<int64_t>(timeout_s * 1e9);
  while (state.ready_workers.load(std::memory_order_acquire) < workers) {
    if (state.failed()) return false;
    if (monotonicNs() > deadline) {
      state.fail("timed out after " + std::to_string(static_cast<int>(timeout_s)) +
                 " s waiting for " + what + " (is the broker answering?)");
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

void stopWorkers(RunState& state, Workers& workers) {
  state.phase.store(Phase::kStop, std::memory_order_release);
  for (auto& w : workers) w->join();
}

int abortRun(RunState& state, Workers& workers) {
  stopWorkers(state, workers);
  std::fprintf(stderr, "gannet_loadgen: %s\n", state.error().c_str());
  return 1;
}

namespace {

// Share of the window [a, b] (of one core) between two readings; <0: unknown.
double share(double before, double after, const Snapshot& a, const Snapshot& b) {
  const double wall = (b.ns - a.ns) / 1e9;
  if (before < 0 || after < 0 || wall <= 0) return -1;
  return (after - before) / wall;
}

}  // namespace

std::string cpuNote(const Snapshot& a, const Snapshot& b, int threads) {
  const double cpu = b.loadgen_cpu_s - a.loadgen_cpu_s;
  const double per_thread = share(a.loadgen_cpu_s, b.loadgen_cpu_s, a, b) / threads;
  char buf[256];
  int n = std::snprintf(buf, sizeof(buf), "loadgen CPU %.2f s = %.0f%% of %d thread%s", cpu,
                        per_thread * 100, threads, threads == 1 ? "" : "s");
  const double broker = share(a.broker_cpu_s, b.broker_cpu_s, a, b);
  if (broker >= 0) {
    n += std::snprintf(buf + n, sizeof(buf) - n, "; broker CPU %.0f%% of a core", broker * 100);
  }
  std::string note(buf);
  if (per_thread > 0.85) {
    note +=
        "\nWARNING: the load generator used >85% of its threads; it may be the bottleneck"
        " (try --threads)";
  }
  const double lg_wait = share(a.loadgen_wait_s, b.loadgen_wait_s, a, b);
  const double broker_wait = share(a.broker_wait_s, b.broker_wait_s, a, b);
  if (lg_wait > 0.05 || broker_wait > 0.05) {
    std::snprintf(buf, sizeof(buf),
                  "\nWARNING: waiting for a CPU behind other processes: broker %.0f%%, loadgen"
                  " %.0f%% of the window; the machine was not idle, figures are disturbed",
                  std::max(broker_wait, 0.0) * 100, std::max(lg_wait, 0.0) * 100);
    note += buf;
  }
  return note;
}

void addCpuFields(ResultLine& line, const Snapshot& a, const Snapshot& b, int threads) {
  line.add("lg_cpu_s", b.loadgen_cpu_s - a.loadgen_cpu_s, 3)
      .add("lg_cpu_util", share(a.loadgen_cpu_s, b.loadgen_cpu_s, a, b) / threads, 3);
  if (double w = share(a.loadgen_wait_s, b.loadgen_wait_s, a, b); w >= 0) {
    line.add("lg_wait_util", w, 3);
  }
  if (double u = share(a.broker_cpu_s, b.broker_cpu_s, a, b); u >= 0) {
    line.add("broker_cpu_util", u, 3);
  }
  if (double w = share(a.broker_wait_s, b.broker_wait_s, a, b); w >= 0) {
    line.add("broker_wait_util", w, 3);
  }
}

}  // namespace gannet::loadgen
