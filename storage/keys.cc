#include "storage/keys.h"

#include "base/assert.h"

namespace gannet::storage::keys {

void appendU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}

void appendU64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

uint16_t readU16(std::string_view b) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[0]) << 8) | static_cast<uint8_t>(b[1]));
}

uint64_t readU64(std::string_view b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(b[static_cast<size_t>(i)]);
  return v;
}

std::string clientPrefix(std::string_view client_id) {
  // The codec cannot produce a longer client id; a longer one would make keys
  // ambiguous, so it is a bug, not input.
  GANNET_RELEASE_ASSERT(client_id.size() <= kMaxClientIdBytes, "client id longer than 65535 bytes");
  std::string k;
  k.reserve(2 + client_id.size() + 8);
  appendU16(k, static_cast<uint16_t>(client_id.size()));
  k.append(client_id);
  return k;
}

std::string prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xFF) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;
}

std::string session(std::string_view client_id) { return clientPrefix(client_id); }

std::string subscription(std::string_view client_id, std::string_view filter) {
  std::string k = clientPrefix(client_id);
  k.append(filter);
  return k;
}

std::string inflight(std::string_view client_id, uint64_t sequence) {
  std::string k = clientPrefix(client_id);
  appendU64(k, sequence);
  return k;
}

std::string pubrel(std::string_view client_id, uint16_t packet_id) {
  std::string k = clientPrefix(client_id);
  appendU16(k, packet_id);
  return k;
}

std::string queue(std::string_view client_id, uint64_t sequence) {
  std::string k = clientPrefix(client_id);
  appendU64(k, sequence);
  return k;
}

std::string nodeQueue(uint32_t node, uint64_t sequence) {
  std::string k;
  k.reserve(12);
  appendU16(k, static_cast<uint16_t>(node >> 16));
  appendU16(k, static_cast<uint16_t>(node & 0xFFFF));
  appendU64(k, sequence);
  return k;
}

std::string message(uint64_t message_id) {
  std::string k;
  k.reserve(8);
  appendU64(k, message_id);
  return k;
}

std::string retained(std::string_view topic) { return std::string(topic); }

bool splitClientKey(std::string_view key, std::string_view* client_id, std::string_view* rest) {
  if (key.size() < 2) return false;
  size_t n = readU16(key);
  if (key.size() < 2 + n) return false;
  *client_id = key.substr(2, n);
  *rest = key.substr(2 + n);
  return true;
}

}  // namespace gannet::storage::keys
