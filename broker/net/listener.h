#pragma once
// A listening TCP socket on one worker's loop. Each worker has its own socket on
// the same address (SO_REUSEPORT): the kernel spreads new connections across them.
// Owned by the Worker; lives on its loop thread.

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "broker/net/address.h"
#include "broker/net/event_loop.h"

namespace gannet::net {

class Listener : public EventLoop::Handler {
 public:
  // Called for each accepted connection with its non-blocking fd and peer name.
  using AcceptFn = std::function<void(int fd, std::string peer)>;

  Listener(EventLoop& loop, AcceptFn on_accept) : loop_(loop), on_accept_(std::move(on_accept)) {}
  ~Listener() override;

  // Binds `addr` (SO_REUSEPORT) and starts accepting. Returns the bound port.
  absl::StatusOr<uint16_t> start(const HostPort& addr);
  // Stops accepting: closes the socket (drain / shutdown).
  void stop();
  void onEvents(uint32_t events) override;

 private:
  EventLoop& loop_;
  AcceptFn on_accept_;
  int fd_ = -1;
};

}  // namespace gannet::net
