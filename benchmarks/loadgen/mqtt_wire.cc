#include "benchmarks/loadgen/mqtt_wire.h"

namespace gannet::loadgen::wire {
namespace {

// §2.2.3: remaining length, 1 to 4 bytes of 7 bits each.
size_t encodeRemainingLength(size_t n, char* out) {
  size_t i = 0;
  do {
    uint8_t b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    out[i++] = static_cast<char>(b);
  } while (n > 0);
  return i;
}

void appendHeader(std::string& out, uint8_t first_byte, size_t remaining) {
  char len[4];
  out.push_back(static_cast<char>(first_byte));
  out.append(len, encodeRemainingLength(remaining, len));
}

void appendString(std::string& out, std::string_view s) {
  char len[2];
  putU16(len, static_cast<uint16_t>(s.size()));
  out.append(len, 2);
  out.append(s);
}

}  // namespace

ParseStatus parsePacket(const char* data, size_t len, Packet* packet, size_t* consumed,
                        size_t max_body) {
  if (len < 2) return ParseStatus::kNeedMore;
  size_t body_len = 0;
  size_t pos = 1;
  for (int shift = 0;; shift += 7) {
    if (pos >= len) return ParseStatus::kNeedMore;
    if (shift > 21) return ParseStatus::kMalformed;  // more than 4 length bytes
    uint8_t b = static_cast<uint8_t>(data[pos++]);
    body_len |= static_cast<size_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) break;
  }
  if (body_len > max_body) return ParseStatus::kMalformed;
  if (len - pos < body_len) return ParseStatus::kNeedMore;
  uint8_t b0 = static_cast<uint8_t>(data[0]);
  packet->type = b0 >> 4;
  packet->flags = b0 & 0x0f;
  packet->body = std::string_view(data + pos, body_len);
  *consumed = pos + body_len;
  return ParseStatus::kOk;
}

bool parsePublish(const Packet& packet, PublishView* out) {
  const std::string_view b = packet.body;
  out->qos = (packet.flags >> 1) & 0x03;
  if (out->qos == 3 || b.size() < 2) return false;
  size_t topic_len = getU16(b.data());
  size_t pos = 2 + topic_len;
  if (pos > b.size()) return false;
  out->topic = b.substr(2, topic_len);
  out->packet_id = 0;
  if (out->qos > 0) {
    if (pos + 2 > b.size()) return false;
    out->packet_id = getU16(b.data() + pos);
    pos += 2;
  }
  out->payload = b.substr(pos);
  return true;
}

int connackCode(const Packet& packet) {
  if (packet.body.size() != 2) return -1;
  return static_cast<uint8_t>(packet.body[1]);
}

bool parseSuback(const Packet& packet, uint16_t* packet_id, uint8_t* code) {
  if (packet.body.size() < 3) return false;
  *packet_id = getU16(packet.body.data());
  *code = static_cast<uint8_t>(packet.body[2]);
  return true;
}

bool parsePuback(const Packet& packet, uint16_t* packet_id) {
  if (packet.body.size() != 2) return false;
  *packet_id = getU16(packet.body.data());
  return true;
}

const char* connackCodeText(int code) {
  switch (code) {
    case 0:
      return "accepted";
    case 1:
      return "unacceptable protocol version";
    case 2:
      return "identifier rejected";
    case 3:
      return "server unavailable";
    case 4:
      return "bad user name or password";
    case 5:
      return "not authorized";
    default:
      return "unknown return code";
  }
}

void appendConnect(ByteBuffer& out, std::string_view client_id, uint16_t keepalive_s,
                   bool clean_session) {
  // §3.1.2: protocol name "MQTT", level 4, flags, keep alive; §3.1.3: client id.
  std::string variable;
  appendString(variable, "MQTT");
  variable.push_back(4);
  variable.push_back(clean_session ? 0x02 : 0x00);
  char ka[2];
  putU16(ka, keepalive_s);
  variable.append(ka, 2);
  appendString(variable, client_id);
  std::string packet;
  appendHeader(packet, kConnect << 4, variable.size());
  packet += variable;
  out.append(packet.data(), packet.size());
}

void appendSubscribe(ByteBuffer& out, uint16_t packet_id, std::string_view filter, uint8_t qos) {
  // §3.8.1: the fixed header flags of SUBSCRIBE are 0b0010.
  std::string body;
  char id[2];
  putU16(id, packet_id);
  body.append(id, 2);
  appendString(body, filter);
  body.push_back(static_cast<char>(qos));
  std::string packet;
  appendHeader(packet, (kSubscribe << 4) | 0x02, body.size());
  packet += body;
  out.append(packet.data(), packet.size());
}

void appendPuback(ByteBuffer& out, uint16_t packet_id) {
  char* p = out.reserve(4);
  p[0] = static_cast<char>(kPuback << 4);
  p[1] = 2;
  putU16(p + 2, packet_id);
  out.commit(4);
}

void appendPingreq(ByteBuffer& out) {
  const char p[2] = {static_cast<char>(kPingreq << 4), 0};
  out.append(p, 2);
}

void appendDisconnect(ByteBuffer& out) {
  const char p[2] = {static_cast<char>(kDisconnect << 4), 0};
  out.append(p, 2);
}

PublishTemplate::PublishTemplate(std::string_view topic, size_t payload_size, uint8_t qos)
    : payload_size_(payload_size) {
  size_t remaining = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload_size;
  appendHeader(bytes_, static_cast<uint8_t>((kPublish << 4) | (qos << 1)), remaining);
  appendString(bytes_, topic);
  if (qos > 0) {
    packet_id_offset_ = bytes_.size();
    bytes_.append(2, '\0');
  }
  payload_offset_ = bytes_.size();
  bytes_.append(payload_size, 'x');
}

char* PublishTemplate::appendTo(ByteBuffer& out) const {
  char* p = out.reserve(bytes_.size());
  std::memcpy(p, bytes_.data(), bytes_.size());
  out.commit(bytes_.size());
  return p;
}

}  // namespace gannet::loadgen::wire
