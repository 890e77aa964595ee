#pragma once
// One MQTT client connection of the load generator: a non-blocking TCP socket,
// optionally a TLS session over it (--tls), its input and output bytes, and
// the packet split.
//
// Owned by a Worker, which creates it, registers it with its epoll set and
// destroys it at the end of the run; lives on that worker's thread only. What
// the client does with packets is decided by its Listener (the scenario's
// per-worker driver). Output is appended to out() during an iteration and
// written by the Worker once per iteration (markDirty()), so that a socket sees
// one write per loop iteration however many packets were queued.
//
// With TLS, out() still holds plaintext: flush() encrypts all of it in one
// SSL_write (records of up to 16 KiB) and sends the ciphertext in one send();
// what the socket did not take waits in wire_out_. CONNECT waits in out() until
// the handshake is done, and the handshake counts in the connect time (from
// open() to CONNACK). Without TLS none of this runs: one null test per
// read and per flush.

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "benchmarks/loadgen/byte_buffer.h"
#include "benchmarks/loadgen/mqtt_wire.h"
#include "benchmarks/loadgen/tls_client.h"

namespace gannet::loadgen {

class Worker;
struct Endpoint;

class Client {
 public:
  // Scenario logic; called on the worker thread.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void onConnack(Client& client, int code) = 0;
    virtual void onSuback(Client& client, uint16_t packet_id, uint8_t code) {}
    // `now_ns` is when the bytes holding the packet were read.
    virtual void onPublish(Client& client, const wire::PublishView& publish, int64_t now_ns) {}
    virtual void onPuback(Client& client, uint16_t packet_id) {}
    // The socket accepts bytes again after a short write.
    virtual void onWritable(Client& client) {}
    // The broker closed the connection, or an I/O or protocol error closed it.
    // Not called for close()/disconnect().
    virtual void onLost(Client& client, std::string_view why) = 0;
  };

  // kAwaitConnack covers the TLS handshake too.
  enum class State { kIdle, kTcpConnecting, kAwaitConnack, kOpen, kClosed };

  // `index` is the listener's own number for this client.
  Client(Worker& worker, Listener& listener, uint32_t index, std::string client_id);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts the TCP connect (and TLS, if the endpoint has a context) and queues
  // CONNECT (cleanSession=1 unless `clean_session` is false). On failure the
  // client is lost. Connects to `endpoint` (null: the worker's).
  void open(uint16_t keepalive_s, bool clean_session = true, const Endpoint* endpoint = nullptr);
  // Queues DISCONNECT after what is already queued (dropped if the socket is
  // full: this is the end of a run), writes once and closes.
  void disconnect();
  void close();

  // SO_RCVLOWAT: epoll reports the socket readable only once `bytes` are
  // queued. Throughput subscribers use it to wake once per few KiB instead of
  // once per packet; 1 restores the default. Bytes already queued below the
  // old mark raise no new edge: call readNow() after lowering it.
  void setReceiveLowWater(int bytes);
  // Reads what is queued. Not from inside a Listener callback of this client.
  void readNow();
  // Asks epoll for EPOLLOUT only while a write is blocked. With edge-triggered
  // epoll an always-writable socket reports EPOLLOUT on every wake-up of the
  // socket, so a client would otherwise be woken for each arriving segment,
  // whatever SO_RCVLOWAT says. Costs two epoll_ctl per blocked write.
  void dropWriteInterest();

  ByteBuffer& out() { return out_; }
  // Asks for one write of out() at the end of this loop iteration.
  void markDirty();

  uint32_t index() const { return index_; }
  const std::string& clientId() const { return client_id_; }
  State state() const { return state_; }
  // The CONNACK's session-present flag (§3.2.2.2): the broker resumed a session.
  bool sessionPresent() const { return session_present_; }
  bool isOpen() const { return state_ == State::kOpen; }
  // The last write did not take everything: wait for EPOLLOUT before writing.
  bool blocked() const { return blocked_; }
  int64_t openedNs() const { return opened_ns_; }
  int64_t lastWriteNs() const { return last_write_ns_; }

  // Called by the Worker only.
  void onEvents(uint32_t events);
  void flush();
  void readSome();
  bool dirty_ = false;
  bool read_again_ = false;

 private:
  void finishTcpConnect();
  void sendFrom(ByteBuffer& buf);
  void flushTls();
  // Bytes read from the socket: plaintext, or ciphertext to decrypt first (in
  // place: `buf` is the worker's scratch). False if the client was lost.
  bool onPlaintext(const char* buf, size_t len, int64_t now_ns);
  bool onCiphertext(char* buf, size_t len, size_t cap, int64_t now_ns);
  // Parses whole packets from `data`; returns how many bytes were consumed.
  size_t consume(const char* data, size_t len, int64_t now_ns);
  bool dispatch(const wire::Packet& packet, int64_t now_ns);
  void lose(std::string why);
  bool setInterest(bool out);

  Worker& worker_;
  Listener& listener_;
  const uint32_t index_;
  const std::string client_id_;
  int fd_ = -1;
  State state_ = State::kIdle;
  bool blocked_ = false;
  bool session_present_ = false;
  bool out_interest_ = true;    // EPOLLOUT is in the epoll interest set
  bool out_on_demand_ = false;  // dropWriteInterest() was called
  int64_t opened_ns_ = 0;
  int64_t last_write_ns_ = 0;
  ByteBuffer in_;  // an incomplete trailing packet only
  ByteBuffer out_;
  const Endpoint* endpoint_ = nullptr;  // of open()
  std::unique_ptr<TlsSession> tls_;     // --tls only
  ByteBuffer wire_out_;                 // TLS: ciphertext the socket has not taken yet
};

}  // namespace gannet::loadgen
