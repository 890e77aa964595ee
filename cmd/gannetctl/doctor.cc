#include "cmd/gannetctl/doctor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"

namespace gannet::ctl {

using codec::ProtocolVersion;
using Clock = std::chrono::steady_clock;

namespace {

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int msLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

Clock::time_point deadlineIn(double s) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(s * 1e6));
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    reset();
    fd_ = std::exchange(o.fd_, -1);
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string addressText(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

bool isLoopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    return (ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
  }
  return false;
}

// Non-blocking connect + poll. Returns the connected socket (still non-blocking)
// or the errno (ETIMEDOUT for our deadline).
struct ConnectResult {
  Fd fd;
  int error = 0;
};

ConnectResult connectTo(const sockaddr* sa, socklen_t len, double timeout_s) {
  ConnectResult r;
  Fd fd(socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    r.error = errno;
    return r;
  }
  if (connect(fd.get(), sa, len) != 0) {
    if (errno != EINPROGRESS) {
      r.error = errno;
      return r;
    }
    pollfd p{fd.get(), POLLOUT, 0};
    const auto deadline = deadlineIn(timeout_s);
    int n;
    do {
      n = poll(&p, 1, msLeft(deadline));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      r.error = ETIMEDOUT;
      return r;
    }
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) {
      r.error = err;
      return r;
    }
  }
  const int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  r.fd = std::move(fd);
  return r;
}

// What the TLS layer saw, filled by OpenSSL's callbacks.
struct TlsObservations {
  bool got_tls_record = false;
  bool cert_requested = false;
  int alert = -1;
  std::optional<CertFailure> cert_failure;
  std::string host;
  std::string cafile;
};

std::string nameText(X509_NAME* name) {
  if (name == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string s(data, static_cast<size_t>(n));
  BIO_free(bio);
  return s;
}

std::string timeText(const ASN1_TIME* t) {
  if (t == nullptr) return "?";
  BIO* bio = BIO_new(BIO_s_mem());
  ASN1_TIME_print(bio, t);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string s(data, static_cast<size_t>(n));
  BIO_free(bio);
  return s;
}

std::vector<std::string> certNames(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
    if (g->type == GEN_DNS) {
      const auto* s = g->d.dNSName;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (g->type == GEN_IPADD) {
      const auto* s = g->d.iPAddress;
      char buf[INET6_ADDRSTRLEN] = "?";
      if (ASN1_STRING_length(s) == 4) inet_ntop(AF_INET, ASN1_STRING_get0_data(s), buf, sizeof buf);
      if (ASN1_STRING_length(s) == 16)
        inet_ntop(AF_INET6, ASN1_STRING_get0_data(s), buf, sizeof buf);
      names.emplace_back(absl::StrCat("IP ", buf));
    }
  }
  GENERAL_NAMES_free(sans);
  char cn[256];
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
    names.emplace_back(absl::StrCat("CN ", cn));
  }
  return names;
}

int verifyCallback(int preverify_ok, X509_STORE_CTX* ctx) {
  if (preverify_ok) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* obs = ssl ? static_cast<TlsObservations*>(SSL_get_app_data(ssl)) : nullptr;
  if (obs != nullptr && !obs->cert_failure) {
    CertFailure f;
    f.verify_error = X509_STORE_CTX_get_error(ctx);
    f.depth = X509_STORE_CTX_get_error_depth(ctx);
    X509* cert = X509_STORE_CTX_get_current_cert(ctx);
    if (cert == nullptr) cert = X509_STORE_CTX_get0_cert(ctx);
    if (cert != nullptr) {
      f.subject = nameText(X509_get_subject_name(cert));
      f.issuer = nameText(X509_get_issuer_name(cert));
      f.not_before = timeText(X509_get0_notBefore(cert));
      f.not_after = timeText(X509_get0_notAfter(cert));
    }
    // The names that matter for a hostname mismatch are the server's own.
    if (X509* leaf = X509_STORE_CTX_get0_cert(ctx); leaf != nullptr) f.names = certNames(leaf);
    f.host = obs->host;
    f.cafile = obs->cafile;
    obs->cert_failure = std::move(f);
  }
  return 0;
}

void messageCallback(int write_p, int /*version*/, int content_type, const void* buf, size_t len,
                     SSL* ssl, void* /*arg*/) {
  auto* obs = static_cast<TlsObservations*>(SSL_get_app_data(ssl));
  if (obs == nullptr || write_p) return;
  const auto* b = static_cast<const unsigned char*>(buf);
  if (content_type == SSL3_RT_HEADER) {
    // A record header the server sent; OpenSSL reports it only once it parsed it
    // as TLS (type 20..24, version 3.x).
    if (len >= 3 && b[0] >= 20 && b[0] <= 24 && b[1] == 3) obs->got_tls_record = true;
  } else if (content_type == SSL3_RT_ALERT && len >= 2) {
    if (b[0] == SSL3_AL_FATAL || b[1] != SSL_AD_CLOSE_NOTIFY) obs->alert = b[1];
  } else if (content_type == SSL3_RT_HANDSHAKE && len >= 1 && b[0] == SSL3_MT_CERTIFICATE_REQUEST) {
    obs->cert_requested = true;
  }
}

std::string firstOpensslError() {
  const unsigned long e = ERR_peek_error();
  if (e == 0) return "";
  const char* reason = ERR_reason_error_string(e);
  std::string s = reason ? reason : absl::StrCat("error ", e);
  ERR_clear_error();
  return s;
}

enum class IoStatus { kOk, kClosed, kTimeout, kError, kTlsError };

// One connection: a plain socket or TLS over it. Reads and writes wait with poll
// until their deadline.
class Connection {
 public:
  explicit Connection(Fd fd) : fd_(std::move(fd)) {}
  ~Connection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool tls() const { return ssl_ != nullptr; }
  std::string tlsVersion() const { return ssl_ != nullptr ? SSL_get_version(ssl_) : ""; }
  TlsObservations& observations() { return obs_; }
  const std::string& lastError() const { return last_error_; }

  // Sets up the client context; a problem here is the user's files (exit 2).
  absl::Status setUpTls(const DoctorOptions& o) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) return absl::InternalError("SSL_CTX_new failed");
    if (o.insecure) {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    } else {
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, verifyCallback);
      if (!o.cafile.empty()) {
        if (SSL_CTX_load_verify_locations(ctx_, o.cafile.c_str(), nullptr) != 1) {
          return absl::InvalidArgumentError(
              absl::StrCat("cannot use --cafile=", o.cafile, ": ", firstOpensslError()));
        }
      } else {
        SSL_CTX_set_default_verify_paths(ctx_);
      }
    }
    if (!o.cert.empty() || !o.key.empty()) {
      if (o.cert.empty() || o.key.empty()) {
        return absl::InvalidArgumentError("--cert and --key go together");
      }
      if (SSL_CTX_use_certificate_chain_file(ctx_, o.cert.c_str()) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot use --cert=", o.cert, ": ", firstOpensslError()));
      }
      if (SSL_CTX_use_PrivateKey_file(ctx_, o.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(ctx_) != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot use --key=", o.key, " with --cert=", o.cert, ": ", firstOpensslError()));
      }
    }
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr) return absl::InternalError("SSL_new failed");
    obs_.host = o.host;
    obs_.cafile = o.cafile;
    SSL_set_app_data(ssl_, &obs_);
    SSL_set_msg_callback(ssl_, messageCallback);
    in6_addr a6;
    in_addr a4;
    const bool is_ip = inet_pton(AF_INET, o.host.c_str(), &a4) == 1 ||
                       inet_pton(AF_INET6, o.host.c_str(), &a6) == 1;
    if (is_ip) {
      // RFC 6066 §3: no SNI for an IP address; check the certificate's IP SANs.
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), o.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, o.host.c_str());
      SSL_set1_host(ssl_, o.host.c_str());
    }
    SSL_set_fd(ssl_, fd_.get());
    return absl::OkStatus();
  }

  IoStatus handshake(Clock::time_point deadline) {
    ERR_clear_error();
    while (true) {
      const int r = SSL_connect(ssl_);
      if (r == 1) return IoStatus::kOk;
      const IoStatus s = waitTls(r, deadline);
      if (s != IoStatus::kOk) return s;
    }
  }

  IoStatus sendAll(std::string_view data, Clock::time_point deadline) {
    size_t done = 0;
    while (done < data.size()) {
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int r = SSL_write(ssl_, data.data() + done, static_cast<int>(data.size() - done));
        if (r > 0) {
          done += static_cast<size_t>(r);
          continue;
        }
        const IoStatus s = waitTls(r, deadline);
        if (s != IoStatus::kOk) return s;
        continue;
      }
      const ssize_t n = send(fd_.get(), data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!waitFd(POLLOUT, deadline)) return IoStatus::kTimeout;
      } else {
        last_error_ = std::strerror(errno);
        return errno == EPIPE || errno == ECONNRESET ? IoStatus::kClosed : IoStatus::kError;
      }
    }
    return IoStatus::kOk;
  }

  // Appends what arrives to `in` (at least one byte on kOk).
  IoStatus receive(std::string& in, Clock::time_point deadline) {
    char buf[16384];
    while (true) {
      if (ssl_ != nullptr) {
        ERR_clear_error();
        const int r = SSL_read(ssl_, buf, sizeof buf);
        if (r > 0) {
          in.append(buf, static_cast<size_t>(r));
          return IoStatus::kOk;
        }
        if (SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN) return IoStatus::kClosed;
        const IoStatus s = waitTls(r, deadline);
        if (s != IoStatus::kOk) return s;
        continue;
      }
      const ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        return IoStatus::kOk;
      }
      if (n == 0) return IoStatus::kClosed;
      if (errno == EAGAIN || errno == EINTR) {
        if (!waitFd(POLLIN, deadline)) return IoStatus::kTimeout;
        continue;
      }
      last_error_ = std::strerror(errno);
      return errno == ECONNRESET ? IoStatus::kClosed : IoStatus::kError;
    }
  }

 private:
  bool waitFd(short events, Clock::time_point deadline) {
    pollfd p{fd_.get(), events, 0};
    int n;
    do {
      n = poll(&p, 1, msLeft(deadline));
    } while (n < 0 && errno == EINTR);
    return n > 0;
  }

  // After an SSL_* call returned `r` <= 0: waits for the socket when OpenSSL
  // wants it (kOk: call again), or says why it failed.
  IoStatus waitTls(int r, Clock::time_point deadline) {
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ)
      return waitFd(POLLIN, deadline) ? IoStatus::kOk : IoStatus::kTimeout;
    if (e == SSL_ERROR_WANT_WRITE) {
      return waitFd(POLLOUT, deadline) ? IoStatus::kOk : IoStatus::kTimeout;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return IoStatus::kClosed;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      last_error_ = errno != 0 ? std::strerror(errno) : "connection closed";
      return IoStatus::kClosed;
    }
    last_error_ = firstOpensslError();
    return IoStatus::kTlsError;
  }

  Fd fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  TlsObservations obs_;
  std::string last_error_;
};

// Prints findings; remembers whether one was a problem.
class Report {
 public:
  explicit Report(std::FILE* out) : out_(out) {}
  // Returns f.ok.
  bool add(const Finding& f) {
    if (f.ok) {
      std::fprintf(out_, "ok: %s\n", f.what.c_str());
    } else {
      std::fprintf(out_, "problem: %s\nfix: %s\n", f.what.c_str(), f.fix.c_str());
    }
    std::fflush(out_);
    return f.ok;
  }
  void note(const std::string& s) {
    std::fprintf(out_, "note: %s\n", s.c_str());
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
};

// Reads MQTT packets off a connection.
class PacketReader {
 public:
  PacketReader(Connection& c, ProtocolVersion v) : c_(c), version_(v) {}
  std::string& buffered() { return in_; }

  // kOk with `packet` set, or the I/O status; kError also for bytes that are not
  // MQTT (`bad` says what).
  IoStatus next(Clock::time_point deadline, codec::Packet& packet, std::string& bad) {
    while (true) {
      auto header = codec::peekFrame(in_);
      if (!header.ok()) {
        bad = std::string(header.status().message());
        return IoStatus::kError;
      }
      if (header->has_value() && (*header)->totalLength() <= in_.size()) {
        const size_t len = (*header)->totalLength();
        auto p = codec::decodePacket(**header, std::string_view(in_).substr(0, len), version_);
        if (!p.ok()) {
          // A 3.1.1-only server answers an MQTT 5 CONNECT with a 4-byte 3.1.1
          // CONNACK (return code 1), which is not a valid MQTT 5 CONNACK.
          if (version_ == ProtocolVersion::kV5 &&
              (*header)->type() == codec::PacketType::kConnack && len == 4) {
            auto v3 = codec::decodePacket(**header, std::string_view(in_).substr(0, len),
                                          ProtocolVersion::kV311);
            if (v3.ok()) {
              auto& ack = std::get<codec::ConnackPacket>(*v3);
              if (ack.reason_code == 1) ack.reason_code = 0x84;
              packet = std::move(*v3);
              in_.erase(0, len);
              return IoStatus::kOk;
            }
          }
          bad = std::string(p.status().message());
          return IoStatus::kError;
        }
        packet = std::move(*p);
        in_.erase(0, len);
        return IoStatus::kOk;
      }
      const IoStatus s = c_.receive(in_, deadline);
      if (s != IoStatus::kOk) return s;
    }
  }

 private:
  Connection& c_;
  ProtocolVersion version_;
  std::string in_;
};

std::string hexPrefix(std::string_view bytes) {
  std::string s;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) {
    absl::StrAppendFormat(&s, "%s%02x", i ? " " : "", static_cast<unsigned char>(bytes[i]));
  }
  return s;
}

std::string randomHex() {
  unsigned char b[6];
  if (RAND_bytes(b, sizeof b) != 1) {
    for (auto& x : b) x = static_cast<unsigned char>(std::rand());
  }
  std::string s;
  for (unsigned char x : b) absl::StrAppendFormat(&s, "%02x", x);
  return s;
}

// The TLS diagnosis after a failed handshake or a failed read over TLS.
Finding tlsFinding(Connection& c, const DoctorOptions& o, bool timed_out) {
  TlsObservations& obs = c.observations();
  if (obs.cert_failure) return diagnoseCertificate(*obs.cert_failure);
  TlsFailure f;
  f.got_tls_record = obs.got_tls_record;
  f.cert_requested = obs.cert_requested;
  f.alert = obs.alert;
  f.timed_out = timed_out;
  f.sent_client_cert = !o.cert.empty();
  f.openssl_error = c.lastError();
  f.timeout_s = o.timeout_s;
  return diagnoseTlsFailure(f);
}

// The connection ended (closed, reset, TLS error) while waiting for `what`.
Finding lostConnection(Connection& c, const DoctorOptions& o, IoStatus s, const std::string& what,
                       const std::string& stage_fix) {
  if (c.tls() && (c.observations().alert >= 0 || c.observations().cert_requested ||
                  s == IoStatus::kTlsError)) {
    return tlsFinding(c, o, false);
  }
  return problem(absl::StrCat("the server closed the connection ", what,
                              c.lastError().empty() ? "" : absl::StrCat(" (", c.lastError(), ")")),
                 stage_fix);
}

}  // namespace

int runDoctor(const DoctorOptions& o, std::FILE* out) {
  // OpenSSL writes with write(2): a server that closed must not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  Report report(out);
  const std::string where = hostPort(o.host, o.port);
  const bool v5 = o.version == ProtocolVersion::kV5;

  // 1. Resolve.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port_text = absl::StrCat(o.port);
  if (const int rc = getaddrinfo(o.host.c_str(), port_text.c_str(), &hints, &found); rc != 0) {
    report.add(diagnoseResolveError(rc, o.host));
    return 1;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  std::vector<const addrinfo*> list;
  std::vector<std::string> texts;
  bool all_loopback = true;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const std::string text = addressText(a->ai_addr);
    if (std::find(texts.begin(), texts.end(), text) != texts.end()) continue;
    list.push_back(a);
    texts.push_back(text);
    all_loopback = all_loopback && isLoopback(a->ai_addr);
  }
  if (texts.size() == 1 && texts[0] == o.host) {
    report.add(ok(absl::StrCat(o.host, " is an IP address")));
  } else {
    report.add(ok(absl::StrCat("resolved ", o.host, " to ", absl::StrJoin(texts, ", "))));
  }

  // 2. TCP connect: each address in turn, as clients do.
  std::optional<Fd> fd;
  std::vector<std::string> failures;
  int first_error = 0;
  std::string connected_to;
  for (size_t i = 0; i < list.size() && !fd; ++i) {
    const auto started = Clock::now();
    ConnectResult r = connectTo(list[i]->ai_addr, list[i]->ai_addrlen, o.timeout_s);
    if (r.error == 0) {
      fd = std::move(r.fd);
      connected_to = absl::StrCat(hostPort(texts[i], o.port), " in ",
                                  absl::StrFormat("%.1f", msSince(started)), " ms");
    } else {
      if (failures.empty()) first_error = r.error;
      failures.push_back(absl::StrCat(texts[i], ": ",
                                      r.error == ETIMEDOUT ? "timed out" : std::strerror(r.error)));
    }
  }
  if (!fd) {
    bool loopback_listens = false;
    if (first_error == ECONNREFUSED && !all_loopback) {
      sockaddr_in lo{};
      lo.sin_family = AF_INET;
      lo.sin_port = htons(o.port);
      lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      loopback_listens =
          connectTo(reinterpret_cast<sockaddr*>(&lo), sizeof lo, std::min(o.timeout_s, 2.0))
              .error == 0;
    }
    if (failures.size() > 1) report.note(absl::StrCat("tried ", absl::StrJoin(failures, "; ")));
    report.add(diagnoseConnectError(first_error, o.host, o.port, o.timeout_s, loopback_listens));
    return 1;
  }
  report.add(ok(absl::StrCat(
      "TCP connection to ", connected_to,
      failures.empty() ? "" : absl::StrCat(" (after ", absl::StrJoin(failures, "; "), ")"))));

  // 3. TLS.
  Connection conn(std::move(*fd));
  if (o.tls) {
    if (absl::Status s = conn.setUpTls(o); !s.ok()) {
      report.add(problem(std::string(s.message()),
                         "give readable PEM files (a certificate and its "
                         "private key)"));
      return 2;
    }
    const auto started = Clock::now();
    const IoStatus s = conn.handshake(deadlineIn(o.timeout_s));
    if (s != IoStatus::kOk) {
      report.add(tlsFinding(conn, o, s == IoStatus::kTimeout));
      return 1;
    }
    std::string detail;
    if (o.insecure) {
      detail = "the server's certificate was NOT verified (--insecure)";
    } else {
      detail = absl::StrCat("server certificate verified for ", o.host, " against ",
                            o.cafile.empty() ? "the system's CAs" : o.cafile);
    }
    report.add(ok(absl::StrCat(conn.tlsVersion(), " handshake in ",
                               absl::StrFormat("%.1f", msSince(started)), " ms; ", detail)));
  }

  // 4. CONNECT / CONNACK.
  const std::string client_id = absl::StrCat("gannet-doctor-", getpid());
  codec::ConnectPacket connect;
  connect.version = o.version;
  connect.clean_start = true;
  connect.keep_alive = 60;
  connect.client_id = client_id;
  connect.username = o.user;
  connect.password = o.password;
  std::string bytes;
  codec::encode(connect, o.version, bytes);
  const std::string plain_port_fix =
      "connect with TLS (--tls, with --cafile=CA.pem) or use the server's plain MQTT port; if "
      "this is a plain MQTT port, the server's log says why it closed the connection";
  auto deadline = deadlineIn(o.timeout_s);
  PacketReader reader(conn, o.version);
  codec::Packet packet;
  std::string bad;
  IoStatus s = conn.sendAll(bytes, deadline);
  if (s == IoStatus::kOk) s = reader.next(deadline, packet, bad);
  if (s != IoStatus::kOk) {
    if (!conn.tls() && looksLikeTls(reader.buffered())) {
      report.add(
          problem("this port speaks TLS: the server answered our CONNECT with a TLS record "
                  "— this port may expect TLS: try --tls",
                  "connect with --tls (and --cafile=CA.pem for a private CA)"));
    } else if (s == IoStatus::kTimeout) {
      report.add(
          problem(absl::StrCat("the server accepted the TCP connection but never answered "
                               "CONNECT within ",
                               secondsText(o.timeout_s), " s (overloaded, or not an MQTT port?)"),
                  "check that this is the server's MQTT port and that the server is "
                  "healthy (its log, CPU); a TLS port waits for a TLS handshake: try "
                  "--tls"));
    } else if ((s == IoStatus::kError && !bad.empty()) ||
               (s == IoStatus::kClosed && !reader.buffered().empty())) {
      // Bytes, then nothing that parses: an HTTP server's "400 Bad Request", say.
      report.add(problem(absl::StrCat("the server answered CONNECT with bytes that are not MQTT (",
                                      hexPrefix(reader.buffered()),
                                      bad.empty() ? "" : absl::StrCat(": ", bad), ")"),
                         "check that this is an MQTT port (not HTTP, WebSocket or another "
                         "service)"));
    } else if (!conn.tls()) {
      report.add(problem(
          absl::StrCat("the server closed the connection without answering CONNECT",
                       conn.lastError().empty() ? "" : absl::StrCat(" (", conn.lastError(), ")"),
                       ": this port may expect TLS: try --tls"),
          plain_port_fix));
    } else {
      report.add(lostConnection(conn, o, s, "without answering CONNECT",
                                "see the server's log for why it closed the connection"));
    }
    return 1;
  }
  if (!std::holds_alternative<codec::ConnackPacket>(packet)) {
    if (const auto* d = std::get_if<codec::DisconnectPacket>(&packet)) {
      report.add(diagnoseServerDisconnect(static_cast<uint8_t>(d->reason_code),
                                          d->properties.server_reference,
                                          d->properties.reason_string));
    } else {
      report.add(problem("the server answered CONNECT with another packet than CONNACK",
                         "this is not a well-behaved MQTT server: see its log"));
    }
    return 1;
  }
  const auto& connack = std::get<codec::ConnackPacket>(packet);
  if (!report.add(diagnoseConnack(o.version, connack.reason_code, o.user.has_value(),
                                  o.user.value_or(""), connack.properties.server_reference,
                                  connack.properties.reason_string))) {
    return 1;
  }

  // 5. Round trip: SUBSCRIBE, PUBLISH QoS 1 (or the server's maximum), the message back.
  const std::string topic = absl::StrCat("gannet-doctor/", getpid(), "/", randomHex());
  const uint8_t qos = connack.properties.maximum_qos.value_or(1) >= 1 ? 1 : 0;
  codec::SubscribePacket sub;
  sub.packet_id = 1;
  sub.subscriptions.push_back({topic, qos, false, false, 0});
  bytes.clear();
  codec::encode(sub, o.version, bytes);
  const std::string round_trip_fix =
      "a server closes a client whose SUBSCRIBE or PUBLISH it refuses (3.1.1): check the ACL "
      "for this user and topic; the server's log says why";
  deadline = deadlineIn(o.timeout_s);
  auto failed = [&](IoStatus st, const std::string& waiting_for) {
    if (st == IoStatus::kTimeout) {
      report.add(problem(absl::StrCat("connected, but no ", waiting_for, " within ",
                                      secondsText(o.timeout_s), " s"),
                         "the server is overloaded, or it silently drops what the ACL denies "
                         "(3.1.1): check the ACL for this user and topic gannet-doctor/#"));
    } else if (st == IoStatus::kError && !bad.empty()) {
      report.add(problem(absl::StrCat("the server sent a malformed packet while we waited for ",
                                      waiting_for, ": ", bad),
                         "see the server's log; this is a server bug"));
    } else {
      report.add(lostConnection(conn, o, st, absl::StrCat("while we waited for ", waiting_for),
                                round_trip_fix));
    }
    return 1;
  };
  s = conn.sendAll(bytes, deadline);
  bool subscribed = false;
  while (s == IoStatus::kOk && !subscribed) {
    s = reader.next(deadline, packet, bad);
    if (s != IoStatus::kOk) break;
    if (const auto* ack = std::get_if<codec::SubackPacket>(&packet); ack && ack->packet_id == 1) {
      const uint8_t code = ack->reason_codes.empty() ? 0x80 : ack->reason_codes[0];
      if (code >= 0x80) {
        report.add(diagnoseSubscribeRefusal(code, topic, o.user.has_value()));
        return 1;
      }
      subscribed = true;
    } else if (const auto* d = std::get_if<codec::DisconnectPacket>(&packet)) {
      report.add(diagnoseServerDisconnect(static_cast<uint8_t>(d->reason_code),
                                          d->properties.server_reference,
                                          d->properties.reason_string));
      return 1;
    }
  }
  if (!subscribed) return failed(s, "SUBACK");

  codec::PublishPacket pub;
  pub.qos = qos;
  pub.topic = topic;
  pub.packet_id = qos > 0 ? 2 : 0;
  pub.payload = absl::StrCat("gannet doctor round trip ", randomHex());
  bytes.clear();
  codec::encode(pub, o.version, bytes);
  const auto published = Clock::now();
  s = conn.sendAll(bytes, deadline);
  bool acked = qos == 0;
  std::optional<double> received_ms;
  while (s == IoStatus::kOk && !(acked && received_ms)) {
    s = reader.next(deadline, packet, bad);
    if (s != IoStatus::kOk) break;
    if (const auto* ack = std::get_if<codec::PubAckPacket>(&packet);
        ack && ack->type == codec::PacketType::kPuback && ack->packet_id == 2) {
      const auto code = static_cast<uint8_t>(ack->reason_code);
      if (code >= 0x80) {
        report.add(diagnosePublishRefusal(code, topic, o.user.has_value()));
        return 1;
      }
      acked = true;
    } else if (const auto* in = std::get_if<codec::PublishPacket>(&packet)) {
      if (in->qos == 1) {
        std::string a;
        codec::encodeAck(codec::PacketType::kPuback, in->packet_id, codec::ReasonCode::kSuccess,
                         o.version, a);
        conn.sendAll(a, deadline);
      }
      if (in->topic == topic && in->payload == pub.payload) received_ms = msSince(published);
    } else if (const auto* d = std::get_if<codec::DisconnectPacket>(&packet)) {
      report.add(diagnoseServerDisconnect(static_cast<uint8_t>(d->reason_code),
                                          d->properties.server_reference,
                                          d->properties.reason_string));
      return 1;
    }
  }
  if (!acked) return failed(s, "PUBACK");
  if (!received_ms) {
    if (s == IoStatus::kTimeout) {
      report.add(problem(absl::StrCat("connected and the publish was acknowledged, but the message "
                                      "did not come back on '",
                                      topic, "' within ", secondsText(o.timeout_s), " s"),
                         "the server's ACL may silently drop it (a 3.1.1 server acknowledges a "
                         "denied publish; a subscription without read access gets nothing): "
                         "grant read and write on gannet-doctor/# for this user; otherwise see "
                         "the server's log"));
      return 1;
    }
    return failed(s, "our message to come back");
  }
  report.add(
      ok(absl::StrFormat("round trip: subscribed, published QoS %d to '%s' and got it back "
                         "in %.2f ms",
                         qos, topic, *received_ms)));

  bytes.clear();
  codec::encode(codec::DisconnectPacket{}, o.version, bytes);
  conn.sendAll(bytes, deadlineIn(1));
  report.add(ok(absl::StrCat("all well: ", where, " accepts MQTT ", v5 ? "5" : "3.1.1", " clients",
                             o.tls ? " over TLS" : "",
                             o.user ? absl::StrCat(" with user '", *o.user, "'") : "")));
  return 0;
}

}  // namespace gannet::ctl
