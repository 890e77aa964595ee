#pragma once
// MQTT over TLS for the load generator (--tls): the client context shared by
// every connection, and one connection's TLS session over memory BIOs.
//
// Memory BIOs, not the socket, as the broker's own layer (broker/net/tls.h)
// does: the Client keeps reading and writing its non-blocking socket in
// batches, the session only turns ciphertext into plaintext and back. So a
// flush of many MQTT packets is one SSL_write (records of up to 16 KiB) and one
// send(), and the plain path needs no TLS code at all.
//
// TlsClientContext is built by main() before the workers start and is
// read-only afterwards (SSL_CTX is safe to share between threads for SSL_new);
// only the first negotiated-parameters note is written later, under a once
// flag. A TlsSession belongs to one Client, on its worker's thread.
//
// Every connection makes a full handshake: the client keeps no session cache
// and offers no ticket to resume, so the connect scenario measures what a
// fleet reconnecting after a broker restart costs, not resumption.

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "benchmarks/loadgen/byte_buffer.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace gannet::loadgen {

struct TlsClientConfig {
  std::string host;       // the broker's name or address, checked against its certificate
  std::string ca_file;    // PEM CAs that verify the broker; empty: not verified
  std::string cert_file;  // client certificate (mutual TLS); empty: none
  std::string key_file;
  std::string version;  // "1.2" or "1.3": only that version; empty: 1.2 or 1.3
  // SSL_MODE_RELEASE_BUFFERS: idle connections give back their 2 × 16 KiB
  // record buffers (the connect scenario holds thousands idle); busy ones would
  // pay a malloc/free per record for it.
  bool release_buffers = false;
};

class TlsClientContext {
 public:
  // Null, with the reason in `error` (naming the file), if a file does not load.
  static std::unique_ptr<TlsClientContext> create(const TlsClientConfig& config,
                                                  std::string* error);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  bool verifiesBroker() const { return verify_; }
  const std::string& serverName() const { return sni_; }
  // Records what the first completed handshake negotiated; any thread.
  void noteNegotiated(SSL* ssl) const;
  // "TLSv1.3/TLS_AES_256_GCM_SHA384/X25519/ECDSA-256", or empty before any
  // handshake completed. Read after the workers are joined.
  std::string negotiated() const;

 private:
  TlsClientContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool verify_ = false;
  std::string sni_;  // SNI to send: the host when it is a name, not an address
  mutable std::once_flag noted_;
  mutable std::string negotiated_;
};

class TlsSession {
 public:
  enum class Step { kDone, kWantMore, kFailed };

  explicit TlsSession(const TlsClientContext& context);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  bool handshakeDone() const { return done_; }
  // Advances the handshake (the first call writes the ClientHello).
  Step handshake(std::string* why);
  // Ciphertext read from the socket. False only if out of memory.
  bool feed(const char* data, size_t len);
  // Plaintext decrypted from what was fed, up to `cap` bytes into `buf`;
  // `*got` is how many. kWantMore: everything fed is decrypted; kDone: `buf`
  // is full, call again; kFailed: `why` says (the broker's close_notify too).
  Step read(char* buf, size_t cap, size_t* got, std::string* why);
  // Encrypts `len` bytes of plaintext (handshake done); false: `why` says.
  bool write(const char* data, size_t len, std::string* why);
  // Queues a close_notify alert.
  void shutdown();
  // Ciphertext waiting to be sent.
  bool hasOutput() const;
  // Moves the ciphertext waiting to be sent to the back of `out`.
  void drainOutput(ByteBuffer& out);

 private:
  std::string failure(int ret) const;

  const TlsClientContext& context_;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // ciphertext from the broker (owned by ssl_)
  BIO* wbio_ = nullptr;  // ciphertext to the broker (owned by ssl_)
  bool done_ = false;
};

}  // namespace gannet::loadgen
