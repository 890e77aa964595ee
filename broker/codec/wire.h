#pragma once
// Internal to the codec (not part of its API): the primitive data types of MQTT
// (§1.5) read from a packet body with bounds checks, and written into a buffer the
// encoder has already sized. Everything here is inline: the decoder calls these per
// field on the hot path. Failures build their Status out of line (wire.cc).

#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/status/status.h"

namespace gannet::codec::wire {

// §1.5.5: a Variable Byte Integer has at most four bytes, so 0..268,435,455.
inline constexpr uint32_t kMaxVarInt = 268'435'455;

inline int varIntSize(uint32_t v) { return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : 4; }

// Failures, built out of line so the inline readers stay small. `what` names the
// field for the log line.
absl::Status truncated(const char* what);
absl::Status varIntTooLong(const char* what);
absl::Status varIntNotMinimal(const char* what);
absl::Status invalidUtf8(const char* what);

bool isValidUtf8Impl(const uint8_t* p, size_t n);

// A cursor over the bytes of one packet (or of one property block). Never reads
// past its end; every read either fills its output or returns a malformed-packet
// status.
class Reader {
 public:
  explicit Reader(std::string_view data)
      : p_(reinterpret_cast<const uint8_t*>(data.data())), end_(p_ + data.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }

  absl::Status readU8(uint8_t& v, const char* what) {
    if (p_ == end_) return truncated(what);
    v = *p_++;
    return absl::OkStatus();
  }

  absl::Status readU16(uint16_t& v, const char* what) {
    if (remaining() < 2) return truncated(what);
    v = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
    p_ += 2;
    return absl::OkStatus();
  }

  absl::Status readU32(uint32_t& v, const char* what) {
    if (remaining() < 4) return truncated(what);
    v = (uint32_t{p_[0]} << 24) | (uint32_t{p_[1]} << 16) | (uint32_t{p_[2]} << 8) | p_[3];
    p_ += 4;
    return absl::OkStatus();
  }

  // §1.5.5: at most four bytes, and in the fewest bytes that hold the value
  // [MQTT-1.5.5-1]; a longer or padded encoding is a Malformed Packet.
  absl::Status readVarInt(uint32_t& v, const char* what) {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      if (p_ == end_) return truncated(what);
      const uint8_t b = *p_++;
      value |= uint32_t{static_cast<uint8_t>(b & 0x7F)} << (7 * i);
      if ((b & 0x80) == 0) {
        if (b == 0 && i > 0) return varIntNotMinimal(what);
        v = value;
        return absl::OkStatus();
      }
    }
    return varIntTooLong(what);
  }

  // §1.5.6 Binary Data: a two-byte length, then that many bytes, taken as they are.
  absl::Status readBinary(std::string_view& v, const char* what) {
    if (remaining() < 2) return truncated(what);
    const size_t n = (size_t{p_[0]} << 8) | p_[1];
    if (remaining() - 2 < n) return truncated(what);
    v = std::string_view(reinterpret_cast<const char*>(p_ + 2), n);
    p_ += 2 + n;
    return absl::OkStatus();
  }

  // §1.5.4 UTF-8 Encoded String: Binary Data that must also be well-formed UTF-8
  // without U+0000 or surrogates; anything else is a Malformed Packet.
  absl::Status readUtf8(std::string_view& v, const char* what) {
    if (absl::Status s = readBinary(v, what); !s.ok()) return s;
    if (!isValidUtf8Impl(reinterpret_cast<const uint8_t*>(v.data()), v.size())) {
      return invalidUtf8(what);
    }
    return absl::OkStatus();
  }

  // Splits off the next `n` bytes (a property block) as their own reader.
  absl::Status readBlock(size_t n, Reader& block, const char* what) {
    if (remaining() < n) return truncated(what);
    block.p_ = p_;
    block.end_ = p_ + n;
    p_ += n;
    return absl::OkStatus();
  }

  // Everything left (a PUBLISH payload).
  std::string_view readRest() {
    std::string_view rest(reinterpret_cast<const char*>(p_), remaining());
    p_ = end_;
    return rest;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Writes into memory the encoder has sized exactly beforehand; no bounds checks.
class Writer {
 public:
  explicit Writer(char* p) : p_(p) {}

  char* position() const { return p_; }

  void u8(uint8_t v) { *p_++ = static_cast<char>(v); }
  void u16(uint16_t v) {
    p_[0] = static_cast<char>(v >> 8);
    p_[1] = static_cast<char>(v);
    p_ += 2;
  }
  void u32(uint32_t v) {
    p_[0] = static_cast<char>(v >> 24);
    p_[1] = static_cast<char>(v >> 16);
    p_[2] = static_cast<char>(v >> 8);
    p_[3] = static_cast<char>(v);
    p_ += 4;
  }
  void varInt(uint32_t v) {
    do {
      uint8_t b = v & 0x7F;
      v >>= 7;
      if (v != 0) b |= 0x80;
      *p_++ = static_cast<char>(b);
    } while (v != 0);
  }
  void bytes(std::string_view s) {
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  // A UTF-8 Encoded String or Binary Data: two-byte length, then the bytes.
  void lengthPrefixed(std::string_view s) {
    u16(static_cast<uint16_t>(s.size()));
    bytes(s);
  }

 private:
  char* p_;
};

}  // namespace gannet::codec::wire
