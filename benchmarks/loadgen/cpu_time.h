#pragma once
// Clocks and CPU time: the generator's own (so readers can see it is not the
// bottleneck) and, given its pid, the broker's.

#include <sys/types.h>

#include <cstdint>

namespace gannet::loadgen {

// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall). The latency timestamps
// carried in payloads use this clock: sender and receiver are one process.
int64_t monotonicNs();

// User + system CPU seconds of this process, all threads (getrusage).
double processCpuSeconds();

// User + system CPU seconds of process `pid`, all threads, from /proc/PID/stat;
// negative if it cannot be read.
double processCpuSeconds(pid_t pid);

// Seconds that the threads of process `pid` spent runnable but waiting for a
// CPU, summed over its threads (/proc/PID/task/*/schedstat, second field). On a
// shared machine this says how much other processes disturbed a measurement.
// Negative if it cannot be read. Threads that exited are not counted.
double runQueueWaitSeconds(pid_t pid);

}  // namespace gannet::loadgen
