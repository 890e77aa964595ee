#pragma once
// One load-generator thread: an edge-triggered epoll loop over many Clients.
//
// Created and joined by a scenario's run function on the main thread; between
// start() and join() everything but counters() and the RunState is touched only
// by the worker's own thread. An iteration is: wait (epoll_pwait2, ns timeout
// for pacing) → read every ready socket → the Driver queues new packets →
// one write per dirty socket. Keep-alive PINGREQs are sent on behalf of idle
// clients.

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmarks/loadgen/client.h"
#include "benchmarks/loadgen/run_state.h"

namespace gannet::loadgen {

// Where the broker listens, resolved once by main(), and whether to speak TLS
// to it (--tls).
struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;                       // "host:port", for messages
  const TlsClientContext* tls = nullptr;  // null: plain TCP
};

class Worker {
 public:
  // The scenario's per-worker logic; called on the worker thread.
  class Driver {
   public:
    virtual ~Driver() = default;
    // Once per iteration, after reads and before writes.
    virtual void onIteration(Worker& worker) = 0;
    // Monotonic ns at which onIteration must run even without socket events;
    // at or before now means "do not sleep" (a publisher can write more).
    virtual int64_t wakeAtNs(Worker& worker) = 0;
    // True once every client is closed and the loop may exit.
    virtual bool done(Worker& worker) = 0;
  };

  Worker(int id, RunState& state, const Endpoint& endpoint, uint16_t keepalive_s);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void setDriver(Driver* driver) { driver_ = driver; }
  // Spawns the thread. Returns false (state failed) if epoll cannot be created.
  bool start();
  void join();

  int id() const { return id_; }
  RunState& state() { return state_; }
  WorkerCounters& counters() { return counters_; }
  const Endpoint& endpoint() const { return endpoint_; }
  uint16_t keepaliveS() const { return keepalive_s_; }

  // Worker thread only. Clients live until the Worker is destroyed.
  Client& addClient(Client::Listener& listener, uint32_t index, std::string client_id);
  int64_t now() const { return now_ns_; }
  int epollFd() const { return epoll_fd_; }
  void markDirty(Client* client);
  void readAgain(Client* client);
  char* scratch() { return scratch_.get(); }
  size_t scratchSize() const { return kScratchSize; }

 private:
  static constexpr size_t kScratchSize = 256 * 1024;

  void loop();
  void sendPings();
  void flushDirty();

  const int id_;
  RunState& state_;
  const Endpoint endpoint_;
  const uint16_t keepalive_s_;
  WorkerCounters counters_;
  Driver* driver_ = nullptr;
  int epoll_fd_ = -1;
  std::thread thread_;
  int64_t now_ns_ = 0;
  int64_t next_ping_check_ns_ = 0;
  std::unique_ptr<char[]> scratch_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<Client*> dirty_;
  std::vector<Client*> read_again_;
  std::vector<Client*> read_again_now_;
};

}  // namespace gannet::loadgen
