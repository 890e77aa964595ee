#include "broker/net/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/clock.h"

namespace gannet::net {

namespace {
constexpr int kMaxEvents = 256;
// Sentinel handler pointer for the eventfd.
EventLoop::Handler* const kWakeTag = nullptr;
}  // namespace

EventLoop::EventLoop() = default;

EventLoop::~EventLoop() {
  if (event_fd_ >= 0) ::close(event_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

absl::Status EventLoop::init() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return absl::InternalError(absl::StrCat("epoll_create1: ", strerror(errno)));
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = kWakeTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, event_fd_, &ev) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl(eventfd): ", strerror(errno)));
  }
  now_ms_ = base::monotonicMs();
  return absl::OkStatus();
}

void EventLoop::stop() {
  stopping_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof(one));
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(post_mu_);
    posted_.push_back(std::move(fn));
  }
  wake();
}

void EventLoop::wake() {
  // Only the first waker since the loop last drained pays for the syscall.
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof(one));
}

absl::Status EventLoop::add(int fd, uint32_t events, Handler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl(ADD): ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status EventLoop::modify(int fd, uint32_t events, Handler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl(MOD): ", strerror(errno)));
  }
  return absl::OkStatus();
}

void EventLoop::remove(int fd) { ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::setTicker(int64_t interval_ms, std::function<void()> fn) {
  ticker_ = std::move(fn);
  ticker_interval_ms_ = interval_ms;
  next_tick_ms_ = base::monotonicMs() + interval_ms;
}

void EventLoop::drainPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(post_mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::run() {
  epoll_event events[kMaxEvents];
  while (!stopping_.load(std::memory_order_acquire)) {
    int timeout = -1;
    if (ticker_) {
      int64_t left = next_tick_ms_ - base::monotonicMs();
      timeout = left < 0 ? 0 : static_cast<int>(left);
    }
    int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, timeout);
    now_ms_ = base::monotonicMs();
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      Handler* h = static_cast<Handler*>(events[i].data.ptr);
      if (h == kWakeTag) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(event_fd_, &v, sizeof(v));
        woken = true;
        continue;
      }
      h->onEvents(events[i].events);
    }
    if (woken) {
      wake_pending_.store(false, std::memory_order_release);
      drainPosted();
      if (wake_handler_) wake_handler_();
    }
    if (ticker_ && now_ms_ >= next_tick_ms_) {
      next_tick_ms_ = now_ms_ + ticker_interval_ms_;
      ticker_();
    }
    for (auto& hook : end_hooks_) hook();
  }
  drainPosted();
}

}  // namespace gannet::net
