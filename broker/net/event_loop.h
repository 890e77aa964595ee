#pragma once
// One worker's edge-triggered epoll loop.
//
// Owned by a Worker; lives on that worker's thread for its whole life. Only
// post(), wake() and stop() may be called from other threads ("this is safe cross
// thread"); everything else runs on the loop thread.
//
// An iteration: epoll_wait → handlers for ready fds → posted functors / the wake
// handler → end-of-iteration hooks (coalesced writes, group commit). Work that
// arrives during an iteration is batched into one write per connection.

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "absl/status/status.h"

namespace gannet::net {

class EventLoop {
 public:
  // Receives readiness events for one fd. Registered with add().
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void onEvents(uint32_t events) = 0;
  };

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  absl::Status init();

  // Runs until stop(). Call on the loop thread.
  void run();
  // Thread-safe. The loop finishes its current iteration and returns from run().
  void stop();

  // Posts a functor to run on the loop thread in the next iteration. Thread-safe.
  void post(std::function<void()> fn);
  // Wakes the loop so that its wake handler runs. Thread-safe; coalesces.
  void wake();
  // Runs on the loop thread after a wake(), once per iteration at most.
  void setWakeHandler(std::function<void()> fn) { wake_handler_ = std::move(fn); }

  absl::Status add(int fd, uint32_t events, Handler* handler);
  absl::Status modify(int fd, uint32_t events, Handler* handler);
  void remove(int fd);

  // Runs `fn` at the end of every iteration, in registration order.
  void addIterationEndHook(std::function<void()> fn) { end_hooks_.push_back(std::move(fn)); }
  // Runs `fn` about every `interval_ms` on the loop thread (keep-alive sweeps,
  // expiry). One ticker per loop.
  void setTicker(int64_t interval_ms, std::function<void()> fn);

  // Monotonic milliseconds, read once per iteration.
  int64_t now() const { return now_ms_; }

 private:
  class WakeFd;
  void drainPosted();

  int epoll_fd_ = -1;
  int event_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> wake_pending_{false};
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::function<void()> wake_handler_;
  std::vector<std::function<void()>> end_hooks_;
  std::function<void()> ticker_;
  int64_t ticker_interval_ms_ = 0;
  int64_t next_tick_ms_ = 0;
  int64_t now_ms_ = 0;
};

}  // namespace gannet::net
