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

int Connection::sendPending() {
  while (pendingOutput() > 0) {
    ssize_t n = ::send(fd_, out_.data() + out_offset_, pendingOutput(), MSG_NOSIGNAL);
    if (n > 0) {
      out_offset_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // EPOLLOUT resumes
    return n < 0 ? errno : EIO;
  }
  if (out_offset_ == out_.size()) {
    out_offset_ = 0;
    if (out_.capacity() > kKeepCapacity) {
      std::string().swap(out_);
    } else {
      out_.clear();
    }
  } else if (out_offset_ > kKeepCapacity && out_offset_ * 2 > out_.size()) {
    out_.erase(0, out_offset_);
    out_offset_ = 0;
  }
  return 0;
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
      deliver(std::string_view(buf.data(), static_cast<size_t>(n)));
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
    closeNow(strerror(err));
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

void Connection::closeAfterFlush() {
  if (closed_) return;
  flush();
  if (closed_) return;
  ::shutdown(fd_, SHUT_WR);
  closeNow("closed by broker");
}

void Connection::closeNow(std::string_view why) {
  if (closed_) return;
  closed_ = true;
  flush_list_.forget(this);
  flush_scheduled_ = false;
  loop_.remove(fd_);
  std::string().swap(in_);
  std::string().swap(out_);
  // Before the socket closes: what the protocol layer records of the close
  // (a session gone offline) is committed before the peer sees the FIN.
  if (callbacks_) callbacks_->onClosed(why);
  ::close(fd_);
  fd_ = -1;
}

int Connection::release(std::string& unconsumed_input) {
  int fd = fd_;
  loop_.remove(fd_);
  flush_list_.forget(this);
  flush_scheduled_ = false;
  unconsumed_input = std::move(in_);
  closed_ = true;
  fd_ = -1;
  return fd;
}

}  // namespace gannet::net
