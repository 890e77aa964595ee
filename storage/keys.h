#pragma once
// The key layout of the durable state, independent of the storage engine (any
// ordered key-value store with range deletes can use it). See docs/storage.md.
//
//   session       C                      C = u16 BE length + client id bytes
//   subscription  C + filter bytes
//   inflight      C + u64 BE send sequence (the record holds the packet id)
//   pubrel        C + u16 BE packet id   (inbound QoS 2 awaiting PUBREL)
//   queue         C + u64 BE sequence
//   message       u64 BE message id
//   retained      topic bytes
//   meta          "meta"
//   node_queue    u32 BE node id + u64 BE sequence
//
// The length prefix makes C prefix-free: no client's C is a prefix of another
// client's C ("ab" = 00 02 'a' 'b', "abc" = 00 03 'a' 'b' 'c'), so the keys of
// one session are exactly the range [C, prefixEnd(C)). Big-endian integers sort
// numerically, so a queue iterates in sequence order.

#include <cstdint>
#include <string>
#include <string_view>

namespace gannet::storage::keys {

// MQTT strings are at most 65535 bytes (§1.5.4), so the length fits in 2 bytes.
constexpr size_t kMaxClientIdBytes = 0xFFFF;

void appendU16(std::string& out, uint16_t v);
void appendU64(std::string& out, uint64_t v);
uint16_t readU16(std::string_view bytes);  // bytes.size() >= 2
uint64_t readU64(std::string_view bytes);  // bytes.size() >= 8

// C: the prefix of every key of `client_id`'s session.
std::string clientPrefix(std::string_view client_id);
// The smallest key greater than every key that starts with `prefix`; empty when
// there is none (the prefix is all 0xFF bytes, which a client prefix never is).
std::string prefixEnd(std::string_view prefix);

std::string session(std::string_view client_id);
std::string subscription(std::string_view client_id, std::string_view filter);
std::string inflight(std::string_view client_id, uint64_t sequence);
std::string pubrel(std::string_view client_id, uint16_t packet_id);
std::string queue(std::string_view client_id, uint64_t sequence);
std::string message(uint64_t message_id);
std::string retained(std::string_view topic);
inline constexpr std::string_view kMeta = "meta";
std::string nodeQueue(uint32_t node, uint64_t sequence);

// Splits a client-prefixed key into client id and the rest. False if malformed.
bool splitClientKey(std::string_view key, std::string_view* client_id, std::string_view* rest);

}  // namespace gannet::storage::keys
