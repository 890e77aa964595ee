#pragma once
// Clocks and CPU time: the generator's own (so readers can see it is not the
// bottleneck) and, given its pid, the broker's; the broker's disk writes.

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

// Bytes process `pid` (all its threads, including exited ones) caused to be
// sent to the storage layer: `write_bytes` of /proc/PID/io. The kernel counts a
// page cache page when it is dirtied (4 KiB granules; rewriting a page that is
// still dirty adds nothing, rewriting one written back since adds 4 KiB again),
// so it covers WAL appends, SST flushes and compactions alike, fsync or not.
// Negative if it cannot be read (other user's process, no CONFIG_TASK_IO_ACCOUNTING).
int64_t processWriteBytes(pid_t pid);

}  // namespace gannet::loadgen
