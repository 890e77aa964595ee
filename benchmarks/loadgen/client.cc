#include "benchmarks/loadgen/client.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstring>

#include "benchmarks/loadgen/cpu_time.h"
#include "benchmarks/loadgen/worker.h"

namespace gannet::loadgen {
namespace {

// Reads per readiness event before other sockets get their turn.
constexpr int kMaxReadsPerTurn = 4;

}  // namespace

Client::Client(Worker& worker, Listener& listener, uint32_t index, std::string client_id)
    : worker_(worker), listener_(listener), index_(index), client_id_(std::move(client_id)) {}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

void Client::open(uint16_t keepalive_s, bool clean_session, const Endpoint* endpoint) {
  const Endpoint& ep = endpoint != nullptr ? *endpoint : worker_.endpoint();
  endpoint_ = &ep;
  if (ep.tls != nullptr) tls_ = std::make_unique<TlsSession>(*ep.tls);
  fd_ = ::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    lose(std::string("socket(): ") + std::strerror(errno));
    return;
  }
  int one = 1;
  // Writes are already batched per iteration; Nagle would only add latency.
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  opened_ns_ = monotonicNs();
  state_ = State::kTcpConnecting;
  blocked_ = true;  // until the connect completes (EPOLLOUT)
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0 &&
      errno != EINPROGRESS) {
    lose("cannot connect to " + ep.text + ": " + std::strerror(errno));
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = this;
  if (epoll_ctl(worker_.epollFd(), EPOLL_CTL_ADD, fd_, &ev) != 0) {
    lose(std::string("epoll_ctl: ") + std::strerror(errno));
    return;
  }
  wire::appendConnect(out_, client_id_, keepalive_s, clean_session);
}

void Client::disconnect() {
  if (tls_ != nullptr) {
    // A partly sent record cannot be cut short: when blocked, just close.
    if (state_ == State::kOpen && !blocked_) {
      wire::appendDisconnect(out_);
      flushTls();
      if (tls_ != nullptr) {
        tls_->shutdown();  // close_notify
        flushTls();
      }
    }
  } else if (state_ == State::kAwaitConnack || state_ == State::kOpen) {
    if (blocked_) out_.clear();
    wire::appendDisconnect(out_);
    blocked_ = false;
    flush();
  }
  close();
}

void Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  state_ = State::kClosed;
  out_.clear();
  out_.shrinkIfEmpty();
  in_.clear();
  in_.shrinkIfEmpty();
  tls_.reset();
  wire_out_.clear();
  wire_out_.shrinkIfEmpty();
}

void Client::setReceiveLowWater(int bytes) {
  if (fd_ < 0) return;
  setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes));
}

void Client::readNow() {
  if (state_ != State::kClosed && state_ != State::kTcpConnecting) readSome();
}

void Client::dropWriteInterest() {
  out_on_demand_ = true;
  if (out_interest_ && state_ != State::kClosed && state_ != State::kTcpConnecting && !blocked_) {
    setInterest(false);
  }
}

bool Client::setInterest(bool out) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0u);
  ev.data.ptr = this;
  if (epoll_ctl(worker_.epollFd(), EPOLL_CTL_MOD, fd_, &ev) != 0) {
    lose(std::string("epoll_ctl: ") + std::strerror(errno));
    return false;
  }
  out_interest_ = out;
  return true;
}

void Client::markDirty() {
  if (!dirty_) worker_.markDirty(this);
}

void Client::lose(std::string why) {
  if (state_ == State::kClosed) return;
  close();
  listener_.onLost(*this, why);
}

void Client::onEvents(uint32_t events) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kTcpConnecting) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) finishTcpConnect();
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readSome();
  if (state_ == State::kClosed) return;
  if ((events & EPOLLOUT) && blocked_) {
    blocked_ = false;
    if (!out_.empty() || !wire_out_.empty()) markDirty();
    listener_.onWritable(*this);
  }
}

void Client::finishTcpConnect() {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    lose("cannot connect to " + endpoint_->text + ": " + std::strerror(err) +
         (err == ECONNREFUSED ? " (is the broker listening?)" : ""));
    return;
  }
  state_ = State::kAwaitConnack;
  blocked_ = false;
  if (tls_ != nullptr) {
    std::string why;
    if (tls_->handshake(&why) == TlsSession::Step::kFailed) {  // queues the ClientHello
      lose(why);
      return;
    }
  }
  markDirty();  // CONNECT (TLS: the ClientHello) is queued
}

void Client::flush() {
  dirty_ = false;
  if (fd_ < 0 || blocked_) return;
  if (tls_ != nullptr) {
    flushTls();
  } else if (!out_.empty()) {
    sendFrom(out_);
  }
}

void Client::flushTls() {
  // The handshake's own messages are in the session's output already; MQTT
  // bytes wait in out_ until it is done.
  if (tls_->handshakeDone() && !out_.empty()) {
    std::string why;
    if (!tls_->write(out_.data(), out_.size(), &why)) {
      lose(why);
      return;
    }
    out_.clear();
  }
  tls_->drainOutput(wire_out_);
  if (!wire_out_.empty()) sendFrom(wire_out_);
}

void Client::sendFrom(ByteBuffer& buf) {
  ssize_t n = ::send(fd_, buf.data(), buf.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n > 0) {
    buf.consume(static_cast<size_t>(n));
    last_write_ns_ = worker_.now();
    // A short write means the socket buffer is full: EPOLLOUT will say when not.
    if (!buf.empty()) blocked_ = true;
  } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    blocked_ = true;
  } else if (n < 0 && errno == EINTR) {
    markDirty();
  } else {
    lose(std::string("write: ") + std::strerror(n < 0 ? errno : EPIPE));
    return;
  }
  if (blocked_ && !out_interest_) {
    setInterest(true);  // reported at once if space freed up meanwhile
  } else if (!blocked_ && out_on_demand_ && out_interest_) {
    setInterest(false);
  }
}

void Client::readSome() {
  for (int i = 0; i < kMaxReadsPerTurn; ++i) {
    char* buf = worker_.scratch();
    const size_t cap = worker_.scratchSize();
    ssize_t n = ::read(fd_, buf, cap);
    if (n > 0) {
      const int64_t now = monotonicNs();
      const size_t len = static_cast<size_t>(n);
      if (tls_ != nullptr ? !onCiphertext(buf, len, cap, now) : !onPlaintext(buf, len, now)) {
        return;
      }
      if (len < cap) return;  // drained; edge-triggered epoll reports new bytes
      continue;
    }
    if (n == 0) {
      lose(state_ == State::kAwaitConnack ? "broker closed the connection before CONNACK"
                                          : "broker closed the connection");
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (errno == EINTR) continue;
    lose(std::string("read: ") + std::strerror(errno));
    return;
  }
  // Budget used up with bytes left: finish in this iteration, after the others.
  worker_.readAgain(this);
}

bool Client::onPlaintext(const char* buf, size_t len, int64_t now_ns) {
  if (in_.empty()) {
    size_t used = consume(buf, len, now_ns);
    if (state_ == State::kClosed) return false;
    if (used < len) in_.append(buf + used, len - used);
  } else {
    in_.append(buf, len);
    size_t used = consume(in_.data(), in_.size(), now_ns);
    if (state_ == State::kClosed) return false;
    in_.consume(used);
  }
  return true;
}

bool Client::onCiphertext(char* buf, size_t len, size_t cap, int64_t now_ns) {
  if (!tls_->feed(buf, len)) {
    lose("TLS: out of memory");
    return false;
  }
  // `buf` is free again: the session copied the ciphertext.
  std::string why;
  if (!tls_->handshakeDone()) {
    const TlsSession::Step step = tls_->handshake(&why);
    if (step == TlsSession::Step::kFailed) {
      lose(why);
      return false;
    }
    // The next handshake flight, or (done) the Finished with CONNECT behind it.
    if (step == TlsSession::Step::kDone || tls_->hasOutput()) markDirty();
    if (step == TlsSession::Step::kWantMore) return true;
  }
  TlsSession::Step step;
  do {
    size_t got = 0;
    step = tls_->read(buf, cap, &got, &why);
    if (got > 0 && !onPlaintext(buf, got, now_ns)) return false;
    if (step == TlsSession::Step::kFailed) {
      lose(why);
      return false;
    }
  } while (step == TlsSession::Step::kDone);
  if (tls_->hasOutput()) markDirty();  // e.g. the answer to a key update
  return true;
}

size_t Client::consume(const char* data, size_t len, int64_t now_ns) {
  size_t pos = 0;
  while (pos < len) {
    wire::Packet packet;
    size_t used = 0;
    wire::ParseStatus st = wire::parsePacket(data + pos, len - pos, &packet, &used);
    if (st == wire::ParseStatus::kNeedMore) break;
    if (st == wire::ParseStatus::kMalformed || !dispatch(packet, now_ns)) {
      lose("malformed packet from broker (type " + std::to_string(packet.type) + ")");
      return pos;
    }
    pos += used;
    if (state_ == State::kClosed) return pos;
  }
  return pos;
}

bool Client::dispatch(const wire::Packet& packet, int64_t now_ns) {
  switch (packet.type) {
    case wire::kPublish: {
      wire::PublishView publish;
      if (!wire::parsePublish(packet, &publish)) return false;
      listener_.onPublish(*this, publish, now_ns);
      return true;
    }
    case wire::kPuback: {
      uint16_t id = 0;
      if (!wire::parsePuback(packet, &id)) return false;
      listener_.onPuback(*this, id);
      return true;
    }
    case wire::kConnack: {
      int code = wire::connackCode(packet);
      if (code < 0) return false;
      if (code == 0) state_ = State::kOpen;
      session_present_ = code == 0 && (packet.body[0] & 0x01) != 0;
      listener_.onConnack(*this, code);
      return true;
    }
    case wire::kSuback: {
      uint16_t id = 0;
      uint8_t code = 0;
      if (!wire::parseSuback(packet, &id, &code)) return false;
      listener_.onSuback(*this, id, code);
      return true;
    }
    case wire::kPingresp:
      return true;
    default:
      bump(worker_.counters().protocol_errors);
      return true;
  }
}

}  // namespace gannet::loadgen
