#include "broker/net/listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "base/logging.h"

namespace gannet::net {

Listener::~Listener() { stop(); }

absl::StatusOr<uint16_t> Listener::start(const HostPort& addr) {
  auto fd = listenTcp(addr, /*reuse_port=*/true);
  if (!fd.ok()) return fd.status();
  fd_ = *fd;
  auto port = boundPort(fd_);
  if (!port.ok()) return port.status();
  auto s = loop_.add(fd_, EPOLLIN | EPOLLET, this);
  if (!s.ok()) return s;
  return *port;
}

void Listener::stop() {
  if (fd_ < 0) return;
  loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

void Listener::onEvents(uint32_t) {
  while (fd_ >= 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // EMFILE/ENFILE/ENOBUFS: out of descriptors or memory. Log and try again on
      // the next connection attempt rather than spin.
      base::logger("net").warn("accept failed: {}", strerror(errno));
      return;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    on_accept_(fd, peerName(ss));
  }
}

}  // namespace gannet::net
