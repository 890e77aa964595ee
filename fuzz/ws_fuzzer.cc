// libFuzzer target for the WebSocket layer. The first input byte chooses: bit 0,
// whether a valid upgrade request precedes the rest (so that half the runs
// reach the frame parser); bit 1, small limits (so that 431 and 1009 are
// reached); bits 2-7, where the rest is split in two decode() calls. The same
// bytes are also fed in one call and, when short, one byte per call: the layer
// must give the same result, the same bytes up and the same bytes to the peer
// however its input is cut, never more bytes up than it was given, and nothing
// at all once it has closed.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "broker/net/websocket.h"

namespace {

using gannet::net::StreamLayer;
using gannet::net::WebSocketLayer;
using gannet::net::WebSocketOptions;

constexpr std::string_view kHandshake =
    "GET /mqtt HTTP/1.1\r\n"
    "Host: fuzz\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n"
    "\r\n";

struct Run {
  StreamLayer::Result result = StreamLayer::Result::kOk;
  std::string up, to_peer, why;
  bool ready = false;
};

[[noreturn]] void fail(const char* what, const Run& a, const Run& b) {
  std::fprintf(stderr,
               "ws_fuzzer: %s\n  A: result=%d up=%zu to_peer=%zu why=%s\n"
               "  B: result=%d up=%zu to_peer=%zu why=%s\n",
               what, static_cast<int>(a.result), a.up.size(), a.to_peer.size(), a.why.c_str(),
               static_cast<int>(b.result), b.up.size(), b.to_peer.size(), b.why.c_str());
  std::abort();
}

// Feeds `in` cut at each of `cuts` (ascending offsets), stopping at kClose.
template <typename Cuts>
Run feed(const WebSocketOptions& options, std::string_view in, const Cuts& cuts) {
  WebSocketLayer ws(options);
  Run r;
  size_t from = 0;
  auto step = [&](size_t to) {
    if (r.result != StreamLayer::Result::kOk || to <= from) return;
    r.result = ws.decode(in.substr(from, to - from), r.up, r.to_peer, r.why);
    from = to;
  };
  for (size_t cut : cuts) step(cut);
  step(in.size());
  r.ready = ws.ready();
  if (r.up.size() > in.size()) fail("more bytes up than in", r, r);
  if (r.result == StreamLayer::Result::kClose) {
    Run after;
    if (ws.decode("\x82\x80\0\0\0\0", after.up, after.to_peer, after.why) !=
            StreamLayer::Result::kClose ||
        !after.up.empty() || !after.to_peer.empty()) {
      fail("output after close", r, after);
    }
  }
  // encode() must cope in every state.
  std::string down, why;
  if (!ws.encode(std::string_view(in).substr(0, 300), down, why)) fail("encode failed", r, r);
  if (ws.ready() && r.result == StreamLayer::Result::kOk) {
    const size_t n = std::min<size_t>(in.size(), 300);
    if (n > 0 && down.size() < n + 2) fail("encode wrote too little", r, r);
  }
  return r;
}

void expectSame(const Run& a, const Run& b) {
  if (a.result != b.result) fail("result differs with the cut", a, b);
  if (a.up != b.up) fail("up differs with the cut", a, b);
  if (a.to_peer != b.to_peer) fail("to_peer differs with the cut", a, b);
  if (a.why != b.why) fail("why differs with the cut", a, b);
  if (a.ready != b.ready) fail("ready differs with the cut", a, b);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t control = data[0];
  std::string in;
  if (control & 1) in.append(kHandshake);
  in.append(reinterpret_cast<const char*>(data + 1), size - 1);

  WebSocketOptions options;
  if (control & 2) {
    options.max_message_bytes = 64;
    options.max_request_bytes = 200;
  }

  const size_t split = in.size() * (control >> 2) / 63;
  const size_t one_cut[] = {split};
  const Run split_run = feed(options, in, one_cut);
  const Run whole = feed(options, in, std::initializer_list<size_t>{});
  expectSame(whole, split_run);
  if (in.size() <= 2048) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
    expectSame(whole, feed(options, in, cuts));
  }
  return 0;
}
