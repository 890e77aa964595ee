#pragma once
// StreamLayer: a transformation between the bytes on the wire and the bytes
// the protocol layer (MQTT) reads and writes: TLS, WebSocket framing, or both
// stacked (secure WebSocket: TLS below, WebSocket above).
//
// A Connection without layers moves bytes between the socket and MQTT as they
// are. With layers, what the socket gives goes through decode() of each layer
// from the bottom up, and what MQTT wrote goes through encode() of each layer
// from the top down, once per flush (so many MQTT packets become one TLS record
// run / one WebSocket frame, written with one send()).
//
// Owned by the Connection; used on its loop thread only (it may move to another
// worker's thread with the connection, never used by two at once).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gannet::net {

class StreamLayer {
 public:
  enum class Result {
    kOk,     // go on
    kClose,  // send `to_peer` (e.g. an HTTP error, a close frame), then close
  };

  virtual ~StreamLayer() = default;

  // Bytes from the layer below (or the socket). Appends what it decoded for the
  // layer above to `up`, and anything it must answer on its own (handshake
  // messages, a WebSocket pong or close) to `to_peer`, already encoded by this
  // layer (the layers below still encode it). On kClose, `why` says why, for
  // the log; `up` may still hold bytes decoded before.
  virtual Result decode(std::string_view in, std::string& up, std::string& to_peer,
                        std::string& why) = 0;

  // Bytes from the layer above (MQTT). Appends their encoding to `down`.
  // Called with what is pending, possibly before the layer is ready (a TLS or
  // WebSocket handshake not finished): the layer then keeps the bytes and
  // sends them once it is. Returns false with `why` when the connection must
  // close.
  virtual bool encode(std::string_view in, std::string& down, std::string& why) = 0;

  // The connection is about to close on our side (a protocol error, a
  // takeover, a drain): appends this layer's goodbye (a WebSocket close frame,
  // a TLS close_notify), encoded by this layer; the layers below encode it.
  // Called top layer first, before the last flush.
  virtual void closing(std::string& down) {}

  // Optional: identity the layer learned (the subject CN of a verified TLS
  // client certificate). Empty when none.
  virtual std::string peerIdentity() const { return {}; }
  // True once the layer's handshake is done (MQTT bytes may flow).
  virtual bool ready() const { return true; }
};

}  // namespace gannet::net
