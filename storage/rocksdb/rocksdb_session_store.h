#pragma once
// The RocksDB implementation of SessionStore. This header and its .cc are the
// only files of Gannet that include <rocksdb/...>: everything else sees
// storage::SessionStore.

#include <memory>

#include "absl/status/statusor.h"
#include "storage/session_store.h"

namespace gannet::storage {

// Opens (creating if missing) the store in options.data_dir. Fails with a clear
// Status, naming the directory and the fix, when the directory is locked by
// another process (FailedPrecondition), not accessible (PermissionDenied), or
// corrupt (DataLoss).
absl::StatusOr<std::unique_ptr<SessionStore>> openRocksDbSessionStore(const StoreOptions& options);

}  // namespace gannet::storage
