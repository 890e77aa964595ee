#include "broker/codec/publish_writer.h"

#include "broker/codec/encoder.h"

namespace gannet::codec {
namespace {

void put16(uint16_t v, std::string& out) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
void put32(uint32_t v, std::string& out) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>((v >> 16) & 0xFF));
  out.push_back(static_cast<char>((v >> 8) & 0xFF));
  out.push_back(static_cast<char>(v & 0xFF));
}
void putString(std::string_view s, std::string& out) {
  put16(static_cast<uint16_t>(s.size()), out);
  out.append(s);
}
int varIntSize(uint32_t v) { return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4; }

// The MQTT 5 property block of the delivery, without its length prefix.
void appendProperties(const PublishView& p, std::string& props) {
  const Properties* mp = p.properties;
  if (mp != nullptr && mp->payload_format_indicator) {
    props.push_back(0x01);
    props.push_back(static_cast<char>(*mp->payload_format_indicator));
  }
  if (p.message_expiry != 0) {
    props.push_back(0x02);
    put32(p.message_expiry, props);
  }
  if (mp != nullptr && mp->content_type) {
    props.push_back(0x03);
    putString(*mp->content_type, props);
  }
  if (mp != nullptr && mp->response_topic) {
    props.push_back(0x08);
    putString(*mp->response_topic, props);
  }
  if (mp != nullptr && mp->correlation_data) {
    props.push_back(0x09);
    putString(*mp->correlation_data, props);
  }
  for (uint32_t id : p.subscription_ids) {
    props.push_back(0x0B);
    appendVarInt(id, props);
  }
  if (p.topic_alias != 0) {
    props.push_back(0x23);
    put16(p.topic_alias, props);
  }
  if (mp != nullptr) {
    for (const auto& up : mp->user_properties) {
      props.push_back(0x26);
      putString(up.key, props);
      putString(up.value, props);
    }
  }
}

}  // namespace

size_t writePublish(const PublishView& p, ProtocolVersion version, std::string& out) {
  const size_t start = out.size();
  thread_local std::string props;
  props.clear();
  const bool v5 = version == ProtocolVersion::kV5;
  if (v5) appendProperties(p, props);
  uint32_t remaining = 2 + static_cast<uint32_t>(p.topic.size()) +
                       (p.qos > 0 ? 2 : 0) + static_cast<uint32_t>(p.payload.size());
  if (v5) remaining += varIntSize(static_cast<uint32_t>(props.size())) + props.size();
  out.push_back(static_cast<char>(0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 1 : 0)));
  appendVarInt(remaining, out);
  putString(p.topic, out);
  if (p.qos > 0) put16(p.packet_id, out);
  if (v5) {
    appendVarInt(static_cast<uint32_t>(props.size()), out);
    out.append(props);
  }
  out.append(p.payload);
  return out.size() - start;
}

}  // namespace gannet::codec
