#include "broker/net/websocket.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"

namespace gannet::net {
namespace {

// RFC 6455 §5.2 opcodes.
constexpr uint8_t kOpContinuation = 0x0;
constexpr uint8_t kOpText = 0x1;
constexpr uint8_t kOpBinary = 0x2;
constexpr uint8_t kOpClose = 0x8;
constexpr uint8_t kOpPing = 0x9;
constexpr uint8_t kOpPong = 0xA;

// RFC 6455 §7.4.1 status codes we send.
constexpr uint16_t kCloseProtocolError = 1002;
constexpr uint16_t kCloseUnsupportedData = 1003;
constexpr uint16_t kCloseInvalidPayload = 1007;
constexpr uint16_t kCloseTooBig = 1009;

constexpr size_t kMaxControlPayload = 125;  // RFC 6455 §5.5

// The subprotocols we speak, in no order of preference: the client's order
// decides (the first it offers that we know), as libwebsockets does for
// Mosquitto. "mqttv3.1" is what Paho JavaScript and older clients offer for
// MQTT 3.1; MQTT 3.1.1 and 5.0 §6 name "mqtt".
constexpr std::string_view kSubprotocols[] = {"mqtt", "mqttv3.1"};

// Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// so these small helpers work on std::string_view directly.
bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

std::vector<std::string_view> split(std::string_view s, std::string_view delim) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = s.find(delim);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + delim.size());
  }
}

std::string cat(std::initializer_list<std::string_view> parts) {
  size_t n = 0;
  for (std::string_view p : parts) n += p.size();
  std::string out;
  out.reserve(n);
  for (std::string_view p : parts) out.append(p);
  return out;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Client-controlled text for a log line: printable ASCII only, bounded.
std::string printable(std::string_view s, size_t max = 64) {
  std::string out;
  for (char c : s.substr(0, max))
    out.push_back(absl::ascii_isprint(static_cast<unsigned char>(c)) ? c : '?');
  if (s.size() > max) out += "...";
  return out;
}

// True when a comma-separated header value list (RFC 7230 §7), spread over
// repeated header lines, holds `token` (compared case-insensitively).
bool listHasToken(const std::vector<std::string_view>& values, std::string_view token) {
  for (std::string_view v : values) {
    for (std::string_view element : split(v, ",")) {
      if (equalsIgnoreCase(trimOws(element), token)) return true;
    }
  }
  return false;
}

// RFC 6455 §4.1: the key is base64 of 16 random bytes: 22 characters and "==".
bool isKey(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
  });
}

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool isUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    size_t extra;
    uint8_t lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const uint8_t b = static_cast<uint8_t>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return false;
    }
    i += extra + 1;
  }
  return true;
}

bool validCloseCode(uint16_t code) {
  // RFC 6455 §7.4.1 and the IANA registry (1012-1014); 1004-1006 and 1015 must
  // not be sent; 3000-4999 are for libraries and applications.
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

const char* statusText(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 426:
      return "Upgrade Required";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Error";
  }
}

// XORs `n` bytes at `p` with the masking key, `phase` being the offset of p[0]
// in the frame payload (RFC 6455 §5.3). Eight bytes at a time: the key repeats
// every four bytes, so a rotated key doubled into 64 bits masks a whole word.
void unmask(char* p, size_t n, uint32_t key, uint64_t phase) {
  uint8_t k4[4];
  std::memcpy(k4, &key, 4);
  uint8_t k8[8];
  for (size_t i = 0; i < 8; ++i) k8[i] = k4[(phase + i) & 3];
  uint64_t k64;
  std::memcpy(&k64, k8, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    word ^= k64;
    std::memcpy(p + i, &word, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ k8[i & 7]);
}

// Header bytes of a frame whose second byte is `b1`.
size_t headerSize(uint8_t b1) {
  size_t n = 2;
  const uint8_t len7 = b1 & 0x7F;
  if (len7 == 126) n += 2;
  if (len7 == 127) n += 8;
  if (b1 & 0x80) n += 4;
  return n;
}

}  // namespace

WebSocketLayer::WebSocketLayer(WebSocketOptions options) : options_(std::move(options)) {}

std::string WebSocketLayer::acceptKey(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  const std::string input = cat({key, kGuid});
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr) != 1) {
    return {};
  }
  unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(b64, digest, static_cast<int>(digest_len));
  return std::string(reinterpret_cast<const char*>(b64), n > 0 ? n : 0);
}

void WebSocketLayer::appendFrameHeader(uint8_t opcode, uint64_t payload_len, std::string& out) {
  char h[10];
  size_t n = 0;
  h[n++] = static_cast<char>(0x80 | opcode);  // FIN; server frames are not masked
  if (payload_len < 126) {
    h[n++] = static_cast<char>(payload_len);
  } else if (payload_len <= 0xFFFF) {
    h[n++] = 126;
    h[n++] = static_cast<char>(payload_len >> 8);
    h[n++] = static_cast<char>(payload_len);
  } else {
    h[n++] = 127;
    for (int shift = 56; shift >= 0; shift -= 8) h[n++] = static_cast<char>(payload_len >> shift);
  }
  out.append(h, n);
}

StreamLayer::Result WebSocketLayer::decode(std::string_view in, std::string& up,
                                           std::string& to_peer, std::string& why) {
  switch (state_) {
    case State::kClosed:
      why = "websocket already closed";
      return Result::kClose;
    case State::kHandshake: {
      size_t consumed = 0;
      const Result r = readRequest(in, consumed, to_peer, why);
      if (r != Result::kOk || state_ != State::kOpen) return r;
      // Frames may follow the request in the same read.
      return readFrames(in.substr(consumed), up, to_peer, why);
    }
    case State::kOpen:
      return readFrames(in, up, to_peer, why);
  }
  return Result::kClose;
}

bool WebSocketLayer::encode(std::string_view in, std::string& down, std::string& why) {
  switch (state_) {
    case State::kHandshake:
      kept_output_.append(in);
      return true;
    case State::kClosed:
      // RFC 6455 §5.5.1: no data frame after our close frame. The connection
      // is closing; what MQTT still had to say is dropped.
      return true;
    case State::kOpen:
      if (in.empty()) return true;
      appendFrameHeader(kOpBinary, in.size(), down);
      down.append(in);
      return true;
  }
  return true;
}

void WebSocketLayer::closing(std::string& down) {
  if (state_ != State::kOpen) return;
  // RFC 6455 §7.4.1: 1000, normal closure; the client sees a clean close.
  appendFrameHeader(kOpClose, 2, down);
  down.push_back(static_cast<char>(1000 >> 8));
  down.push_back(static_cast<char>(1000 & 0xFF));
  state_ = State::kClosed;
}

// ---- Opening handshake (RFC 6455 §4.2) ----

StreamLayer::Result WebSocketLayer::readRequest(std::string_view in, size_t& consumed,
                                                std::string& to_peer, std::string& why) {
  // Not an HTTP request (a raw MQTT client on the WebSocket port sends 0x10):
  // answer at once rather than wait for a header that never ends.
  if (request_.empty() && !in.empty() && !absl::ascii_isupper(static_cast<unsigned char>(in[0]))) {
    return refuse(400, "not an HTTP request", {}, to_peer, why);
  }
  const size_t old_size = request_.size();
  const size_t take = std::min(in.size(), options_.max_request_bytes - old_size);
  request_.append(in.substr(0, take));
  const size_t end = request_.find("\r\n\r\n", old_size >= 3 ? old_size - 3 : 0);
  if (end == std::string::npos) {
    consumed = take;
    if (request_.size() >= options_.max_request_bytes) {
      return refuse(431, "upgrade request too large", {}, to_peer, why);
    }
    return Result::kOk;
  }
  const size_t request_len = end + 4;
  consumed = request_len - old_size;
  request_.resize(request_len);
  std::string request = std::exchange(request_, {});
  return answerRequest(request, to_peer, why);
}

StreamLayer::Result WebSocketLayer::answerRequest(std::string_view request, std::string& to_peer,
                                                  std::string& why) {
  request.remove_suffix(4);  // the CRLFCRLF
  std::vector<std::string_view> lines = split(request, "\r\n");

  // Request line: method SP request-target SP HTTP-version (RFC 7230 §3.1.1).
  std::vector<std::string_view> parts = split(lines[0], " ");
  if (parts.size() != 3 || parts[1].empty()) {
    return refuse(400, "malformed request line", {}, to_peer, why);
  }
  if (parts[2] != "HTTP/1.1") return refuse(400, "HTTP/1.1 required", {}, to_peer, why);
  if (parts[0] != "GET") {
    return refuse(405, cat({"method ", printable(parts[0]), " (GET required)"}), "Allow: GET\r\n",
                  to_peer, why);
  }
  std::string_view target = parts[1];
  // Absolute form (RFC 7230 §5.3.2), which proxies may send: keep the path.
  if (startsWithIgnoreCase(target, "http://") || startsWithIgnoreCase(target, "https://")) {
    const size_t authority = target.find("//") + 2;
    const size_t slash = target.find('/', authority);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  const std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (path != options_.path) {
    return refuse(404, cat({"path ", printable(path), " (WebSocket path is ", options_.path, ")"}),
                  {}, to_peer, why);
  }

  int hosts = 0;
  int keys = 0;
  std::string_view key;
  std::vector<std::string_view> upgrade, connection, version, protocols;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.empty() || line.front() == ' ' || line.front() == '\t') {
      // RFC 7230 §3.2.4: obsolete line folding may be refused with 400.
      return refuse(400, "folded or empty header line", {}, to_peer, why);
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return refuse(400, "malformed header line", {}, to_peer, why);
    }
    const std::string_view name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) {
      // RFC 7230 §3.2.4: no whitespace between a field name and the colon.
      return refuse(400, "whitespace in a header name", {}, to_peer, why);
    }
    const std::string_view value = trimOws(line.substr(colon + 1));
    if (equalsIgnoreCase(name, "Host")) {
      ++hosts;
    } else if (equalsIgnoreCase(name, "Upgrade")) {
      upgrade.push_back(value);
    } else if (equalsIgnoreCase(name, "Connection")) {
      connection.push_back(value);
    } else if (equalsIgnoreCase(name, "Sec-WebSocket-Version")) {
      version.push_back(value);
    } else if (equalsIgnoreCase(name, "Sec-WebSocket-Key")) {
      ++keys;
      key = value;
    } else if (equalsIgnoreCase(name, "Sec-WebSocket-Protocol")) {
      protocols.push_back(value);
    }
  }

  // RFC 7230 §5.4: exactly one Host.
  if (hosts != 1) return refuse(400, "missing or repeated Host header", {}, to_peer, why);
  if (!listHasToken(upgrade, "websocket")) {
    return refuse(400, "no \"Upgrade: websocket\" header", {}, to_peer, why);
  }
  if (!listHasToken(connection, "Upgrade")) {
    return refuse(400, "no \"Connection: Upgrade\" header", {}, to_peer, why);
  }
  // RFC 6455 §4.2.2 item 4 and §4.4: an unsupported version gets 426 with the
  // versions we speak. The header must appear once, with one value.
  if (version.size() != 1 || version[0] != "13") {
    return refuse(
        426,
        cat({"Sec-WebSocket-Version ",
             version.empty() ? std::string("missing") : printable(version[0]), " (13 required)"}),
        "Sec-WebSocket-Version: 13\r\n", to_peer, why);
  }
  if (keys != 1 || !isKey(key)) {
    return refuse(400, "missing, repeated or malformed Sec-WebSocket-Key", {}, to_peer, why);
  }

  // Subprotocol (RFC 6455 §4.2.2 item 5.4; MQTT-6.0.0-3/4). Tokens are compared
  // exactly, as libwebsockets does. A client offering protocols of which we know
  // none is refused (libwebsockets drops it: "No supported protocol"); a client
  // offering none is accepted without the header.
  bool offered = false;
  subprotocol_.clear();
  for (std::string_view v : protocols) {
    for (std::string_view element : split(v, ",")) {
      element = trimOws(element);
      if (element.empty()) continue;
      offered = true;
      if (subprotocol_.empty() && std::find(std::begin(kSubprotocols), std::end(kSubprotocols),
                                            element) != std::end(kSubprotocols)) {
        subprotocol_ = std::string(element);
      }
    }
  }
  if (offered && subprotocol_.empty()) {
    std::string list;
    for (std::string_view v : protocols) list.append(list.empty() ? "" : ", ").append(v);
    return refuse(400,
                  cat({"no supported subprotocol in \"", printable(list), "\" (mqtt or mqttv3.1)"}),
                  {}, to_peer, why);
  }

  to_peer.append(
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ");
  to_peer.append(acceptKey(key)).append("\r\n");
  if (!subprotocol_.empty()) {
    to_peer.append("Sec-WebSocket-Protocol: ").append(subprotocol_).append("\r\n");
  }
  to_peer.append("\r\n");
  state_ = State::kOpen;
  if (!kept_output_.empty()) {
    std::string kept = std::exchange(kept_output_, {});
    std::string ignored;
    encode(kept, to_peer, ignored);
  }
  return Result::kOk;
}

StreamLayer::Result WebSocketLayer::refuse(int status, std::string_view detail,
                                           std::string_view extra_headers, std::string& to_peer,
                                           std::string& why) {
  const std::string body = cat({detail, "\n"});
  const std::string code = std::to_string(status);
  to_peer.append(
      cat({"HTTP/1.1 ", code, " ", statusText(status),
           "\r\n"
           "Connection: close\r\n"
           "Content-Type: text/plain\r\n",
           extra_headers, "Content-Length: ", std::to_string(body.size()), "\r\n\r\n", body}));
  why = cat({"websocket handshake refused (", code, "): ", detail});
  state_ = State::kClosed;
  request_ = {};
  return Result::kClose;
}

// ---- Frames (RFC 6455 §5) ----

StreamLayer::Result WebSocketLayer::readFrames(std::string_view in, std::string& up,
                                               std::string& to_peer, std::string& why) {
  size_t i = 0;
  while (i < in.size()) {
    if (!reading_payload_) {
      // The header arrives byte-wise at worst; it is at most 14 bytes.
      size_t need = header_len_ >= 2 ? headerSize(header_[1]) : 2;
      while (header_len_ < need && i < in.size()) {
        header_[header_len_++] = static_cast<uint8_t>(in[i++]);
        if (header_len_ == 2) need = headerSize(header_[1]);
      }
      if (header_len_ < need) return Result::kOk;
      if (Result r = startFrame(to_peer, why); r != Result::kOk) return r;
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
    if (take > 0) {
      // Data payload goes straight up, unmasked where it lands: one copy.
      std::string& dest = (opcode_ & 0x8) ? control_ : up;
      dest.append(in.data() + i, take);
      unmask(dest.data() + dest.size() - take, take, mask_, payload_pos_);
      i += take;
      remaining_ -= take;
      payload_pos_ += take;
    }
    if (remaining_ > 0) return Result::kOk;
    reading_payload_ = false;
    if (opcode_ & 0x8) {
      if (Result r = endControlFrame(to_peer, why); r != Result::kOk) return r;
    } else if (fin_) {
      in_message_ = false;
      message_bytes_ = 0;
    }
  }
  // A frame with an empty payload whose header ended the input is done above.
  return Result::kOk;
}

StreamLayer::Result WebSocketLayer::startFrame(std::string& to_peer, std::string& why) {
  const uint8_t b0 = header_[0];
  const uint8_t b1 = header_[1];
  header_len_ = 0;
  fin_ = (b0 & 0x80) != 0;
  opcode_ = b0 & 0x0F;
  if (b0 & 0x70) {
    return fail(kCloseProtocolError, "RSV bits set without a negotiated extension", to_peer, why);
  }
  // RFC 6455 §5.1: a server must close on an unmasked client frame.
  if (!(b1 & 0x80)) return fail(kCloseProtocolError, "unmasked client frame", to_peer, why);
  uint64_t len = b1 & 0x7F;
  size_t pos = 2;
  if (len == 126) {
    len = (uint64_t{header_[2]} << 8) | header_[3];
    pos = 4;
  } else if (len == 127) {
    len = 0;
    for (size_t k = 2; k < 10; ++k) len = (len << 8) | header_[k];
    pos = 10;
    if (len >> 63)
      return fail(kCloseProtocolError, "64-bit length with the top bit set", to_peer, why);
  }
  std::memcpy(&mask_, header_ + pos, 4);

  switch (opcode_) {
    case kOpText:
      // MQTT-6.0.0-1: MQTT travels in binary frames; anything else closes.
      return fail(kCloseUnsupportedData, "text frame (MQTT needs binary frames)", to_peer, why);
    case kOpBinary:
      if (in_message_) {
        return fail(kCloseProtocolError, "new message inside a fragmented one", to_peer, why);
      }
      in_message_ = true;
      message_bytes_ = 0;
      break;
    case kOpContinuation:
      if (!in_message_) {
        return fail(kCloseProtocolError, "continuation frame outside a message", to_peer, why);
      }
      break;
    case kOpClose:
    case kOpPing:
    case kOpPong:
      // RFC 6455 §5.5: control frames are not fragmented and carry <= 125 bytes.
      if (!fin_) return fail(kCloseProtocolError, "fragmented control frame", to_peer, why);
      if (len > kMaxControlPayload) {
        return fail(kCloseProtocolError, "control frame over 125 bytes", to_peer, why);
      }
      control_.clear();
      break;
    default:
      return fail(kCloseProtocolError, "unknown opcode " + std::to_string(opcode_), to_peer, why);
  }
  if (!(opcode_ & 0x8)) {
    if (len > options_.max_message_bytes - message_bytes_) {
      return fail(kCloseTooBig,
                  "message over " + std::to_string(options_.max_message_bytes) + " bytes", to_peer,
                  why);
    }
    message_bytes_ += len;
  }
  remaining_ = len;
  payload_pos_ = 0;
  reading_payload_ = true;
  return Result::kOk;
}

StreamLayer::Result WebSocketLayer::endControlFrame(std::string& to_peer, std::string& why) {
  switch (opcode_) {
    case kOpPing:
      // RFC 6455 §5.5.2: a pong with the ping's payload.
      appendFrameHeader(kOpPong, control_.size(), to_peer);
      to_peer.append(control_);
      break;
    case kOpPong:
      break;  // unsolicited pongs are allowed and ignored (§5.5.3)
    case kOpClose: {
      if (control_.size() == 1) {
        return fail(kCloseProtocolError, "close frame with a 1-byte payload", to_peer, why);
      }
      // RFC 6455 §5.5.1: answer with a close frame, echoing the status code.
      if (control_.empty()) {
        appendFrameHeader(kOpClose, 0, to_peer);
        why = "websocket closed by peer (no status)";
      } else {
        const uint16_t code = static_cast<uint16_t>((static_cast<uint8_t>(control_[0]) << 8) |
                                                    static_cast<uint8_t>(control_[1]));
        if (!validCloseCode(code)) {
          return fail(kCloseProtocolError, "invalid close code " + std::to_string(code), to_peer,
                      why);
        }
        // RFC 6455 §5.5.1 and §8.1: the reason is UTF-8; if not, fail with 1007.
        if (!isUtf8(std::string_view(control_).substr(2))) {
          return fail(kCloseInvalidPayload, "close reason is not UTF-8", to_peer, why);
        }
        appendFrameHeader(kOpClose, 2, to_peer);
        to_peer.append(control_, 0, 2);
        why = cat({"websocket closed by peer (", std::to_string(code),
                   control_.size() > 2 ? ": " + printable(std::string_view(control_).substr(2), 123)
                                       : std::string(),
                   ")"});
      }
      state_ = State::kClosed;
      return Result::kClose;
    }
  }
  control_.clear();
  return Result::kOk;
}

StreamLayer::Result WebSocketLayer::fail(uint16_t code, std::string_view reason,
                                         std::string& to_peer, std::string& why) {
  const std::string_view sent = reason.substr(0, kMaxControlPayload - 2);
  appendFrameHeader(kOpClose, 2 + sent.size(), to_peer);
  to_peer.push_back(static_cast<char>(code >> 8));
  to_peer.push_back(static_cast<char>(code & 0xFF));
  to_peer.append(sent);
  why = cat({"websocket protocol error, close ", std::to_string(code), ": ", reason});
  state_ = State::kClosed;
  return Result::kClose;
}

}  // namespace gannet::net
