#pragma once
// Command-line flags of gannet_loadgen. A hand-written parser rather than
// absl/flags: bad flags must exit with status 2 and a one-line reason, and the
// generator must build with nothing but a C++20 compiler.

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace gannet::loadgen {

struct Options {
  std::string host = "127.0.0.1";
  int port = 1883;
  int sub_port = 0;  // subscribers connect here (another node of a cluster); 0: --port
  std::string scenario;  // connect | fanin | fanout | latency
  int connections = 10000;
  int publishers = -1;   // scenario default: fanin 16, fanout 1
  int subscribers = -1;  // scenario default: fanin 1, fanout 64
  int qos = -1;          // scenario default: 1 for latency, else 0
  int payload = 64;
  double duration = 10;  // measured seconds
  double warmup = 2;     // seconds of traffic before the measured window
  double rate = -1;      // total msg/s; latency default 20000, else 0 = unlimited
  int pairs = 100;
  int threads = 1;
  double hold = 5;           // seconds the connect scenario keeps its connections idle
  int window = 64;           // QoS 1 PUBLISHes in flight per publisher
  int connect_window = 100;  // TCP+MQTT handshakes in progress at once
  // Unpaced runs: deliveries the publishers may be ahead of the subscribers
  // (published × fan-out − received); 0 = bounded by TCP backpressure alone.
  int64_t max_ahead = 50000;
  int keepalive = 60;
  pid_t broker_pid = 0;      // if set, the broker's CPU use and disk writes are reported too
  std::string topic_prefix;  // default "lg/<pid>", with --persistent "lg/persistent"
  // Subscribers connect with cleanSession=0 and client ids derived from
  // topic_prefix, so that a repeated run resumes the same sessions.
  bool persistent = false;
  // MQTT over TLS (every connection; the handshake counts in connect times).
  bool tls = false;
  std::string ca_file;    // verifies the broker's certificate; empty: not verified
  std::string cert_file;  // client certificate for mutual TLS (with key_file)
  std::string key_file;
  std::string tls_version;  // "1.2" or "1.3"; empty: either
};

// Parses argv into `options`, filling the scenario defaults. On a bad flag prints
// the reason to stderr and exits with status 2; --help prints usage and exits 0.
Options parseOptions(int argc, char** argv);

}  // namespace gannet::loadgen
