#include "storage/rocksdb/rocksdb_session_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>
#include <rocksdb/write_batch.h>

#include <array>
#include <atomic>
#include <functional>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/logging.h"
#include "base/status_macros.h"
#include "base/strings.h"
#include "storage/keys.h"

namespace gannet::storage {
namespace {

namespace fs = std::filesystem;

rocksdb::Slice slice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view view(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

spdlog::logger& storageLog() { return base::logger("storage"); }

// RocksDB's own diagnostics go to gannet's log (logger "rocksdb") instead of a
// LOG file in the data directory: one place to look, and nothing for RocksDB to
// write (and fail on) in a directory whose disk is full. Its INFO chatter (every
// flush and compaction) is logged at debug.
class SpdlogRocksDbLogger : public rocksdb::Logger {
 public:
  SpdlogRocksDbLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::DEBUG_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    spdlog::level::level_enum lvl = spdlog::level::debug;
    if (level == rocksdb::InfoLogLevel::WARN_LEVEL) lvl = spdlog::level::warn;
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL && level != rocksdb::InfoLogLevel::HEADER_LEVEL) {
      lvl = spdlog::level::err;
    }
    spdlog::logger& log = base::logger("rocksdb");
    if (!log.should_log(lvl)) return;
    char buf[1024];
    int n = vsnprintf(buf, sizeof(buf), format, ap);
    if (n < 0) return;
    std::string_view text(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    log.log(lvl, "{}", text);
  }
};

int64_t systemWallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Field 1 of MessageRecord and QueueEntryRecord is `fixed64 expiry_ms`, and C++
// protobuf writes fields in number order: a record with an expiry starts with
// tag 0x09 ((1 << 3) | wire type 1) and 8 little-endian bytes; a record without
// one (0 is not serialised in proto3) starts with another tag. Reading it here
// keeps the compaction filter from parsing (and copying) every payload.
uint64_t expiryOf(std::string_view value) {
  if (value.size() < 9 || static_cast<uint8_t>(value[0]) != 0x09) return 0;
  uint64_t v = 0;
  for (int i = 8; i >= 1; --i) v = (v << 8) | static_cast<uint8_t>(value[static_cast<size_t>(i)]);
  return v;
}

bool expired(uint64_t expiry_ms, int64_t now_ms) {
  return expiry_ms != 0 && static_cast<int64_t>(expiry_ms) <= now_ms;
}

// Drops expired messages from the message table during compaction. The queue
// entries that referenced them stay until they are read (readQueue reports them
// as kExpired, from their own copy of the expiry) or their session is deleted:
// filtering queue entries too would silently change the queue counts and the
// message refcounts the broker holds.
class ExpiredMessageFilter final : public rocksdb::CompactionFilter {
 public:
  explicit ExpiredMessageFilter(std::function<int64_t()> clock) : clock_(std::move(clock)) {}
  bool Filter(int /*level*/, const rocksdb::Slice& /*key*/, const rocksdb::Slice& value,
              std::string* /*new_value*/, bool* /*value_changed*/) const override {
    return expired(expiryOf(view(value)), clock_());
  }
  const char* Name() const override { return "gannet.ExpiredMessageFilter"; }

 private:
  std::function<int64_t()> clock_;
};

// --- IoHooks: a FileSystem wrapper that counts writes and can fail them ---

rocksdb::IOStatus injectedNoSpace() {
  return rocksdb::IOStatus::NoSpace("injected by IoHooks", "No space left on device");
}

class HookedWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  HookedWritableFile(std::unique_ptr<rocksdb::FSWritableFile> file, IoHooks* hooks, bool wal)
      : FSWritableFileOwnerWrapper(std::move(file)), hooks_(hooks), wal_(wal) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    count(data.size());
    return target()->Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    count(data.size());
    return target()->Append(data, options, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    count(data.size());
    return target()->PositionedAppend(data, offset, options, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& options,
                                     const rocksdb::DataVerificationInfo& info,
                                     rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    count(data.size());
    return target()->PositionedAppend(data, offset, options, info, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    if (wal_) hooks_->wal_syncs.fetch_add(1, std::memory_order_relaxed);
    return target()->Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    if (wal_) hooks_->wal_syncs.fetch_add(1, std::memory_order_relaxed);
    return target()->Fsync(options, dbg);
  }

 private:
  void count(size_t n) {
    hooks_->bytes_written.fetch_add(n, std::memory_order_relaxed);
    if (wal_) hooks_->wal_bytes_written.fetch_add(n, std::memory_order_relaxed);
  }
  IoHooks* hooks_;
  bool wal_;
};

class HookedFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit HookedFileSystem(std::shared_ptr<IoHooks> hooks)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), hooks_(std::move(hooks)) {}
  const char* Name() const override { return "gannet.HookedFileSystem"; }

  // A "full" disk has no free space, so RocksDB's recovery waits for it.
  rocksdb::IOStatus GetFreeSpace(const std::string& path, const rocksdb::IOOptions& options,
                                 uint64_t* free, rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) {
      *free = 0;
      return rocksdb::IOStatus::OK();
    }
    return target()->GetFreeSpace(path, options, free, dbg);
  }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    return wrap(name, target()->NewWritableFile(name, options, result, dbg), result);
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& name,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    return wrap(name, target()->ReopenWritableFile(name, options, result, dbg), result);
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& name, const std::string& old_name,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override {
    if (hooks_->fail_writes.load()) return injectedNoSpace();
    return wrap(name, target()->ReuseWritableFile(name, old_name, options, result, dbg), result);
  }

 private:
  rocksdb::IOStatus wrap(const std::string& name, rocksdb::IOStatus s,
                         std::unique_ptr<rocksdb::FSWritableFile>* result) {
    if (!s.ok()) return s;
    // Write-ahead log files are NNNNNN.log (the info log is "LOG").
    bool wal = name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0;
    *result = std::make_unique<HookedWritableFile>(std::move(*result), hooks_.get(), wal);
    return s;
  }
  std::shared_ptr<IoHooks> hooks_;
};

// --- errors ---

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// A failed data-path operation. Reason codes follow from the code: the broker
// maps ResourceExhausted to MQTT 5 0x97 (quota exceeded).
absl::Status toStatus(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat("storage: ", base::toAbsl(what), ": ", s.ToString());
  if (s.IsNoSpace()) {
    return absl::ResourceExhaustedError(
        absl::StrCat(msg, " (disk full: free space on the data directory's filesystem)"));
  }
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut() || s.IsTryAgain() || s.IsAborted()) {
    return absl::UnavailableError(msg);
  }
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  return absl::InternalError(msg);
}

// A failed open, explained for the operator: what is wrong with which
// directory, and what to do.
absl::Status openError(const rocksdb::Status& s, const std::string& dir) {
  const std::string what = s.ToString();
  if (contains(what, "lock")) {
    // "While lock file: DIR/LOCK: Resource temporarily unavailable" (another
    // process), or "lock hold by current process" (this one).
    return absl::FailedPreconditionError(absl::StrCat(
        "data directory ", dir, " is in use by another gannet process (", what,
        "); stop that process, or give this node its own --data_dir"));
  }
  if (contains(what, "Permission denied") || contains(what, "Read-only file system")) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot read and write data directory ", dir, " (", what,
        "); give the user running gannet read, write and execute permission on the "
        "directory and read/write on its files, e.g. chown -R <user> ",
        dir));
  }
  if (s.IsCorruption() || s.IsNotFound() || contains(what, "MANIFEST") ||
      contains(what, "CURRENT") || contains(what, ".sst")) {
    return absl::DataLossError(absl::StrCat(
        "data directory ", dir, " is corrupt (", what,
        "); restore it from a backup, or move it aside to start with an empty store "
        "(its sessions, queued and retained messages are then lost)"));
  }
  return absl::UnavailableError(absl::StrCat("cannot open data directory ", dir, ": ", what));
}

absl::Status corruptRecord(Table table, std::string_view key) {
  return absl::DataLossError(absl::StrCat("storage: unreadable ", base::toAbsl(tableName(table)),
                                          " record (key of ", key.size(),
                                          " bytes): the store is corrupt or was written by an "
                                          "incompatible gannet version"));
}

constexpr std::array<Table, kTableCount> kTables = {
    Table::kSession, Table::kSubscription, Table::kInflight, Table::kPubrel,
    Table::kQueue,   Table::kMessage,      Table::kRetained, Table::kMeta,
    Table::kNodeQueue, Table::kOwnership};

// --- the store ---

class RocksDbSessionStore final : public SessionStore {
 public:
  explicit RocksDbSessionStore(StoreOptions options) : options_(std::move(options)) {
    if (!options_.wall_clock_ms) options_.wall_clock_ms = systemWallClockMs;
    write_options_.sync = options_.sync;
  }

  ~RocksDbSessionStore() override {
    if (db_ == nullptr) return;
    for (auto* h : handles_) {
      if (h != nullptr) db_->DestroyColumnFamilyHandle(h);
    }
    for (auto* h : other_handles_) db_->DestroyColumnFamilyHandle(h);
    rocksdb::Status s = db_->Close();
    if (!s.ok()) storageLog().warn("closing {}: {}", options_.data_dir, s.ToString());
  }

  absl::Status open();

  absl::Status commit(WriteSet&& batch) override;
  absl::StatusOr<LoadStats> load(LoadVisitor& visitor) override;
  absl::StatusOr<std::vector<std::pair<uint64_t, records::MessageRecord>>> readNodeQueue(
      uint32_t node, uint64_t from_sequence, size_t max_entries) override;
  absl::StatusOr<std::vector<QueuedMessage>> readQueue(std::string_view client_id,
                                                       uint64_t from_sequence,
                                                       size_t max_entries) override;
  uint64_t approximateDiskBytes() override;
  absl::StatusOr<uint64_t> countKeys(Table table) override;
  absl::StatusOr<bool> hasSession(std::string_view client_id) override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(Table::kSession),
                                 slice(keys::session(client_id)), &value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return absl::UnavailableError(s.ToString());
    return true;
  }
  absl::Status compact() override;

 private:
  rocksdb::ColumnFamilyHandle* cf(Table t) const { return handles_[static_cast<size_t>(t)]; }
  rocksdb::ColumnFamilyOptions tableOptions(Table t) const;
  absl::Status checkDirectory() const;
  absl::Status initMeta();
  absl::Status recover();
  // Calls `fn` for every record of `table` in key order.
  absl::Status scan(Table table,
                    const std::function<absl::Status(std::string_view, std::string_view)>& fn);

  StoreOptions options_;
  std::unique_ptr<rocksdb::Env> env_;  // only with io_hooks
  std::unique_ptr<ExpiredMessageFilter> message_filter_;
  std::shared_ptr<rocksdb::Cache> block_cache_;
  std::unique_ptr<rocksdb::DB> db_;
  std::array<rocksdb::ColumnFamilyHandle*, kTableCount> handles_{};
  std::vector<rocksdb::ColumnFamilyHandle*> other_handles_;  // unknown CFs, kept open
  rocksdb::WriteOptions write_options_;

  // Set by a failed write: the next commit calls DB::Resume() first.
  std::atomic<bool> needs_recovery_{false};
  std::atomic<int> last_failure_code_{static_cast<int>(absl::StatusCode::kUnavailable)};
  std::mutex recovery_mutex_;
};

rocksdb::ColumnFamilyOptions RocksDbSessionStore::tableOptions(Table t) const {
  rocksdb::ColumnFamilyOptions o;
  // Level compaction with dynamic level sizes: the least space amplification,
  // and range tombstones (delivered queue runs, deleted sessions) are dropped
  // together with the keys they cover as soon as compaction reaches them.
  o.compaction_style = rocksdb::kCompactionStyleLevel;
  o.level_compaction_dynamic_level_bytes = true;
  o.compression = rocksdb::kLZ4Compression;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = block_cache_;
  // Point lookups (message joins, inflight/session gets) skip files by bloom.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  switch (t) {
    case Table::kQueue:
    case Table::kMessage:
    case Table::kNodeQueue:
      // The log-like tables: most records are deleted soon after they are
      // written, ideally while still in the memtable.
      o.write_buffer_size = 16 << 20;
      o.max_write_buffer_number = 4;
      break;
    case Table::kInflight:
    case Table::kPubrel:
      o.write_buffer_size = 8 << 20;
      o.max_write_buffer_number = 3;
      break;
    default:
      o.write_buffer_size = 4 << 20;
      o.max_write_buffer_number = 2;
      break;
  }
  if (t == Table::kQueue) {
    // Files dense with point deletes (single delivered entries) are compacted
    // early so that queue scans do not wade through tombstones.
    o.table_properties_collector_factories.emplace_back(
        rocksdb::NewCompactOnDeletionCollectorFactory(128, 64, 0.5));
  }
  if (t == Table::kMessage) {
    o.compaction_filter = message_filter_.get();
    // Expired messages in cold files still go within a day.
    o.periodic_compaction_seconds = 24 * 3600;
  }
  return o;
}

absl::Status RocksDbSessionStore::checkDirectory() const {
  const std::string& dir = options_.data_dir;
  std::error_code ec;
  fs::file_status st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot access data directory ", dir, ": ", ec.message(),
                     "; check the permissions of it and of its parent directories"));
  }
  if (fs::exists(st) && !fs::is_directory(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data directory ", dir, " exists but is not a directory; remove it or "
                     "point --data_dir elsewhere"));
  }
  if (!fs::exists(st)) {
    fs::create_directories(dir, ec);
    if (ec) {
      return absl::PermissionDeniedError(absl::StrCat("cannot create data directory ", dir, ": ",
                                                      ec.message(),
                                                      "; create it, or fix the permissions of its "
                                                      "parent directory"));
    }
    return absl::OkStatus();
  }
  // A store whose CURRENT file is gone would be silently re-created empty by
  // RocksDB next to its old files: refuse instead.
  if (!fs::exists(fs::path(dir) / "CURRENT", ec)) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::string name = entry.path().filename().string();
      if (name.rfind("MANIFEST-", 0) == 0 || name.ends_with(".sst")) {
        return absl::DataLossError(absl::StrCat(
            "data directory ", dir, " is corrupt (it holds store files but no CURRENT file); "
            "restore it from a backup, or move it aside to start with an empty store (its "
            "sessions, queued and retained messages are then lost)"));
      }
    }
    if (ec) {
      return absl::PermissionDeniedError(absl::StrCat("cannot list data directory ", dir, ": ",
                                                      ec.message(),
                                                      "; give the user running gannet read, "
                                                      "write and execute permission on it"));
    }
  }
  return absl::OkStatus();
}

absl::Status RocksDbSessionStore::open() {
  const std::string& dir = options_.data_dir;
  RETURN_IF_ERROR(checkDirectory());

  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.paranoid_checks = true;
  // kill -9 can tear the last WAL record only when it was not fully written to
  // the OS, i.e. never acknowledged: recover everything before it.
  db.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // Several column families share one WAL; a rarely written one would pin old
  // WAL files forever without this cap (it forces their flush).
  db.max_total_wal_size = 64 << 20;
  db.db_write_buffer_size = 128 << 20;  // all memtables together
  // Writers from several workers: WAL writes and memtable inserts overlap, and
  // concurrent commits are grouped into one WAL write (and one fsync).
  db.enable_pipelined_write = true;
  db.allow_concurrent_memtable_write = false;
  db.max_background_jobs = 2;
  db.bytes_per_sync = 1 << 20;
  db.info_log = std::make_shared<SpdlogRocksDbLogger>();
  if (options_.io_hooks) {
    env_ = rocksdb::NewCompositeEnv(std::make_shared<HookedFileSystem>(options_.io_hooks));
    db.env = env_.get();
  }
  // A full disk: RocksDB's SstFileManager (one is always created) starts a
  // background recovery that checks free space every 5 s and resumes writes
  // once there is room; recover() below covers the other write errors.

  message_filter_ = std::make_unique<ExpiredMessageFilter>(options_.wall_clock_ms);
  block_cache_ = rocksdb::NewLRUCache(32 << 20);

  // Open every column family the store has: ours, plus any a newer version
  // added (opened with defaults, left alone) so that RocksDB does not refuse.
  std::vector<std::string> existing;
  if (fs::exists(fs::path(dir) / "CURRENT")) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db, dir, &existing);
    if (!s.ok()) return openError(s, dir);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (Table t : kTables) descriptors.emplace_back(std::string(tableName(t)), tableOptions(t));
  for (const std::string& name : existing) {
    bool known = name == rocksdb::kDefaultColumnFamilyName;
    for (Table t : kTables) known = known || name == tableName(t);
    if (!known) {
      storageLog().warn("{}: unknown column family {} (written by a newer gannet?) left untouched", dir,
                 name);
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
  }

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db, dir, descriptors, &handles, &raw);
  if (!s.ok()) return openError(s, dir);
  db_.reset(raw);
  // handles[0] is the default family (unused), then ours in kTables order.
  other_handles_.push_back(handles[0]);
  for (size_t i = 0; i < kTables.size(); ++i) handles_[i] = handles[i + 1];
  for (size_t i = 1 + kTables.size(); i < handles.size(); ++i) other_handles_.push_back(handles[i]);
  return initMeta();
}

absl::Status RocksDbSessionStore::initMeta() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(Table::kMeta), slice(keys::kMeta), &value);
  if (s.ok()) {
    records::MetaRecord meta;
    if (!meta.ParseFromString(value)) return corruptRecord(Table::kMeta, keys::kMeta);
    if (meta.format_version() > kFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", options_.data_dir, " was written in storage format ",
          meta.format_version(), " by a newer gannet; this one reads format ", kFormatVersion,
          ": run the newer version"));
    }
    return absl::OkStatus();
  }
  if (!s.IsNotFound()) return openError(s, options_.data_dir);
  records::MetaRecord meta;
  meta.set_format_version(kFormatVersion);
  meta.set_created_ms(options_.wall_clock_ms());
  meta.set_next_message_id(1);
  WriteSet ws;
  ws.putMeta(meta);
  return commit(std::move(ws));
}

absl::Status RocksDbSessionStore::recover() {
  std::lock_guard<std::mutex> lock(recovery_mutex_);
  if (!needs_recovery_.load()) return absl::OkStatus();
  // After a failed WAL write RocksDB stops accepting writes (a "hard" background
  // error). Resume() clears it once the cause is gone: it flushes the memtables
  // and starts a new WAL, so nothing of the failed batch is half-applied.
  rocksdb::Status s = db_->Resume();
  if (s.IsBusy()) {
    // RocksDB's own recovery is running (a full disk: it re-checks free space
    // every 5 s). Same code as the failure that started it.
    return absl::Status(static_cast<absl::StatusCode>(last_failure_code_.load()),
                        absl::StrCat("storage: ", options_.data_dir,
                                     " is recovering from a write error (disk full?); commits "
                                     "fail until it has free space again"));
  }
  if (!s.ok()) {
    return toStatus(s, absl::StrCat("store ", options_.data_dir,
                                    " cannot accept writes after an earlier write error"));
  }
  needs_recovery_.store(false);
  storageLog().info("{}: store resumed after a write error", options_.data_dir);
  return absl::OkStatus();
}

absl::Status RocksDbSessionStore::commit(WriteSet&& batch) {
  if (batch.empty()) return absl::OkStatus();
  if (needs_recovery_.load(std::memory_order_acquire)) RETURN_IF_ERROR(recover());

  rocksdb::WriteBatch wb(batch.byteSize() + 16 * batch.operationCount());
  size_t pos = 0;
  WriteSet::Op op;
  while (batch.next(&pos, &op)) {
    rocksdb::ColumnFamilyHandle* h = cf(op.table);
    rocksdb::Status s;
    switch (op.kind) {
      case WriteSet::OpKind::kPut: s = wb.Put(h, slice(op.key), slice(op.value)); break;
      case WriteSet::OpKind::kDelete: s = wb.Delete(h, slice(op.key)); break;
      case WriteSet::OpKind::kDeleteRange:
        s = wb.DeleteRange(h, slice(op.key), slice(op.value));
        break;
    }
    if (!s.ok()) return toStatus(s, "building a write batch");
  }
  rocksdb::Status s = db_->Write(write_options_, &wb);
  if (!s.ok()) {
    absl::Status status = toStatus(s, "commit");
    last_failure_code_.store(static_cast<int>(status.code()));
    needs_recovery_.store(true, std::memory_order_release);
    return status;
  }
  return absl::OkStatus();
}

absl::Status RocksDbSessionStore::scan(
    Table table, const std::function<absl::Status(std::string_view, std::string_view)>& fn) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a one-time full scan: do not evict the hot set
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(table)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    RETURN_IF_ERROR(fn(view(it->key()), view(it->value())));
  }
  return toStatus(it->status(), absl::StrCat("reading ", base::toAbsl(tableName(table))));
}

absl::StatusOr<LoadStats> RocksDbSessionStore::load(LoadVisitor& visitor) {
  LoadStats stats;
  const int64_t now = options_.wall_clock_ms();
  // message id -> unexpired references from queues and inflight windows.
  absl::flat_hash_map<uint64_t, uint32_t> references;

  {
    std::string value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), cf(Table::kMeta), slice(keys::kMeta), &value);
    if (!s.ok()) return toStatus(s, "reading meta");
    records::MetaRecord meta;
    if (!meta.ParseFromString(value)) return corruptRecord(Table::kMeta, keys::kMeta);
    visitor.onMeta(std::move(meta));
  }

  RETURN_IF_ERROR(scan(Table::kSession, [&](std::string_view key, std::string_view value) {
    records::SessionRecord r;
    if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return corruptRecord(Table::kSession, key);
    }
    ++stats.sessions;
    visitor.onSession(std::move(r));
    return absl::OkStatus();
  }));

  RETURN_IF_ERROR(scan(Table::kSubscription, [&](std::string_view key, std::string_view value) {
    std::string_view client, filter;
    records::SubscriptionRecord r;
    if (!keys::splitClientKey(key, &client, &filter) ||
        !r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return corruptRecord(Table::kSubscription, key);
    }
    ++stats.subscriptions;
    visitor.onSubscription(client, filter, std::move(r));
    return absl::OkStatus();
  }));

  RETURN_IF_ERROR(scan(Table::kInflight, [&](std::string_view key, std::string_view value) {
    std::string_view client, rest;
    records::InflightRecord r;
    if (!keys::splitClientKey(key, &client, &rest) || rest.size() != 8 ||
        !r.ParseFromArray(value.data(), static_cast<int>(value.size())) || r.packet_id() == 0 ||
        r.packet_id() > 0xFFFF) {
      return corruptRecord(Table::kInflight, key);
    }
    ++stats.inflight;
    const uint16_t packet_id = static_cast<uint16_t>(r.packet_id());
    if (r.body_case() == records::InflightRecord::kMessage) {
      records::MessageRecord m = r.message();
      visitor.onInflight(client, packet_id, std::move(r), &m);
      return absl::OkStatus();
    }
    if (r.body_case() != records::InflightRecord::kMessageId) {
      // A PUBREC'd QoS 2 message needs only its packet id.
      visitor.onInflight(client, packet_id, std::move(r), nullptr);
      return absl::OkStatus();
    }
    ++references[r.message_id()];
    std::string bytes;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf(Table::kMessage),
                                 slice(keys::message(r.message_id())), &bytes);
    if (s.IsNotFound()) {
      visitor.onInflight(client, packet_id, std::move(r), nullptr);
      return absl::OkStatus();
    }
    if (!s.ok()) return toStatus(s, "reading an inflight message");
    records::MessageRecord m;
    if (!m.ParseFromString(bytes)) return corruptRecord(Table::kMessage, keys::message(r.message_id()));
    visitor.onInflight(client, packet_id, std::move(r), &m);
    return absl::OkStatus();
  }));

  RETURN_IF_ERROR(scan(Table::kPubrel, [&](std::string_view key, std::string_view) {
    std::string_view client, rest;
    if (!keys::splitClientKey(key, &client, &rest) || rest.size() != 2) {
      return corruptRecord(Table::kPubrel, key);
    }
    ++stats.awaiting_pubrel;
    visitor.onAwaitingPubrel(client, keys::readU16(rest));
    return absl::OkStatus();
  }));

  RETURN_IF_ERROR(scan(Table::kRetained, [&](std::string_view key, std::string_view value) {
    records::MessageRecord r;
    if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return corruptRecord(Table::kRetained, key);
    }
    ++stats.retained;
    visitor.onRetained(key, std::move(r));
    return absl::OkStatus();
  }));

  RETURN_IF_ERROR(scan(Table::kOwnership, [&](std::string_view key, std::string_view value) {
    records::OwnershipRecord r;
    if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return corruptRecord(Table::kOwnership, key);
    }
    visitor.onOwnership(key, std::move(r));
    return absl::OkStatus();
  }));

  // Queues: one summary per client (entries of a client are consecutive).
  std::string current_client;
  QueueSummary summary;
  auto emit = [&] {
    if (summary.count > 0) visitor.onQueue(current_client, summary);
    summary = QueueSummary();
  };
  RETURN_IF_ERROR(scan(Table::kQueue, [&](std::string_view key, std::string_view value) {
    std::string_view client, rest;
    records::QueueEntryRecord r;
    if (!keys::splitClientKey(key, &client, &rest) || rest.size() != 8 ||
        !r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return corruptRecord(Table::kQueue, key);
    }
    if (client != current_client) {
      emit();
      current_client.assign(client);
    }
    uint64_t sequence = keys::readU64(rest);
    if (summary.count == 0) summary.first_sequence = sequence;
    summary.last_sequence = sequence;
    ++summary.count;
    summary.bytes += r.message_bytes();
    ++stats.queue_entries;
    if (!expired(r.expiry_ms(), now) && !r.has_message()) ++references[r.message_id()];
    return absl::OkStatus();
  }));
  emit();

  // Messages: report refcounts; delete the ones nothing references.
  WriteSet orphans;
  RETURN_IF_ERROR(scan(Table::kMessage, [&](std::string_view key, std::string_view) {
    if (key.size() != 8) return corruptRecord(Table::kMessage, key);
    uint64_t id = keys::readU64(key);
    ++stats.messages;
    auto it = references.find(id);
    if (it == references.end()) {
      orphans.deleteMessage(id);
      ++stats.orphan_messages_deleted;
      return absl::OkStatus();
    }
    visitor.onMessageReferences(id, it->second);
    references.erase(it);
    return absl::OkStatus();
  }));
  for (const auto& [id, refs] : references) stats.dangling_references += refs;
  if (stats.orphan_messages_deleted > 0 || stats.dangling_references > 0) {
    storageLog().warn("{}: deleted {} unreferenced messages; {} references to missing messages",
               options_.data_dir, stats.orphan_messages_deleted, stats.dangling_references);
  }
  RETURN_IF_ERROR(commit(std::move(orphans)));
  return stats;
}

absl::StatusOr<std::vector<std::pair<uint64_t, records::MessageRecord>>>
RocksDbSessionStore::readNodeQueue(uint32_t node, uint64_t from_sequence, size_t max_entries) {
  std::vector<std::pair<uint64_t, records::MessageRecord>> out;
  const std::string end = keys::nodeQueue(node + 1, 0);
  rocksdb::Slice upper = slice(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(Table::kNodeQueue)));
  for (it->Seek(slice(keys::nodeQueue(node, from_sequence))); it->Valid() && out.size() < max_entries;
       it->Next()) {
    std::string_view key = view(it->key());
    std::string_view value = view(it->value());
    records::MessageRecord m;
    if (key.size() != 12 || !m.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return corruptRecord(Table::kNodeQueue, key);
    }
    out.emplace_back(keys::readU64(key.substr(4)), std::move(m));
  }
  RETURN_IF_ERROR(toStatus(it->status(), "reading a node queue"));
  return out;
}

absl::StatusOr<std::vector<QueuedMessage>> RocksDbSessionStore::readQueue(
    std::string_view client_id, uint64_t from_sequence, size_t max_entries) {
  std::vector<QueuedMessage> out;
  if (max_entries == 0) return out;
  const int64_t now = options_.wall_clock_ms();
  const std::string prefix = keys::clientPrefix(client_id);
  const std::string end = keys::prefixEnd(prefix);
  rocksdb::Slice upper = slice(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf(Table::kQueue)));
  // Delivered runs are range-deleted below `from_sequence`: seeking past them
  // never visits their tombstoned keys.
  for (it->Seek(slice(keys::queue(client_id, from_sequence))); it->Valid() && out.size() < max_entries;
       it->Next()) {
    std::string_view key = view(it->key());
    std::string_view value = view(it->value());
    QueuedMessage q;
    if (key.size() != prefix.size() + 8 ||
        !q.entry.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return corruptRecord(Table::kQueue, key);
    }
    q.sequence = keys::readU64(key.substr(prefix.size()));
    if (expired(q.entry.expiry_ms(), now)) {
      q.state = QueuedMessage::State::kExpired;
    } else if (q.entry.has_message()) {  // embedded: no join needed
      q.message = std::move(*q.entry.mutable_message());
      q.entry.clear_message();
      q.embedded = true;
    }
    out.push_back(std::move(q));
  }
  RETURN_IF_ERROR(toStatus(it->status(), "reading a queue"));

  // Join with the message table in one MultiGet.
  std::vector<size_t> wanted;
  std::vector<std::string> message_keys;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].state != QueuedMessage::State::kOk || out[i].embedded) continue;
    wanted.push_back(i);
    message_keys.push_back(keys::message(out[i].entry.message_id()));
  }
  if (wanted.empty()) return out;
  std::vector<rocksdb::Slice> key_slices;
  key_slices.reserve(message_keys.size());
  for (const auto& k : message_keys) key_slices.push_back(slice(k));
  std::vector<rocksdb::PinnableSlice> values(wanted.size());
  std::vector<rocksdb::Status> statuses(wanted.size());
  db_->MultiGet(rocksdb::ReadOptions(), cf(Table::kMessage), wanted.size(), key_slices.data(),
                values.data(), statuses.data());
  for (size_t j = 0; j < wanted.size(); ++j) {
    QueuedMessage& q = out[wanted[j]];
    if (statuses[j].IsNotFound()) {
      q.state = QueuedMessage::State::kMissing;
      continue;
    }
    if (!statuses[j].ok()) return toStatus(statuses[j], "reading a queued message");
    if (!q.message.ParseFromArray(values[j].data(), static_cast<int>(values[j].size()))) {
      return corruptRecord(Table::kMessage, message_keys[j]);
    }
  }
  return out;
}

uint64_t RocksDbSessionStore::approximateDiskBytes() {
  // Everything in the directory: SSTs, WALs, MANIFEST, info logs.
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.data_dir, ec)) {
    std::error_code size_ec;
    if (entry.is_regular_file(size_ec)) {
      uintmax_t n = entry.file_size(size_ec);
      if (!size_ec) total += n;
    }
  }
  return total;
}

absl::StatusOr<uint64_t> RocksDbSessionStore::countKeys(Table table) {
  uint64_t n = 0;
  RETURN_IF_ERROR(scan(table, [&](std::string_view, std::string_view) {
    ++n;
    return absl::OkStatus();
  }));
  return n;
}

absl::Status RocksDbSessionStore::compact() {
  std::vector<rocksdb::ColumnFamilyHandle*> all(handles_.begin(), handles_.end());
  RETURN_IF_ERROR(toStatus(db_->Flush(rocksdb::FlushOptions(), all), "flush"));
  rocksdb::CompactRangeOptions co;
  // Rewrite the last level too, so that the expiry filter sees every message.
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto* h : all) {
    RETURN_IF_ERROR(toStatus(db_->CompactRange(co, h, nullptr, nullptr), "compaction"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SessionStore>> openRocksDbSessionStore(const StoreOptions& options) {
  auto store = std::make_unique<RocksDbSessionStore>(options);
  RETURN_IF_ERROR(store->open());
  return std::unique_ptr<SessionStore>(std::move(store));
}

}  // namespace gannet::storage
