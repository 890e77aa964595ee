#pragma once
// Forwarded messages travel packed: a ForwardBatch (proto/cluster.proto) holds
// them back to back in one bytes field, written by the sending worker straight
// from its message and read by the receiving worker in place — no protobuf
// object, allocation or copy per message on either side. One message:
//
//   u8 flags: bits 0-1 QoS, 2 retain, 3 properties, 4 expiry, 5 ack,
//            6 shared groups (the receiver serves its $share groups too)
//   varint topic length, topic bytes
//   varint payload length, payload bytes
//   [flag 3] varint length, serialised records.MessageProperties
//   [flag 4] varint: ms of message expiry left
//   [flag 5] varint worker, varint token: the sender's ack waits for a
//            ForwardAck of them once the receiver committed the message

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gannet::cluster {

struct ForwardView {
  std::string_view topic;
  std::string_view payload;
  std::string_view properties;  // empty: none
  uint8_t qos = 0;
  bool retain = false;
  int64_t expiry_in_ms = 0;  // 0: none
  uint32_t ack_worker = 0;
  uint64_t ack_token = 0;    // 0: no ack wanted
  // The sender picked a $share member on the receiving node: the receiver
  // delivers to its $share groups too (else to its plain subscriptions only).
  bool shared_groups = false;
};

void appendForward(std::string& out, const ForwardView& m);
// Reads the next message from the front of *in (views into it) and advances
// *in. False when *in is malformed (the rest of it is then unusable).
bool readForward(std::string_view* in, ForwardView* m);

// Messages for one node, packed, with the ack tokens they carry.
struct PackedForwards {
  std::string bytes;
  size_t count = 0;
  std::vector<std::pair<uint32_t, uint64_t>> acks;  // (worker, token)

  void add(const ForwardView& m) {
    appendForward(bytes, m);
    ++count;
    if (m.ack_token != 0) acks.emplace_back(m.ack_worker, m.ack_token);
  }
  bool empty() const { return count == 0; }
};

}  // namespace gannet::cluster
