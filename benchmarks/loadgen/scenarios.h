#pragma once
// Entry points of the scenarios. Each runs on the main thread, drives its
// Workers through the phases of RunState, prints "RESULT ..." and a human line
// on stdout, and returns the process exit status (0, or 1 if the broker refused,
// was not listening, closed connections or timed out).

#include "benchmarks/loadgen/options.h"
#include "benchmarks/loadgen/worker.h"

namespace gannet::loadgen {

// connect: N connections as fast as possible, then held idle.
int runConnectScenario(const Options& options, const Endpoint& endpoint);

// fanin, fanout and latency: publishers and subscribers, as fast as the sockets
// accept or paced at a fixed total rate.
// Publishers connect to `endpoint`, subscribers to `sub_endpoint` (the same
// broker, or another node of a cluster).
int runPubSubScenario(const Options& options, const Endpoint& endpoint,
                      const Endpoint& sub_endpoint);

}  // namespace gannet::loadgen
