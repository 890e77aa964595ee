#include "benchmarks/loadgen/worker.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "benchmarks/loadgen/cpu_time.h"

namespace gannet::loadgen {
namespace {

constexpr int kMaxEvents = 512;
// The longest sleep, so that phase changes from the main thread are seen promptly.
constexpr int64_t kMaxSleepNs = 5'000'000;
constexpr int64_t kPingCheckIntervalNs = 1'000'000'000;

}  // namespace

Worker::Worker(int id, RunState& state, const Endpoint& endpoint, uint16_t keepalive_s)
    : id_(id),
      state_(state),
      endpoint_(endpoint),
      keepalive_s_(keepalive_s),
      scratch_(new char[kScratchSize]) {}

Worker::~Worker() {
  join();
  clients_.clear();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

bool Worker::start() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    state_.fail(std::string("epoll_create1: ") + std::strerror(errno));
    return false;
  }
  thread_ = std::thread([this] { loop(); });
  return true;
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

Client& Worker::addClient(Client::Listener& listener, uint32_t index, std::string client_id) {
  clients_.push_back(std::make_unique<Client>(*this, listener, index, std::move(client_id)));
  return *clients_.back();
}

void Worker::markDirty(Client* client) {
  client->dirty_ = true;
  dirty_.push_back(client);
}

void Worker::readAgain(Client* client) {
  if (client->read_again_) return;
  client->read_again_ = true;
  read_again_.push_back(client);
}

void Worker::loop() {
  // Timed waits get the default 50 µs timer slack; pacing needs far less.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  epoll_event events[kMaxEvents];
  now_ns_ = monotonicNs();
  next_ping_check_ns_ = now_ns_ + kPingCheckIntervalNs;
  bool have_pwait2 = true;
  while (true) {
    int64_t now = monotonicNs();
    int64_t sleep_ns = std::min(driver_->wakeAtNs(*this), next_ping_check_ns_) - now;
    if (!read_again_.empty()) sleep_ns = 0;
    sleep_ns = std::clamp<int64_t>(sleep_ns, 0, kMaxSleepNs);
    int n;
    if (have_pwait2) {
      timespec ts{static_cast<time_t>(sleep_ns / 1'000'000'000),
                  static_cast<long>(sleep_ns % 1'000'000'000)};
      n = epoll_pwait2(epoll_fd_, events, kMaxEvents, &ts, nullptr);
      if (n < 0 && errno == ENOSYS) {
        have_pwait2 = false;  // kernels before 5.11: millisecond timeouts
        continue;
      }
    } else {
      n = epoll_wait(epoll_fd_, events, kMaxEvents,
                     static_cast<int>((sleep_ns + 999'999) / 1'000'000));
    }
    if (n < 0 && errno != EINTR) {
      state_.fail(std::string("epoll_wait: ") + std::strerror(errno));
      n = 0;
    }
    now_ns_ = monotonicNs();
    for (int i = 0; i < n; ++i) {
      static_cast<Client*>(events[i].data.ptr)->onEvents(events[i].events);
    }
    if (!read_again_.empty()) {
      read_again_now_.swap(read_again_);
      for (Client* c : read_again_now_) {
        c->read_again_ = false;
        if (c->state() != Client::State::kClosed) c->readSome();
      }
      read_again_now_.clear();
    }
    if (now_ns_ >= next_ping_check_ns_) sendPings();
    driver_->onIteration(*this);
    flushDirty();
    if (driver_->done(*this)) break;
  }
}

void Worker::flushDirty() {
  // flush() may lose a client whose listener queues bytes elsewhere: index, not
  // iterators, since dirty_ can grow meanwhile.
  for (size_t i = 0; i < dirty_.size(); ++i) dirty_[i]->flush();
  dirty_.clear();
}

void Worker::sendPings() {
  next_ping_check_ns_ = now_ns_ + kPingCheckIntervalNs;
  if (keepalive_s_ == 0) return;
  // MQTT 3.1.1 §3.1.2.10: the broker may close a client silent for 1.5 × keep
  // alive; a ping after half of it leaves a wide margin.
  const int64_t idle_ns = static_cast<int64_t>(keepalive_s_) * 500'000'000;
  for (auto& c : clients_) {
    if (c->isOpen() && now_ns_ - std::max(c->lastWriteNs(), c->openedNs()) > idle_ns) {
      wire::appendPingreq(c->out());
      c->markDirty();
    }
  }
}

}  // namespace gannet::loadgen
