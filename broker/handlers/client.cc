#include "broker/handlers/client.h"

#include <algorithm>

#include "base/logging.h"
#include "base/strings.h"
#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"
#include "broker/codec/errors.h"
#include "broker/handlers/delivery.h"
#include "broker/handlers/handlers.h"

namespace gannet::handlers {

using codec::ReasonCode;

Client::Client(BrokerContext& ctx, std::unique_ptr<net::Connection> conn)
    : ctx_(ctx), conn_(std::move(conn)) {
  conn_->setCallbacks(this);
  conn_->setOutputLimit(ctx.config().max_connection_buffer_bytes);
  accepted_ms = ctx.now();
  last_received_ms = accepted_ms;
}

Client::~Client() { conn_->setCallbacks(nullptr); }

size_t Client::onData(std::string_view data) {
  size_t used = 0;
  const uint32_t max_size = ctx_.config().max_packet_size;
  while (used < data.size() &&
         (state_ == State::kAwaitConnect || state_ == State::kConnected)) {
    std::string_view rest = data.substr(used);
    // Judge the packet type from its first byte, before waiting for its length:
    // type 0 is reserved (§2.1.2), and nothing but CONNECT may come first (§3.1.0-1).
    const auto type = static_cast<codec::PacketType>(static_cast<uint8_t>(rest[0]) >> 4);
    if (static_cast<uint8_t>(type) == 0) {
      closeForError(codec::protocolError("reserved packet type 0"));
      return data.size();
    }
    if (state_ == State::kAwaitConnect && type != codec::PacketType::kConnect) {
      closeForError(codec::protocolError("first packet is not CONNECT"));
      return data.size();
    }
    auto header = codec::peekFrame(rest);
    if (!header.ok()) {
      closeForError(header.status());
      return data.size();
    }
    if (!header->has_value()) break;
    const codec::FrameHeader& h = **header;
    if (h.totalLength() > max_size) {
      // §3.1.2.11.4 / §4.13: over the Maximum Packet Size the server announced.
      ctx_.stats().limited(LimitRefusal::kMaxPacketSize);
      closeForError(codec::codecError(ReasonCode::kPacketTooLarge, "packet too large"));
      return data.size();
    }
    if (rest.size() < h.totalLength()) break;
    std::string_view raw = rest.substr(0, h.totalLength());
    last_received_ms = ctx_.now();
    ctx_.stats().bytes_received.add(raw.size());
    auto packet = codec::decodePacket(h, raw, version_);
    if (!packet.ok()) {
      closeForError(packet.status());
      return data.size();
    }
    const size_t packet_start = used;
    used += raw.size();
    absl::Status s = dispatch(*this, std::move(*packet));
    if (state_ == State::kMigrating) return packet_start;  // the CONNECT moves too
    if (state_ == State::kAwaitCluster) return used;  // more input waits for resumeConnect()
    if (!s.ok()) {
      closeForError(s);
      return data.size();
    }
  }
  return used;
}

void Client::resumeConnect(codec::ConnectPacket&& connect) {
  if (state_ != State::kAwaitCluster || conn_->closed()) return;
  state_ = State::kAwaitConnect;
  cluster_cleared_ = true;
  absl::Status s = handleConnect(*this, std::move(connect));
  if (!s.ok()) {
    closeForError(s);
    return;
  }
  // Packets the client sent after its CONNECT (pipelined) are handled now.
  if (state_ == State::kConnected) conn_->redeliver();
}

void Client::send(const codec::Packet& packet) {
  if (conn_->closed()) return;
  std::string& out = conn_->output();
  size_t before = out.size();
  codec::encode(packet, version_, out);
  ctx_.stats().bytes_sent.add(out.size() - before);
  conn_->scheduleFlush();
}

void Client::sendAck(codec::PacketType type, uint16_t packet_id, codec::ReasonCode reason_code) {
  if (conn_->closed()) return;
  std::string& out = conn_->output();
  size_t before = out.size();
  codec::encodeAck(type, packet_id, reason_code, version_, out);
  ctx_.stats().bytes_sent.add(out.size() - before);
  conn_->scheduleFlush();
}

void Client::closeForError(const absl::Status& status) {
  ReasonCode rc = codec::reasonCodeOf(status);
  ctx_.stats().protocol_errors.add();
  base::logger("mqtt").debug("closing {}: {} (reason 0x{:02x})", peer(), status.message(),
                             static_cast<int>(rc));
  if (state_ == State::kAwaitConnect && rc == ReasonCode::kUnsupportedProtocolVersion) {
    // §3.1.2.2 (3.1.1): CONNACK with return code 0x01, then close. An MQTT 5
    // client can read that answer too (§3.1.2.2 of MQTT 5 allows it).
    codec::ConnackPacket ack;
    ack.reason_code = codec::connackReturnCodeV3(rc);
    std::string& out = conn_->output();
    codec::encode(ack, codec::ProtocolVersion::kV311, out);
    ctx_.stats().refused(rc);  // the one refusing CONNACK not sent by refuseConnect()
  }
  disconnect(rc, base::toStd(status.message()), /*publish_will=*/true);
}

void Client::disconnect(ReasonCode reason, std::string_view why, bool publish_will) {
  if (state_ == State::kClosed || conn_->closed()) return;
  if (state_ == State::kConnected && isV5() && static_cast<uint8_t>(reason) >= 0x80) {
    codec::DisconnectPacket d;
    d.reason_code = reason;
    if (request_problem_information && !why.empty()) d.properties.reason_string = std::string(why);
    send(d);
  }
  if (!publish_will) normal_disconnect = true;
  // The close writes the output at once: commit what it acknowledges first.
  ctx_.commitDurable();
  conn_->closeAfterFlush();
}

void Client::redirect(const std::string& server_reference) {
  if (state_ == State::kClosed || conn_->closed()) return;
  if (state_ == State::kConnected && isV5()) {
    codec::DisconnectPacket d;
    d.reason_code = ReasonCode::kUseAnotherServer;
    d.properties.server_reference = server_reference;
    if (request_problem_information) d.properties.reason_string = "node draining";
    send(d);
  }
  normal_disconnect = true;
  ctx_.commitDurable();
  conn_->closeAfterFlush();
}

void Client::attach(session::Session& s, codec::ProtocolVersion v) {
  session_ = &s;
  version_ = v;
  s.client = this;
  s.expires_at_ms = 0;
  state_ = State::kConnected;
  ctx_.stats().connections_opened[listenerIndex(conn_->listener())][protocolIndex(v)].add();
}

void Client::onWritable() {
  if (state_ == State::kConnected) pumpQueue(*this);
}

void Client::onClosed(std::string_view why) {
  if (state_ == State::kMigrating) return;  // the socket lives on in another worker
  const bool was_connected = state_ == State::kConnected;
  state_ = State::kClosed;
  ctx_.clientClosed(*this);
  if (!was_connected && conn_->listener() != "mqtt") {
    // A TLS or WebSocket handshake that failed (wrong CA, no client
    // certificate, a plain client on the TLS port): what an operator needs to
    // see. A burst of 20 lines, then at most 10 a second per worker, so a scan
    // cannot flood the log.
    thread_local int64_t tokens_at_ms = 0;  // when the bucket was full
    const int64_t now = ctx_.now();
    tokens_at_ms = std::max(tokens_at_ms, now - 20 * 100);
    if (tokens_at_ms + 100 <= now) {
      tokens_at_ms += 100;
      base::logger("net").info("{} connection from {} closed before CONNECT: {}",
                               conn_->listener(), peer(), why);
    }
  }
  if (!was_connected || session_ == nullptr) return;
  ctx_.stats().connections_closed[listenerIndex(conn_->listener())][protocolIndex(version_)].add();
  session::Session& s = *session_;
  session_ = nullptr;
  s.client = nullptr;
  base::logger("mqtt").debug("client {} disconnected: {}", s.clientId(), why);
  const int64_t now = ctx_.now();
  if (s.will && !normal_disconnect) {
    uint32_t delay = s.will->properties.will_delay_interval.value_or(0);
    if (delay == 0 || s.expiry_interval == 0) {
      // §3.1.3.2.2: published at the earlier of the delay and the session's end.
      codec::Will will = std::move(*s.will);
      s.will.reset();
      publishWill(ctx_, will, s);
    } else {
      uint32_t wait = std::min(delay, s.expiry_interval);
      s.will_due_ms = now + int64_t{wait} * 1000;
    }
  } else {
    s.will.reset();
  }
  if (s.expiry_interval == 0) {
    ctx_.endSession(s);  // destroys `s`
    return;
  }
  if (s.expiry_interval == session::kNeverExpires) {
    s.expires_at_ms = 0;
  } else {
    s.expires_at_ms = now + int64_t{s.expiry_interval} * 1000;
  }
  // Last seen now, the expiry a DISCONNECT may have changed, the will kept or not,
  // committed before the socket closes (a client that saw the close and a kill
  // right after must find the session offline since then).
  ctx_.persistSession(s);
  if (s.stored) ctx_.commitDurable();
}

}  // namespace gannet::handlers
