#pragma once
// The fixture of the handler tests: MQTT clients driven packet by packet against
// the real handlers, in-process, with no node and no threads.
//
// Each TestClient is a handlers::Client over one end of a socketpair. The test
// plays the network peer: send() encodes a packet and hands its bytes to
// Client::onData() as if they had been read; receive() runs the end-of-iteration
// flush, reads the other end of the socketpair and decodes what the broker wrote.
// The event loop is only init()ed (Connection needs one); it never runs.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "broker/codec/packets.h"
#include "broker/handlers/client.h"
#include "broker/net/connection.h"
#include "broker/net/event_loop.h"
#include "fake_context.h"

namespace gannet::handlers::testing {

using codec::PacketType;
using codec::ProtocolVersion;
using codec::ReasonCode;

class TestClient {
 public:
  TestClient(FakeContext& ctx, net::EventLoop& loop, net::FlushList& flush, ProtocolVersion v);
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Encodes `packet` for this client's version and feeds it to Client::onData.
  void send(const codec::Packet& packet);
  // What the broker has written to this client since the last call, decoded.
  std::vector<codec::Packet> receive();
  // True once the broker closed the connection (seen by receive() as EOF).
  bool closedByBroker() const { return eof_; }
  // The network fails: the peer end closes and the broker notices at its next read.
  void dropNetwork();

  Client& client() { return *client_; }
  session::Session* session() { return client_->session(); }
  const ProtocolVersion version;

 private:
  net::FlushList& flush_;
  std::unique_ptr<Client> client_;
  int peer_fd_ = -1;
  std::string unread_;  // bytes read from the peer end, not yet a whole packet
  bool eof_ = false;
};

// --- packets a test sends ---
codec::ConnectPacket connectPacket(ProtocolVersion v, std::string client_id);
// A session that outlives its connection: clean session 0 (3.1.1); clean start 0
// and a Session Expiry Interval of 300 s (5).
codec::ConnectPacket persistentConnect(ProtocolVersion v, std::string client_id);
codec::PublishPacket publishPacket(std::string topic, std::string payload, uint8_t qos = 0,
                                   uint16_t packet_id = 0);
codec::SubscriptionRequest request(std::string filter, uint8_t qos);
codec::Will willOf(std::string topic, std::string payload, uint8_t qos = 0);
codec::SubscribePacket subscribePacket(uint16_t packet_id, codec::SubscriptionRequest request,
                                       uint32_t subscription_id = 0);
codec::PubAckPacket ackPacket(PacketType type, uint16_t packet_id,
                              ReasonCode rc = ReasonCode::kSuccess);
codec::DisconnectPacket disconnectPacket(ReasonCode rc = ReasonCode::kSuccess);

// --- checks on what a client receives ---
// "PUBLISH q1 id=3 dup 'a/b' 'payload'" and so on, for failure messages.
std::string describe(const codec::Packet& p);
std::string describe(const std::vector<codec::Packet>& ps);

// The packet as a T; fails the test (and returns a default T) if it is another type.
template <class T>
T as(const codec::Packet& p) {
  if (const T* t = std::get_if<T>(&p)) return *t;
  ADD_FAILURE() << "unexpected packet " << describe(p);
  return T{};
}
// The only packet of `ps`, as a T.
template <class T>
T single(const std::vector<codec::Packet>& ps) {
  if (ps.size() != 1) {
    ADD_FAILURE() << "expected one packet, got " << describe(ps);
    return T{};
  }
  return as<T>(ps[0]);
}
// Every packet of `ps`, each expected to be a T.
template <class T>
std::vector<T> allAs(const std::vector<codec::Packet>& ps) {
  std::vector<T> out;
  for (const codec::Packet& p : ps) out.push_back(as<T>(p));
  return out;
}
std::vector<std::string> payloads(const std::vector<codec::PublishPacket>& ps);

class HandlerTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // A new connection that has sent nothing yet.
  std::unique_ptr<TestClient> open(ProtocolVersion v);
  // Opens a connection, sends `connect` and expects a successful CONNACK, which
  // it returns in `ack` (when given). What the broker sent after the CONNACK
  // (resent messages) goes to `after`; without `after`, nothing may follow.
  std::unique_ptr<TestClient> connect(const codec::ConnectPacket& connect,
                                      codec::ConnackPacket* ack = nullptr,
                                      std::vector<codec::Packet>* after = nullptr);
  // Subscribes `c` to `request` and expects a SUBACK granting its QoS.
  void subscribe(TestClient& c, codec::SubscriptionRequest request, uint32_t subscription_id = 0);
  void subscribe(TestClient& c, std::string filter, uint8_t qos) {
    subscribe(c, request(std::move(filter), qos));
  }

  // Expects the broker to have closed `c` for a protocol violation: MQTT 5 with a
  // DISCONNECT carrying `reason` (§4.13), 3.1.1 without a word.
  void expectClosedWith(TestClient& c, ReasonCode reason);

  net::EventLoop loop_;
  net::FlushList flush_;
  FakeContext ctx_;
  uint16_t next_packet_id_ = 1000;  // for SUBSCRIBEs sent by subscribe()
};

// For tests run once per protocol version.
class PerVersionTest : public HandlerTest, public ::testing::WithParamInterface<ProtocolVersion> {
 protected:
  ProtocolVersion v() const { return GetParam(); }
  bool isV5() const { return GetParam() == ProtocolVersion::kV5; }
};
std::string versionName(const ::testing::TestParamInfo<ProtocolVersion>& info);

}  // namespace gannet::handlers::testing
