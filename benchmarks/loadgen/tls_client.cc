#include "benchmarks/loadgen/tls_client.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <climits>

#include "base/openssl_errors.h"

namespace gannet::loadgen {
namespace {

using base::openSslErrors;

bool isAddress(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::unique_ptr<TlsClientContext> TlsClientContext::create(const TlsClientConfig& config,
                                                           std::string* error) {
  ERR_clear_error();
  std::unique_ptr<TlsClientContext> c(new TlsClientContext());
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (c->ctx_ == nullptr) {
    *error = "TLS: " + openSslErrors();
    return nullptr;
  }
  SSL_CTX* ctx = c->ctx_;
  int min = TLS1_2_VERSION, max = TLS1_3_VERSION;
  if (config.version == "1.2") {
    max = TLS1_2_VERSION;
  } else if (config.version == "1.3") {
    min = TLS1_3_VERSION;
  } else if (!config.version.empty()) {
    *error = "--tls_version: use 1.2 or 1.3, not '" + config.version + "'";
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, min);
  SSL_CTX_set_max_proto_version(ctx, max);
  // A full handshake per connection (see the header): no client session cache,
  // and no TLS 1.2 session ticket asked for.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION);
  if (config.release_buffers) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
      *error = "--cafile: cannot load " + config.ca_file + ": " + openSslErrors();
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // The broker's certificate must name the host we connect to (SAN).
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    const bool ok = isAddress(config.host)
                        ? X509_VERIFY_PARAM_set1_ip_asc(param, config.host.c_str()) == 1
                        : X509_VERIFY_PARAM_set1_host(param, config.host.c_str(), 0) == 1;
    if (!ok) {
      *error = "--host: cannot check '" + config.host + "' against the certificate";
      return nullptr;
    }
    c->verify_ = true;
  }
  if (!isAddress(config.host)) c->sni_ = config.host;
  if (config.cert_file.empty() != config.key_file.empty()) {
    *error = "--cert and --key go together";
    return nullptr;
  }
  if (!config.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
      *error = "--cert: cannot load " + config.cert_file + ": " + openSslErrors();
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      *error = "--key: cannot load " + config.key_file +
               " or it does not match --cert: " + openSslErrors();
      return nullptr;
    }
  }
  return c;
}

TlsClientContext::~TlsClientContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

void TlsClientContext::noteNegotiated(SSL* ssl) const {
  std::call_once(noted_, [&] {
    std::string s = SSL_get_version(ssl);
    s += "/";
    s += SSL_get_cipher_name(ssl);
    const int group = SSL_get_negotiated_group(ssl);
    if (group != 0 && group != NID_undef) {
      const char* name = SSL_group_to_name(ssl, group);
      s += "/";
      s += name != nullptr ? name : OBJ_nid2sn(group);
    }
    if (X509* cert = SSL_get0_peer_certificate(ssl); cert != nullptr) {
      if (EVP_PKEY* key = X509_get0_pubkey(cert); key != nullptr) {
        s += "/";
        s += EVP_PKEY_get0_type_name(key);
        s += '-';
        s += std::to_string(EVP_PKEY_get_bits(key));
      }
    }
    negotiated_ = std::move(s);
  });
}

std::string TlsClientContext::negotiated() const { return negotiated_; }

TlsSession::TlsSession(const TlsClientContext& context) : context_(context) {
  ssl_ = SSL_new(context.ctx());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (ssl_ != nullptr && rbio_ != nullptr && wbio_ != nullptr) {
    BIO_set_mem_eof_return(rbio_, -1);  // empty: "retry", not end of stream
    SSL_set_bio(ssl_, rbio_, wbio_);    // ssl_ owns both now
    SSL_set_connect_state(ssl_);
    if (!context.serverName().empty()) {
      SSL_set_tlsext_host_name(ssl_, context.serverName().c_str());
    }
  } else {
    // Out of memory: handshake() reports it and the connection is lost.
    if (rbio_ != nullptr) BIO_free(rbio_);
    if (wbio_ != nullptr) BIO_free(wbio_);
    if (ssl_ != nullptr) SSL_free(ssl_);
    ssl_ = nullptr;
  }
}

TlsSession::~TlsSession() {
  if (ssl_ != nullptr) SSL_free(ssl_);
}

std::string TlsSession::failure(int ret) const {
  const int err = SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_ZERO_RETURN) return "broker closed the TLS session (close_notify)";
  if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) return "TLS: unexpected end of stream";
  std::string what = openSslErrors();
  if (!done_) {
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      return std::string("TLS handshake: broker certificate refused: ") +
             X509_verify_cert_error_string(verify);
    }
    return "TLS handshake failed: " + what;
  }
  return "TLS error: " + what;
}

TlsSession::Step TlsSession::handshake(std::string* why) {
  if (ssl_ == nullptr) {
    *why = "TLS: out of memory";
    return Step::kFailed;
  }
  if (done_) return Step::kDone;
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    done_ = true;
    context_.noteNegotiated(ssl_);
    return Step::kDone;
  }
  const int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Step::kWantMore;
  *why = failure(r);
  return Step::kFailed;
}

bool TlsSession::feed(const char* data, size_t len) {
  while (len > 0) {
    const int chunk = static_cast<int>(std::min<size_t>(len, INT_MAX));
    if (BIO_write(rbio_, data, chunk) != chunk) return false;
    data += chunk;
    len -= static_cast<size_t>(chunk);
  }
  return true;
}

TlsSession::Step TlsSession::read(char* buf, size_t cap, size_t* got, std::string* why) {
  ERR_clear_error();
  *got = 0;
  // SSL_read_ex hands out one record (16 KiB at most) per call.
  while (*got < cap) {
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, buf + *got, cap - *got, &n);
    if (r == 1) {
      *got += n;
      continue;
    }
    const int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) return Step::kWantMore;
    *why = failure(r);
    return Step::kFailed;
  }
  return Step::kDone;
}

bool TlsSession::write(const char* data, size_t len, std::string* why) {
  ERR_clear_error();
  size_t written = 0;
  // The write BIO is memory: SSL_write_ex takes everything at once.
  if (SSL_write_ex(ssl_, data, len, &written) != 1 || written != len) {
    *why = failure(0);
    return false;
  }
  return true;
}

void TlsSession::shutdown() {
  if (ssl_ != nullptr && done_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
  }
}

bool TlsSession::hasOutput() const { return ssl_ != nullptr && BIO_ctrl_pending(wbio_) > 0; }

void TlsSession::drainOutput(ByteBuffer& out) {
  if (ssl_ == nullptr) return;
  const size_t n = BIO_ctrl_pending(wbio_);
  if (n == 0) return;
  const int got = BIO_read(wbio_, out.reserve(n), static_cast<int>(n));
  if (got > 0) out.commit(static_cast<size_t>(got));
}

}  // namespace gannet::loadgen
