// The words of `gannetctl doctor`: what each observation is diagnosed as and the
// fix (no I/O; doctor.cc does the steps). docs/troubleshooting.md lists them all.

#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/strings.h"
#include "cmd/gannetctl/doctor.h"

namespace gannet::ctl {

using codec::ProtocolVersion;

Finding ok(std::string what) { return Finding{true, std::move(what), ""}; }
Finding problem(std::string what, std::string fix) {
  return Finding{false, std::move(what), std::move(fix)};
}

std::string secondsText(double s) {
  return s == static_cast<int>(s) ? absl::StrCat(static_cast<int>(s)) : absl::StrFormat("%.1f", s);
}

std::string hostPort(const std::string& host, uint16_t port) {
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", port)
                                             : absl::StrCat(host, ":", port);
}

// ---------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------

absl::StatusOr<std::pair<std::string, uint16_t>> splitHostPort(std::string_view arg) {
  std::string host;
  std::string_view port_text;
  if (!arg.empty() && arg[0] == '[') {
    const size_t close = arg.find(']');
    if (close == std::string_view::npos || close + 1 >= arg.size() || arg[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("expected [IPV6]:PORT, got '", base::toAbsl(arg), "'"));
    }
    host = std::string(arg.substr(1, close - 1));
    port_text = arg.substr(close + 2);
  } else {
    const size_t colon = arg.rfind(':');
    if (colon == std::string_view::npos || arg.find(':') != colon) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected HOST:PORT, got '", base::toAbsl(arg), "'"));
    }
    host = std::string(arg.substr(0, colon));
    port_text = arg.substr(colon + 1);
  }
  int port = 0;
  if (host.empty() || !absl::SimpleAtoi(base::toAbsl(port_text), &port) || port < 1 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected HOST:PORT with a port 1..65535, got '", base::toAbsl(arg), "'"));
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

absl::StatusOr<ProtocolVersion> parseMqttVersion(std::string_view v) {
  if (v == "3.1.1" || v == "311" || v == "4") return ProtocolVersion::kV311;
  if (v == "5" || v == "5.0") return ProtocolVersion::kV5;
  return absl::InvalidArgumentError(
      absl::StrCat("--mqtt_version: expected 3.1.1 or 5, got '", base::toAbsl(v), "'"));
}

// ---------------------------------------------------------------------------
// Diagnoses
// ---------------------------------------------------------------------------

Finding diagnoseResolveError(int gai_error, const std::string& host) {
  if (gai_error == EAI_AGAIN) {
    return problem(absl::StrCat("cannot resolve '", host,
                                "': the DNS server did not answer (temporary failure)"),
                   "check this machine's DNS (/etc/resolv.conf, `getent hosts " + host +
                       "`) and its network, or use the server's IP address");
  }
  return problem(absl::StrCat("cannot resolve '", host, "': ", gai_strerror(gai_error)),
                 absl::StrCat("check the name for typos; `getent hosts ", host,
                              "` must print an address (DNS, /etc/hosts); or use the server's "
                              "IP address"));
}

Finding diagnoseConnectError(int error, const std::string& host, uint16_t port, double timeout_s,
                             bool loopback_listens) {
  const std::string where = hostPort(host, port);
  switch (error) {
    case ECONNREFUSED:
      if (loopback_listens) {
        return problem(
            absl::StrCat("nothing is listening on ", where,
                         " (connection refused), but a server "
                         "on this machine listens on 127.0.0.1:",
                         port, ": a server listens on loopback only"),
            absl::StrCat("let it listen on every interface: set --mqtt_listen=0.0.0.0:", port,
                         " (or the right interface's address; Mosquitto: `listener ", port,
                         "` without an address) and restart it"));
      }
      return problem(absl::StrCat("nothing is listening on ", where, " (connection refused)"),
                     absl::StrCat("start the broker, or use the port it listens on (gannet: "
                                  "--mqtt_listen; on its host `ss -ltnp` shows what listens "
                                  "where); a draining gannet node has closed its listener"));
    case ETIMEDOUT:
      return problem(
          absl::StrCat("no answer from ", where, " within ", secondsText(timeout_s),
                       " s: packets are being dropped — a firewall or a wrong address"),
          absl::StrCat("open TCP port ", port,
                       " in the server's firewall (check `sudo ufw status`, `sudo iptables -L -n`, "
                       "`sudo nft list ruleset`) and in cloud security groups / network ACLs; "
                       "check that ",
                       host, " is the server's address"));
    case EHOSTUNREACH:
    case ENETUNREACH:
      return problem(
          absl::StrCat("cannot reach ", where, ": ", std::strerror(error),
                       " — no route to that address"),
          absl::StrCat("check the address and this machine's routes (`ip route get ", host,
                       "`), VPN or network; a firewall rejecting with "
                       "icmp-host-unreachable looks the same"));
    case ECONNRESET:
      return problem(absl::StrCat("the connection to ", where, " was reset at once"),
                     "something in the way (a firewall rejecting with tcp-reset, or a proxy) "
                     "refuses the connection: check the firewall rules for that port");
    default:
      return problem(absl::StrCat("cannot connect to ", where, ": ", std::strerror(error)),
                     "check the address and the network between this machine and the server");
  }
}

Finding diagnoseCertificate(const CertFailure& f) {
  const std::string whose =
      f.depth == 0 ? "the server's certificate"
                   : absl::StrCat("a CA certificate in the server's chain ('", f.subject, "')");
  switch (f.verify_error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return problem(absl::StrCat(whose, " expired on ", f.not_after,
                                  f.depth == 0 ? absl::StrCat(" ('", f.subject, "')") : ""),
                     "renew the certificate and let the server load it (restart or reload); if "
                     "it should still be valid, check this machine's clock (`date`)");
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return problem(absl::StrCat(whose, " is not valid before ", f.not_before),
                     "check the clocks of this machine and of the server (NTP, `timedatectl`); "
                     "or the certificate was issued with a start date in the future");
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return problem(
          absl::StrCat("the server's certificate is self-signed ('", f.subject,
                       "') and not the CA you gave",
                       f.cafile.empty() ? "" : absl::StrCat(" (--cafile=", f.cafile, ")")),
          "pass that certificate itself as --cafile, or give the server a certificate "
          "signed by your CA");
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      if (f.cafile.empty()) {
        return problem(absl::StrCat("the server's certificate is not signed by a CA this system "
                                    "trusts (issuer '",
                                    f.issuer, "')"),
                       "pass the CA that signed it: --cafile=CA.pem (a private CA or a "
                       "self-signed certificate is not in the system's trust store)");
      }
      return problem(absl::StrCat("the server's certificate is not signed by the CA you gave "
                                  "(--cafile=",
                                  f.cafile, "): unknown CA; it was issued by '", f.issuer, "'"),
                     "pass the CA certificate that signed the server's certificate as --cafile "
                     "(`openssl s_client -connect HOST:PORT -showcerts` shows the chain), or give "
                     "the server a certificate signed by your CA");
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return problem(absl::StrCat("the server's certificate is for ",
                                  f.names.empty() ? "no name" : absl::StrJoin(f.names, ", "),
                                  ", not for ", f.host, ": hostname mismatch"),
                     absl::StrCat("connect with a name the certificate holds, or reissue it with ",
                                  f.host, " in its subject alternative names"));
    default:
      return problem(
          absl::StrCat(whose, " cannot be verified: ",
                       X509_verify_cert_error_string(f.verify_error), " (", f.verify_error, ")"),
          "check the server's certificate chain (`openssl s_client -connect HOST:PORT "
          "-showcerts`) and --cafile");
  }
}

Finding diagnoseTlsFailure(const TlsFailure& f) {
  // A TLS 1.3 server checks the client's certificate after the client has
  // finished its handshake; when our CONNECT is already on its way, the server's
  // close turns into a reset that can overtake its alert. So a close without an
  // alert right after a CertificateRequest counts as a refusal too.
  const bool closed_after_request = f.cert_requested && f.alert < 0 && !f.timed_out;
  const bool client_cert_wanted =
      f.alert == 116 /* certificate_required (TLS 1.3) */ ||
      (f.cert_requested && !f.sent_client_cert &&
       (f.alert == SSL_AD_HANDSHAKE_FAILURE || f.alert == SSL_AD_BAD_CERTIFICATE)) ||
      (closed_after_request && !f.sent_client_cert);
  if (client_cert_wanted && !f.sent_client_cert) {
    return problem("the server wants a client certificate (mutual TLS) and none was given",
                   "pass --cert=CLIENT.pem --key=CLIENT.key, a certificate signed by a CA the "
                   "server trusts (gannet --tls_ca_file, Mosquitto cafile)");
  }
  if (f.sent_client_cert &&
      (f.alert == SSL_AD_BAD_CERTIFICATE || f.alert == SSL_AD_UNKNOWN_CA ||
       f.alert == SSL_AD_CERTIFICATE_EXPIRED || f.alert == SSL_AD_CERTIFICATE_REVOKED ||
       f.alert == SSL_AD_CERTIFICATE_UNKNOWN || f.alert == SSL_AD_UNSUPPORTED_CERTIFICATE ||
       f.alert == 116)) {
    return problem(absl::StrCat("the server refused our client certificate (TLS alert: ",
                                SSL_alert_desc_string_long(f.alert), ")"),
                   "use a client certificate signed by a CA the server trusts, not expired, "
                   "with its matching key (--cert, --key)");
  }
  if (f.sent_client_cert && closed_after_request) {
    return problem(
        "the server refused our client certificate (it closed the connection "
        "after we sent it)",
        "use a client certificate signed by a CA the server trusts (gannet "
        "--tls_ca_file, Mosquitto cafile), not expired, with its matching key");
  }
  if (f.alert == SSL_AD_PROTOCOL_VERSION ||
      (f.alert == SSL_AD_HANDSHAKE_FAILURE && !f.cert_requested)) {
    return problem(absl::StrCat("the server and this client share no TLS version or cipher (TLS "
                                "alert: ",
                                SSL_alert_desc_string_long(f.alert), ")"),
                   "check the server's TLS settings (minimum version, ciphers); OpenSSL 3 "
                   "refuses TLS 1.0/1.1 by default");
  }
  if (f.alert == SSL_AD_UNRECOGNIZED_NAME) {
    return problem("the server does not know the name we asked for (SNI: unrecognized name)",
                   "connect with the name the server is configured for");
  }
  if (f.alert >= 0) {
    return problem(absl::StrCat("the server ended the TLS handshake with alert '",
                                SSL_alert_desc_string_long(f.alert), "'"),
                   "see the server's log for why it refused the handshake");
  }
  if (!f.got_tls_record) {
    if (f.timed_out) {
      return problem(absl::StrCat("no TLS answer within ", secondsText(f.timeout_s),
                                  " s: this port does not seem to speak TLS (a plain MQTT port "
                                  "waiting for a CONNECT?)"),
                     "drop --tls, or use the server's TLS port (8883 by convention)");
    }
    return problem(
        absl::StrCat("this port does not speak TLS (a plain MQTT port?): the server "
                     "closed the connection or answered without TLS",
                     f.openssl_error.empty() ? "" : absl::StrCat(" (", f.openssl_error, ")")),
        "drop --tls, or use the server's TLS port (8883 by convention)");
  }
  if (f.timed_out) {
    return problem(
        absl::StrCat("the TLS handshake did not finish within ", secondsText(f.timeout_s), " s"),
        "the server is overloaded or the network drops packets; try a longer "
        "--timeout and see the server's log");
  }
  return problem(absl::StrCat("the TLS handshake failed",
                              f.openssl_error.empty() ? "" : absl::StrCat(": ", f.openssl_error)),
                 "compare with `openssl s_client -connect HOST:PORT` and see the server's log");
}

bool looksLikeTls(std::string_view bytes) {
  return bytes.size() >= 2 && (bytes[0] == 0x15 || bytes[0] == 0x16) && bytes[1] == 0x03;
}

namespace {

// 3.1.1 CONNACK return codes (§3.2.2.3) as their MQTT 5 reason codes.
uint8_t v5CodeOf(ProtocolVersion version, uint8_t code) {
  if (version == ProtocolVersion::kV5) return code;
  switch (code) {
    case 0:
      return 0;
    case 1:
      return 0x84;
    case 2:
      return 0x85;
    case 3:
      return 0x88;
    case 4:
      return 0x86;
    case 5:
      return 0x87;
    default:
      return 0x80;
  }
}

std::string codeText(ProtocolVersion version, uint8_t code) {
  return version == ProtocolVersion::kV5 ? absl::StrFormat("CONNACK 0x%02X", code)
                                         : absl::StrCat("CONNACK return code ", code);
}

std::string withReason(std::string what, const std::optional<std::string>& reason_string) {
  if (reason_string && !reason_string->empty())
    absl::StrAppend(&what, " — server says: ", *reason_string);
  return what;
}

}  // namespace

Finding diagnoseConnack(ProtocolVersion version, uint8_t code, bool gave_user,
                        const std::string& user, const std::optional<std::string>& server_reference,
                        const std::optional<std::string>& reason_string) {
  const std::string rc = codeText(version, code);
  const bool v5 = version == ProtocolVersion::kV5;
  switch (v5CodeOf(version, code)) {
    case 0x00:
      return ok(absl::StrCat("MQTT ", v5 ? "5" : "3.1.1", " CONNECT accepted (CONNACK)"));
    case 0x86:
      if (!gave_user) {
        return problem(withReason(absl::StrCat("the server wants a user name and password (bad "
                                               "user name or password, ",
                                               rc, ")"),
                                  reason_string),
                       "pass --user=USER --password=PASSWORD of a user in the server's password "
                       "file");
      }
      return problem(
          withReason(absl::StrCat("the server refused user '", user,
                                  "': bad user name or password (", rc, ")"),
                     reason_string),
          absl::StrCat("check the password; '", user,
                       "' must be in the server's "
                       "password file (gannet --password_file, Mosquitto "
                       "password_file): set it with `gannetctl passwd FILE ",
                       user, "`, then reload the server (gannet: SIGHUP) or restart it"));
    case 0x87:
      if (!gave_user) {
        return problem(withReason(absl::StrCat("no user name given and anonymous clients are "
                                               "not allowed (not authorised, ",
                                               rc, ")"),
                                  reason_string),
                       "pass --user=USER --password=PASSWORD of a user in the server's password "
                       "file, or allow anonymous clients (gannet --allow_anonymous=true, "
                       "Mosquitto allow_anonymous true)");
      }
      return problem(withReason(absl::StrCat("user '", user, "' is not authorised to connect (", rc,
                                             "): the server's ACL / authorisation refuses "
                                             "this user or client id"),
                                reason_string),
                     "grant this user access in the server's ACL (gannet --acl_file) or "
                     "authorisation plugin, or use a user that has it");
    case 0x84:
      return problem(
          withReason(absl::StrCat("the server does not support MQTT ", v5 ? "5" : "3.1.1",
                                  " (unacceptable protocol "
                                  "version, ",
                                  rc, ")"),
                     reason_string),
          absl::StrCat("use --mqtt_version=", v5 ? "3.1.1" : "5", ", or a server that speaks MQTT ",
                       v5 ? "5" : "3.1.1"));
    case 0x85:
      return problem(
          withReason(absl::StrCat("the server rejected the client identifier (", rc, ")"),
                     reason_string),
          "the server restricts client ids (length, characters, a required prefix): "
          "check its configuration");
    case 0x88:
      return problem(
          withReason(absl::StrCat("the server is unavailable (", rc, ")"), reason_string),
          "it cannot serve clients now: a gannet node that does not reach a majority "
          "of its cluster refuses persistent sessions (`gannetctl status`); see the "
          "server's log");
    case 0x89:
      return problem(withReason(absl::StrCat("the server is busy (", rc, ")"), reason_string),
                     "try again later; see the server's log and its connection limits");
    case 0x9F:
      return problem(
          withReason(absl::StrCat("the server refused: connection rate exceeded (", rc, ")"),
                     reason_string),
          "clients connect too often: back off between reconnects, or raise the "
          "server's connection rate limit");
    case 0x8A:
      return problem(withReason(absl::StrCat("this client is banned (", rc, ")"), reason_string),
                     "the server bans this client id, user or address: ask its operator");
    case 0x9C:
    case 0x9D:
      return problem(
          withReason(
              absl::StrCat("the server sends clients elsewhere (",
                           code == 0x9C ? "use another server" : "server moved", ", ", rc, ")",
                           server_reference ? absl::StrCat(": ", *server_reference)
                                            : ", no server reference given"),
              reason_string),
          server_reference ? absl::StrCat("connect to ", *server_reference,
                                          " (the node is draining or has moved)")
                           : "the node is draining or has moved: connect to another node of the "
                             "cluster (through its load balancer)");
    case 0x8C:
      return problem(
          withReason(absl::StrCat("bad authentication method (", rc, ")"), reason_string),
          "the server does not support the authentication method: see its "
          "configuration");
    case 0x97:
      return problem(
          withReason(absl::StrCat("the server refused: quota exceeded (", rc, ")"), reason_string),
          "a server limit is reached (connections, or disk space for sessions): see "
          "its log and metrics");
    default:
      return problem(
          withReason(absl::StrCat("the server refused the connection (", rc, ")"), reason_string),
          "see the server's log for why it refused the CONNECT");
  }
}

Finding diagnoseSubscribeRefusal(uint8_t code, const std::string& topic, bool gave_user) {
  const std::string who = gave_user ? "this user" : "anonymous clients";
  if (code == 0x80 || code == 0x87) {
    return problem(absl::StrFormat("connected, but the ACL does not allow %s to subscribe to "
                                   "topic '%s' (SUBACK 0x%02X)",
                                   who, topic, code),
                   absl::StrCat("grant read access to gannet-doctor/# (or the topics your clients "
                                "use) for ",
                                who,
                                " in the server's ACL (gannet --acl_file); if "
                                "the ACL is right, the server's log says why"));
  }
  return problem(absl::StrFormat("connected, but the server refused the subscription to '%s' "
                                 "(SUBACK 0x%02X)",
                                 topic, code),
                 "see the server's log and limits (subscriptions, quota)");
}

Finding diagnosePublishRefusal(uint8_t code, const std::string& topic, bool gave_user) {
  const std::string who = gave_user ? "this user" : "anonymous clients";
  if (code == 0x87) {
    return problem(absl::StrFormat("connected, but the ACL does not allow %s to publish to "
                                   "topic '%s' (PUBACK 0x87)",
                                   who, topic),
                   absl::StrCat("grant write access to gannet-doctor/# (or the topics your "
                                "clients use) for ",
                                who,
                                " in the server's ACL (gannet "
                                "--acl_file)"));
  }
  if (code == 0x97) {
    return problem(absl::StrFormat("connected, but the server refused the publish to '%s': quota "
                                   "exceeded (PUBACK 0x97)",
                                   topic),
                   "a server limit is reached: for gannet, the disk under --data_dir is full or "
                   "the store is over --max_disk_bytes (see its log)");
  }
  return problem(absl::StrFormat("connected, but the server refused the publish to '%s' (PUBACK "
                                 "0x%02X)",
                                 topic, code),
                 "see the server's log");
}

Finding diagnoseServerDisconnect(uint8_t code, const std::optional<std::string>& server_reference,
                                 const std::optional<std::string>& reason_string) {
  if (code == 0x9C || code == 0x9D) {
    return problem(withReason(absl::StrFormat("the server disconnected us with 0x%02X (%s)%s", code,
                                              code == 0x9C ? "use another server" : "server moved",
                                              server_reference ? ": " + *server_reference : ""),
                              reason_string),
                   server_reference ? absl::StrCat("connect to ", *server_reference)
                                    : "the node is draining: connect to another node");
  }
  return problem(withReason(absl::StrFormat("the server disconnected us (DISCONNECT 0x%02X)", code),
                            reason_string),
                 "see the server's log for why");
}

}  // namespace gannet::ctl
