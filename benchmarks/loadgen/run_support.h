#pragma once
// Main-thread helpers shared by the scenarios: waiting on the workers, and
// snapshots of counters and CPU time at the edges of a measured window.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "benchmarks/loadgen/report.h"
#include "benchmarks/loadgen/run_state.h"
#include "benchmarks/loadgen/worker.h"

namespace gannet::loadgen {

using Workers = std::vector<std::unique_ptr<Worker>>;

struct Snapshot {
  int64_t ns = 0;
  double loadgen_cpu_s = 0;
  double broker_cpu_s = -1;    // negative: unknown
  double loadgen_wait_s = -1;  // runnable but not running, all threads
  double broker_wait_s = -1;
  int64_t broker_write_bytes = -1;  // /proc/PID/io write_bytes; negative: unknown
  uint64_t published = 0;
  uint64_t acked = 0;
  uint64_t received = 0;
  uint64_t window_stalls = 0;
  uint64_t protocol_errors = 0;
  uint64_t cap_releases = 0;
};

Snapshot takeSnapshot(Workers& workers, pid_t broker_pid);

// Sleeps until `deadline_ns` (monotonic). False if the run failed meanwhile.
bool sleepUntil(RunState& state, int64_t deadline_ns);

// Waits until every worker is ready. False (state failed with a reason) on
// failure or timeout.
bool waitReady(RunState& state, int workers, double timeout_s, const std::string& what);

// Stops and joins the workers, prints the failure, returns exit status 1.
int abortRun(RunState& state, Workers& workers);

// Stops and joins the workers.
void stopWorkers(RunState& state, Workers& workers);

// "loadgen CPU 1.2 s = 15% of 1 thread; broker CPU 98%", and warnings when the
// generator came close to saturating its threads or when either process
// waited for a CPU (other processes competing for the machine).
std::string cpuNote(const Snapshot& a, const Snapshot& b, int threads);

// Adds lg_cpu_s, lg_cpu_util, lg_wait_util, broker_cpu_util, broker_wait_util
// for the window [a, b].
void addCpuFields(ResultLine& line, const Snapshot& a, const Snapshot& b, int threads);

}  // namespace gannet::loadgen
