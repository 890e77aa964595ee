#include "tests/unit/codec/codec_test_util.h"

#include <cctype>
#include <cstdio>
#include <optional>

#include "gtest/gtest.h"

namespace gannet::codec::testing {
namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string B(std::string_view spec) {
  std::string out;
  size_t i = 0;
  while (i < spec.size()) {
    const char c = spec[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '\'') {
      const size_t close = spec.find('\'', i + 1);
      if (close == std::string_view::npos) {
        ADD_FAILURE() << "unterminated quote in byte spec: " << spec;
        return out;
      }
      out.append(spec.substr(i + 1, close - i - 1));
      i = close + 1;
    } else {
      const int hi = hexDigit(c);
      const int lo = i + 1 < spec.size() ? hexDigit(spec[i + 1]) : -1;
      if (hi < 0 || lo < 0) {
        ADD_FAILURE() << "bad byte spec at offset " << i << ": " << spec;
        return out;
      }
      out.push_back(static_cast<char>(hi << 4 | lo));
      i += 2;
    }
  }
  return out;
}

std::string hex(std::string_view bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof(buf), out.empty() ? "%02X" : " %02X", c);
    out += buf;
  }
  return out;
}

absl::StatusOr<Packet> decodeFrame(std::string_view bytes, ProtocolVersion version) {
  absl::StatusOr<std::optional<FrameHeader>> peek = peekFrame(bytes);
  if (!peek.ok()) return peek.status();
  if (!peek->has_value()) {
    ADD_FAILURE() << "incomplete fixed header: " << hex(bytes);
    return absl::InternalError("incomplete header");
  }
  const FrameHeader header = **peek;
  if (header.totalLength() != bytes.size()) {
    ADD_FAILURE() << "frame of " << header.totalLength() << " bytes in a buffer of " << bytes.size()
                  << ": " << hex(bytes);
    return absl::InternalError("frame length mismatch");
  }
  return decodePacket(header, bytes, version);
}

std::string encodeToBytes(const Packet& packet, ProtocolVersion version) {
  std::string out;
  encode(packet, version, out);
  return out;
}

std::string frame(uint8_t first_byte, std::string_view body) {
  std::string out(1, static_cast<char>(first_byte));
  appendVarInt(static_cast<uint32_t>(body.size()), out);
  out.append(body);
  return out;
}

void expectRoundTrip(const Packet& packet, ProtocolVersion version, std::string_view bytes) {
  SCOPED_TRACE(::testing::Message()
               << "bytes " << hex(bytes) << " version " << static_cast<int>(version));
  // Encoding gives exactly the expected bytes, appended after what is there.
  std::string out = "prefix";
  encode(packet, version, out);
  EXPECT_EQ(hex(out.substr(6)), hex(bytes));
  EXPECT_EQ(out.substr(0, 6), "prefix");

  // Decoding gives back the packet.
  absl::StatusOr<Packet> decoded = decodeFrame(bytes, version);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(*decoded == packet) << "decoded packet differs; it re-encodes as "
                                  << hex(encodeToBytes(*decoded, version));

  // One byte at a time: no header until its last byte, then the same header
  // until the packet is whole, and whole exactly at its last byte.
  std::string buffer;
  std::optional<FrameHeader> header;
  for (size_t i = 0; i < bytes.size(); ++i) {
    buffer.push_back(bytes[i]);
    absl::StatusOr<std::optional<FrameHeader>> peek = peekFrame(buffer);
    ASSERT_TRUE(peek.ok()) << "after " << buffer.size() << " bytes: " << peek.status();
    if (!peek->has_value()) {
      ASSERT_FALSE(header.has_value()) << "header disappeared after " << buffer.size();
      continue;
    }
    if (!header.has_value()) {
      header = **peek;
      EXPECT_EQ(header->header_length, buffer.size()) << "header found late";
    }
    EXPECT_EQ((*peek)->totalLength(), header->totalLength());
    if (header->totalLength() == buffer.size()) {
      EXPECT_EQ(buffer.size(), bytes.size()) << "packet complete before its last byte";
      absl::StatusOr<Packet> again = decodePacket(*header, buffer, version);
      ASSERT_TRUE(again.ok()) << again.status();
      EXPECT_TRUE(*again == packet);
    } else {
      EXPECT_LT(buffer.size(), header->totalLength());
    }
  }
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->totalLength(), bytes.size());
}

void expectRejected(std::string_view bytes, ProtocolVersion version, ReasonCode reason) {
  absl::StatusOr<Packet> decoded = decodeFrame(bytes, version);
  ASSERT_FALSE(decoded.ok()) << "accepted " << hex(bytes) << ", re-encodes as "
                             << hex(encodeToBytes(*decoded, version));
  EXPECT_EQ(static_cast<int>(reasonCodeOf(decoded.status())), static_cast<int>(reason))
      << hex(bytes) << ": " << decoded.status();
}

}  // namespace gannet::codec::testing
