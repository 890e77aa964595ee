#include "handler_fixture.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"

namespace gannet::handlers::testing {

TestClient::TestClient(FakeContext& ctx, net::EventLoop& loop, net::FlushList& flush,
                       ProtocolVersion v)
    : version(v), flush_(flush) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) {
    ADD_FAILURE() << "socketpair: " << errno;
    sv[0] = sv[1] = -1;
  }
  peer_fd_ = sv[1];
  // Not start()ed: the loop never runs, the test calls onData() itself.
  auto conn = std::make_unique<net::Connection>(loop, flush, sv[0], "test-peer");
  client_ = std::make_unique<Client>(ctx, std::move(conn));
}

TestClient::~TestClient() {
  client_.reset();
  if (peer_fd_ >= 0) ::close(peer_fd_);
}

void TestClient::send(const codec::Packet& packet) {
  std::string bytes;
  codec::encode(packet, version, bytes);
  client_->onData(bytes);
}

std::vector<codec::Packet> TestClient::receive() {
  flush_.flushAll();  // what the worker does at the end of the iteration
  char buf[4096];
  while (peer_fd_ >= 0 && !eof_) {
    ssize_t n = ::read(peer_fd_, buf, sizeof(buf));
    if (n > 0) {
      unread_.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      eof_ = true;
    } else if (errno != EINTR) {
      break;  // EAGAIN: all there is for now
    }
  }
  std::vector<codec::Packet> out;
  std::string_view rest = unread_;
  while (!rest.empty()) {
    auto header = codec::peekFrame(rest);
    if (!header.ok()) {
      ADD_FAILURE() << "bad frame from the broker: " << header.status();
      break;
    }
    if (!header->has_value() || rest.size() < (*header)->totalLength()) break;
    const size_t len = (*header)->totalLength();
    auto packet = codec::decodePacket(**header, rest.substr(0, len), version);
    if (packet.ok()) {
      out.push_back(std::move(*packet));
    } else {
      ADD_FAILURE() << "undecodable packet from the broker: " << packet.status();
    }
    rest.remove_prefix(len);
  }
  unread_.erase(0, unread_.size() - rest.size());
  return out;
}

void TestClient::dropNetwork() {
  ::close(peer_fd_);
  peer_fd_ = -1;
  // The readiness event the broker would get: its read sees EOF and closes.
  client_->connection().onEvents(EPOLLIN | EPOLLRDHUP);
}

// --- packets ---

codec::ConnectPacket connectPacket(ProtocolVersion v, std::string client_id) {
  codec::ConnectPacket c;
  c.version = v;
  c.client_id = std::move(client_id);
  c.clean_start = true;
  c.keep_alive = 60;
  return c;
}

codec::ConnectPacket persistentConnect(ProtocolVersion v, std::string client_id) {
  codec::ConnectPacket c = connectPacket(v, std::move(client_id));
  c.clean_start = false;
  if (v == ProtocolVersion::kV5) c.properties.session_expiry_interval = 300;
  return c;
}

codec::PublishPacket publishPacket(std::string topic, std::string payload, uint8_t qos,
                                   uint16_t packet_id) {
  codec::PublishPacket p;
  p.topic = std::move(topic);
  p.payload = std::move(payload);
  p.qos = qos;
  p.packet_id = packet_id;
  return p;
}

codec::SubscriptionRequest request(std::string filter, uint8_t qos) {
  codec::SubscriptionRequest r;
  r.filter = std::move(filter);
  r.qos = qos;
  return r;
}

codec::Will willOf(std::string topic, std::string payload, uint8_t qos) {
  codec::Will w;
  w.topic = std::move(topic);
  w.payload = std::move(payload);
  w.qos = qos;
  return w;
}

codec::SubscribePacket subscribePacket(uint16_t packet_id, codec::SubscriptionRequest request,
                                       uint32_t subscription_id) {
  codec::SubscribePacket s;
  s.packet_id = packet_id;
  s.subscriptions.push_back(std::move(request));
  if (subscription_id != 0) s.properties.subscription_identifiers.push_back(subscription_id);
  return s;
}

codec::PubAckPacket ackPacket(PacketType type, uint16_t packet_id, ReasonCode rc) {
  return codec::PubAckPacket{type, packet_id, rc, {}};
}

codec::DisconnectPacket disconnectPacket(ReasonCode rc) {
  codec::DisconnectPacket d;
  d.reason_code = rc;
  return d;
}

// --- checks ---

namespace {

std::string hexByte(uint8_t b) { return absl::StrCat("0x", absl::Hex(b, absl::kZeroPad2)); }

const char* ackName(PacketType t) {
  switch (t) {
    case PacketType::kPuback:
      return "PUBACK";
    case PacketType::kPubrec:
      return "PUBREC";
    case PacketType::kPubrel:
      return "PUBREL";
    case PacketType::kPubcomp:
      return "PUBCOMP";
    default:
      return "ACK?";
  }
}

// One line per packet a server sends.
struct Describer {
  std::string operator()(const codec::ConnackPacket& p) {
    return absl::StrCat("CONNACK sp=", p.session_present, " rc=", hexByte(p.reason_code));
  }
  std::string operator()(const codec::PublishPacket& p) {
    return absl::StrCat("PUBLISH q", p.qos, " id=", p.packet_id, p.dup ? " dup" : "",
                        p.retain ? " retain" : "", " '", p.topic, "' '", p.payload, "'");
  }
  std::string operator()(const codec::PubAckPacket& p) {
    return absl::StrCat(ackName(p.type), " id=", p.packet_id,
                        " rc=", hexByte(static_cast<uint8_t>(p.reason_code)));
  }
  std::string operator()(const codec::SubackPacket& p) {
    return absl::StrCat("SUBACK id=", p.packet_id);
  }
  std::string operator()(const codec::UnsubackPacket& p) {
    return absl::StrCat("UNSUBACK id=", p.packet_id);
  }
  std::string operator()(const codec::PingrespPacket&) { return "PINGRESP"; }
  std::string operator()(const codec::DisconnectPacket& p) {
    return absl::StrCat("DISCONNECT rc=", hexByte(static_cast<uint8_t>(p.reason_code)));
  }
  template <class T>
  std::string operator()(const T&) {
    return "(a packet a server does not send)";
  }
};

}  // namespace

std::string describe(const codec::Packet& packet) { return std::visit(Describer{}, packet); }

std::string describe(const std::vector<codec::Packet>& ps) {
  std::vector<std::string> parts;
  for (const codec::Packet& p : ps) parts.push_back(describe(p));
  return absl::StrCat(ps.size(), " packets [", absl::StrJoin(parts, ", "), "]");
}

std::vector<std::string> payloads(const std::vector<codec::PublishPacket>& ps) {
  std::vector<std::string> out;
  for (const codec::PublishPacket& p : ps) out.push_back(p.payload);
  return out;
}

// --- fixture ---

void HandlerTest::SetUp() { ASSERT_TRUE(loop_.init().ok()); }

std::unique_ptr<TestClient> HandlerTest::open(ProtocolVersion v) {
  return std::make_unique<TestClient>(ctx_, loop_, flush_, v);
}

std::unique_ptr<TestClient> HandlerTest::connect(const codec::ConnectPacket& connect,
                                                 codec::ConnackPacket* ack,
                                                 std::vector<codec::Packet>* after) {
  auto c = open(connect.version);
  c->send(connect);
  std::vector<codec::Packet> got_all = c->receive();
  codec::ConnackPacket got;
  if (got_all.empty()) {
    ADD_FAILURE() << "no CONNACK for '" << connect.client_id << "'";
  } else {
    got = as<codec::ConnackPacket>(got_all[0]);
    got_all.erase(got_all.begin());
  }
  if (after != nullptr) {
    *after = std::move(got_all);
  } else {
    EXPECT_TRUE(got_all.empty()) << "after the CONNACK: " << describe(got_all);
  }
  EXPECT_EQ(got.reason_code, 0) << "CONNACK of '" << connect.client_id << "'";
  EXPECT_EQ(c->client().state(), Client::State::kConnected);
  if (ack != nullptr) *ack = got;
  return c;
}

void HandlerTest::subscribe(TestClient& c, codec::SubscriptionRequest request,
                            uint32_t subscription_id) {
  const uint16_t id = next_packet_id_++;
  const uint8_t qos = request.qos;
  c.send(subscribePacket(id, std::move(request), subscription_id));
  auto ack = single<codec::SubackPacket>(c.receive());
  EXPECT_EQ(ack.packet_id, id);
  EXPECT_EQ(ack.reason_codes, std::vector<uint8_t>{qos});
}

void HandlerTest::expectClosedWith(TestClient& c, ReasonCode reason) {
  auto got = c.receive();
  if (c.version == ProtocolVersion::kV5) {
    EXPECT_EQ(single<codec::DisconnectPacket>(got).reason_code, reason) << describe(got);
  } else {
    EXPECT_TRUE(got.empty()) << describe(got);
  }
  EXPECT_TRUE(c.closedByBroker());
  EXPECT_EQ(c.client().state(), Client::State::kClosed);
}

std::string versionName(const ::testing::TestParamInfo<ProtocolVersion>& info) {
  return info.param == ProtocolVersion::kV5 ? "V5" : "V311";
}

}  // namespace gannet::handlers::testing
