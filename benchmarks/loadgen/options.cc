#include "benchmarks/loadgen/options.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string_view>

namespace gannet::loadgen {
namespace {

constexpr const char* kUsage = R"(usage: gannet_loadgen --scenario=NAME [flags]

MQTT 3.1.1 load generator (QoS 0/1), over TCP or TLS. Prints one line
"RESULT key=value ..." for scripts, then one line for people.

Scenarios:
  connect   open --connections as fast as possible (--connect_window handshakes
            at a time), report connections/s, print "HOLDING ..." and keep them
            idle for --hold seconds, then disconnect.
  fanin     --publishers (16) -> 1 subscriber on a '+' wildcard filter.
  fanout    1 publisher -> --subscribers (64) on the same topic.
  latency   --pairs (100) publisher/subscriber pairs, QoS 1, --rate (20000) msg/s
            in total, evenly spaced; end-to-end latency percentiles.
  With --rate=0 (the default for fanin/fanout) publishers send as fast as their
  sockets accept: the broker's TCP backpressure sets the pace. So that kernel
  socket buffers (up to tcp_rmem max per socket) do not fill with hundreds of
  MB, they also stay at most --max_ahead deliveries ahead of the subscribers.
  Payloads of 16 bytes or more carry a timestamp: subscribers report end-to-end
  latency percentiles (unpaced: from when the message was queued for sending,
  one message in 17 sampled; under saturation that is mostly queueing).

Sessions: clean (cleanSession=1) for every client, unless --persistent:
  subscribers then connect with cleanSession=0 and fixed client ids derived
  from --topic_prefix (default "lg/persistent" then), so a repeated run resumes
  the same sessions; they still PUBACK QoS 1. Publishers stay clean.

Flags (--name=value or --name value):
  --host=127.0.0.1  --port=1883  --scenario=NAME
  --sub_port=PORT (subscribers connect to this port of --host, e.g. another
    node of a cluster; publishers to --port)
  --connections=10000 --hold=5 --connect_window=100 --keepalive=60
  --publishers  --subscribers  --pairs=100  --qos=0|1  --payload=64 (bytes)
  --duration=10 (measured s)  --warmup=2 (s)  --rate (msg/s, 0 = unlimited)
  --window=64 (QoS 1 in flight per publisher)  --threads=1
  --max_ahead=50000 (deliveries in flight when unpaced, 0 = no limit)
  --broker_pid=PID (also report the broker's CPU use and disk write_bytes)
  --topic_prefix=lg/<pid>  --persistent[=true|false]

TLS (--tls): every connection runs OpenSSL over its socket (memory BIOs, one
  send() per flush); a full handshake each time (no session resumption), timed
  as part of the connection (connect: from TCP connect to CONNACK). RESULT gets
  tls=VERSION/CIPHER/GROUP/KEY of the first handshake.
  --tls[=true|false]  --cafile=PEM (verify the broker's certificate, which must
  name --host; without it the broker is not verified)  --cert=PEM --key=PEM
  (mutual TLS)  --tls_version=1.2|1.3 (only that one; default either)
)";

[[noreturn]] void badFlag(const std::string& message) {
  std::fprintf(stderr, "gannet_loadgen: %s\n(see --help)\n", message.c_str());
  std::exit(2);
}

template <typename T>
std::function<void(std::string_view)> intFlag(const char* name, T* out, long long lo,
                                              long long hi) {
  return [=](std::string_view v) {
    long long x = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc() || end != v.data() + v.size() || x < lo || x > hi) {
      badFlag("--" + std::string(name) + ": expected an integer in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "], got '" + std::string(v) + "'");
    }
    *out = static_cast<T>(x);
  };
}

std::function<void(std::string_view)> doubleFlag(const char* name, double* out, double lo,
                                                 double hi) {
  return [=](std::string_view v) {
    std::string s(v);
    char* end = nullptr;
    double x = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !(x >= lo && x <= hi)) {
      badFlag("--" + std::string(name) + ": expected a number in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "], got '" + s + "'");
    }
    *out = x;
  };
}

std::function<void(std::string_view)> boolFlag(const char* name, bool* out) {
  return [=](std::string_view v) {
    if (v == "true" || v == "1") {
      *out = true;
    } else if (v == "false" || v == "0") {
      *out = false;
    } else {
      badFlag("--" + std::string(name) + ": expected true or false, got '" + std::string(v) + "'");
    }
  };
}

}  // namespace

Options parseOptions(int argc, char** argv) {
  Options o;
  const std::map<std::string, std::function<void(std::string_view)>, std::less<>> flags = {
      {"host", [&](std::string_view v) { o.host = v; }},
      {"port", intFlag("port", &o.port, 1, 65535)},
      {"sub_port", intFlag("sub_port", &o.sub_port, 1, 65535)},
      {"scenario", [&](std::string_view v) { o.scenario = v; }},
      {"connections", intFlag("connections", &o.connections, 1, 1'000'000)},
      {"publishers", intFlag("publishers", &o.publishers, 1, 100'000)},
      {"subscribers", intFlag("subscribers", &o.subscribers, 1, 100'000)},
      {"qos", intFlag("qos", &o.qos, 0, 1)},
      {"payload", intFlag("payload", &o.payload, 0, 256 * 1024 * 1024)},
      {"duration", doubleFlag("duration", &o.duration, 0.1, 86400)},
      {"warmup", doubleFlag("warmup", &o.warmup, 0, 3600)},
      {"rate", doubleFlag("rate", &o.rate, 0, 1e9)},
      {"pairs", intFlag("pairs", &o.pairs, 1, 100'000)},
      {"threads", intFlag("threads", &o.threads, 1, 256)},
      {"hold", doubleFlag("hold", &o.hold, 0, 86400)},
      {"window", intFlag("window", &o.window, 1, 65535)},
      {"connect_window", intFlag("connect_window", &o.connect_window, 1, 1'000'000)},
      {"max_ahead", intFlag("max_ahead", &o.max_ahead, 0, 1LL << 40)},
      {"keepalive", intFlag("keepalive", &o.keepalive, 0, 65535)},
      {"broker_pid", intFlag("broker_pid", &o.broker_pid, 1, 1LL << 30)},
      {"topic_prefix", [&](std::string_view v) { o.topic_prefix = v; }},
      {"persistent", boolFlag("persistent", &o.persistent)},
      {"tls", boolFlag("tls", &o.tls)},
      {"cafile", [&](std::string_view v) { o.ca_file = v; }},
      {"cert", [&](std::string_view v) { o.cert_file = v; }},
      {"key", [&](std::string_view v) { o.key_file = v; }},
      {"tls_version", [&](std::string_view v) { o.tls_version = v; }},
  };
  // Flags that may stand alone: "--persistent" means "--persistent=true".
  const std::set<std::string, std::less<>> switches = {"persistent", "tls"};

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg.substr(0, 2) != "--") badFlag("unexpected argument '" + std::string(arg) + "'");
    arg.remove_prefix(2);
    std::string_view name = arg;
    std::string_view value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    auto it = flags.find(name);
    if (it == flags.end()) badFlag("unknown flag --" + std::string(name));
    if (!has_value && switches.count(name) != 0) {
      value = "true";
      has_value = true;
    }
    if (!has_value) {
      if (i + 1 >= argc) badFlag("--" + std::string(name) + " needs a value");
      value = argv[++i];
    }
    it->second(value);
  }

  if (o.scenario.empty()) badFlag("--scenario is required (connect, fanin, fanout, latency)");
  if (o.scenario == "fanin") {
    if (o.publishers < 0) o.publishers = 16;
    if (o.subscribers < 0) o.subscribers = 1;
  } else if (o.scenario == "fanout") {
    if (o.publishers < 0) o.publishers = 1;
    if (o.subscribers < 0) o.subscribers = 64;
  } else if (o.scenario == "latency") {
    if (o.qos < 0) o.qos = 1;
    if (o.rate < 0) o.rate = 20000;
    if (o.rate == 0) badFlag("--rate: the latency scenario needs a fixed rate > 0");
    if (o.payload < 16) badFlag("--payload: latency needs at least 16 bytes (timestamp, sequence)");
  } else if (o.scenario != "connect") {
    badFlag("--scenario: unknown '" + o.scenario + "' (connect, fanin, fanout, latency)");
  }
  if (o.qos < 0) o.qos = 0;
  if (o.rate < 0) o.rate = 0;
  if (o.host.empty()) badFlag("--host: empty");
  if (o.persistent && o.scenario == "connect") {
    badFlag("--persistent: only for fanin, fanout and latency (it makes subscribers persistent)");
  }
  if (!o.tls && (!o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty() ||
                 !o.tls_version.empty())) {
    badFlag("--cafile, --cert, --key and --tls_version need --tls");
  }
  if (o.cert_file.empty() != o.key_file.empty()) badFlag("--cert and --key go together");
  if (!o.tls_version.empty() && o.tls_version != "1.2" && o.tls_version != "1.3") {
    badFlag("--tls_version: expected 1.2 or 1.3, got '" + o.tls_version + "'");
  }
  if (o.topic_prefix.empty()) {
    o.topic_prefix = o.persistent ? "lg/persistent" : "lg/" + std::to_string(getpid());
  }
  if (o.topic_prefix.find_first_of("+#") != std::string::npos) {
    badFlag("--topic_prefix: must not contain wildcards");
  }
  return o;
}

}  // namespace gannet::loadgen
