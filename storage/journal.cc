#include "storage/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/logging.h"
#include "storage/crc32c.h"

namespace gannet::storage {
namespace {

constexpr std::string_view kMagic = "GNJRNL01";
constexpr std::string_view kSuffix = ".journal";

enum class Op : uint8_t { kDefine = 1, kPut = 2, kDone = 3, kDrop = 4 };

void appendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

char* writeVarint(char* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}

void putLe32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

uint32_t getLe32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

absl::Status ioError(int err, const std::string& what) {
  std::string message = absl::StrCat("journal: ", what, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(message);
  return absl::UnavailableError(message);
}

// File name → (writer, segment); false for anything else.
bool parseName(std::string_view name, uint32_t* writer, uint32_t* segment) {
  unsigned w = 0, s = 0;
  int consumed = 0;
  std::string n(name);
  if (std::sscanf(n.c_str(), "w%u-%u%n", &w, &s, &consumed) != 2) return false;
  if (n.substr(static_cast<size_t>(consumed)) != kSuffix) return false;
  *writer = w;
  *segment = s;
  return true;
}

void syncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

struct JournalFile {
  uint32_t writer;
  uint32_t segment;
  std::string path;
};

absl::StatusOr<std::vector<JournalFile>> listFiles(const std::string& dir) {
  std::vector<JournalFile> files;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    uint32_t w = 0, s = 0;
    if (parseName(entry.path().filename().string(), &w, &s)) {
      files.push_back({w, s, entry.path().string()});
    }
  }
  if (ec) return absl::UnavailableError(absl::StrCat("journal: cannot list ", dir, ": ", ec.message()));
  std::sort(files.begin(), files.end(), [](const JournalFile& a, const JournalFile& b) {
    return std::tie(a.writer, a.segment) < std::tie(b.writer, b.segment);
  });
  return files;
}

// Reads operations of one frame's payload.
class OpReader {
 public:
  explicit OpReader(std::string_view in) : in_(in) {}
  bool done() const { return pos_ >= in_.size(); }
  bool byte(uint8_t* v) {
    if (pos_ >= in_.size()) return false;
    *v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return false;
      auto b = static_cast<uint8_t>(in_[pos_++]);
      *v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool bytes(std::string_view* v) {
    uint64_t n = 0;
    if (!varint(&n) || n > in_.size() - pos_) return false;
    *v = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

struct SessionEntries {
  std::string client_id;
  std::map<uint64_t, std::string> entries;  // sequence → record
};

// Applies one frame's operations to one writer's state.
bool applyFrame(std::string_view payload, absl::flat_hash_map<uint64_t, SessionEntries>& sessions,
                absl::flat_hash_map<std::string, uint64_t>& newest) {
  OpReader r(payload);
  while (!r.done()) {
    uint8_t op = 0;
    uint64_t session = 0;
    if (!r.byte(&op) || !r.varint(&session)) return false;
    switch (static_cast<Op>(op)) {
      case Op::kDefine: {
        std::string_view client;
        if (!r.bytes(&client)) return false;
        SessionEntries& s = sessions[session];
        s.client_id.assign(client);
        uint64_t& n = newest[s.client_id];
        n = std::max(n, session);
        break;
      }
      case Op::kPut: {
        uint64_t sequence = 0;
        std::string_view record;
        if (!r.varint(&sequence) || !r.bytes(&record)) return false;
        auto it = sessions.find(session);
        if (it == sessions.end() || it->second.client_id.empty()) return false;  // no Define
        it->second.entries[sequence].assign(record);
        break;
      }
      case Op::kDone: {
        uint64_t from = 0, to = 0;
        if (!r.varint(&from) || !r.varint(&to)) return false;
        auto it = sessions.find(session);
        if (it == sessions.end()) break;  // its puts are in removed segments
        auto& e = it->second.entries;
        e.erase(e.lower_bound(from), e.lower_bound(to));
        break;
      }
      case Op::kDrop: {
        auto it = sessions.find(session);
        if (it != sessions.end()) it->second.entries.clear();
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

}  // namespace

// --- Journal ---

Journal::Journal(JournalOptions options) : options_(std::move(options)) { resetPending(); }

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::open(JournalOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create journal directory '", options.dir, "': ", ec.message()));
  }
  auto files = listFiles(options.dir);
  if (!files.ok()) return files.status();
  auto journal = std::unique_ptr<Journal>(new Journal(std::move(options)));
  for (const JournalFile& f : *files) {  // normally none: removed after recovery
    if (f.writer == journal->options_.writer) journal->active_ = std::max(journal->active_, f.segment + 1);
  }
  journal->segments_[journal->active_] = Segment{};
  return journal;
}

std::string Journal::path(uint32_t segment) const {
  return absl::StrFormat("%s/w%u-%010u%s", options_.dir, options_.writer, segment, kSuffix);
}

void Journal::resetPending() {
  pending_.assign(kFrameHeader, '\0');
}

uint32_t Journal::put(uint64_t session_id, std::string_view client_id, uint64_t sequence,
                      std::string_view record) {
  if (session_id != last_defined_) {
    if (defined_.insert(session_id).second) {
      pending_.push_back(static_cast<char>(Op::kDefine));
      appendVarint(pending_, session_id);
      appendVarint(pending_, client_id.size());
      pending_.append(client_id);
    }
    last_defined_ = session_id;
  }
  // The header in one append: this runs once per durable delivery.
  char header[1 + 3 * 10];
  char* p = header;
  *p++ = static_cast<char>(Op::kPut);
  p = writeVarint(p, session_id);
  p = writeVarint(p, sequence);
  p = writeVarint(p, record.size());
  const size_t at = pending_.size();
  pending_.resize(at + static_cast<size_t>(p - header) + record.size());
  std::memcpy(pending_.data() + at, header, static_cast<size_t>(p - header));
  std::memcpy(pending_.data() + at + (p - header), record.data(), record.size());
  ++segments_.rbegin()->second.live;  // the active segment is the newest
  return active_;
}

void Journal::done(uint64_t session_id, uint64_t from, uint64_t to) {
  pending_.push_back(static_cast<char>(Op::kDone));
  appendVarint(pending_, session_id);
  appendVarint(pending_, from);
  appendVarint(pending_, to);
}

void Journal::drop(uint64_t session_id) {
  pending_.push_back(static_cast<char>(Op::kDrop));
  appendVarint(pending_, session_id);
}

void Journal::release(uint32_t segment) {
  auto it = segment == active_ ? std::prev(segments_.end()) : segments_.find(segment);
  if (it != segments_.end() && it->second.live > 0) --it->second.live;
}

absl::Status Journal::createActive() {
  const std::string p = path(active_);
  if (options_.io_hooks && options_.io_hooks->fail_writes.load()) return ioError(ENOSPC, p);
  fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return ioError(errno, absl::StrCat("cannot create ", p));
  Segment& seg = segments_.rbegin()->second;
  seg.file = true;
  if (::write(fd_, kMagic.data(), kMagic.size()) != static_cast<ssize_t>(kMagic.size())) {
    const int err = errno == 0 ? ENOSPC : errno;
    ::ftruncate(fd_, 0);
    return ioError(err, absl::StrCat("cannot write ", p));
  }
  seg.bytes = kMagic.size();
  disk_bytes_.fetch_add(kMagic.size(), std::memory_order_relaxed);
  if (options_.sync) {
    if (::fdatasync(fd_) != 0) return ioError(errno, absl::StrCat("cannot sync ", p));
    syncDir(options_.dir);  // the new name survives a power loss too
  }
  return absl::OkStatus();
}

absl::Status Journal::commit() {
  if (!pending()) return absl::OkStatus();
  absl::Status status = absl::OkStatus();
  Segment& seg = segments_.rbegin()->second;
  if (fd_ < 0) status = createActive();
  if (status.ok()) {
    const size_t payload = pending_.size() - kFrameHeader;
    putLe32(pending_.data(), static_cast<uint32_t>(payload));
    putLe32(pending_.data() + 4, crc32c(std::string_view(pending_).substr(kFrameHeader)));
    IoHooks* hooks = options_.io_hooks.get();
    size_t written = 0;
    int err = 0;
    if (hooks != nullptr && hooks->fail_writes.load()) err = ENOSPC;
    while (err == 0 && written < pending_.size()) {
      ssize_t n = ::write(fd_, pending_.data() + written, pending_.size() - written);
      if (n > 0) {
        written += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        err = n == 0 ? ENOSPC : errno;
      }
    }
    if (err != 0) {
      // Nothing of a failed frame may stay: the next frame must follow the last
      // good one, or recovery would stop at this one.
      if (written > 0 && ::ftruncate(fd_, static_cast<off_t>(seg.bytes)) != 0) {
        // Cannot cut it off: continue in a new segment (the damaged tail is
        // the end of this one, and recovery ignores a torn tail).
        ::close(fd_);
        fd_ = -1;
        segments_[active_ + 1] = Segment{};
        ++active_;
      }
      status = ioError(err, absl::StrCat("cannot append to ", path(active_)));
    } else {
      seg.bytes += written;
      disk_bytes_.fetch_add(written, std::memory_order_relaxed);
      if (hooks != nullptr) hooks->bytes_written.fetch_add(written, std::memory_order_relaxed);
      if (options_.sync && ::fdatasync(fd_) != 0) {
        status = ioError(errno, absl::StrCat("cannot sync ", path(active_)));
      }
    }
  }
  resetPending();
  if (!status.ok()) {
    defined_.clear();  // the Define operations went with the frame
    last_defined_ = 0;
    return status;
  }
  if (seg.bytes >= options_.segment_bytes) {
    ::close(fd_);
    fd_ = -1;
    segments_[active_ + 1] = Segment{};
    ++active_;
    defined_.clear();
    last_defined_ = 0;
  }
  return status;
}

uint32_t Journal::evictBefore() const {
  uint32_t newest = 0;
  for (const auto& [number, seg] : segments_) {
    if (number + 1 >= active_) break;  // the current one and the one before it stay
    if (seg.live > 0) newest = number;
  }
  return newest;
}

void Journal::releaseThrough(uint32_t segment) {
  for (auto& [number, seg] : segments_) {
    if (number > segment || number == active_) break;
    seg.live = 0;
  }
}

void Journal::collect() {
  // Oldest first, and only a prefix: a segment's Done operations may void
  // entries of older segments, so it must not go while one of those remains.
  while (segments_.size() > 1) {
    auto it = segments_.begin();
    if (it->first == active_ || it->second.live > 0) break;
    if (it->second.file) {
      const std::string p = path(it->first);
      if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
        base::logger("storage").warn("journal: cannot remove {}: {}", p, std::strerror(errno));
        break;
      }
      disk_bytes_.fetch_sub(std::min(it->second.bytes, disk_bytes_.load()),
                            std::memory_order_relaxed);
    }
    segments_.erase(it);
  }
}

// --- recovery ---

absl::StatusOr<JournalRecovery> recoverJournal(const std::string& dir) {
  auto files = listFiles(dir);
  if (!files.ok()) return files.status();
  JournalRecovery result;
  // Per writer: its sessions, built by applying its frames in order.
  absl::flat_hash_map<uint32_t, absl::flat_hash_map<uint64_t, SessionEntries>> writers;
  absl::flat_hash_map<std::string, uint64_t> newest;  // client id → newest session id
  for (const JournalFile& f : *files) {
    ++result.files;
    std::string data;
    {
      int fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return ioError(errno, absl::StrCat("cannot open ", f.path));
      char buf[1 << 16];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
      const int err = errno;
      ::close(fd);
      if (n < 0) return ioError(err, absl::StrCat("cannot read ", f.path));
    }
    if (data.size() < kMagic.size()) {  // created, never written: nothing in it
      ++result.torn_tails;
      continue;
    }
    if (std::string_view(data).substr(0, kMagic.size()) != kMagic) {
      return absl::DataLossError(absl::StrCat("journal file ", f.path,
                                              " does not start with the journal header: not a "
                                              "gannet journal, or damaged"));
    }
    auto& sessions = writers[f.writer];
    size_t pos = kMagic.size();
    while (pos < data.size()) {
      const size_t left = data.size() - pos;
      uint32_t len = left >= 8 ? getLe32(data.data() + pos) : 0;
      bool complete = left >= 8 && len <= left - 8;
      bool good = complete && getLe32(data.data() + pos + 4) ==
                                  crc32c(std::string_view(data).substr(pos + 8, len));
      if (!good) {
        // An incomplete frame at the end is a write cut short (a crash or a
        // power loss): the end of the file. A bad complete frame with data after
        // it is damage.
        bool tail = !complete || pos + 8 + len == data.size() ||
                    std::all_of(data.begin() + static_cast<long>(pos), data.end(),
                                [](char c) { return c == 0; });
        if (tail) {
          ++result.torn_tails;
          base::logger("storage").warn("journal: {} ends in an incomplete frame at offset {} "
                                       "(a write cut short by a crash): ignored", f.path, pos);
          break;
        }
        return absl::DataLossError(absl::StrCat(
            "journal file ", f.path, " is damaged at offset ", pos,
            " (checksum mismatch); see docs/troubleshooting.md, \"journal file is damaged\""));
      }
      if (!applyFrame(std::string_view(data).substr(pos + 8, len), sessions, newest)) {
        return absl::DataLossError(absl::StrCat("journal file ", f.path,
                                                " holds a malformed frame at offset ", pos));
      }
      ++result.frames;
      pos += 8 + len;
    }
  }
  for (auto& [writer, sessions] : writers) {
    for (auto& [session_id, s] : sessions) {
      if (s.entries.empty() || newest[s.client_id] != session_id) continue;
      for (auto& [sequence, record] : s.entries) {
        result.entries.push_back({s.client_id, sequence, std::move(record)});
      }
    }
  }
  std::sort(result.entries.begin(), result.entries.end(),
            [](const RecoveredInflight& a, const RecoveredInflight& b) {
              return std::tie(a.client_id, a.sequence) < std::tie(b.client_id, b.sequence);
            });
  return result;
}

absl::Status removeJournalFiles(const std::string& dir) {
  auto files = listFiles(dir);
  if (!files.ok()) return files.status();
  for (const JournalFile& f : *files) {
    if (::unlink(f.path.c_str()) != 0 && errno != ENOENT) {
      return ioError(errno, absl::StrCat("cannot remove ", f.path));
    }
  }
  if (!files->empty()) syncDir(dir);
  return absl::OkStatus();
}

}  // namespace gannet::storage
