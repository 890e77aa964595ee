#pragma once
// TLS for client listeners (MQTT over TLS, secure WebSocket): the server
// context loaded from PEM files, and the StreamLayer that runs one connection's
// TLS session over memory BIOs (OpenSSL 3).
//
// Memory BIOs, not the socket: the Connection reads and writes the socket in
// batches as for plain TCP; the layer only turns ciphertext into plaintext and
// back, so a flush of many MQTT packets is one SSL_write and one send().
//
// TlsContext is immutable once loaded and shared by every worker thread; a
// reload (SIGHUP) builds a new one, used by connections accepted afterwards
// (each TLS session keeps a reference to the context it started with).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "broker/net/stream_layer.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace gannet::net {

struct TlsOptions {
  std::string cert_file;  // PEM certificate chain (server certificate first)
  std::string key_file;   // PEM private key
  std::string ca_file;    // PEM CAs for client certificates; empty: none asked
  // OpenSSL cipher list for TLS 1.2 and cipher suites for TLS 1.3; empty: the
  // defaults below.
  std::string ciphers;
  std::string ciphersuites;
  std::string min_version = "1.2";  // "1.2" or "1.3"
};

// Strong TLS 1.2 ciphers only: forward secrecy, AEAD.
inline constexpr const char* kDefaultTlsCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

class TlsContext {
 public:
  // Loads and checks the files (key matches certificate, CA readable, cipher
  // strings valid). Errors name the file and what is wrong with it.
  static absl::StatusOr<std::shared_ptr<const TlsContext>> load(const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  bool verifiesClients() const { return verify_clients_; }
  // The server certificate's notAfter, for the log ("valid until ...").
  const std::string& notAfter() const { return not_after_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool verify_clients_ = false;
  std::string not_after_;
};

class TlsLayer final : public StreamLayer {
 public:
  explicit TlsLayer(std::shared_ptr<const TlsContext> context);
  ~TlsLayer() override;

  Result decode(std::string_view in, std::string& up, std::string& to_peer,
                std::string& why) override;
  bool encode(std::string_view in, std::string& down, std::string& why) override;
  void closing(std::string& down) override;
  std::string peerIdentity() const override { return identity_; }
  bool ready() const override { return handshake_done_; }

 private:
  // Moves what OpenSSL wrote into the write BIO to `out`.
  void drainOutput(std::string& out);
  // The error of the last failed call, for the log.
  std::string lastError(int ret) const;

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext from the peer (owned by ssl_)
  BIO* wbio_ = nullptr;  // ciphertext to the peer (owned by ssl_)
  bool handshake_done_ = false;
  std::string pending_;  // plaintext encoded before the handshake finished
  std::string identity_;
};

}  // namespace gannet::net
