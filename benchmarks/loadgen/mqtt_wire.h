#pragma once
// The few MQTT 3.1.1 packets a load generator needs, encoded and parsed by hand.
//
// Deliberately independent of broker/codec: a benchmark that shared the broker's
// codec could not catch the codec's own mistakes, and would speed up or slow down
// with it. Encoders append to a ByteBuffer; the parser splits a byte stream into
// packets without copying. No state, usable from any thread.

#include <cstdint>
#include <string>
#include <string_view>

#include "benchmarks/loadgen/byte_buffer.h"

namespace gannet::loadgen::wire {

// MQTT 3.1.1 §2.2.1, control packet types.
enum PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

// One packet inside the input stream; `body` points into the caller's bytes.
struct Packet {
  uint8_t type = 0;
  uint8_t flags = 0;  // low nibble of the first byte
  std::string_view body;
};

struct PublishView {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  uint16_t packet_id = 0;  // 0 for QoS 0
};

enum class ParseStatus { kOk, kNeedMore, kMalformed };

// Parses the packet at the front of [data, data+len). On kOk, `*consumed` is its
// full length. Bodies larger than `max_body` are malformed (a broker bug or a
// desynchronised stream, never something a benchmark should buffer).
ParseStatus parsePacket(const char* data, size_t len, Packet* packet, size_t* consumed,
                        size_t max_body = 16u << 20);

// Splits a PUBLISH body (MQTT 3.1.1 §3.3.2). False if it is malformed.
bool parsePublish(const Packet& packet, PublishView* out);

// The return code of a CONNACK (§3.2.2.3); -1 if malformed.
int connackCode(const Packet& packet);
// The first return code of a SUBACK (§3.9.3) and its packet id; false if malformed.
bool parseSuback(const Packet& packet, uint16_t* packet_id, uint8_t* code);
// The packet id of a PUBACK; false if malformed.
bool parsePuback(const Packet& packet, uint16_t* packet_id);

// What a CONNACK return code means (§3.2.2.3, Table 3.1).
const char* connackCodeText(int code);

void appendConnect(ByteBuffer& out, std::string_view client_id, uint16_t keepalive_s,
                   bool clean_session);
void appendSubscribe(ByteBuffer& out, uint16_t packet_id, std::string_view filter, uint8_t qos);
void appendPuback(ByteBuffer& out, uint16_t packet_id);
void appendPingreq(ByteBuffer& out);
void appendDisconnect(ByteBuffer& out);

// A pre-encoded PUBLISH that publishers copy again and again, patching only the
// packet id and the first payload bytes. Building packets this way keeps the
// generator's cost per message at one memcpy.
class PublishTemplate {
 public:
  PublishTemplate(std::string_view topic, size_t payload_size, uint8_t qos);

  const std::string& bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }
  // Offsets into bytes(); packet_id_offset is meaningful only for QoS > 0.
  size_t packetIdOffset() const { return packet_id_offset_; }
  size_t payloadOffset() const { return payload_offset_; }
  size_t payloadSize() const { return payload_size_; }

  // Appends one copy and returns a pointer to it inside `out`, for patching.
  char* appendTo(ByteBuffer& out) const;

 private:
  std::string bytes_;
  size_t packet_id_offset_ = 0;
  size_t payload_offset_ = 0;
  size_t payload_size_ = 0;
};

inline void putU16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v & 0xff);
}
inline uint16_t getU16(const char* p) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[0]) << 8) | static_cast<uint8_t>(p[1]));
}

}  // namespace gannet::loadgen::wire
