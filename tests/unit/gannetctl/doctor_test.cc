// cmd/gannetctl/doctor.h: what each observation is diagnosed as, word for word
// where users grep for it (docs/troubleshooting.md quotes these lines).

#include "cmd/gannetctl/doctor.h"

#include <gtest/gtest.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <cerrno>

namespace gannet::ctl {
namespace {

using codec::ProtocolVersion;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(DoctorArgsTest, HostPortAndVersion) {
  EXPECT_EQ(*splitHostPort("broker.local:8883"),
            std::make_pair(std::string("broker.local"), uint16_t{8883}));
  EXPECT_EQ(*splitHostPort("[::1]:1883"), std::make_pair(std::string("::1"), uint16_t{1883}));
  for (const char* bad : {"1883", "host:", "host:0", "host:65536", ":1883", "a:b:1", "[::1]1883"}) {
    EXPECT_FALSE(splitHostPort(bad).ok()) << bad;
  }
  EXPECT_EQ(*parseMqttVersion("3.1.1"), ProtocolVersion::kV311);
  EXPECT_EQ(*parseMqttVersion("5"), ProtocolVersion::kV5);
  EXPECT_FALSE(parseMqttVersion("3.1").ok());
}

TEST(DoctorDiagnosisTest, Connect) {
  Finding f = diagnoseConnectError(ECONNREFUSED, "10.0.0.5", 1883, 5, false);
  EXPECT_FALSE(f.ok);
  EXPECT_EQ(f.what, "nothing is listening on 10.0.0.5:1883 (connection refused)");
  f = diagnoseConnectError(ECONNREFUSED, "10.0.0.5", 1883, 5, true);
  EXPECT_TRUE(has(f.what, "a server listens on loopback only")) << f.what;
  EXPECT_TRUE(has(f.fix, "set --mqtt_listen=0.0.0.0:1883")) << f.fix;
  f = diagnoseConnectError(ETIMEDOUT, "10.0.0.5", 1883, 2, false);
  EXPECT_EQ(f.what,
            "no answer from 10.0.0.5:1883 within 2 s: packets are being dropped — a "
            "firewall or a wrong address");
  EXPECT_TRUE(has(f.fix, "sudo ufw status") && has(f.fix, "sudo iptables -L -n") &&
              has(f.fix, "security groups"));
  f = diagnoseConnectError(EHOSTUNREACH, "10.0.0.5", 1883, 2, false);
  EXPECT_TRUE(has(f.what, "no route")) << f.what;
  f = diagnoseConnectError(ENETUNREACH, "::1", 1883, 2, false);
  EXPECT_TRUE(has(f.what, "[::1]:1883")) << f.what;
  EXPECT_TRUE(has(diagnoseResolveError(EAI_NONAME, "nosuch").what, "cannot resolve 'nosuch'"));
  EXPECT_TRUE(has(diagnoseResolveError(EAI_AGAIN, "x").what, "DNS server did not answer"));
}

TEST(DoctorDiagnosisTest, Certificates) {
  CertFailure c;
  c.subject = "CN = broker";
  c.issuer = "CN = Some CA";
  c.not_after = "Feb  1 00:00:00 2020 GMT";
  c.not_before = "Jan  1 00:00:00 2030 GMT";
  c.names = {"broker.example", "IP 10.0.0.5"};
  c.host = "10.0.0.6";
  c.cafile = "ca.pem";
  c.verify_error = X509_V_ERR_CERT_HAS_EXPIRED;
  EXPECT_TRUE(has(diagnoseCertificate(c).what, "expired on Feb  1 00:00:00 2020 GMT"));
  c.verify_error = X509_V_ERR_CERT_NOT_YET_VALID;
  EXPECT_TRUE(has(diagnoseCertificate(c).what, "not valid before Jan  1 00:00:00 2030 GMT"));
  c.verify_error = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
  EXPECT_TRUE(has(diagnoseCertificate(c).what,
                  "the server's certificate is not signed by the CA you gave (--cafile=ca.pem)"));
  c.cafile.clear();
  EXPECT_TRUE(has(diagnoseCertificate(c).what, "not signed by a CA this system trusts"));
  c.verify_error = X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
  EXPECT_TRUE(has(diagnoseCertificate(c).what, "self-signed"));
  c.verify_error = X509_V_ERR_IP_ADDRESS_MISMATCH;
  EXPECT_EQ(diagnoseCertificate(c).what,
            "the server's certificate is for broker.example, IP "
            "10.0.0.5, not for 10.0.0.6: hostname mismatch");
}

TEST(DoctorDiagnosisTest, Handshake) {
  TlsFailure t;
  t.openssl_error = "unexpected eof while reading";
  EXPECT_TRUE(has(diagnoseTlsFailure(t).what, "this port does not speak TLS (a plain MQTT port?)"));
  t.timed_out = true;
  EXPECT_TRUE(has(diagnoseTlsFailure(t).what, "this port does not seem to speak TLS"));
  t = TlsFailure{};
  t.got_tls_record = true;
  t.alert = 116;  // certificate_required
  EXPECT_TRUE(has(diagnoseTlsFailure(t).what, "the server wants a client certificate"));
  t.alert = SSL_AD_HANDSHAKE_FAILURE;
  t.cert_requested = true;  // TLS 1.2: handshake_failure after a CertificateRequest
  EXPECT_TRUE(has(diagnoseTlsFailure(t).what, "the server wants a client certificate"));
  t.alert = -1;  // TLS 1.3: closed (reset) after the request, the alert lost
  EXPECT_TRUE(has(diagnoseTlsFailure(t).what, "the server wants a client certificate"));
  t.sent_client_cert = true;
  t.alert = SSL_AD_UNKNOWN_CA;
  EXPECT_TRUE(has(diagnoseTlsFailure(t).what, "refused our client certificate"));
  t.alert = -1;
  EXPECT_TRUE(has(diagnoseTlsFailure(t).what, "refused our client certificate"));
  t = TlsFailure{};
  t.got_tls_record = true;
  t.alert = SSL_AD_PROTOCOL_VERSION;
  EXPECT_TRUE(has(diagnoseTlsFailure(t).what, "no TLS version or cipher"));

  EXPECT_TRUE(looksLikeTls(std::string("\x15\x03\x03\x00\x02", 5)));
  EXPECT_TRUE(looksLikeTls(std::string("\x16\x03\x01", 3)));
  EXPECT_FALSE(looksLikeTls(std::string("\x20\x02\x00\x00", 4)));  // a CONNACK
  EXPECT_FALSE(looksLikeTls(std::string("\x15", 1)));
}

TEST(DoctorDiagnosisTest, Connack) {
  const std::optional<std::string> none;
  EXPECT_TRUE(diagnoseConnack(ProtocolVersion::kV311, 0, false, "", none, none).ok);
  EXPECT_TRUE(diagnoseConnack(ProtocolVersion::kV5, 0, true, "u", none, none).ok);
  // 3.1.1 return codes and MQTT 5 reason codes read the same.
  for (auto [version, code] :
       {std::pair{ProtocolVersion::kV311, 4}, {ProtocolVersion::kV5, 0x86}}) {
    Finding f = diagnoseConnack(version, code, true, "alice", none, none);
    EXPECT_FALSE(f.ok);
    EXPECT_TRUE(has(f.what, "the server refused user 'alice': bad user name or password"))
        << f.what;
    EXPECT_TRUE(has(f.fix, "gannetctl passwd FILE alice")) << f.fix;
  }
  for (auto [version, code] :
       {std::pair{ProtocolVersion::kV311, 5}, {ProtocolVersion::kV5, 0x87}}) {
    Finding f = diagnoseConnack(version, code, false, "", none, none);
    EXPECT_TRUE(has(f.what, "no user name given and anonymous clients are not allowed")) << f.what;
    f = diagnoseConnack(version, code, true, "bob", none, none);
    EXPECT_TRUE(has(f.what, "user 'bob' is not authorised")) << f.what;
    EXPECT_TRUE(has(f.what, "ACL")) << f.what;
  }
  EXPECT_TRUE(has(diagnoseConnack(ProtocolVersion::kV311, 1, false, "", none, none).fix,
                  "--mqtt_version=5"));
  EXPECT_TRUE(has(diagnoseConnack(ProtocolVersion::kV5, 0x84, false, "", none, none).fix,
                  "--mqtt_version=3.1.1"));
  EXPECT_TRUE(has(diagnoseConnack(ProtocolVersion::kV311, 2, false, "", none, none).what,
                  "rejected the client identifier"));
  EXPECT_TRUE(
      has(diagnoseConnack(ProtocolVersion::kV311, 3, false, "", none, none).what, "unavailable"));
  EXPECT_TRUE(has(diagnoseConnack(ProtocolVersion::kV5, 0x89, false, "", none, none).what, "busy"));
  EXPECT_TRUE(
      has(diagnoseConnack(ProtocolVersion::kV5, 0x8A, false, "", none, none).what, "banned"));
  Finding moved = diagnoseConnack(ProtocolVersion::kV5, 0x9C, false, "", std::string("node2:1883"),
                                  std::string("draining"));
  EXPECT_TRUE(has(moved.what, "node2:1883") && has(moved.what, "server says: draining"))
      << moved.what;
  EXPECT_EQ(moved.fix, "connect to node2:1883 (the node is draining or has moved)");
}

TEST(DoctorDiagnosisTest, RoundTrip) {
  Finding f = diagnoseSubscribeRefusal(0x87, "gannet-doctor/1/x", true);
  EXPECT_EQ(f.what,
            "connected, but the ACL does not allow this user to subscribe to topic "
            "'gannet-doctor/1/x' (SUBACK 0x87)");
  f = diagnosePublishRefusal(0x87, "gannet-doctor/1/x", false);
  EXPECT_EQ(f.what,
            "connected, but the ACL does not allow anonymous clients to publish to topic "
            "'gannet-doctor/1/x' (PUBACK 0x87)");
  EXPECT_TRUE(has(f.fix, "--acl_file"));
}

}  // namespace
}  // namespace gannet::ctl
