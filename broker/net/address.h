#pragma once
// "HOST:PORT" parsing and socket helpers shared by listeners.

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace gannet::net {

struct HostPort {
  std::string host;  // IPv4 dotted quad or IPv6 literal (without brackets); "" = any
  uint16_t port = 0;
};

// Parses "HOST:PORT", "[V6]:PORT" or ":PORT". Clear error for anything else.
absl::StatusOr<HostPort> parseHostPort(std::string_view text);

// Creates a non-blocking listening TCP socket bound to `addr` with SO_REUSEADDR and,
// when `reuse_port`, SO_REUSEPORT (one socket per worker; the kernel spreads
// connections). Returns the fd.
absl::StatusOr<int> listenTcp(const HostPort& addr, bool reuse_port, int backlog = 4096);

// The port a bound socket actually got (for port 0).
absl::StatusOr<uint16_t> boundPort(int fd);

// "ip:port" of a connected peer, for logs.
std::string peerName(const sockaddr_storage& addr);

}  // namespace gannet::net
