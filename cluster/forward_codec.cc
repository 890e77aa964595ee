#include "cluster/forward_codec.h"

namespace gannet::cluster {
namespace {

enum : uint8_t {
  kRetain = 1 << 2,
  kProperties = 1 << 3,
  kExpiry = 1 << 4,
  kAck = 1 << 5,
  kSharedGroups = 1 << 6,
};

void putVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool getVarint(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const auto b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= uint64_t{b & 0x7Fu} << shift;
    if ((b & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

bool getBytes(std::string_view* in, std::string_view* out) {
  uint64_t n = 0;
  if (!getVarint(in, &n) || n > in->size()) return false;
  *out = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

void appendForward(std::string& out, const ForwardView& m) {
  uint8_t flags = m.qos & 0x03;
  if (m.retain) flags |= kRetain;
  if (!m.properties.empty()) flags |= kProperties;
  if (m.expiry_in_ms > 0) flags |= kExpiry;
  if (m.ack_token != 0) flags |= kAck;
  if (m.shared_groups) flags |= kSharedGroups;
  out.push_back(static_cast<char>(flags));
  putVarint(out, m.topic.size());
  out.append(m.topic);
  putVarint(out, m.payload.size());
  out.append(m.payload);
  if (flags & kProperties) {
    putVarint(out, m.properties.size());
    out.append(m.properties);
  }
  if (flags & kExpiry) putVarint(out, static_cast<uint64_t>(m.expiry_in_ms));
  if (flags & kAck) {
    putVarint(out, m.ack_worker);
    putVarint(out, m.ack_token);
  }
}

bool readForward(std::string_view* in, ForwardView* m) {
  if (in->empty()) return false;
  const auto flags = static_cast<uint8_t>(in->front());
  in->remove_prefix(1);
  if ((flags & 0x03) == 3 || (flags & 0x80) != 0) return false;
  *m = ForwardView{};
  m->qos = flags & 0x03;
  m->retain = (flags & kRetain) != 0;
  m->shared_groups = (flags & kSharedGroups) != 0;
  if (!getBytes(in, &m->topic) || !getBytes(in, &m->payload)) return false;
  if ((flags & kProperties) && !getBytes(in, &m->properties)) return false;
  uint64_t v = 0;
  if (flags & kExpiry) {
    if (!getVarint(in, &v) || v == 0 || v > (uint64_t{1} << 62)) return false;
    m->expiry_in_ms = static_cast<int64_t>(v);
  }
  if (flags & kAck) {
    uint64_t worker = 0;
    if (!getVarint(in, &worker) || worker > 0xFFFFFFFFu || !getVarint(in, &v) || v == 0) return false;
    m->ack_worker = static_cast<uint32_t>(worker);
    m->ack_token = v;
  }
  return true;
}

}  // namespace gannet::cluster
