// gannetctl: operator commands against a running gannet node's cluster port.
//
//   gannetctl --server=HOST:PORT --cluster_secret_file=FILE status
//
// Exit status: 0 done, 1 the node could not be reached or refused, 2 usage.

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cluster/admin_client.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7946", "A gannet node's --cluster_listen, HOST:PORT");
ABSL_FLAG(std::string, cluster_secret, "", "The cluster secret (prefer --cluster_secret_file)");
ABSL_FLAG(std::string, cluster_secret_file, "", "File holding the cluster secret");
ABSL_FLAG(uint32_t, timeout_ms, 5000, "How long to wait for the node's answer");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate for a node with --cluster_tls_* set (signed by its CA)");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_ca_file, "", "PEM CA that signed the node's certificate");

namespace {

[[noreturn]] void usageError(const std::string& message) {
  std::fprintf(stderr, "gannetctl: %s\nTry 'gannetctl --help'.\n", message.c_str());
  std::exit(2);
}

std::string secret() {
  std::string s = absl::GetFlag(FLAGS_cluster_secret);
  if (const std::string file = absl::GetFlag(FLAGS_cluster_secret_file); !file.empty()) {
    std::ifstream in(file);
    if (!in) usageError(absl::StrCat("--cluster_secret_file: cannot read ", file));
    std::stringstream text;
    text << in.rdbuf();
    s = std::string(absl::StripAsciiWhitespace(text.str()));
  }
  if (s.empty()) usageError("the cluster secret is needed: --cluster_secret_file=FILE");
  return s;
}

std::string ago(int64_t ms) {
  if (ms < 0) return "never";
  if (ms < 1000) return absl::StrCat(ms, "ms");
  return absl::StrCat(ms / 1000, ".", (ms % 1000) / 100, "s");
}

std::optional<gannet::cluster::TlsMaterial> tls() {
  gannet::cluster::TlsFiles files{absl::GetFlag(FLAGS_tls_cert_file),
                                  absl::GetFlag(FLAGS_tls_key_file), absl::GetFlag(FLAGS_tls_ca_file)};
  if (!files.enabled()) return std::nullopt;
  auto m = gannet::cluster::loadTls(files, "tls_");
  if (!m.ok()) usageError(std::string(m.status().message()));
  return std::move(*m);
}

int status() {
  auto members = gannet::cluster::fetchStatus(absl::GetFlag(FLAGS_server), secret(),
                                              absl::GetFlag(FLAGS_timeout_ms), tls());
  if (!members.ok()) {
    std::fprintf(stderr, "gannetctl: %s\n", std::string(members.status().message()).c_str());
    return 1;
  }
  std::printf("%-5s %-24s %-12s %-15s %-11s %-11s %-7s %-9s %s\n", "node", "cluster address",
              "state", "incarnation", "last heard", "connections", "routes", "sessions", "mqtt");
  for (const auto& m : *members) {
    std::printf("%-5u %-24s %-12s %-15llu %-11s %-11llu %-7llu %-9llu %s\n", m.node_id,
                m.cluster_address.c_str(), m.state.c_str(),
                static_cast<unsigned long long>(m.incarnation), ago(m.last_heard_ms_ago).c_str(),
                static_cast<unsigned long long>(m.connections),
                static_cast<unsigned long long>(m.routes),
                static_cast<unsigned long long>(m.sessions),
                m.mqtt_address.empty() ? "-" : m.mqtt_address.c_str());
  }
  return 0;
}

int drain() {
  auto sessions = gannet::cluster::startDrain(absl::GetFlag(FLAGS_server), secret(),
                                              absl::GetFlag(FLAGS_timeout_ms), tls());
  if (!sessions.ok()) {
    std::fprintf(stderr, "gannetctl: %s\n", std::string(sessions.status().message()).c_str());
    return absl::IsAlreadyExists(sessions.status()) ? 0 : 1;
  }
  std::printf("%s: draining, %llu sessions to hand over; it exits when done (watch `status`)\n",
              absl::GetFlag(FLAGS_server).c_str(), static_cast<unsigned long long>(*sessions));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Operator commands against a gannet node.\n"
      "  gannetctl --server=HOST:PORT --cluster_secret_file=FILE status\n"
      "Commands:\n"
      "  status   the cluster's members as that node sees them: state (alive, draining,\n"
      "           suspect, dead, unreachable), incarnation, last heard, connections,\n"
      "           routes, sessions\n"
      "  drain    hand the node's sessions to its peers, disconnect its clients (MQTT 5:\n"
      "           0x9C with a Server Reference) and stop it (exit 0), like SIGTERM");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) usageError("expected one command: status or drain");
  const std::string command = args[1];
  if (command == "status") return status();
  if (command == "drain") return drain();
  usageError(absl::StrCat("unknown command '", command, "'"));
}
