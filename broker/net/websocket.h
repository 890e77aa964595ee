#pragma once
// WebSocketLayer: the server side of RFC 6455 as a StreamLayer, for MQTT over
// WebSocket (MQTT 5.0 §6, MQTT 3.1.1 §6).
//
// decode() first reads the HTTP/1.1 upgrade request (buffered until CRLFCRLF,
// bounded), answers it with 101 or with a short HTTP error, then turns client
// frames into the MQTT byte stream. MQTT packets need not line up with frames
// (MQTT-6.0.0-2): payload bytes are unmasked and handed up as they arrive, so
// the layer keeps only an incomplete frame header (at most 14 bytes) and the
// payload of a control frame in progress (at most 125 bytes) between calls,
// never a data frame or a whole message. encode() wraps what MQTT wrote since
// the last flush into one unmasked binary frame.
//
// Owned by the Connection, used on its loop thread only (see StreamLayer). It
// holds no thread-shared state: one instance per connection.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "broker/net/stream_layer.h"

namespace gannet::net {

struct WebSocketOptions {
  // The request path to accept (the query string is ignored); others get 404.
  std::string path = "/mqtt";
  // Largest WebSocket message (the sum of its fragments), in bytes; a frame that
  // would go over it closes with 1009. Payloads are streamed, so this bounds
  // policy, not memory. MQTT's own maximum packet size is checked above us;
  // keep this at least that plus 5 (one packet per message is what clients
  // send, and one flush of ours may hold several).
  uint64_t max_message_bytes = 16 << 20;
  // Largest upgrade request (request line and headers), in bytes.
  size_t max_request_bytes = 8 * 1024;
};

class WebSocketLayer final : public StreamLayer {
 public:
  explicit WebSocketLayer(WebSocketOptions options = {});

  Result decode(std::string_view in, std::string& up, std::string& to_peer,
                std::string& why) override;
  bool encode(std::string_view in, std::string& down, std::string& why) override;
  bool ready() const override { return state_ == State::kOpen; }
  // A close frame with 1000 (normal closure) when open.
  void closing(std::string& down) override;

  // The subprotocol agreed in the handshake ("mqtt", "mqttv3.1"), or empty
  // when the client offered none. Valid once ready().
  const std::string& subprotocol() const { return subprotocol_; }

  // Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2 item 5.4):
  // base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
  static std::string acceptKey(std::string_view key);
  // Appends a server (unmasked) frame header for a final frame.
  static void appendFrameHeader(uint8_t opcode, uint64_t payload_len, std::string& out);

 private:
  enum class State { kHandshake, kOpen, kClosed };

  // Handshake: buffers the request; once complete, answers it (101 and
  // state_ = kOpen, or an HTTP error and kClose). `consumed` says how many
  // bytes of `in` belonged to the request: the rest are frames.
  Result readRequest(std::string_view in, size_t& consumed, std::string& to_peer, std::string& why);
  Result answerRequest(std::string_view request, std::string& to_peer, std::string& why);
  Result refuse(int status, std::string_view detail, std::string_view extra_headers,
                std::string& to_peer, std::string& why);

  // Frames.
  Result readFrames(std::string_view in, std::string& up, std::string& to_peer, std::string& why);
  Result startFrame(std::string& to_peer, std::string& why);
  Result endControlFrame(std::string& to_peer, std::string& why);
  Result fail(uint16_t code, std::string_view reason, std::string& to_peer, std::string& why);

  WebSocketOptions options_;
  State state_ = State::kHandshake;
  std::string request_;      // the upgrade request until its CRLFCRLF
  std::string kept_output_;  // MQTT bytes given to encode() before the 101
  std::string subprotocol_;

  // The frame being read.
  bool reading_payload_ = false;  // the header is complete
  uint8_t header_[14];
  size_t header_len_ = 0;  // bytes of header_ filled
  uint8_t opcode_ = 0;
  bool fin_ = false;
  uint32_t mask_ = 0;         // the masking key as it sits in memory
  uint64_t remaining_ = 0;    // payload bytes still to come
  uint64_t payload_pos_ = 0;  // payload bytes read so far (for the mask phase)
  std::string control_;       // payload of a control frame in progress

  // The message being read (data frames).
  bool in_message_ = false;
  uint64_t message_bytes_ = 0;
};

}  // namespace gannet::net
