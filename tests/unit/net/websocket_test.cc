// WebSocketLayer: the RFC 6455 opening handshake (accept value, subprotocol,
// every refusal and its HTTP status), client frames (masking, fragmentation,
// 7/16/64-bit lengths, control frames, limits) fed whole, together and byte by
// byte, and server frames from encode().

#include "broker/net/websocket.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace gannet::net {
namespace {

using Result = StreamLayer::Result;

constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string request(std::string_view extra_headers = "Sec-WebSocket-Protocol: mqtt\r\n",
                    std::string_view target = "/mqtt") {
  return std::string("GET ") + std::string(target) +
         " HTTP/1.1\r\n"
         "Host: broker.example:8080\r\n"
         "Upgrade: websocket\r\n"
         "Connection: Upgrade\r\n"
         "Sec-WebSocket-Key: " +
         std::string(kKey) +
         "\r\n"
         "Sec-WebSocket-Version: 13\r\n" +
         std::string(extra_headers) + "\r\n";
}

// A request built from exactly these header lines (plus the request line).
std::string rawRequest(std::vector<std::string> headers,
                       std::string_view request_line = "GET /mqtt HTTP/1.1") {
  std::string r(request_line);
  r += "\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  return r + "\r\n";
}

std::vector<std::string> goodHeaders() {
  return {"Host: h", "Upgrade: websocket", "Connection: Upgrade",
          "Sec-WebSocket-Key: " + std::string(kKey), "Sec-WebSocket-Version: 13"};
}

// A client frame: masked (unless told otherwise) with `key`.
std::string frame(uint8_t opcode, std::string_view payload, bool fin = true, bool masked = true,
                  uint32_t key = 0x37FA213D, uint8_t rsv = 0) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | rsv | opcode));
  const uint8_t mask_bit = masked ? 0x80 : 0;
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int s = 56; s >= 0; s -= 8) f.push_back(static_cast<char>(n >> s));
  }
  const uint8_t k[4] = {static_cast<uint8_t>(key >> 24), static_cast<uint8_t>(key >> 16),
                        static_cast<uint8_t>(key >> 8), static_cast<uint8_t>(key)};
  if (masked) f.append(reinterpret_cast<const char*>(k), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ (masked ? k[i & 3] : 0)));
  }
  return f;
}

std::string binary(std::string_view payload, bool fin = true) { return frame(0x2, payload, fin); }
std::string continuation(std::string_view payload, bool fin = true) {
  return frame(0x0, payload, fin);
}
std::string closeFrame(uint16_t code, std::string_view reason = {}) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code));
  p.append(reason);
  return frame(0x8, p);
}

// An unmasked server frame, as the layer writes it.
std::string serverFrame(uint8_t opcode, std::string_view payload) {
  std::string f;
  WebSocketLayer::appendFrameHeader(opcode, payload.size(), f);
  f.append(payload);
  return f;
}

// The status code of the server close frame that `to_peer` ends with.
int closeCodeOf(std::string_view to_peer) {
  if (to_peer.size() < 4 || static_cast<uint8_t>(to_peer[0]) != 0x88) return -1;
  const size_t len = static_cast<uint8_t>(to_peer[1]);
  if (len < 2 || to_peer.size() != 2 + len) return -1;
  return (static_cast<uint8_t>(to_peer[2]) << 8) | static_cast<uint8_t>(to_peer[3]);
}

int httpStatusOf(std::string_view to_peer) {
  if (to_peer.substr(0, 9) != "HTTP/1.1 " || to_peer.size() < 12) return -1;
  return std::stoi(std::string(to_peer.substr(9, 3)));
}

struct Decoded {
  Result result = Result::kOk;
  std::string up, to_peer, why;
};

Decoded feed(WebSocketLayer& ws, std::string_view in) {
  Decoded d;
  d.result = ws.decode(in, d.up, d.to_peer, d.why);
  return d;
}

// Feeds `in` in pieces of `step` bytes, accumulating outputs; stops at kClose.
Decoded feedInPieces(WebSocketLayer& ws, std::string_view in, size_t step) {
  Decoded d;
  for (size_t i = 0; i < in.size() && d.result == Result::kOk; i += step) {
    d.result = ws.decode(in.substr(i, step), d.up, d.to_peer, d.why);
  }
  return d;
}

// A layer past its handshake, with the 101 checked and dropped.
class OpenLayer : public ::testing::Test {
 protected:
  explicit OpenLayer(WebSocketOptions options = {}) : ws_(std::move(options)) {}
  void SetUp() override {
    Decoded d = feed(ws_, request());
    ASSERT_EQ(d.result, Result::kOk) << d.why;
    ASSERT_EQ(httpStatusOf(d.to_peer), 101);
    ASSERT_TRUE(ws_.ready());
  }
  WebSocketLayer ws_;
};

// ---- Handshake ----

TEST(WebSocketHandshake, AcceptKeyOfRfc6455Example) {
  EXPECT_EQ(WebSocketLayer::acceptKey(kKey), kAccept);
}

TEST(WebSocketHandshake, AnswersWith101AndMqttSubprotocol) {
  WebSocketLayer ws;
  EXPECT_FALSE(ws.ready());
  Decoded d = feed(ws, request());
  ASSERT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(d.to_peer,
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: mqtt\r\n"
            "\r\n");
  EXPECT_TRUE(d.up.empty());
  EXPECT_TRUE(ws.ready());
  EXPECT_EQ(ws.subprotocol(), "mqtt");
}

struct ProtocolCase {
  std::string headers;   // Sec-WebSocket-Protocol lines
  std::string expected;  // the chosen subprotocol; empty: none
};

class WebSocketSubprotocol : public ::testing::TestWithParam<ProtocolCase> {};

TEST_P(WebSocketSubprotocol, ChoosesTheFirstKnownOfferedByTheClient) {
  WebSocketLayer ws;
  Decoded d = feed(ws, request(GetParam().headers));
  ASSERT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(ws.subprotocol(), GetParam().expected);
  if (GetParam().expected.empty()) {
    EXPECT_EQ(d.to_peer.find("Sec-WebSocket-Protocol"), std::string::npos);
  } else {
    EXPECT_NE(d.to_peer.find("\r\nSec-WebSocket-Protocol: " + GetParam().expected + "\r\n"),
              std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Offers, WebSocketSubprotocol,
    ::testing::Values(
        ProtocolCase{"Sec-WebSocket-Protocol: mqtt\r\n", "mqtt"},
        ProtocolCase{"Sec-WebSocket-Protocol: mqttv3.1\r\n", "mqttv3.1"},
        ProtocolCase{"Sec-WebSocket-Protocol: mqttv3.1, mqtt\r\n", "mqttv3.1"},
        ProtocolCase{"Sec-WebSocket-Protocol: chat,mqtt\r\n", "mqtt"},
        ProtocolCase{"Sec-WebSocket-Protocol: chat\r\nsec-websocket-protocol:  mqtt \r\n", "mqtt"},
        ProtocolCase{"", ""}));

TEST(WebSocketHandshake, OfferedExtensionsAreNotTaken) {
  // No extension is negotiated (permessage-deflate would need RSV1 frames).
  WebSocketLayer ws;
  Decoded d =
      feed(ws, request("Sec-WebSocket-Protocol: mqtt\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                       "Origin: http://example.com\r\n"));
  ASSERT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(d.to_peer.find("Sec-WebSocket-Extensions"), std::string::npos);
  EXPECT_EQ(closeCodeOf(feed(ws, frame(0x2, "x", true, true, 1, 0x40)).to_peer), 1002);
}

TEST(WebSocketHandshake, HeaderNamesAndTokensAreCaseInsensitive) {
  WebSocketLayer ws;
  Decoded d =
      feed(ws, rawRequest({"host: h", "UPGRADE: WebSocket", "connection: keep-alive, UPGRADE",
                           "sec-websocket-key:" + std::string(kKey),
                           "SEC-WEBSOCKET-VERSION:   13  ", "User-Agent: test"}));
  ASSERT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_NE(d.to_peer.find(std::string("Sec-WebSocket-Accept: ") + std::string(kAccept)),
            std::string::npos);
  EXPECT_TRUE(ws.subprotocol().empty());
}

TEST(WebSocketHandshake, RepeatedConnectionAndUpgradeHeadersAreCombined) {
  WebSocketLayer ws;
  Decoded d = feed(
      ws, rawRequest({"Host: h", "Upgrade: h2c", "Upgrade: websocket", "Connection: keep-alive",
                      "Connection: Upgrade", "Sec-WebSocket-Key: " + std::string(kKey),
                      "Sec-WebSocket-Version: 13"}));
  EXPECT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_TRUE(ws.ready());
}

TEST(WebSocketHandshake, QueryStringAndAbsoluteFormAreAccepted) {
  for (std::string_view target : {"/mqtt?token=abc", "http://broker:80/mqtt", "/mqtt#x"}) {
    WebSocketLayer ws;
    Decoded d = feed(ws, request("", target));
    EXPECT_EQ(d.result, Result::kOk) << target << ": " << d.why;
  }
}

TEST(WebSocketHandshake, ConfiguredPath) {
  WebSocketOptions options;
  options.path = "/ws";
  WebSocketLayer ws(options);
  EXPECT_EQ(feed(ws, request("", "/ws")).result, Result::kOk);
  WebSocketLayer other(options);
  EXPECT_EQ(httpStatusOf(feed(other, request("", "/mqtt")).to_peer), 404);
}

struct RefusalCase {
  std::string name;
  std::string request;
  int status;
  std::string extra_header;  // a header the refusal must carry
};

std::vector<RefusalCase> refusalCases() {
  auto without = [](std::string_view prefix) {
    std::vector<std::string> h;
    for (auto& line : goodHeaders()) {
      if (line.rfind(prefix, 0) != 0) h.push_back(line);
    }
    return h;
  };
  auto with = [](std::vector<std::string> h, std::string line) {
    h.push_back(std::move(line));
    return h;
  };
  return {
      {"Post", rawRequest(goodHeaders(), "POST /mqtt HTTP/1.1"), 405, "Allow: GET"},
      {"WrongPath", rawRequest(goodHeaders(), "GET /other HTTP/1.1"), 404, ""},
      {"PathPrefix", rawRequest(goodHeaders(), "GET /mqtt/x HTTP/1.1"), 404, ""},
      {"Http10", rawRequest(goodHeaders(), "GET /mqtt HTTP/1.0"), 400, ""},
      {"BadRequestLine", rawRequest(goodHeaders(), "GET  /mqtt HTTP/1.1"), 400, ""},
      {"NoHost", rawRequest(without("Host")), 400, ""},
      {"TwoHosts", rawRequest(with(goodHeaders(), "Host: other")), 400, ""},
      {"NoUpgrade", rawRequest(without("Upgrade")), 400, ""},
      {"UpgradeNotWebsocket", rawRequest(with(without("Upgrade"), "Upgrade: h2c")), 400, ""},
      {"NoConnection", rawRequest(without("Connection")), 400, ""},
      {"ConnectionKeepAlive", rawRequest(with(without("Connection"), "Connection: keep-alive")),
       400, ""},
      {"NoVersion", rawRequest(without("Sec-WebSocket-Version")), 426, "Sec-WebSocket-Version: 13"},
      {"Version8", rawRequest(with(without("Sec-WebSocket-Version"), "Sec-WebSocket-Version: 8")),
       426, "Sec-WebSocket-Version: 13"},
      {"TwoVersions", rawRequest(with(goodHeaders(), "Sec-WebSocket-Version: 8")), 426,
       "Sec-WebSocket-Version: 13"},
      {"NoKey", rawRequest(without("Sec-WebSocket-Key")), 400, ""},
      {"ShortKey",
       rawRequest(with(without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==")), 400,
       ""},
      {"KeyNotBase64",
       rawRequest(
           with(without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==")),
       400, ""},
      {"TwoKeys", rawRequest(with(goodHeaders(), "Sec-WebSocket-Key: " + std::string(kKey))), 400,
       ""},
      {"UnknownSubprotocol", rawRequest(with(goodHeaders(), "Sec-WebSocket-Protocol: chat, MQTT")),
       400, ""},
      {"FoldedHeader", rawRequest(with(goodHeaders(), " folded")), 400, ""},
      {"NoColon", rawRequest(with(goodHeaders(), "Nonsense")), 400, ""},
      {"SpaceBeforeColon", rawRequest(with(goodHeaders(), "Origin : x")), 400, ""},
      {"NotHttp", std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14), 400, ""},
      {"TooLarge", "GET /mqtt HTTP/1.1\r\nX-Pad: " + std::string(9000, 'a'), 431, ""},
  };
}

class WebSocketRefusal : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(WebSocketRefusal, AnswersWithHttpErrorAndCloses) {
  WebSocketLayer ws;
  Decoded d = feed(ws, GetParam().request);
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(httpStatusOf(d.to_peer), GetParam().status) << d.to_peer;
  EXPECT_NE(d.why.find(std::to_string(GetParam().status)), std::string::npos) << d.why;
  EXPECT_FALSE(ws.ready());
  EXPECT_TRUE(d.up.empty());
  // A well-formed response: Content-Length matches the body.
  const size_t body = d.to_peer.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_NE(
      d.to_peer.find("Content-Length: " + std::to_string(d.to_peer.size() - body - 4) + "\r\n"),
      std::string::npos);
  EXPECT_NE(d.to_peer.find("Connection: close\r\n"), std::string::npos);
  if (!GetParam().extra_header.empty()) {
    EXPECT_NE(d.to_peer.find("\r\n" + GetParam().extra_header + "\r\n"), std::string::npos);
  }
  // Nothing more happens on a refused connection.
  Decoded again = feed(ws, request());
  EXPECT_EQ(again.result, Result::kClose);
  EXPECT_TRUE(again.to_peer.empty());
}

INSTANTIATE_TEST_SUITE_P(Cases, WebSocketRefusal, ::testing::ValuesIn(refusalCases()),
                         [](const auto& info) { return info.param.name; });

TEST(WebSocketHandshake, LargeRequestSplitUntilTheCap) {
  WebSocketOptions options;
  options.max_request_bytes = 256;
  WebSocketLayer ws(options);
  Decoded d = feedInPieces(ws, "GET /mqtt HTTP/1.1\r\nX-Pad: " + std::string(300, 'a'), 7);
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(httpStatusOf(d.to_peer), 431);
}

TEST(WebSocketHandshake, RequestFedByteByByte) {
  WebSocketLayer ws;
  const std::string r = request();
  std::string up, to_peer, why;
  for (size_t i = 0; i < r.size(); ++i) {
    ASSERT_EQ(ws.decode(r.substr(i, 1), up, to_peer, why), Result::kOk) << why;
    if (i + 1 < r.size()) {
      ASSERT_TRUE(to_peer.empty()) << "answered early at byte " << i;
      ASSERT_FALSE(ws.ready());
    }
  }
  EXPECT_EQ(httpStatusOf(to_peer), 101);
  EXPECT_TRUE(ws.ready());
  EXPECT_TRUE(up.empty());
}

TEST(WebSocketHandshake, FramesAfterTheRequestInTheSameRead) {
  WebSocketLayer ws;
  Decoded d = feed(ws, request() + binary("\x10\x0c") + binary("rest"));
  ASSERT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(httpStatusOf(d.to_peer), 101);
  EXPECT_EQ(d.up, std::string("\x10\x0crest"));
}

// ---- Frames ----

TEST_F(OpenLayer, BinaryFrame) {
  Decoded d = feed(ws_, binary("hello"));
  EXPECT_EQ(d.result, Result::kOk);
  EXPECT_EQ(d.up, "hello");
  EXPECT_TRUE(d.to_peer.empty());
}

TEST_F(OpenLayer, EmptyBinaryFrame) {
  Decoded d = feed(ws_, binary("") + binary("x"));
  EXPECT_EQ(d.result, Result::kOk);
  EXPECT_EQ(d.up, "x");
}

TEST_F(OpenLayer, SeveralFramesInOneBuffer) {
  Decoded d = feed(ws_, binary("ab") + binary("cde") + frame(0x9, "p") + binary("f"));
  EXPECT_EQ(d.result, Result::kOk);
  EXPECT_EQ(d.up, "abcdef");
  EXPECT_EQ(d.to_peer, serverFrame(0xA, "p"));
}

TEST_F(OpenLayer, FramesFedByteByByte) {
  std::string payload(300, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  const std::string wire =
      binary("first") + frame(0x9, "ping!") + binary(payload, false) + continuation("end");
  Decoded d = feedInPieces(ws_, wire, 1);
  EXPECT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(d.up, "first" + payload + "end");
  EXPECT_EQ(d.to_peer, serverFrame(0xA, "ping!"));
}

TEST_F(OpenLayer, UnmaskingAtEverySplitPoint) {
  // The 8-byte unmasking path at every phase of the mask.
  std::mt19937 rng(42);
  std::string payload(1000, '\0');
  for (auto& c : payload) c = static_cast<char>(rng());
  const std::string wire = frame(0x2, payload, true, true, 0xA1B2C3D4);
  for (size_t split = 1; split < wire.size(); split += 13) {
    WebSocketLayer ws;
    std::string up, to_peer, why;
    ASSERT_EQ(ws.decode(request(), up, to_peer, why), Result::kOk);
    ASSERT_EQ(ws.decode(std::string_view(wire).substr(0, split), up, to_peer, why), Result::kOk);
    ASSERT_EQ(ws.decode(std::string_view(wire).substr(split), up, to_peer, why), Result::kOk);
    ASSERT_EQ(up, payload) << "split at " << split;
  }
}

TEST_F(OpenLayer, FragmentedMessageWithControlFramesBetween) {
  Decoded d = feed(ws_, binary("MQ", false) + frame(0x9, "") + continuation("TT", false) +
                            frame(0xA, "unsolicited") + continuation("!"));
  EXPECT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(d.up, "MQTT!");
  EXPECT_EQ(d.to_peer, serverFrame(0xA, ""));
  // A new message may start after the last fragment.
  EXPECT_EQ(feed(ws_, binary("next")).up, "next");
}

TEST_F(OpenLayer, SixteenAndSixtyFourBitLengths) {
  const std::string mid(300, 'm');     // 126: 16-bit length
  const std::string big(70000, 'b');   // 127: 64-bit length
  const std::string edge(65535, 'e');  // largest 16-bit length
  Decoded d = feed(ws_, binary(mid) + binary(big) + binary(edge));
  EXPECT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(d.up, mid + big + edge);
}

TEST_F(OpenLayer, NonMinimalLengthEncodingIsAccepted) {
  // RFC 6455 asks senders for the minimal encoding; we are liberal in what we take.
  std::string f = "\x82\xFE";
  f += std::string("\x00\x03", 2);
  f += std::string(4, '\0');  // zero mask
  f += "abc";
  Decoded d = feed(ws_, f);
  EXPECT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(d.up, "abc");
}

TEST_F(OpenLayer, PingIsAnsweredWithTheSamePayload) {
  Decoded d = feed(ws_, frame(0x9, "keepalive-123"));
  EXPECT_EQ(d.result, Result::kOk);
  EXPECT_TRUE(d.up.empty());
  EXPECT_EQ(d.to_peer, serverFrame(0xA, "keepalive-123"));
  // 125 bytes: the largest control payload.
  const std::string p125(125, 'z');
  EXPECT_EQ(feed(ws_, frame(0x9, p125)).to_peer, serverFrame(0xA, p125));
}

TEST_F(OpenLayer, PongIsIgnored) {
  Decoded d = feed(ws_, frame(0xA, "x"));
  EXPECT_EQ(d.result, Result::kOk);
  EXPECT_TRUE(d.up.empty());
  EXPECT_TRUE(d.to_peer.empty());
}

TEST_F(OpenLayer, CloseIsEchoed) {
  Decoded d = feed(ws_, binary("last") + closeFrame(1000, "bye"));
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(d.up, "last");  // decoded before the close
  EXPECT_EQ(d.to_peer, std::string("\x88\x02\x03\xE8", 4));
  EXPECT_NE(d.why.find("1000"), std::string::npos);
  EXPECT_NE(d.why.find("bye"), std::string::npos);
  // Nothing is read or written after the close.
  Decoded after = feed(ws_, binary("more"));
  EXPECT_EQ(after.result, Result::kClose);
  EXPECT_TRUE(after.up.empty());
  std::string down, why;
  EXPECT_TRUE(ws_.encode("late", down, why));
  EXPECT_TRUE(down.empty());
}

TEST_F(OpenLayer, CloseReasonInUtf8) {
  Decoded d = feed(ws_, closeFrame(1001, "au revoir \xE2\x82\xAC \xF0\x9F\x91\x8B"));
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(closeCodeOf(d.to_peer), 1001);
}

TEST_F(OpenLayer, CloseWithoutStatus) {
  Decoded d = feed(ws_, frame(0x8, ""));
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(d.to_peer, std::string("\x88\x00", 2));
}

TEST_F(OpenLayer, CloseByteByByte) {
  Decoded d = feedInPieces(ws_, closeFrame(4000, "app"), 1);
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(closeCodeOf(d.to_peer), 4000);
}

struct ErrorCase {
  std::string name;
  std::string wire;
  int close_code;
};

std::vector<ErrorCase> errorCases() {
  std::string top_bit = "\x82\xFF";
  top_bit += std::string("\x80\x00\x00\x00\x00\x00\x00\x01", 8);
  top_bit += std::string(4, '\0');
  return {
      {"Unmasked", frame(0x2, "abc", true, false), 1002},
      {"UnmaskedEmpty", frame(0x2, "", true, false), 1002},
      {"Text", frame(0x1, "{}"), 1003},
      {"Rsv1", frame(0x2, "x", true, true, 1, 0x40), 1002},
      {"Rsv3", frame(0x2, "x", true, true, 1, 0x10), 1002},
      {"ReservedDataOpcode", frame(0x3, "x"), 1002},
      {"ReservedControlOpcode", frame(0xB, ""), 1002},
      {"ControlOver125", frame(0x9, std::string(126, 'p')), 1002},
      {"FragmentedPing", frame(0x9, "p", false), 1002},
      {"FragmentedClose", frame(0x8, "", false), 1002},
      {"ContinuationFirst", continuation("x"), 1002},
      {"BinaryInsideFragmented", binary("a", false) + binary("b"), 1002},
      {"TopBitLength", top_bit, 1002},
      {"CloseOneByte", frame(0x8, "\x03"), 1002},
      {"CloseReservedCode", closeFrame(1005), 1002},
      {"CloseCode999", closeFrame(999), 1002},
      {"CloseCode5000", closeFrame(5000), 1002},
      {"CloseReasonNotUtf8", closeFrame(1000, "\xC0\xAF"), 1007},
      {"CloseReasonSurrogate", closeFrame(1000, "\xED\xA0\x80"), 1007},
      {"CloseReasonTruncatedUtf8", closeFrame(1000, "ok\xE2\x82"), 1007},
  };
}

class WebSocketFrameError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(WebSocketFrameError, ClosesWithStatus) {
  WebSocketLayer ws;
  ASSERT_EQ(feed(ws, request()).result, Result::kOk);
  Decoded d = feed(ws, GetParam().wire);
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(closeCodeOf(d.to_peer), GetParam().close_code) << d.why;
  EXPECT_NE(d.why.find(std::to_string(GetParam().close_code)), std::string::npos) << d.why;
  // The same byte by byte.
  WebSocketLayer ws2;
  ASSERT_EQ(feed(ws2, request()).result, Result::kOk);
  Decoded d2 = feedInPieces(ws2, GetParam().wire, 1);
  EXPECT_EQ(d2.result, Result::kClose);
  EXPECT_EQ(closeCodeOf(d2.to_peer), GetParam().close_code) << d2.why;
}

INSTANTIATE_TEST_SUITE_P(Cases, WebSocketFrameError, ::testing::ValuesIn(errorCases()),
                         [](const auto& info) { return info.param.name; });

class SmallMessages : public OpenLayer {
 protected:
  static WebSocketOptions options() {
    WebSocketOptions o;
    o.max_message_bytes = 100;
    return o;
  }
  SmallMessages() : OpenLayer(options()) {}
};

TEST_F(SmallMessages, MessageAtTheLimitPasses) {
  Decoded d = feed(ws_, binary(std::string(100, 'a')) + binary(std::string(60, 'b'), false) +
                            continuation(std::string(40, 'c')));
  EXPECT_EQ(d.result, Result::kOk) << d.why;
  EXPECT_EQ(d.up.size(), 200u);
}

TEST_F(SmallMessages, OversizedFrameClosesWith1009) {
  Decoded d = feed(ws_, binary(std::string(101, 'a')));
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(closeCodeOf(d.to_peer), 1009);
  EXPECT_TRUE(d.up.empty());  // refused from the header, before any payload
}

TEST_F(SmallMessages, OversizedFragmentedMessageClosesWith1009) {
  Decoded d = feed(ws_, binary(std::string(60, 'a'), false) + continuation(std::string(41, 'b')));
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(closeCodeOf(d.to_peer), 1009);
}

TEST_F(SmallMessages, HugeDeclaredLengthClosesWith1009) {
  std::string f = "\x82\xFF";
  f += std::string("\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 8);
  f += std::string(4, '\0');
  Decoded d = feed(ws_, f);
  EXPECT_EQ(d.result, Result::kClose);
  EXPECT_EQ(closeCodeOf(d.to_peer), 1009);
}

// ---- encode() ----

TEST(WebSocketEncode, KeepsBytesUntilTheHandshakeThenSendsThemAfterThe101) {
  WebSocketLayer ws;
  std::string down, why;
  EXPECT_TRUE(ws.encode("early", down, why));
  EXPECT_TRUE(down.empty());
  Decoded d = feed(ws, request());
  ASSERT_EQ(d.result, Result::kOk);
  const size_t end = d.to_peer.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(d.to_peer.substr(end + 4), serverFrame(0x2, "early"));
  // Kept bytes are sent once.
  EXPECT_TRUE(ws.encode("", down, why));
  EXPECT_TRUE(down.empty());
}

TEST_F(OpenLayer, EncodeWrapsEverythingInOneBinaryFrame) {
  std::string down, why;
  ASSERT_TRUE(ws_.encode(std::string("\x20\x02\x00\x00", 4), down, why));
  EXPECT_EQ(down, std::string("\x82\x04\x20\x02\x00\x00", 6));
}

TEST_F(OpenLayer, EncodeLengthEncodings) {
  struct Case {
    size_t size;
    std::string header;
  };
  const Case cases[] = {
      {0, std::string("\x82\x00", 2)},
      {125, std::string("\x82\x7D", 2)},
      {126, std::string("\x82\x7E\x00\x7E", 4)},
      {65535, std::string("\x82\x7E\xFF\xFF", 4)},
      {65536, std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10)},
  };
  for (const Case& c : cases) {
    std::string down;
    WebSocketLayer::appendFrameHeader(0x2, c.size, down);
    EXPECT_EQ(down, c.header) << c.size;
  }
  std::string down, why;
  const std::string big(70000, 'q');
  ASSERT_TRUE(ws_.encode(big, down, why));
  EXPECT_EQ(down.substr(0, 10), std::string("\x82\x7F\x00\x00\x00\x00\x00\x01\x11\x70", 10));
  EXPECT_EQ(down.substr(10), big);
}

TEST_F(OpenLayer, EncodeOfNothingWritesNothing) {
  std::string down, why;
  EXPECT_TRUE(ws_.encode("", down, why));
  EXPECT_TRUE(down.empty());
}

}  // namespace
}  // namespace gannet::net
