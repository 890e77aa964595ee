// Codec throughput on the data path: PUBLISH with a 64-byte payload in 3.1.1 and
// 5.0, PUBACK, and CONNECT. Decoding includes peekFrame(), as a connection does.
//
//   build-rel/benchmarks/micro/codec_bench --benchmark_min_time=1

#include <string>

#include "benchmark/benchmark.h"
#include "broker/codec/decoder.h"
#include "broker/codec/encoder.h"

namespace gannet::codec {
namespace {

PublishPacket samplePublish(ProtocolVersion version) {
  PublishPacket p;
  p.qos = 1;
  p.packet_id = 4242;
  p.topic = "factory/line-3/press-17/temperature";
  p.payload.assign(64, 'x');
  if (version == ProtocolVersion::kV5) {
    p.properties.payload_format_indicator = 0;
    p.properties.message_expiry_interval = 3600;
    p.properties.user_properties = {{"unit", "C"}};
  }
  return p;
}

ConnectPacket sampleConnect(ProtocolVersion version) {
  ConnectPacket c;
  c.version = version;
  c.clean_start = false;
  c.keep_alive = 60;
  c.client_id = "press-17-controller";
  c.username = "line-3";
  c.password = "s3cret-s3cret";
  c.will = Will{.topic = "factory/line-3/press-17/status",
                .payload = "offline",
                .qos = 1,
                .retain = true,
                .properties = {}};
  if (version == ProtocolVersion::kV5) {
    c.properties.session_expiry_interval = 86400;
    c.properties.receive_maximum = 100;
    c.properties.topic_alias_maximum = 16;
    c.will->properties.will_delay_interval = 10;
  }
  return c;
}

std::string encoded(const Packet& p, ProtocolVersion version) {
  std::string out;
  encode(p, version, out);
  return out;
}

void decodeLoop(benchmark::State& state, const std::string& bytes, ProtocolVersion version) {
  for (auto _ : state) {
    auto header = peekFrame(bytes);
    auto packet = decodePacket(**header, bytes, version);
    benchmark::DoNotOptimize(packet);
    if (!packet.ok()) state.SkipWithError("decode failed");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}

void BM_DecodePublish(benchmark::State& state, ProtocolVersion version) {
  decodeLoop(state, encoded(samplePublish(version), version), version);
}

void BM_EncodePublish(benchmark::State& state, ProtocolVersion version) {
  const PublishPacket p = samplePublish(version);
  std::string out;
  out.reserve(256);
  for (auto _ : state) {
    out.clear();  // a connection's output buffer, reused
    encodePublish(p, version, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}

void BM_DecodePubAck(benchmark::State& state, ProtocolVersion version) {
  decodeLoop(state,
             encoded(PubAckPacket{.type = PacketType::kPuback,
                                  .packet_id = 4242,
                                  .reason_code = ReasonCode::kSuccess,
                                  .properties = {}},
                     version),
             version);
}

void BM_EncodePubAck(benchmark::State& state, ProtocolVersion version) {
  const PubAckPacket p{.type = PacketType::kPuback,
                       .packet_id = 4242,
                       .reason_code = ReasonCode::kSuccess,
                       .properties = {}};
  std::string out;
  out.reserve(64);
  for (auto _ : state) {
    out.clear();
    encodePubAck(p, version, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DecodeConnect(benchmark::State& state, ProtocolVersion version) {
  decodeLoop(state, encoded(sampleConnect(version), version), version);
}

void BM_EncodeConnect(benchmark::State& state, ProtocolVersion version) {
  const Packet p = sampleConnect(version);
  std::string out;
  out.reserve(256);
  for (auto _ : state) {
    out.clear();
    encode(p, version, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK_CAPTURE(BM_DecodePublish, v311, ProtocolVersion::kV311);
BENCHMARK_CAPTURE(BM_DecodePublish, v5, ProtocolVersion::kV5);
BENCHMARK_CAPTURE(BM_EncodePublish, v311, ProtocolVersion::kV311);
BENCHMARK_CAPTURE(BM_EncodePublish, v5, ProtocolVersion::kV5);
BENCHMARK_CAPTURE(BM_DecodePubAck, v311, ProtocolVersion::kV311);
BENCHMARK_CAPTURE(BM_DecodePubAck, v5, ProtocolVersion::kV5);
BENCHMARK_CAPTURE(BM_EncodePubAck, v311, ProtocolVersion::kV311);
BENCHMARK_CAPTURE(BM_EncodePubAck, v5, ProtocolVersion::kV5);
BENCHMARK_CAPTURE(BM_DecodeConnect, v311, ProtocolVersion::kV311);
BENCHMARK_CAPTURE(BM_DecodeConnect, v5, ProtocolVersion::kV5);
BENCHMARK_CAPTURE(BM_EncodeConnect, v311, ProtocolVersion::kV311);
BENCHMARK_CAPTURE(BM_EncodeConnect, v5, ProtocolVersion::kV5);

}  // namespace
}  // namespace gannet::codec
