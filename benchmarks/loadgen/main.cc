// gannet_loadgen: an MQTT 3.1.1 load generator for comparing brokers.
// See README.md beside this file and docs/performance.md.

#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "benchmarks/loadgen/options.h"
#include "benchmarks/loadgen/scenarios.h"
#include "benchmarks/loadgen/tls_client.h"
#include "benchmarks/loadgen/worker.h"

namespace gannet::loadgen {
namespace {

// Resolves --host/--port; exits 2 if the host is not a usable address.
Endpoint resolve(const Options& o, int port_number) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(port_number);
  int rc = getaddrinfo(o.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    std::fprintf(stderr, "gannet_loadgen: --host: cannot resolve '%s': %s\n", o.host.c_str(),
                 gai_strerror(rc));
    std::exit(2);
  }
  Endpoint ep;
  std::memcpy(&ep.addr, res->ai_addr, res->ai_addrlen);
  ep.len = res->ai_addrlen;
  ep.text = (res->ai_family == AF_INET6 ? "[" + o.host + "]" : o.host) + ":" + port;
  freeaddrinfo(res);
  return ep;
}

// Raises the soft descriptor limit to the hard one; false if still short of `needed`.
bool ensureDescriptors(rlim_t needed, rlim_t* limit) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return true;
  if (rl.rlim_cur < needed && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  *limit = rl.rlim_cur;
  return rl.rlim_cur >= needed;
}

int run(int argc, char** argv) {
  const Options o = parseOptions(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  Endpoint endpoint = resolve(o, o.port);
  Endpoint sub_endpoint = resolve(o, o.sub_port != 0 ? o.sub_port : o.port);
  std::unique_ptr<TlsClientContext> tls;
  if (o.tls) {
    std::string error;
    tls = TlsClientContext::create({.host = o.host,
                                    .ca_file = o.ca_file,
                                    .cert_file = o.cert_file,
                                    .key_file = o.key_file,
                                    .version = o.tls_version,
                                    .release_buffers = o.scenario == "connect"},
                                   &error);
    if (tls == nullptr) {
      std::fprintf(stderr, "gannet_loadgen: %s\n", error.c_str());
      return 2;
    }
    endpoint.tls = sub_endpoint.tls = tls.get();
  }

  const long long sockets = o.scenario == "connect" ? o.connections
                            : o.scenario == "latency"
                                ? 2LL * o.pairs
                                : static_cast<long long>(o.publishers) + o.subscribers;
  rlim_t limit = 0;
  if (!ensureDescriptors(static_cast<rlim_t>(sockets + 64), &limit)) {
    std::fprintf(stderr,
                 "gannet_loadgen: %lld connections need %lld file descriptors, the limit is %llu:"
                 " raise it (ulimit -n)\n",
                 sockets, sockets + 64, static_cast<unsigned long long>(limit));
    return 1;
  }
  return o.scenario == "connect" ? runConnectScenario(o, endpoint) : runPubSubScenario(o, endpoint, sub_endpoint);
}

}  // namespace
}  // namespace gannet::loadgen

int main(int argc, char** argv) { return gannet::loadgen::run(argc, argv); }
