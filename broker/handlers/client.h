#pragma once
// One MQTT network connection and its protocol state: the version spoken, keep
// alive, topic aliases, flow control toward the client, and the session it is
// attached to once CONNECT succeeded.
//
// Owned by a Worker (its client table); lives on that worker's loop thread. It
// is destroyed by the worker at the end of the iteration in which it closed.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "base/token_bucket.h"
#include "broker/codec/packets.h"
#include "broker/handlers/context.h"
#include "broker/net/connection.h"
#include "broker/session/session.h"

namespace gannet::handlers {

class Client : public net::Connection::Callbacks {
 public:
  // kAwaitCluster: the CONNECT was read and waits for the other nodes of the
  // cluster to hand over the session (nothing more is read meanwhile).
  enum class State : uint8_t { kAwaitConnect, kAwaitCluster, kConnected, kMigrating, kClosed };

  Client(BrokerContext& ctx, std::unique_ptr<net::Connection> conn);
  ~Client() override;

  // --- net::Connection::Callbacks ---
  size_t onData(std::string_view data) override;
  void onClosed(std::string_view why) override;
  void onWritable() override;

  BrokerContext& ctx() { return ctx_; }
  net::Connection& connection() { return *conn_; }
  State state() const { return state_; }
  codec::ProtocolVersion version() const { return version_; }
  bool isV5() const { return version_ == codec::ProtocolVersion::kV5; }
  session::Session* session() { return session_; }
  const std::string& peer() const { return conn_->peer(); }

  // Sends a packet (appended to the output, written at the end of the iteration).
  void send(const codec::Packet& packet);
  // The same for an ack without properties (the common case), cheaper.
  void sendAck(codec::PacketType type, uint16_t packet_id, codec::ReasonCode reason_code);
  // Closes after a protocol violation: MQTT 5 gets DISCONNECT with the status's
  // reason code first (§4.13); the will is published (abnormal close).
  void closeForError(const absl::Status& status);
  // Closes with an MQTT 5 DISCONNECT `reason` (if connected with MQTT 5 and
  // `reason` is not success). `publish_will` for abnormal closes.
  void disconnect(codec::ReasonCode reason, std::string_view why, bool publish_will);
  // This node is draining: MQTT 5 gets DISCONNECT 0x9C (use another server) with
  // `server_reference`; 3.1.1 a plain close. The will is not published (the
  // session moves to another node).
  void redirect(const std::string& server_reference);

  // Called by handleConnect once the CONNACK is sent.
  void attach(session::Session& s, codec::ProtocolVersion v);
  void markMigrating(uint32_t worker) {
    state_ = State::kMigrating;
    migrate_to_ = worker;
  }
  uint32_t migrateTo() const { return migrate_to_; }
  // Cluster session takeover: the CONNECT waits for the other nodes' answers
  // (BrokerContext::claimInCluster), then resumeConnect() handles it here, with
  // the input that came after it.
  void awaitCluster() { state_ = State::kAwaitCluster; }
  void resumeConnect(codec::ConnectPacket&& connect);
  bool clusterCleared() const { return cluster_cleared_; }

  // Keep-alive (§3.1.2.10): the worker's sweep closes clients silent for 1.5×.
  uint16_t keep_alive = 0;
  int64_t last_received_ms = 0;
  int64_t accepted_ms = 0;

  // Flow control toward the client (MQTT 5 Receive Maximum, or the configured
  // window for 3.1.1) and its Maximum Packet Size (0 = no limit).
  uint16_t send_window = 20;
  uint32_t client_max_packet_size = 0;
  bool request_problem_information = true;

  // Topic aliases (MQTT 5 §3.3.2.3.4): alias → topic received from the client, and
  // topic → alias for what we send (up to the client's Topic Alias Maximum).
  std::vector<std::string> inbound_aliases;
  uint16_t client_topic_alias_max = 0;
  std::unique_ptr<absl::flat_hash_map<std::string, uint16_t>> outbound_aliases;

  // Acks of this client's publishes waiting for a commit (counted up and down by
  // BrokerContext::ackAfterCommit's owner); while any waits, later acks queue
  // behind them (§4.6: acks in the order of the PUBLISHes).
  uint32_t acks_held = 0;

  // Set by a DISCONNECT with reason 0 (§3.14.4): the will is discarded.
  bool normal_disconnect = false;

  // --max_publish_rate (broker/handlers/limits.h): untouched while it is 0.
  base::TokenBucket publish_bucket;

 private:
  size_t handleFrames(std::string_view data);

  BrokerContext& ctx_;
  std::unique_ptr<net::Connection> conn_;
  session::Session* session_ = nullptr;
  State state_ = State::kAwaitConnect;
  codec::ProtocolVersion version_ = codec::ProtocolVersion::kV311;
  uint32_t migrate_to_ = 0;
  bool cluster_cleared_ = false;  // the cluster answered this connection's claim
};

}  // namespace gannet::handlers
