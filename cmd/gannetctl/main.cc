// gannetctl: operator commands against a running gannet node's cluster port,
// and two that need no node: doctor (an MQTT client that says why clients cannot
// connect) and passwd (writes password files).
//
//   gannetctl --server=HOST:PORT --cluster_secret_file=FILE status
//   gannetctl --server=HOST:PORT --cluster_secret_file=FILE kick CLIENT_ID [--end_session]
//   gannetctl doctor HOST:PORT [--tls ...]
//   gannetctl passwd FILE USER [PASSWORD]
//
// Exit status: 0 done, 1 the node could not be reached or refused (doctor: a
// problem was found; kick: the client was not found), 2 usage.

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
#include "cmd/gannetctl/doctor.h"
#include "cmd/gannetctl/passwd.h"

ABSL_FLAG(std::string, server, "127.0.0.1:7946", "A gannet node's --cluster_listen, HOST:PORT");
ABSL_FLAG(std::string, cluster_secret, "", "The cluster secret (prefer --cluster_secret_file)");
ABSL_FLAG(std::string, cluster_secret_file, "", "File holding the cluster secret");
ABSL_FLAG(uint32_t, timeout_ms, 5000, "How long to wait for the node's answer");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate for a node with --cluster_tls_* set (signed by its CA)");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_ca_file, "", "PEM CA that signed the node's certificate");

// kick
ABSL_FLAG(bool, end_session, false,
          "kick: also end the client's session (subscriptions, queued messages)");

// doctor
ABSL_FLAG(bool, tls, false, "doctor: connect with TLS");
ABSL_FLAG(std::string, cafile, "",
          "doctor: PEM CA to verify the server's certificate (default: the system's CAs)");
ABSL_FLAG(std::string, cert, "", "doctor: PEM client certificate for mutual TLS (with --key)");
ABSL_FLAG(std::string, key, "", "doctor: PEM private key of --cert");
ABSL_FLAG(bool, insecure, false, "doctor: do not verify the server's certificate");
ABSL_FLAG(std::optional<std::string>, user, std::nullopt, "doctor: MQTT user name");
ABSL_FLAG(std::optional<std::string>, password, std::nullopt, "doctor: MQTT password");
ABSL_FLAG(double, timeout, 5, "doctor: seconds to wait in each step");
ABSL_FLAG(std::string, mqtt_version, "3.1.1", "doctor: MQTT version, 3.1.1 or 5");

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
                                  absl::GetFlag(FLAGS_tls_key_file),
                                  absl::GetFlag(FLAGS_tls_ca_file)};
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
    std::printf(
        "%-5u %-24s %-12s %-15llu %-11s %-11llu %-7llu %-9llu %s\n", m.node_id,
        m.cluster_address.c_str(), m.state.c_str(), static_cast<unsigned long long>(m.incarnation),
        ago(m.last_heard_ms_ago).c_str(), static_cast<unsigned long long>(m.connections),
        static_cast<unsigned long long>(m.routes), static_cast<unsigned long long>(m.sessions),
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

// What one node did for a kick, in plain words; true when it found the client
// (connected there, or its session with --end_session).
bool reportKick(const std::string& where, const std::string& client_id, bool end_session,
                const gannet::cluster::KickReplyView& r) {
  if (r.connected) {
    std::printf(
        "%s: client '%s' was connected there: disconnected (MQTT 5: DISCONNECT 0x98 "
        "Administrative action; 3.1.1: connection closed), its will (if any) published\n",
        where.c_str(), client_id.c_str());
  } else if (end_session && r.session_found) {
    std::printf("%s: client '%s' was not connected; its session was there\n", where.c_str(),
                client_id.c_str());
  } else {
    return false;
  }
  if (r.session_ended) {
    std::printf("%s: session of '%s' ended (subscriptions and queued messages deleted)\n",
                where.c_str(), client_id.c_str());
  } else if (end_session) {
    std::printf("%s: session of '%s' could not be ended (it was just handed to another node?)\n",
                where.c_str(), client_id.c_str());
  } else {
    std::printf(
        "%s: session of '%s' kept (it expires as the client asked; "
        "--end_session ends it)\n",
        where.c_str(), client_id.c_str());
  }
  return true;
}

// Asks --server first, then every other member its status lists: the operator
// need not know where the client is connected.
int kick(const std::vector<char*>& args) {
  if (args.size() != 3 || args[2][0] == '\0') {
    usageError("usage: gannetctl kick CLIENT_ID [--end_session]");
  }
  const std::string client_id = args[2];
  const bool end_session = absl::GetFlag(FLAGS_end_session);
  const std::string server = absl::GetFlag(FLAGS_server);
  const std::string s = secret();
  const int64_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
  const auto t = tls();
  auto first = gannet::cluster::kickClient(server, s, client_id, end_session, timeout_ms, t);
  if (!first.ok()) {
    std::fprintf(stderr, "gannetctl: %s\n", std::string(first.status().message()).c_str());
    return 1;
  }
  if (reportKick(server, client_id, end_session, *first)) return 0;
  auto members = gannet::cluster::fetchStatus(server, s, timeout_ms, t);
  if (!members.ok()) {
    std::fprintf(stderr,
                 "gannetctl: client '%s' is not connected to %s, and its members are "
                 "not known: %s\n",
                 client_id.c_str(), server.c_str(),
                 std::string(members.status().message()).c_str());
    return 1;
  }
  std::vector<std::string> kept_on;    // nodes holding its session, offline
  std::vector<std::string> not_asked;  // nodes that did not answer
  auto name = [](const gannet::cluster::MemberStatusView& m) {
    return absl::StrCat("node ", m.node_id, " (", m.cluster_address, ")");
  };
  if (first->session_found) kept_on.push_back(name((*members)[0]));
  for (size_t i = 1; i < members->size(); ++i) {  // [0] is --server itself
    const auto& m = (*members)[i];
    const std::string where = name(m);
    auto r =
        gannet::cluster::kickClient(m.cluster_address, s, client_id, end_session, timeout_ms, t);
    if (!r.ok()) {
      not_asked.push_back(absl::StrCat(where, ": ", r.status().message()));
      continue;
    }
    if (reportKick(where, client_id, end_session, *r)) return 0;
    if (r->session_found) kept_on.push_back(where);
  }
  std::fprintf(stderr,
               "gannetctl: client '%s' is not connected to any node of the cluster "
               "(asked %zu of %zu)\n",
               client_id.c_str(), members->size() - not_asked.size(), members->size());
  for (const std::string& where : kept_on) {
    std::fprintf(stderr, "gannetctl: its session is kept on %s (--end_session ends it)\n",
                 where.c_str());
  }
  for (const std::string& n : not_asked) {
    std::fprintf(stderr, "gannetctl: could not ask %s\n", n.c_str());
  }
  return 1;
}

int doctor(const std::vector<char*>& args) {
  if (args.size() != 3) usageError("usage: gannetctl doctor HOST:PORT [--tls ...]");
  auto where = gannet::ctl::splitHostPort(args[2]);
  if (!where.ok()) usageError(std::string(where.status().message()));
  auto version = gannet::ctl::parseMqttVersion(absl::GetFlag(FLAGS_mqtt_version));
  if (!version.ok()) usageError(std::string(version.status().message()));
  gannet::ctl::DoctorOptions o;
  o.host = where->first;
  o.port = where->second;
  o.tls = absl::GetFlag(FLAGS_tls);
  o.cafile = absl::GetFlag(FLAGS_cafile);
  o.cert = absl::GetFlag(FLAGS_cert);
  o.key = absl::GetFlag(FLAGS_key);
  o.insecure = absl::GetFlag(FLAGS_insecure);
  o.user = absl::GetFlag(FLAGS_user);
  o.password = absl::GetFlag(FLAGS_password);
  o.timeout_s = absl::GetFlag(FLAGS_timeout);
  o.version = *version;
  if (!(o.timeout_s > 0 && o.timeout_s <= 3600)) usageError("--timeout: seconds, more than 0");
  if (o.cert.empty() != o.key.empty()) usageError("--cert and --key go together");
  if (!o.tls && (!o.cafile.empty() || !o.cert.empty() || o.insecure)) {
    usageError("--cafile, --cert, --key and --insecure need --tls");
  }
  if (o.password && !o.user) usageError("--password needs --user");
  return gannet::ctl::runDoctor(o, stdout);
}

int passwd(const std::vector<char*>& args) {
  if (args.size() != 4 && args.size() != 5)
    usageError("usage: gannetctl passwd FILE USER [PASSWORD]");
  std::optional<std::string> password;
  if (args.size() == 5) password = args[4];
  return gannet::ctl::runPasswd(args[2], args[3], std::move(password));
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
      "           0x9C with a Server Reference) and stop it (exit 0), like SIGTERM\n"
      "  kick CLIENT_ID [--end_session]\n"
      "           disconnect that client wherever it is connected in the cluster (MQTT 5:\n"
      "           DISCONNECT 0x98 Administrative action; its will is published); with\n"
      "           --end_session its session ends too (exit 0 done, 1 not found)\n"
      "  doctor HOST:PORT [--tls [--cafile=F] [--cert=F --key=F] [--insecure]]\n"
      "           [--user=U --password=P] [--timeout=SECONDS] [--mqtt_version=3.1.1|5]\n"
      "           connect as an MQTT client would and say what stops clients and how to\n"
      "           fix it (exit 0 all well, 1 a problem found)\n"
      "  passwd FILE USER [PASSWORD]\n"
      "           add or update USER in a Mosquitto-format password file ($7$ PBKDF2);\n"
      "           without PASSWORD: prompted twice on a terminal, else one line of stdin");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) usageError("expected a command: status, drain, kick, doctor or passwd");
  const std::string command = args[1];
  if (command == "doctor") return doctor(args);
  if (command == "passwd") return passwd(args);
  if (command == "kick") return kick(args);
  if (args.size() != 2) usageError(absl::StrCat("'", command, "' takes no arguments"));
  if (command == "status") return status();
  if (command == "drain") return drain();
  usageError(absl::StrCat("unknown command '", command, "'"));
}
