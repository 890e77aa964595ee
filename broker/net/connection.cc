#include "broker/net/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace gannet::net {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
// Per read event, at most this much is read before other connections get a turn.
constexpr size_t kReadBudget = 256 * 1024;
// Buffers above this capacity are released when they empty, so idle connections
// stay small.
constexpr size_t kKeepCapacity = 16 * 1024;

std::string& threadReadBuffer() {
  thread_local std::string buf(kReadChunk, '\0');
  return buf;
}

}  // namespace

void FlushList::flushAll() {
  if (!read_again_.empty()) {
    std::vector<Connection*> batch;
    batch.swap(read_again_);
    for (Connection* c : batch) {
      if (c != nullptr && !c->closed_) c->readAll();
    }
  }
  // flush() may close a connection whose callbacks add others: iterate by index.
  for (size_t i = 0; i < dirty_.size(); ++i) {
    Connection* c = dirty_[i];
    if (c == nullptr) continue;
    c->flush_scheduled_ = false;
    if (!c->closed_) c->flush();
  }
  dirty_.clear();
}

void FlushList::forget(Connection* c) {
  for (auto& p : dirty_) {
    if (p == c) p = nullptr;
  }
  for (auto& p : read_again_) {
    if (p == c) p = nullptr;
  }
}

Connection::Connection(EventLoop& loop, FlushList& flush_list, int fd, std::string peer)
    : loop_(loop), flush_list_(flush_list), fd_(fd), peer_(std::move(peer)) {}

Connection::~Connection() {
  flush_list_.forget(this);
  if (!closed_ && fd_ >= 0) {
    loop_.remove(fd_);
    ::close(fd_);
  }
}

absl::Status Connection::start(std::string initial_input) {
  absl::Status s = loop_.add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, this);
  if (!s.ok()) return s;
  if (!initial_input.empty()) deliver(initial_input);
  // Bytes may have arrived before registration (migrated sockets): edge-triggered
  // epoll reports them on ADD, so nothing more to do.
  return absl::OkStatus();
}

void Connection::onEvents(uint32_t events) {
  if (closed_) return;
  if (events & EPOLLOUT) {
    if (pendingOutput() > 0 && !flush()) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    if (!read_paused_) readAll();
  }
}

void Connection::deliver(std::string_view fresh) {
  if (in_.empty()) {
    size_t used = callbacks_->onData(fresh);
    if (!closed_ && used < fresh.size()) in_.assign(fresh.substr(used));
  } else {
    in_.append(fresh);
    size_t used = callbacks_->onData(in_);
    if (!closed_) {
      in_.erase(0, used);
      if (in_.empty() && in_.capacity() > kKeepCapacity) std::string().swap(in_);
    }
  }
}

namespace {

// Sends buf[offset..] as far as the socket takes it, then compacts buf.
// Returns 0, or the errno of a failed send.
int sendBuffer(int fd, std::string& buf, size_t& offset) {
  int result = 0;
  while (offset < buf.size()) {
    ssize_t n = ::send(fd, buf.data() + offset, buf.size() - offset, MSG_NOSIGNAL);
    if (n > 0) {
      offset += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // EPOLLOUT resumes
    result = n < 0 ? errno : EIO;
    break;
  }
  if (offset == buf.size()) {
    offset = 0;
    if (buf.capacity() > kKeepCapacity) {
      std::string().swap(buf);
    } else {
      buf.clear();
    }
  } else if (offset > kKeepCapacity && offset * 2 > buf.size()) {
    buf.erase(0, offset);
    offset = 0;
  }
  return result;
}

}  // namespace

// An encode() failure: not an errno.
constexpr int kLayerError = -1;

int Connection::sendPending() {
  if (layers_.empty()) return sendBuffer(fd_, out_, out_offset_);
  if (!encodePending()) return kLayerError;
  return sendBuffer(fd_, wire_, wire_offset_);
}

bool Connection::encodePending() {
  if (out_offset_ == out_.size()) return true;
  const bool ok = sendFromLayer(layers_.size(), std::string_view(out_).substr(out_offset_));
  out_offset_ = 0;
  out_.clear();
  if (out_.capacity() > kKeepCapacity) std::string().swap(out_);
  return ok;
}

bool Connection::sendFromLayer(size_t from, std::string_view bytes) {
  // The bottom layer appends straight onto wire_; a layer above it writes into
  // one of two scratch strings (not the one its input views).
  std::string scratch[2];
  std::string_view current = bytes;
  for (size_t i = from; i-- > 0;) {
    std::string& down = i == 0 ? wire_ : scratch[i % 2];
    if (!layers_[i]->encode(current, down, layer_error_)) return false;
    if (i != 0) current = down;
  }
  if (from == 0) wire_.append(bytes);
  return true;
}

bool Connection::deliverThroughLayers(std::string_view raw) {
  // Decoded bytes go into per-thread buffers (two, one per layer in turn) that
  // keep their capacity: no allocation per read. Not re-entered: delivering
  // input never reads another connection.
  thread_local std::string buffers[2];
  std::string_view current = raw;
  // A layer that closes (TLS close_notify after the client's last packets)
  // still hands up what it decoded before: it is delivered, then the
  // connection closes.
  std::string close_why;
  size_t i = 0;
  for (; i < layers_.size() && !current.empty(); ++i) {
    std::string& up = buffers[i % 2];
    up.clear();
    std::string to_peer;
    std::string why;
    StreamLayer::Result r = layers_[i]->decode(current, up, to_peer, why);
    if (!to_peer.empty()) {
      if (!sendFromLayer(i, to_peer)) {
        closeNow(layer_error_);
        return false;
      }
      scheduleFlush();
    }
    current = up;
    if (r == StreamLayer::Result::kClose && close_why.empty()) {
      close_why = why.empty() ? std::string("closed by the stream layer") : std::move(why);
    }
  }
  // Only bytes that went through every layer are protocol bytes.
  if (i == layers_.size() && !current.empty()) deliver(current);
  if (closed_) return false;
  if (!close_why.empty()) {
    closeAfterFlush(close_why);
    return false;
  }
  return true;
}

std::string Connection::peerIdentity() const {
  for (const auto& l : layers_) {
    std::string id = l->peerIdentity();
    if (!id.empty()) return id;
  }
  return {};
}

void Connection::writeSome() {
  if (closed_ || write_failed_) return;
  if (sendPending() != 0) write_failed_ = true;
}

void Connection::readAll() {
  std::string& buf = threadReadBuffer();
  size_t budget = kReadBudget;
  while (!closed_) {
    if (outputFull()) {
      // The peer does not read what we send (e.g. acks): stop reading its input
      // until the output drains, so its memory stays bounded.
      read_paused_ = true;
      return;
    }
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n > 0) {
      if (layers_.empty()) {
        deliver(std::string_view(buf.data(), static_cast<size_t>(n)));
      } else if (!deliverThroughLayers(std::string_view(buf.data(), static_cast<size_t>(n)))) {
        return;
      }
      if (static_cast<size_t>(n) >= budget) {
        // Let other connections run; come back next iteration.
        flush_list_.addReadAgain(this);
        loop_.wake();
        return;
      }
      budget -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) {
      closeNow("connection closed by peer");
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    closeNow(strerror(errno));
    return;
  }
}

bool Connection::flush() {
  if (int err = sendPending(); err != 0) {
    closeNow(err == kLayerError ? std::string_view(layer_error_) : std::string_view(strerror(err)));
    return false;
  }
  if (was_full_ && pendingOutput() < output_limit_ / 2) {
    was_full_ = false;
    if (callbacks_) callbacks_->onWritable();
    if (read_paused_ && !closed_) {
      read_paused_ = false;
      flush_list_.addReadAgain(this);
      loop_.wake();
    }
  }
  return true;
}

void Connection::closeAfterFlush(std::string_view why) {
  if (closed_) return;
  std::string reason(why);  // `why` may live in a buffer flush() clears
  if (!layers_.empty() && encodePending()) {
    // Each layer's goodbye (WebSocket close frame, TLS close_notify), top first.
    for (size_t i = layers_.size(); i-- > 0;) {
      std::string bye;
      layers_[i]->closing(bye);
      if (!bye.empty() && !sendFromLayer(i, bye)) break;
    }
  }
  flush();
  if (closed_) return;
  ::shutdown(fd_, SHUT_WR);
  closeNow(reason);
}

void Connection::closeNow(std::string_view why) {
  if (closed_) return;
  closed_ = true;
  flush_list_.forget(this);
  flush_scheduled_ = false;
  loop_.remove(fd_);
  std::string().swap(in_);
  std::string().swap(out_);
  std::string().swap(wire_);
  layers_.clear();
  // Before the socket closes: what the protocol layer records of the close
  // (a session gone offline) is committed before the peer sees the FIN.
  if (callbacks_) callbacks_->onClosed(why);
  ::close(fd_);
  fd_ = -1;
}

Connection::Detached Connection::release() {
  Detached d;
  d.fd = fd_;
  loop_.remove(fd_);
  flush_list_.forget(this);
  flush_scheduled_ = false;
  d.input = std::move(in_);
  if (!layers_.empty()) {
    // Output not written yet (a TLS session ticket) moves encoded: the layers'
    // state moves with it and must not see it again.
    if (!encodePending()) wire_.clear();
    d.wire = wire_.substr(wire_offset_);
  } else {
    d.wire = out_.substr(out_offset_);
  }
  d.layers = std::move(layers_);
  closed_ = true;
  fd_ = -1;
  return d;
}

void Connection::adoptState(Detached&& d) {
  layers_ = std::move(d.layers);
  if (!d.wire.empty()) {
    if (layers_.empty()) {
      out_ = std::move(d.wire);
    } else {
      wire_ = std::move(d.wire);
    }
    scheduleFlush();
  }
}

}  // namespace gannet::net
