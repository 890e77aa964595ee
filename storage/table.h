#pragma once
// The tables of the durable state (column families in the RocksDB store).

#include <cstdint>
#include <string_view>

namespace gannet::storage {

enum class Table : uint8_t {
  kSession = 0,
  kSubscription,
  kInflight,
  kPubrel,  // inbound QoS 2 packet ids awaiting PUBREL
  kQueue,
  kMessage,
  kRetained,
  kMeta,
  kNodeQueue,  // cluster: messages for a peer whose link is down
  kOwnership,  // cluster: acceptor state of client id owner registers
};
inline constexpr int kTableCount = 10;

// The column family name: "session", "subscription", ...
std::string_view tableName(Table table);

}  // namespace gannet::storage
