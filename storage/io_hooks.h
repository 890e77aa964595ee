#pragma once
// Fault injection and I/O accounting for a store, backend-neutral so that tests
// and benchmarks need no storage-engine headers. Pass one in StoreOptions; a
// store opened without hooks pays nothing for them.
//
// Thread-safe: the storage engine's threads update the counters while a test
// thread flips `fail_writes`.

#include <atomic>
#include <cstdint>

namespace gannet::storage {

struct IoHooks {
  // While true, every file create / append / sync of the store fails with
  // ENOSPC ("No space left on device"): a full disk without a full disk.
  std::atomic<bool> fail_writes{false};

  // Bytes appended to the store's files: all files, and the write-ahead log alone.
  std::atomic<uint64_t> bytes_written{0};
  std::atomic<uint64_t> wal_bytes_written{0};
  // fsync/fdatasync calls on write-ahead log files (one per synced commit group).
  std::atomic<uint64_t> wal_syncs{0};
};

}  // namespace gannet::storage
