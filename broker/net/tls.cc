#include "broker/net/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <climits>

#include "absl/strings/str_cat.h"
#include "base/openssl_errors.h"

namespace gannet::net {
namespace {

using base::openSslErrors;

// SSL_get_error needs an empty error queue before each call. Failures drain
// it (openSslErrors) and close the connection, so it is empty in the common
// case: peeking is cheaper than clearing.
void clearErrors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

std::string asn1Time(const ASN1_TIME* t) {
  BIO* b = BIO_new(BIO_s_mem());
  if (b == nullptr) return {};
  ASN1_TIME_print(b, t);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string s(data, static_cast<size_t>(n > 0 ? n : 0));
  BIO_free(b);
  return s;
}

// The subject CN of a certificate, in UTF-8; empty when it has none.
std::string commonName(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return {};
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return {};
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return cn;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::load(const TlsOptions& o) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->ctx_ = SSL_CTX_new(TLS_server_method());
  if (c->ctx_ == nullptr) return absl::InternalError("TLS: " + openSslErrors());
  SSL_CTX* ctx = c->ctx_;
  int min_version = TLS1_2_VERSION;
  if (o.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else if (o.min_version != "1.2") {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS minimum version '", o.min_version, "': use 1.2 or 1.3"));
  }
  SSL_CTX_set_min_proto_version(ctx, min_version);
  // No renegotiation (a CPU-exhaustion vector); the server's cipher order wins;
  // idle connections give their buffers back (fleets keep many idle sessions).
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (o.cert_file.empty() || o.key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs a certificate file and a key file");
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load the TLS certificate ", o.cert_file, ": ", openSslErrors()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    return absl::InvalidArgumentError(
        absl::StrCat(mismatch ? "the TLS key " : "cannot load the TLS key ", o.key_file,
                     mismatch ? absl::StrCat(" does not match the certificate ", o.cert_file) : "",
                     ": ", openSslErrors()));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("the TLS key ", o.key_file,
                                                   " does not match the certificate ",
                                                   o.cert_file, ": ", openSslErrors()));
  }
  const std::string ciphers = o.ciphers.empty() ? kDefaultTlsCiphers : o.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS ciphers '", ciphers, "': none usable (", openSslErrors(), ")"));
  }
  if (!o.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, o.ciphersuites.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("TLS 1.3 cipher suites '", o.ciphersuites,
                                                   "': none usable (", openSslErrors(), ")"));
  }
  if (!o.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot load the TLS CA file ", o.ca_file, ": ", openSslErrors()));
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
    // Mutual TLS: a client without a certificate signed by the CA is refused
    // in the handshake.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    static const unsigned char kSessionContext[] = "gannet-mqtts";
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    c->verify_clients_ = true;
  }
  if (X509* cert = SSL_CTX_get0_certificate(ctx); cert != nullptr) {
    c->not_after_ = asn1Time(X509_get0_notAfter(cert));
  }
  return std::shared_ptr<const TlsContext>(std::move(c));
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

TlsLayer::TlsLayer(std::shared_ptr<const TlsContext> context) : context_(std::move(context)) {
  ssl_ = SSL_new(context_->ctx());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (ssl_ != nullptr && rbio_ != nullptr && wbio_ != nullptr) {
    BIO_set_mem_eof_return(rbio_, -1);  // empty: "retry", not end of stream
    SSL_set_bio(ssl_, rbio_, wbio_);    // ssl_ owns both now
    SSL_set_accept_state(ssl_);
  } else {
    // Out of memory: decode() reports it and the connection closes.
    if (rbio_ != nullptr) BIO_free(rbio_);
    if (wbio_ != nullptr) BIO_free(wbio_);
    if (ssl_ != nullptr) SSL_free(ssl_);
    ssl_ = nullptr;
  }
}

TlsLayer::~TlsLayer() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

void TlsLayer::drainOutput(std::string& out) {
  size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0) return;
  const size_t old = out.size();
  out.resize(old + n);
  int got = BIO_read(wbio_, out.data() + old, static_cast<int>(n));
  out.resize(old + static_cast<size_t>(got > 0 ? got : 0));
}

std::string TlsLayer::lastError(int ret) const {
  const int err = SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_ZERO_RETURN) return "TLS closed by the peer";
  std::string what = openSslErrors();
  if (!handshake_done_) {
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      what = absl::StrCat("client certificate refused: ", X509_verify_cert_error_string(verify));
    }
    return absl::StrCat("TLS handshake failed: ", what);
  }
  return absl::StrCat("TLS error: ", what);
}

StreamLayer::Result TlsLayer::decode(std::string_view in, std::string& up, std::string& to_peer,
                                     std::string& why) {
  if (ssl_ == nullptr) {
    why = "TLS: out of memory";
    return Result::kClose;
  }
  clearErrors();
  while (!in.empty()) {
    const int chunk = static_cast<int>(std::min<size_t>(in.size(), INT_MAX));
    if (BIO_write(rbio_, in.data(), chunk) != chunk) {
      why = "TLS: out of memory";
      return Result::kClose;
    }
    in.remove_prefix(static_cast<size_t>(chunk));
  }
  if (!handshake_done_) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int err = SSL_get_error(ssl_, r);
      drainOutput(to_peer);  // handshake messages, or the alert of a failure
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Result::kOk;
      why = lastError(r);
      return Result::kClose;
    }
    handshake_done_ = true;
    if (X509* cert = SSL_get0_peer_certificate(ssl_); cert != nullptr) identity_ = commonName(cert);
    if (!pending_.empty()) {
      std::string held;
      held.swap(pending_);
      if (!encode(held, to_peer, why)) return Result::kClose;
    }
  }
  // Plaintext through a per-thread record-sized buffer (growing `up` first
  // would zero-fill 16 KiB per read, also for a 4-byte PUBACK).
  constexpr size_t kChunk = 16 * 1024;
  thread_local char chunk[kChunk];
  for (;;) {
    size_t got = 0;
    const int r = SSL_read_ex(ssl_, chunk, kChunk, &got);
    if (r == 1) {
      up.append(chunk, got);
      continue;
    }
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) break;
    drainOutput(to_peer);
    why = lastError(r);
    return Result::kClose;
  }
  drainOutput(to_peer);  // post-handshake messages (session tickets, key updates)
  return Result::kOk;
}

void TlsLayer::closing(std::string& down) {
  if (ssl_ == nullptr || !handshake_done_) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // queues close_notify; we do not wait for the peer's
  drainOutput(down);
  ERR_clear_error();
}

bool TlsLayer::encode(std::string_view in, std::string& down, std::string& why) {
  if (in.empty()) return true;
  if (ssl_ == nullptr) {
    why = "TLS: out of memory";
    return false;
  }
  if (!handshake_done_) {
    pending_.append(in);
    return true;
  }
  clearErrors();
  size_t written = 0;
  // The write BIO is memory: SSL_write_ex takes everything at once.
  if (SSL_write_ex(ssl_, in.data(), in.size(), &written) != 1 || written != in.size()) {
    why = lastError(0);
    return false;
  }
  drainOutput(down);
  return true;
}

}  // namespace gannet::net
