// libFuzzer target for the MQTT codec. Treats the input as a connection's byte
// stream and, for each protocol version, frames it with peekFrame() and decodes
// every whole packet with decodePacket(), as the connection layer does. Whatever
// decodes must survive a round trip: encoding it and decoding the result gives the
// same packet, and encoding that again gives the same bytes.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"
#include "broker/codec/errors.h"

namespace {

using gannet::codec::FrameHeader;
using gannet::codec::Packet;
using gannet::codec::ProtocolVersion;

[[noreturn]] void fail(const char* what, std::string_view bytes) {
  std::fprintf(stderr, "codec_fuzzer: %s; packet:", what);
  for (unsigned char c : bytes) std::fprintf(stderr, " %02X", c);
  std::fprintf(stderr, "\n");
  std::abort();
}

// The version to re-encode with: a CONNECT carries its own.
ProtocolVersion versionFor(const Packet& packet, ProtocolVersion connection) {
  if (const auto* connect = std::get_if<gannet::codec::ConnectPacket>(&packet)) {
    return connect->version;
  }
  return connection;
}

void checkRoundTrip(const Packet& packet, ProtocolVersion connection, std::string_view original) {
  const ProtocolVersion version = versionFor(packet, connection);
  std::string encoded;
  gannet::codec::encode(packet, version, encoded);
  if (encoded.empty()) fail("decoded packet encodes to nothing", original);

  auto peek = gannet::codec::peekFrame(encoded);
  if (!peek.ok() || !peek->has_value()) fail("re-encoded packet does not frame", original);
  if ((*peek)->totalLength() != encoded.size()) fail("re-encoded frame length", original);
  auto again = gannet::codec::decodePacket(**peek, encoded, version);
  if (!again.ok()) {
    std::fprintf(stderr, "codec_fuzzer: %s\n", std::string(again.status().message()).c_str());
    fail("re-encoded packet does not decode", original);
  }
  if (!(*again == packet)) fail("round trip changed the packet", original);

  std::string encoded_again;
  gannet::codec::encode(*again, version, encoded_again);
  if (encoded_again != encoded) fail("encoding is not stable", original);
}

void decodeStream(std::string_view input, ProtocolVersion version) {
  while (!input.empty()) {
    auto peek = gannet::codec::peekFrame(input);
    if (!peek.ok()) {
      if (gannet::codec::reasonCodeOf(peek.status()) !=
          gannet::codec::ReasonCode::kMalformedPacket) {
        fail("peekFrame failed without kMalformedPacket", input);
      }
      return;
    }
    if (!peek->has_value()) return;  // the header needs more bytes
    const FrameHeader header = **peek;
    if (header.header_length < 2 || header.header_length > 5) fail("bad header length", input);
    if (header.totalLength() > input.size()) return;  // the body needs more bytes
    const std::string_view packet = input.substr(0, header.totalLength());
    auto decoded = gannet::codec::decodePacket(header, packet, version);
    if (decoded.ok()) {
      checkRoundTrip(*decoded, version, packet);
    } else if (gannet::codec::reasonCodeOf(decoded.status()) ==
               gannet::codec::ReasonCode::kUnspecifiedError) {
      fail("decode failure without a reason code", packet);
    }
    // A real connection closes on the first bad packet; carrying on covers more.
    input.remove_prefix(header.totalLength());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (ProtocolVersion version :
       {ProtocolVersion::kV31, ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    decodeStream(input, version);
  }
  return 0;
}
