#pragma once
// One TCP connection: bytes in, bytes out. Knows nothing of MQTT.
//
// Owned by the protocol object that uses it (the MQTT client of broker/session),
// which a Worker owns; lives on that worker's loop thread for its whole life.
// Input is read in one go per readiness event into a per-thread buffer; only an
// incomplete trailing packet is kept per connection, so an idle connection holds
// no buffer. Output is appended during an iteration and written once per
// iteration by the FlushList (writes coalesced per connection).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "broker/net/event_loop.h"
#include "broker/net/stream_layer.h"

namespace gannet::net {

class Connection;

// The connections of one loop that have output to write this iteration.
// Owned by the Worker; flushAll() runs at the end of every iteration.
class FlushList {
 public:
  void add(Connection* c) { dirty_.push_back(c); }
  // A connection that stopped reading to let others run, or resumed reading after
  // its output drained: read it again at the end of the iteration.
  void addReadAgain(Connection* c) { read_again_.push_back(c); }
  // Reads the read-again connections, then writes every dirty one.
  void flushAll();
  // A closing connection must not stay in the lists.
  void forget(Connection* c);
  bool hasReadAgain() const { return !read_again_.empty(); }

 private:
  std::vector<Connection*> dirty_;
  std::vector<Connection*> read_again_;
};

class Connection : public EventLoop::Handler {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // `data` is every unconsumed input byte. Returns how many were consumed (whole
    // packets); the rest is kept and offered again with the next bytes.
    virtual size_t onData(std::string_view data) = 0;
    // The connection is closed (peer close, error, or closeNow()). Called once.
    virtual void onClosed(std::string_view why) = 0;
    // Output fell below the low-water mark after having been above the limit.
    virtual void onWritable() = 0;
  };

  // Takes ownership of the connected, non-blocking `fd`.
  Connection(EventLoop& loop, FlushList& flush_list, int fd, std::string peer);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void setCallbacks(Callbacks* cb) { callbacks_ = cb; }
  // TLS / WebSocket between the socket and the protocol layer, bottom first
  // (stream_layer.h). Set before start(); none: bytes pass as they are.
  void setLayers(std::vector<std::unique_ptr<StreamLayer>> layers) { layers_ = std::move(layers); }
  // The identity a layer learned (TLS client certificate CN); empty: none.
  std::string peerIdentity() const;
  // Registers with the loop. `initial_input` is input read elsewhere (a connection
  // migrated from another worker); it is offered to onData() first.
  absl::Status start(std::string initial_input = {});

  // Appends to the output; written at the end of the iteration.
  void send(std::string_view bytes) {
    out_.append(bytes);
    scheduleFlush();
  }
  // Direct access for encoders that append in place; call scheduleFlush() after.
  std::string& output() { return out_; }
  void scheduleFlush() {
    if (!flush_scheduled_ && !closed_) {
      flush_scheduled_ = true;
      flush_list_.add(this);
    }
    // A fan-in burst can queue megabytes for one subscriber within one
    // iteration: hand big chunks to the kernel as they form instead of letting
    // them reach the output bound (and drop QoS 0) before the iteration ends.
    if (pendingOutput() >= kEagerWriteBytes) writeSome();
  }
  static constexpr size_t kEagerWriteBytes = 256 * 1024;
  size_t pendingOutput() const {
    return out_.size() - out_offset_ + (wire_.size() - wire_offset_);
  }
  // Output above which the protocol layer should stop producing (QoS 0 is dropped,
  // QoS>0 waits in the session queue) and input is no longer read.
  void setOutputLimit(size_t bytes) { output_limit_ = bytes; }
  // Remembers that the limit was reached, so onWritable() fires once the output
  // has drained, whoever filled it (input handling or deliveries).
  bool outputFull() {
    if (pendingOutput() < output_limit_) return false;
    was_full_ = true;
    return true;
  }

  // Offers the kept unconsumed input to onData() again (the protocol layer
  // stopped consuming for a while and can go on now).
  void redeliver() {
    if (!closed_ && !in_.empty()) deliver({});
  }
  // Writes what is pending now. Returns false when the connection failed.
  bool flush();
  // Flushes what is queued (best effort, non-blocking), then closes.
  void closeAfterFlush(std::string_view why = "closed by broker");
  // Closes at once; pending output is discarded. onClosed(why) is called.
  void closeNow(std::string_view why);
  bool closed() const { return closed_; }

  // What moves with a connection to another worker.
  struct Detached {
    int fd = -1;
    std::string input;  // unconsumed input, as the protocol layer sees it
    std::string wire;   // output for the socket not written yet (already encoded)
    std::vector<std::unique_ptr<StreamLayer>> layers;
  };
  // Detaches the socket for migration to another worker: unregisters it and
  // returns it with its state. The connection is closed afterwards without
  // touching the socket or calling onClosed().
  Detached release();
  // Before start() on the adopting worker: the state release() returned
  // (the fd is the one given to the constructor).
  void adoptState(Detached&& d);

  const std::string& peer() const { return peer_; }
  // The listener it came in on (mqtt, mqtts, ws, wss): logs, metrics, rules
  // that apply to secure listeners only.
  void setListener(std::string name) { listener_ = std::move(name); }
  const std::string& listener() const { return listener_; }
  int fd() const { return fd_; }

  void onEvents(uint32_t events) override;

 private:
  friend class FlushList;
  void readAll();
  void deliver(std::string_view fresh);
  // Input from the socket through the layers' decode(); false when it closed.
  bool deliverThroughLayers(std::string_view raw);
  // Bytes layer `from` must send: encoded by the layers below it, onto wire_.
  bool sendFromLayer(size_t from, std::string_view bytes);
  // Encodes the protocol layer's output through every layer onto wire_.
  bool encodePending();
  // Writes what the socket takes now, without closing on error (it may run inside
  // a handler that still uses this connection): flush() reports errors later.
  void writeSome();
  // Sends what the socket takes and compacts the buffer. Returns 0, or the errno
  // of a failed send.
  int sendPending();

  EventLoop& loop_;
  FlushList& flush_list_;
  int fd_;
  std::string peer_;
  std::string listener_ = "mqtt";
  Callbacks* callbacks_ = nullptr;
  std::string in_;  // incomplete packet only
  std::string out_;
  size_t out_offset_ = 0;
  // With layers: out_ holds protocol bytes, wire_ what goes to the socket.
  std::vector<std::unique_ptr<StreamLayer>> layers_;
  std::string wire_;
  size_t wire_offset_ = 0;
  std::string layer_error_;  // why an encode() failed
  size_t output_limit_ = 1 << 20;
  bool flush_scheduled_ = false;
  bool closed_ = false;
  bool read_paused_ = false;  // output over limit: stop reading until it drains
  bool was_full_ = false;
  bool write_failed_ = false;  // seen by writeSome(); flush() closes
};

}  // namespace gannet::net
