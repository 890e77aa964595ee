#pragma once
// `gannetctl doctor HOST:PORT`: connects to an MQTT server as a client would and
// says in plain words what stops a client, and how to fix it. Steps: resolve the
// name, TCP connect, TLS handshake (--tls), MQTT CONNECT / CONNACK, a
// SUBSCRIBE + PUBLISH round trip on a topic of its own, DISCONNECT. Each step
// prints "ok: ..." or "problem: ..." followed by "fix: ...", and the first
// problem ends the run.
//
// The diagnose*() functions (doctor_diagnosis.cc) turn what a step observed into
// the words printed; they do no I/O, so tests/unit/gannetctl/ checks them one by
// one. runDoctor() (doctor.cc) does the I/O: one step at a time, each with a
// deadline (non-blocking sockets + poll).

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/codec/packets.h"

namespace gannet::ctl {

struct DoctorOptions {
  std::string host;
  uint16_t port = 1883;
  bool tls = false;
  std::string cafile;  // empty: the system's trust store
  std::string cert;    // client certificate (mTLS), with key
  std::string key;
  bool insecure = false;  // TLS without verifying the server's certificate
  std::optional<std::string> user;
  std::optional<std::string> password;
  double timeout_s = 5;  // per step
  codec::ProtocolVersion version = codec::ProtocolVersion::kV311;
};

// What one step found: printed as "ok: WHAT", or "problem: WHAT" and "fix: FIX".
struct Finding {
  bool ok = false;
  std::string what;
  std::string fix;
};
Finding ok(std::string what);
Finding problem(std::string what, std::string fix);

// "HOST:PORT", "[V6]:PORT"; "5", "2.5" (seconds).
std::string hostPort(const std::string& host, uint16_t port);
std::string secondsText(double s);

// "HOST:PORT", "[IPV6]:PORT". The port must be 1..65535.
absl::StatusOr<std::pair<std::string, uint16_t>> splitHostPort(std::string_view arg);
// "3.1.1", "311", "4" → 3.1.1; "5" → 5.
absl::StatusOr<codec::ProtocolVersion> parseMqttVersion(std::string_view v);

// Step 1: getaddrinfo() returned `gai_error` (EAI_*).
Finding diagnoseResolveError(int gai_error, const std::string& host);

// Step 2: connect() to HOST:PORT failed with `error` (an errno; ETIMEDOUT also
// for our own deadline). `loopback_listens`: HOST is not a loopback address and
// a connect to 127.0.0.1:PORT from this machine succeeded.
Finding diagnoseConnectError(int error, const std::string& host, uint16_t port, double timeout_s,
                             bool loopback_listens);

// Step 3, the server's certificate failed verification (from the verify callback:
// the first error, the certificate it was about, its depth in the chain).
struct CertFailure {
  long verify_error = 0;  // X509_V_ERR_*
  int depth = 0;          // 0: the server's own certificate
  std::string subject;
  std::string issuer;
  std::string not_before;  // "Jan  1 00:00:00 2020 GMT"
  std::string not_after;
  std::vector<std::string> names;  // subject alternative names (DNS, IP) and CN
  std::string host;                // what we asked for
  std::string cafile;              // empty: the system's trust store
};
Finding diagnoseCertificate(const CertFailure& f);

// Step 3, the handshake (or the first read after it: TLS 1.3 servers refuse a
// missing client certificate after the client's Finished) failed otherwise.
struct TlsFailure {
  bool got_tls_record = false;    // the server sent at least one TLS record
  bool cert_requested = false;    // it sent a CertificateRequest
  int alert = -1;                 // TLS alert description the server sent, -1 none
  bool timed_out = false;         // no (complete) answer before the deadline
  bool sent_client_cert = false;  // --cert/--key were given
  std::string openssl_error;      // ERR_error_string of the first error, may be empty
  double timeout_s = 0;
};
Finding diagnoseTlsFailure(const TlsFailure& f);

// True when `bytes` (the first the server sent) start like a TLS record: an
// alert (0x15 0x03) or a handshake (0x16 0x03).
bool looksLikeTls(std::string_view bytes);

// Step 4: CONNACK with `code` (MQTT 5 reason code, or the 3.1.1 return code 0..5
// when `version` is 3.1/3.1.1). `gave_user`: a user name was sent.
Finding diagnoseConnack(codec::ProtocolVersion version, uint8_t code, bool gave_user,
                        const std::string& user, const std::optional<std::string>& server_reference,
                        const std::optional<std::string>& reason_string);

// Step 5: SUBACK (or PUBACK) reason code >= 0x80 for `topic`.
Finding diagnoseSubscribeRefusal(uint8_t code, const std::string& topic, bool gave_user);
Finding diagnosePublishRefusal(uint8_t code, const std::string& topic, bool gave_user);

// MQTT 5 DISCONNECT from the server during the run.
Finding diagnoseServerDisconnect(uint8_t code, const std::optional<std::string>& server_reference,
                                 const std::optional<std::string>& reason_string);

// Runs every step against `o`, printing to `out`. Returns the exit status: 0 all
// well, 1 a problem was found, 2 a local file (--cafile, --cert, --key) is unusable.
int runDoctor(const DoctorOptions& o, std::FILE* out);

}  // namespace gannet::ctl
