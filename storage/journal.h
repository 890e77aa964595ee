#pragma once
// Journal: one worker's append-only log of outbound inflight records, the hot
// part of the durable QoS >= 1 path (docs/storage.md, "The inflight journal").
//
// A message sent to a persistent session lives on disk from the moment it is
// sent until the client acknowledges it, usually a few milliseconds. Writing
// that as RocksDB keys costs a memtable insert, a software CRC over the WAL, a
// delete and a flush per message; the journal costs an append to a buffer and,
// per loop iteration, one write() (plus fdatasync with --fsync=true) of one
// checksummed frame. What stays longer than about two segments is moved to the
// RocksDB store by the owner (evictBefore()), so the journal stays small; at
// startup recoverJournal() reads what is left, the node writes it into the
// store and removes the files.
//
// Files: DIR/w<writer>-<segment, 10 digits>.journal. A segment starts with an
// 8-byte magic; then frames: [u32 LE payload length][u32 LE CRC-32C of the
// payload][payload = operations]. Operations name sessions by the node's
// session id (unique in one run): Define(session, client id) precedes a
// session's first Put in each segment, so every segment reads on its own.
//
// Owner and threads: one Journal per worker, used only on that worker's thread,
// except diskBytes() (any thread). Lifecycle: open() after recoverJournal() and
// removeJournalFiles() at startup; destroyed at shutdown (files stay).

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/io_hooks.h"

namespace gannet::storage {

struct JournalOptions {
  std::string dir;  // created if missing
  uint32_t writer = 0;  // the worker index, part of the file names
  // A segment is closed and a new one started once it holds this many bytes.
  uint64_t segment_bytes = uint64_t{64} << 20;
  // --fsync=true: fdatasync after every frame (and the directory after a new file).
  bool sync = false;
  std::shared_ptr<IoHooks> io_hooks;  // fault injection and byte counts; may be null
};

class Journal {
 public:
  static absl::StatusOr<std::unique_ptr<Journal>> open(JournalOptions options);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // --- operations, buffered until commit() ---
  // The inflight entry `sequence` of the session (its serialised InflightRecord,
  // replacing any earlier one). Returns the segment it goes to: pass it to
  // release() when the entry is done, dropped or moved elsewhere.
  uint32_t put(uint64_t session_id, std::string_view client_id, uint64_t sequence,
               std::string_view record);
  // Entries from <= sequence < to of the session are done (delivered).
  void done(uint64_t session_id, uint64_t from, uint64_t to);
  // Every entry of the session written so far is void (the session ended or
  // stopped being persistent).
  void drop(uint64_t session_id);
  // One entry put in `segment` is no longer live (done, dropped or moved).
  void release(uint32_t segment);

  bool pending() const { return pending_.size() > kFrameHeader; }

  // Writes the buffered operations as one frame: all or nothing. Afterwards the
  // buffer is empty either way. ResourceExhausted when the disk is full,
  // Unavailable for other I/O errors. Starts a new segment when this one is full.
  absl::Status commit();

  // The newest segment whose live entries should move out (to the store): live
  // segments older than the one before the current. 0 = none.
  uint32_t evictBefore() const;
  // Every live entry of segments <= `segment` has moved elsewhere (the owner
  // moved all it holds): they count as empty, whatever release() said.
  void releaseThrough(uint32_t segment);
  // Deletes the files of older segments that hold no live entry. Call only after
  // the operations that released them are committed (and moved entries stored).
  void collect();

  uint32_t activeSegment() const { return active_; }
  size_t segmentCount() const { return segments_.size(); }
  // Bytes of this journal's files on disk (any thread).
  uint64_t diskBytes() const { return disk_bytes_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kFrameHeader = 8;
  struct Segment {
    uint64_t live = 0;    // entries put here and not released
    uint64_t bytes = 0;   // file size
    bool file = false;    // created on disk
  };
  explicit Journal(JournalOptions options);
  std::string path(uint32_t segment) const;
  absl::Status createActive();
  void resetPending();

  JournalOptions options_;
  uint32_t active_ = 1;
  std::map<uint32_t, Segment> segments_;
  int fd_ = -1;  // the active segment's file, once created
  std::string pending_;  // [8 header bytes reserved][operations]
  absl::flat_hash_set<uint64_t> defined_;  // sessions with a Define in the active segment
  uint64_t last_defined_ = 0;  // fast path: the previous put's session
  std::atomic<uint64_t> disk_bytes_{0};
};

// What recoverJournal() found of one live inflight entry.
struct RecoveredInflight {
  std::string client_id;
  uint64_t sequence = 0;
  std::string record;  // serialised records::InflightRecord
};

struct JournalRecovery {
  std::vector<RecoveredInflight> entries;  // by client id, then sequence
  uint64_t files = 0;
  uint64_t frames = 0;
  uint64_t torn_tails = 0;  // files ending in an incomplete frame (ignored)
};

// Reads every journal file in `dir` (none: empty result). For each client id
// only the newest session's entries count (a session that replaced an older one
// of the same client id). A damaged frame followed by more data is corruption:
// DataLoss naming the file and offset. A missing `dir` is an empty journal.
absl::StatusOr<JournalRecovery> recoverJournal(const std::string& dir);

// Deletes every journal file in `dir` (after its entries were stored elsewhere).
absl::Status removeJournalFiles(const std::string& dir);

}  // namespace gannet::storage
