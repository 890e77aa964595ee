// gannet: one Gannet node. Flags are Abseil flags (docs/configuration.md);
// `gannet` with no flags is a single-node broker on 0.0.0.0:1883 with data in ./data.

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "base/logging.h"
#include "broker/net/address.h"
#include "broker/auth/acl.h"
#include "broker/auth/password_file.h"
#include "broker/server/node.h"

ABSL_FLAG(uint32_t, node_id, 1, "Stable id of this node in its cluster (1, 2, 3, ...)");
ABSL_FLAG(std::string, mqtt_listen, "0.0.0.0:1883", "MQTT TCP listener, HOST:PORT (port 0: any free port)");
ABSL_FLAG(std::string, data_dir, "./data", "Directory for durable state; created if missing");
ABSL_FLAG(bool, fsync, false,
          "Sync the store's write-ahead log on every commit: survives power loss, not only "
          "kill -9 (slower)");
ABSL_FLAG(uint64_t, journal_segment_bytes, uint64_t{64} << 20,
          "Size at which a worker's inflight journal (DATA_DIR/journal) starts a new file; "
          "records unacknowledged for about two files move into the store");
ABSL_FLAG(std::string, cluster_listen, "",
          "Cluster (gRPC) listener HOST:PORT for peers and gannetctl; empty: a single node");
ABSL_FLAG(std::string, peers, "",
          "The nodes of the cluster: ID@HOST:PORT,... (their --cluster_listen); this node's own entry is skipped");
ABSL_FLAG(std::string, cluster_secret, "",
          "Secret shared by every node of the cluster (prefer --cluster_secret_file)");
ABSL_FLAG(std::string, cluster_secret_file, "",
          "File holding the cluster secret (surrounding whitespace ignored)");
ABSL_FLAG(std::string, cluster_tls_cert_file, "",
          "PEM certificate of this node for mutual TLS on the cluster port (with "
          "--cluster_tls_key_file and --cluster_tls_ca_file; none: plaintext)");
ABSL_FLAG(std::string, cluster_tls_key_file, "", "PEM private key of --cluster_tls_cert_file");
ABSL_FLAG(std::string, cluster_tls_ca_file, "",
          "PEM CA certificates that sign every node's (and gannetctl's) certificate");
ABSL_FLAG(std::string, mqtt_advertise, "",
          "HOST:PORT clients reach this node's MQTT listener at (sent to clients of a draining "
          "peer as Server Reference); default: --mqtt_listen");
ABSL_FLAG(uint32_t, drain_timeout, 30,
          "Seconds a drain (SIGTERM in a cluster, gannetctl drain) may take before the node "
          "stops anyway, leaving what it could not hand over on disk");
ABSL_FLAG(uint64_t, cluster_spool_max_messages, 1000000,
          "Messages kept on disk for a peer whose link is down, sent when it is back; over "
          "this, publishes that match it are refused (QoS >= 1) or dropped (QoS 0)");
ABSL_FLAG(uint32_t, replication_factor, 2,
          "Nodes that hold each persistent session, this one included (1 = no replication): "
          "its changes are stored on the others before they are acknowledged");
ABSL_FLAG(uint32_t, cluster_heartbeat_ms, 500, "Heartbeat interval on each cluster link");
ABSL_FLAG(uint32_t, cluster_suspect_ms, 2000, "A peer not heard from for this long is suspect");
ABSL_FLAG(uint32_t, cluster_dead_ms, 10000,
          "A peer not heard from for this long is dead (its routes are dropped)");
ABSL_FLAG(std::string, metrics_listen, "", "Prometheus /metrics listener HOST:PORT; empty: off");
ABSL_FLAG(uint32_t, workers, 0, "Worker threads (event loops); 0: one per core");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error, critical or off");
ABSL_FLAG(uint32_t, sys_interval, 5, "Seconds between $SYS/broker/... updates; 0: off");
ABSL_FLAG(uint32_t, connect_timeout, 10, "Seconds a new connection may take to send CONNECT");
ABSL_FLAG(uint32_t, max_packet_size, 1048576, "Largest MQTT packet accepted, in bytes");
ABSL_FLAG(uint32_t, max_queued_messages, 1000,
          "Per session: QoS 1/2 messages queued for an offline or slow client");
ABSL_FLAG(uint64_t, max_queued_bytes, 0,
          "Per session: bytes (topic + payload) of queued QoS 1/2 messages; 0: no byte limit");
ABSL_FLAG(std::string, queue_overflow, "refuse_newest",
          "When a session's queue is full: refuse_newest (drop the new message) or "
          "drop_oldest (drop the oldest queued one)");
ABSL_FLAG(uint32_t, max_inflight_messages, 20,
          "Per client: unacknowledged outgoing QoS 1/2 messages (caps MQTT 5 Receive Maximum)");
ABSL_FLAG(uint32_t, receive_maximum, 100,
          "Unacknowledged incoming QoS 2 messages allowed per MQTT 5 client");
ABSL_FLAG(uint64_t, max_connection_buffer_bytes, 1048576,
          "Per connection: outgoing bytes buffered before QoS 0 messages are dropped");
ABSL_FLAG(uint32_t, topic_alias_maximum, 10, "Topic aliases an MQTT 5 client may use toward us");
ABSL_FLAG(uint32_t, max_keepalive, 65535, "Longest keep-alive allowed, in seconds");
ABSL_FLAG(bool, retain_available, true, "Accept retained messages");
ABSL_FLAG(uint64_t, max_disk_bytes, 0,
          "Store-wide limit on the disk use of --data_dir/store; over it, retained QoS>=1 "
          "publishes and new persistent sessions are refused (0x97); 0: no limit");
ABSL_FLAG(uint32_t, max_connections, 0,
          "Connections this node holds at most (all listeners); more are closed at accept, "
          "before anything is read; 0: no limit (ulimit -n still bounds it)");
ABSL_FLAG(uint32_t, max_connections_per_ip, 0,
          "Connections one source IP address may hold; more are closed at accept; 0: no limit");
ABSL_FLAG(uint32_t, max_connect_rate_per_ip, 0,
          "New connections per second one source IP address may open (token bucket, burst of "
          "the same size); more are closed at accept; 0: no limit");
ABSL_FLAG(uint64_t, max_memory_bytes, 0,
          "Overload: while the resident memory is over this (sampled once a second), new "
          "CONNECTs get 0x89 Server busy (3.1.1: 3), connected clients are served; it ends "
          "under 90%; 0: off");
ABSL_FLAG(uint32_t, max_topic_length, 65535,
          "Longest topic name / topic filter in bytes (PUBLISH: 0x90, SUBSCRIBE: 0x8F / 0x80); "
          "65535: no limit beyond MQTT's");
ABSL_FLAG(uint32_t, max_topic_levels, 0,
          "Most levels in a topic name / filter (PUBLISH: 0x90, SUBSCRIBE: 0x8F / 0x80); 0: no "
          "limit");
ABSL_FLAG(uint32_t, max_subscriptions_per_client, 0,
          "Subscriptions one session may hold; a new filter over it gets SUBACK 0x97 (3.1.1: "
          "0x80); 0: no limit");
ABSL_FLAG(uint32_t, max_publish_rate, 0,
          "PUBLISHes per second one client may send (token bucket, burst of the same size); "
          "over it MQTT 5 gets 0x96 and the message is dropped, a 3.1.1 QoS 1/2 publisher is "
          "disconnected, QoS 0 is dropped; 0: no limit");
ABSL_FLAG(std::string, password_file, "",
          "Users who may connect, in Mosquitto's password file format (mosquitto_passwd); "
          "empty: none");
ABSL_FLAG(std::string, acl_file, "",
          "What each client may publish, receive and subscribe to, in Mosquitto's acl_file "
          "format (docs/security.md); with one, everything not granted is denied; empty: "
          "everything is allowed");
ABSL_FLAG(std::string, mqtts_listen, "", "MQTT over TLS listener HOST:PORT; empty: off (needs --tls_cert_file, --tls_key_file)");
ABSL_FLAG(std::string, ws_listen, "", "MQTT over WebSocket listener HOST:PORT (path /mqtt); empty: off");
ABSL_FLAG(std::string, wss_listen, "",
          "MQTT over secure WebSocket listener HOST:PORT (path /mqtt); empty: off (needs the TLS files)");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of the TLS listeners (server certificate first); reread on SIGHUP");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file; reread on SIGHUP");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA certificates: given, TLS clients must present a certificate signed by one");
ABSL_FLAG(std::string, tls_min_version, "1.2", "Oldest TLS version accepted: 1.2 or 1.3");
ABSL_FLAG(std::string, tls_ciphers, "",
          "OpenSSL cipher list for TLS 1.2; empty: ECDHE with AES-GCM or ChaCha20-Poly1305 only");
ABSL_FLAG(std::string, tls_ciphersuites, "", "OpenSSL TLS 1.3 cipher suites; empty: OpenSSL's");
ABSL_FLAG(bool, tls_use_identity_as_username, false,
          "On TLS listeners, the client certificate's subject CN is the user name (needs "
          "--tls_ca_file; no password is checked for them)");
ABSL_FLAG(std::string, allow_anonymous, "",
          "true / false: accept CONNECTs without a user name; default false with "
          "--password_file, true without");

namespace {

[[noreturn]] void usageError(const std::string& message) {
  std::fprintf(stderr, "gannet: %s\nTry 'gannet --help'.\n", message.c_str());
  std::exit(2);
}

bool isUsageFlag(absl::string_view name) {
  return name == "help" || name == "helpfull" || name == "helpshort" || name == "helppackage" ||
         name == "version" || name == "only_check_args" || name == "flagfile" ||
         name == "fromenv" || name == "tryfromenv" || name == "undefok";
}

void checkFlagFile(const std::string& path);

// Abseil exits with status 1 on a bad flag; our contract is a clear message and
// exit status 2, so every flag is checked here first.
void checkArgs(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!absl::StartsWith(arg, "-")) usageError(absl::StrCat("unexpected argument '", arg, "'"));
    absl::string_view body = absl::StripPrefix(absl::StripPrefix(arg, "-"), "-");
    absl::string_view name = body.substr(0, body.find('='));
    bool has_value = body.find('=') != absl::string_view::npos;
    std::string value = has_value ? std::string(body.substr(body.find('=') + 1)) : "";
    if (isUsageFlag(name)) {
      if (name == "flagfile") {
        if (!has_value && i + 1 < args.size()) value = args[++i];
        checkFlagFile(value);
      }
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    bool negated = false;
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      flag = absl::FindCommandLineFlag(name.substr(2));
      negated = flag != nullptr && flag->IsOfType<bool>();
      if (!negated) flag = nullptr;
    }
    if (flag == nullptr) usageError(absl::StrCat("unknown flag '--", name, "'"));
    if (negated || (!has_value && flag->IsOfType<bool>())) continue;
    if (!has_value) {
      if (i + 1 >= args.size()) usageError(absl::StrCat("flag '--", name, "' needs a value"));
      value = args[++i];
    }
    std::string err;
    // Sets the value early; absl::ParseCommandLine sets it again.
    if (!absl::FindCommandLineFlag(name)->ParseFrom(value, &err)) {
      usageError(absl::StrCat("bad value '", value, "' for --", name, ": ", err));
    }
  }
}

void checkFlagFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) usageError(absl::StrCat("cannot read flag file '", path, "'"));
  std::vector<std::string> args;
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l.front() == '#') continue;
    args.emplace_back(std::string(l));
  }
  checkArgs(args);
}

template <typename T>
T checkedRange(const char* name, uint64_t v, uint64_t lo, uint64_t hi) {
  if (v < lo || v > hi) {
    usageError(absl::StrCat("--", name, "=", v, " is out of range [", lo, ", ", hi, "]"));
  }
  return static_cast<T>(v);
}

gannet::server::NodeOptions optionsFromFlags() {
  gannet::server::NodeOptions o;
  o.node_id = checkedRange<uint32_t>("node_id", absl::GetFlag(FLAGS_node_id), 1, 65535);
  o.mqtt_listen = absl::GetFlag(FLAGS_mqtt_listen);
  if (auto a = gannet::net::parseHostPort(o.mqtt_listen); !a.ok()) {
    usageError(absl::StrCat("--mqtt_listen: ", a.status().message()));
  }
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  if (o.data_dir.empty()) usageError("--data_dir must not be empty");
  o.fsync = absl::GetFlag(FLAGS_fsync);
  o.journal_segment_bytes = checkedRange<uint64_t>(
      "journal_segment_bytes", absl::GetFlag(FLAGS_journal_segment_bytes), 4096, uint64_t{1} << 32);
  o.cluster_listen = absl::GetFlag(FLAGS_cluster_listen);
  if (!o.cluster_listen.empty()) {
    if (auto a = gannet::net::parseHostPort(o.cluster_listen); !a.ok()) {
      usageError(absl::StrCat("--cluster_listen: ", a.status().message()));
    }
  }
  {
    auto peers = gannet::cluster::parsePeers(absl::GetFlag(FLAGS_peers), o.node_id);
    if (!peers.ok()) usageError(std::string(peers.status().message()));
    o.peers = std::move(*peers);
    if (!o.peers.empty() && o.cluster_listen.empty()) {
      usageError("--peers needs --cluster_listen (the address the peers dial)");
    }
  }
  o.cluster_secret = absl::GetFlag(FLAGS_cluster_secret);
  if (const std::string file = absl::GetFlag(FLAGS_cluster_secret_file); !file.empty()) {
    std::ifstream in(file);
    if (!in) usageError(absl::StrCat("--cluster_secret_file: cannot read ", file));
    std::stringstream text;
    text << in.rdbuf();
    o.cluster_secret = std::string(absl::StripAsciiWhitespace(text.str()));
    if (o.cluster_secret.empty()) usageError(absl::StrCat("--cluster_secret_file: ", file, " is empty"));
  }
  if (!o.cluster_listen.empty() && o.cluster_secret.empty()) {
    usageError("--cluster_listen needs a shared secret: --cluster_secret_file=FILE (or --cluster_secret)");
  }
  {
    gannet::cluster::TlsFiles files{absl::GetFlag(FLAGS_cluster_tls_cert_file),
                                    absl::GetFlag(FLAGS_cluster_tls_key_file),
                                    absl::GetFlag(FLAGS_cluster_tls_ca_file)};
    if (files.enabled()) {
      if (o.cluster_listen.empty()) usageError("--cluster_tls_* need --cluster_listen");
      auto m = gannet::cluster::loadTls(files, "cluster_tls_");
      if (!m.ok()) usageError(std::string(m.status().message()));
      o.cluster_tls = std::move(*m);
    }
  }
  o.mqtt_advertise = absl::GetFlag(FLAGS_mqtt_advertise);
  if (!o.mqtt_advertise.empty() && !gannet::net::parseHostPort(o.mqtt_advertise).ok()) {
    // Not an IP address: a DNS name (a pod's name in Kubernetes) is fine too;
    // clients resolve it. HOST:PORT with a port 1..65535.
    const std::string& a = o.mqtt_advertise;
    const size_t colon = a.rfind(':');
    uint32_t port = 0;
    const bool name_ok =
        colon != std::string::npos && colon > 0 &&
        std::all_of(a.begin(), a.begin() + static_cast<long>(colon), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
        });
    if (!name_ok || !absl::SimpleAtoi(a.substr(colon + 1), &port) || port == 0 || port > 65535) {
      usageError(absl::StrCat("--mqtt_advertise: '", a,
                              "' is not HOST:PORT (an IP address or a DNS name, and a port)"));
    }
  }
  o.drain_timeout_ms =
      int64_t{checkedRange<uint32_t>("drain_timeout", absl::GetFlag(FLAGS_drain_timeout), 1, 86400)} *
      1000;
  o.cluster_spool_max_messages = checkedRange<uint64_t>(
      "cluster_spool_max_messages", absl::GetFlag(FLAGS_cluster_spool_max_messages), 0,
      uint64_t{1} << 40);
  o.replication_factor =
      checkedRange<uint32_t>("replication_factor", absl::GetFlag(FLAGS_replication_factor), 1, 16);
  o.cluster_timeouts.heartbeat_ms =
      checkedRange<uint32_t>("cluster_heartbeat_ms", absl::GetFlag(FLAGS_cluster_heartbeat_ms), 10, 60000);
  o.cluster_timeouts.suspect_ms =
      checkedRange<uint32_t>("cluster_suspect_ms", absl::GetFlag(FLAGS_cluster_suspect_ms), 20, 600000);
  o.cluster_timeouts.dead_ms =
      checkedRange<uint32_t>("cluster_dead_ms", absl::GetFlag(FLAGS_cluster_dead_ms), 20, 3600000);
  if (o.cluster_timeouts.heartbeat_ms >= o.cluster_timeouts.suspect_ms ||
      o.cluster_timeouts.suspect_ms > o.cluster_timeouts.dead_ms) {
    usageError("cluster timeouts: need --cluster_heartbeat_ms < --cluster_suspect_ms <= --cluster_dead_ms");
  }
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (auto a = gannet::net::parseHostPort(o.metrics_listen); !o.metrics_listen.empty() && !a.ok()) {
    usageError(absl::StrCat("--metrics_listen: ", a.status().message()));
  }
  o.workers = checkedRange<uint32_t>("workers", absl::GetFlag(FLAGS_workers), 0, 256);
  o.sys_interval_s = absl::GetFlag(FLAGS_sys_interval);
  auto& b = o.broker;
  b.connect_timeout_ms =
      checkedRange<uint32_t>("connect_timeout", absl::GetFlag(FLAGS_connect_timeout), 1, 3600) * 1000;
  // MQTT §2.2.3: the largest packet is 268,435,455 bytes of remaining length.
  b.max_packet_size = checkedRange<uint32_t>("max_packet_size", absl::GetFlag(FLAGS_max_packet_size),
                                             64, 268435460);
  b.max_queued_messages = checkedRange<uint32_t>(
      "max_queued_messages", absl::GetFlag(FLAGS_max_queued_messages), 1, 100000000);
  b.max_queued_bytes = absl::GetFlag(FLAGS_max_queued_bytes);
  const std::string overflow = absl::GetFlag(FLAGS_queue_overflow);
  if (overflow == "refuse_newest") {
    b.queue_overflow = gannet::handlers::BrokerConfig::QueueOverflow::kRefuseNewest;
  } else if (overflow == "drop_oldest") {
    b.queue_overflow = gannet::handlers::BrokerConfig::QueueOverflow::kDropOldest;
  } else {
    usageError(absl::StrCat("--queue_overflow must be refuse_newest or drop_oldest, not '",
                            overflow, "'"));
  }
  b.max_inflight_messages = checkedRange<uint16_t>(
      "max_inflight_messages", absl::GetFlag(FLAGS_max_inflight_messages), 1, 65535);
  b.receive_maximum =
      checkedRange<uint16_t>("receive_maximum", absl::GetFlag(FLAGS_receive_maximum), 1, 65535);
  b.max_connection_buffer_bytes = checkedRange<uint64_t>(
      "max_connection_buffer_bytes", absl::GetFlag(FLAGS_max_connection_buffer_bytes), 4096,
      uint64_t{1} << 34);
  b.topic_alias_maximum = checkedRange<uint16_t>(
      "topic_alias_maximum", absl::GetFlag(FLAGS_topic_alias_maximum), 0, 65535);
  b.max_keepalive =
      checkedRange<uint16_t>("max_keepalive", absl::GetFlag(FLAGS_max_keepalive), 1, 65535);
  b.retain_available = absl::GetFlag(FLAGS_retain_available);
  b.max_disk_bytes = absl::GetFlag(FLAGS_max_disk_bytes);
  // Limits (docs/security.md, "Limits"); 0 = off.
  b.max_connections = checkedRange<uint32_t>(
      "max_connections", absl::GetFlag(FLAGS_max_connections), 0, 100000000);
  b.max_connections_per_ip = checkedRange<uint32_t>(
      "max_connections_per_ip", absl::GetFlag(FLAGS_max_connections_per_ip), 0, 100000000);
  b.max_connect_rate_per_ip = checkedRange<uint32_t>(
      "max_connect_rate_per_ip", absl::GetFlag(FLAGS_max_connect_rate_per_ip), 0, 1000000);
  // 0, or at least 16 MiB: a node needs that much to run at all.
  b.max_memory_bytes = absl::GetFlag(FLAGS_max_memory_bytes);
  if (b.max_memory_bytes != 0 && b.max_memory_bytes < (uint64_t{16} << 20)) {
    usageError(absl::StrCat("--max_memory_bytes=", b.max_memory_bytes,
                            " is out of range: 0 (off) or at least 16777216 (16 MiB)"));
  }
  // §4.7.3: a topic is at most 65535 bytes; at least one level.
  b.max_topic_length = checkedRange<uint32_t>(
      "max_topic_length", absl::GetFlag(FLAGS_max_topic_length), 1, 65535);
  b.max_topic_levels = checkedRange<uint32_t>(
      "max_topic_levels", absl::GetFlag(FLAGS_max_topic_levels), 0, 65535);
  b.max_subscriptions_per_client = checkedRange<uint32_t>(
      "max_subscriptions_per_client", absl::GetFlag(FLAGS_max_subscriptions_per_client), 0,
      100000000);
  b.max_publish_rate = checkedRange<uint32_t>(
      "max_publish_rate", absl::GetFlag(FLAGS_max_publish_rate), 0, 10000000);
  if (const std::string path = absl::GetFlag(FLAGS_password_file); !path.empty()) {
    auto passwords = gannet::auth::PasswordFile::load(path);
    if (!passwords.ok()) usageError(absl::StrCat("--password_file: ", passwords.status().message()));
    b.passwords = std::move(*passwords);
  }
  o.acl_file = absl::GetFlag(FLAGS_acl_file);
  if (const std::string path = absl::GetFlag(FLAGS_acl_file); !path.empty()) {
    auto acl = gannet::auth::Acl::load(path);
    if (!acl.ok()) usageError(absl::StrCat("--acl_file: ", acl.status().message()));
    b.acl = std::move(*acl);
  }
  o.password_file = absl::GetFlag(FLAGS_password_file);
  o.mqtts_listen = absl::GetFlag(FLAGS_mqtts_listen);
  o.ws_listen = absl::GetFlag(FLAGS_ws_listen);
  o.wss_listen = absl::GetFlag(FLAGS_wss_listen);
  for (const auto& [name, value] : {std::pair<const char*, const std::string&>{"mqtts_listen", o.mqtts_listen},
                                    {"ws_listen", o.ws_listen},
                                    {"wss_listen", o.wss_listen}}) {
    if (value.empty()) continue;
    if (auto a = gannet::net::parseHostPort(value); !a.ok()) {
      usageError(absl::StrCat("--", name, ": ", a.status().message()));
    }
  }
  o.tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  o.tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  o.tls.ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  o.tls.min_version = absl::GetFlag(FLAGS_tls_min_version);
  o.tls.ciphers = absl::GetFlag(FLAGS_tls_ciphers);
  o.tls.ciphersuites = absl::GetFlag(FLAGS_tls_ciphersuites);
  b.tls_identity_as_username = absl::GetFlag(FLAGS_tls_use_identity_as_username);
  const bool tls_listener = !o.mqtts_listen.empty() || !o.wss_listen.empty();
  if (tls_listener) {
    if (o.tls.cert_file.empty() || o.tls.key_file.empty()) {
      usageError("--mqtts_listen / --wss_listen need --tls_cert_file and --tls_key_file");
    }
    // Every file and setting checked now: a bad one stops the start, clearly.
    if (auto tls = gannet::net::TlsContext::load(o.tls); !tls.ok()) {
      usageError(std::string(tls.status().message()));
    }
  } else if (!o.tls.cert_file.empty() || !o.tls.key_file.empty() || !o.tls.ca_file.empty()) {
    usageError("--tls_* files are for --mqtts_listen / --wss_listen: give one of them");
  }
  if (b.tls_identity_as_username && o.tls.ca_file.empty()) {
    usageError("--tls_use_identity_as_username needs --tls_ca_file (client certificates)");
  }
  const std::string anonymous = absl::GetFlag(FLAGS_allow_anonymous);
  if (anonymous.empty()) {
    b.allow_anonymous = b.passwords == nullptr;
  } else if (anonymous == "true" || anonymous == "false") {
    b.allow_anonymous = anonymous == "true";
  } else {
    usageError(absl::StrCat("--allow_anonymous: '", anonymous, "' is not true or false"));
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Gannet MQTT broker node.\n  gannet [--mqtt_listen=HOST:PORT] [--data_dir=DIR] "
      "[--metrics_listen=HOST:PORT] ...\n  gannet --flagfile=gannet.flags");
  checkArgs(std::vector<std::string>(argv + 1, argv + argc));
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks every absl::Mutex acquisition for lock-order cycles
  // (a graph lookup per lock: ~4% of a node's CPU in a forwarding profile).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  if (auto s = gannet::base::setLogLevel(absl::GetFlag(FLAGS_log_level)); !s.ok()) {
    usageError(absl::StrCat("--log_level: ", s.message()));
  }
  gannet::server::NodeOptions options = optionsFromFlags();

  // Signals are taken by this thread only (sigwait); workers inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto& log = gannet::base::logger("node");
  gannet::server::Node node(std::move(options));
  if (absl::Status s = node.start(); !s.ok()) {
    log.critical("cannot start: {}", std::string(s.message()));
    return 1;
  }
  log.info("gannet {} node {} ready", GANNET_VERSION, node.options().node_id);
  // SIGTERM in a cluster drains the node (sessions to the peers, clients
  // redirected), then it stops; a second SIGTERM, or SIGINT, stops it at once.
  // `gannetctl drain` starts the same drain.
  while (true) {
    timespec wait{0, 100 * 1000 * 1000};
    const int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGHUP) {
      // TLS certificate, password file, ACL file: read again; connected
      // clients stay connected. A file that fails keeps the previous one.
      log.info("received SIGHUP: reloading");
      if (node.reload().ok()) log.info("reload done");
      continue;
    }
    if (sig == SIGTERM && node.clustered() && !node.draining()) {
      log.info("received SIGTERM: draining");
      node.requestDrain();
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) {
      log.info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if (node.drained()) {
      log.info("drained, shutting down");
      break;
    }
  }
  node.stop();
  node.wait();
  log.info("stopped");
  return 0;
}
