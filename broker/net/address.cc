#include "broker/net/address.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/strings.h"

namespace gannet::net {

absl::StatusOr<HostPort> parseHostPort(std::string_view text_in) {
  const absl::string_view text = base::toAbsl(text_in);
  HostPort hp;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad address '", text, "': want [IPV6]:PORT"));
    }
    hp.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad address '", text, "': want HOST:PORT"));
    }
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  uint32_t port;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in '", text, "'"));
  }
  hp.port = static_cast<uint16_t>(port);
  if (!hp.host.empty()) {
    in_addr a4;
    in6_addr a6;
    if (inet_pton(AF_INET, hp.host.c_str(), &a4) != 1 &&
        inet_pton(AF_INET6, hp.host.c_str(), &a6) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad address '", text, "': host must be an IP address"));
    }
  }
  return hp;
}

absl::StatusOr<int> listenTcp(const HostPort& addr, bool reuse_port, int backlog) {
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  in6_addr a6;
  if (!addr.host.empty() && inet_pton(AF_INET6, addr.host.c_str(), &a6) == 1) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(addr.port);
    s6->sin6_addr = a6;
    len = sizeof(*s6);
    family = AF_INET6;
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(addr.port);
    if (addr.host.empty()) {
      s4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else {
      inet_pton(AF_INET, addr.host.c_str(), &s4->sin_addr);
    }
    len = sizeof(*s4);
    family = AF_INET;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", addr.host.empty() ? "*" : addr.host,
                                               ":", addr.port, ": ", strerror(err)));
  }
  if (::listen(fd, backlog) != 0) {
    int err = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("listen: ", strerror(err)));
  }
  return fd;
}

absl::StatusOr<uint16_t> boundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return absl::InternalError(absl::StrCat("getsockname: ", strerror(errno)));
  }
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

std::string peerName(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET6) {
    auto* s6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
    return absl::StrCat("[", buf, "]:", ntohs(s6->sin6_port));
  }
  auto* s4 = reinterpret_cast<const sockaddr_in*>(&addr);
  inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
  return absl::StrCat(buf, ":", ntohs(s4->sin_port));
}

}  // namespace gannet::net
