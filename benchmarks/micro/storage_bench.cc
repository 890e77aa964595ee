// Commit throughput of the RocksDB session store: batches of N QoS 1 messages
// (64-byte payload, one queue entry each), as one loop iteration of a worker
// would commit them, with --fsync=false and --fsync=true. Reports messages per
// second and bytes written to disk per message (WAL alone, and all files
// including flushes and compactions).
//
//   storage_bench --benchmark_filter=Commit
//
// Runs in a temporary directory under $TMPDIR (default /tmp): point it at the
// disk the data directory will live on.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "storage/rocksdb/rocksdb_session_store.h"

namespace gannet::storage {
namespace {

namespace fs = std::filesystem;

void BM_Commit(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  const bool sync = state.range(1) != 0;
  std::string tmpl = (fs::temp_directory_path() / "gannet-storage-bench-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  StoreOptions options;
  options.data_dir = tmpl;
  options.sync = sync;
  options.io_hooks = std::make_shared<IoHooks>();
  auto store = openRocksDbSessionStore(options);
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  records::MessageRecord message;
  message.set_topic("plant/7/line/3/sensor/42/temperature");
  message.set_payload(std::string(64, 'v'));
  message.set_qos(1);
  message.set_publisher_client_id("sensor-42");
  records::QueueEntryRecord entry;
  entry.set_qos(1);
  entry.set_message_bytes(static_cast<uint32_t>(message.topic().size() + 64));

  const uint64_t wal_before = options.io_hooks->wal_bytes_written.load();
  const uint64_t all_before = options.io_hooks->bytes_written.load();
  uint64_t id = 1;
  for (auto _ : state) {
    WriteSet ws;
    for (int i = 0; i < batch; ++i, ++id) {
      message.set_received_ms(static_cast<int64_t>(id));
      ws.putMessage(id, message);
      entry.set_message_id(id);
      ws.putQueueEntry("subscriber-1", id, entry);
    }
    absl::Status s = (*store)->commit(std::move(ws));
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
  }
  const double messages = static_cast<double>(id - 1);
  state.SetItemsProcessed(static_cast<int64_t>(id - 1));
  // Close first, so that background flushes and compactions are counted too.
  store->reset();
  state.counters["wal_B/msg"] =
      static_cast<double>(options.io_hooks->wal_bytes_written.load() - wal_before) / messages;
  state.counters["disk_B/msg"] =
      static_cast<double>(options.io_hooks->bytes_written.load() - all_before) / messages;
  std::error_code ec;
  fs::remove_all(tmpl, ec);
}

BENCHMARK(BM_Commit)
    ->ArgNames({"batch", "sync"})
    ->ArgsProduct({{1, 16, 128, 1024}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace gannet::storage
