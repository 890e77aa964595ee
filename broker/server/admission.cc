#include "broker/server/admission.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "absl/hash/hash.h"
#include "base/logging.h"

namespace gannet::server {

Admission::Admission(Limits limits)
    : limits_(limits),
      enabled_(limits.max_connections != 0 || limits.max_connections_per_ip != 0 ||
               limits.max_connect_rate_per_ip != 0),
      per_address_(limits.max_connections_per_ip != 0 || limits.max_connect_rate_per_ip != 0),
      shards_(new Shard[kShards]) {}

Admission::~Admission() = default;

size_t Admission::AddressHash::operator()(const Address& a) const {
  return absl::HashOf(std::string_view(reinterpret_cast<const char*>(a.data()), a.size()));
}

Admission::Shard& Admission::addressShard(const Address& a) const {
  // The map hashes again with its own seed; the shard takes different bits.
  return shards_[(AddressHash{}(a) >> 7) % kShards];
}

Admission::Address Admission::addressOf(const sockaddr_storage& ss) {
  Address a{};
  if (ss.ss_family == AF_INET6) {
    std::memcpy(a.data(), &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, 16);
  } else if (ss.ss_family == AF_INET) {
    a[10] = 0xff;
    a[11] = 0xff;
    std::memcpy(a.data() + 12, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, 4);
  }
  return a;
}

Admission::Address Admission::peerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return Address{};
  return addressOf(ss);
}

std::string Admission::addressText(const Address& a) {
  char buf[INET6_ADDRSTRLEN] = {0};
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.data(), kMapped, sizeof(kMapped)) == 0) {
    inet_ntop(AF_INET, a.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, a.data(), buf, sizeof(buf));
  }
  return buf;
}

Admission::Verdict Admission::admit(int fd, const Address& address, int64_t now_ms) {
  if (!enabled_) return Verdict::kAdmitted;
  // accept(2) handed out `fd`, so a slot still held under that number belongs to
  // a socket that is closed: free it before counting (it would leak otherwise).
  release(fd);
  const uint64_t n = connections_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (limits_.max_connections != 0 && n > limits_.max_connections) {
    connections_.fetch_sub(1, std::memory_order_relaxed);
    return Verdict::kMaxConnections;
  }
  if (per_address_) {
    Shard& shard = addressShard(address);
    std::lock_guard lock(shard.mu);
    PerAddress& pa = shard.addresses[address];
    Verdict v = Verdict::kAdmitted;
    // The count first: a connection refused for it takes no token.
    if (limits_.max_connections_per_ip != 0 && pa.connections >= limits_.max_connections_per_ip) {
      v = Verdict::kMaxConnectionsPerIp;
    } else if (limits_.max_connect_rate_per_ip != 0 &&
               !pa.bucket.take(now_ms, limits_.max_connect_rate_per_ip)) {
      v = Verdict::kConnectRate;
    }
    if (v != Verdict::kAdmitted) {
      connections_.fetch_sub(1, std::memory_order_relaxed);
      return v;  // (an entry left with no connection goes at the next sweep)
    }
    ++pa.connections;
  }
  Shard& slots = slotShard(fd);
  std::lock_guard lock(slots.mu);
  slots.slots[fd] = Slot{address, next_slot_.fetch_add(1, std::memory_order_relaxed)};
  return Verdict::kAdmitted;
}

void Admission::releaseAddress(const Address& a) {
  connections_.fetch_sub(1, std::memory_order_relaxed);
  if (!per_address_) return;
  Shard& shard = addressShard(a);
  std::lock_guard lock(shard.mu);
  auto it = shard.addresses.find(a);
  if (it != shard.addresses.end() && it->second.connections > 0) --it->second.connections;
}

void Admission::release(int fd) {
  if (!enabled_ || fd < 0) return;
  Address a;
  {
    Shard& shard = slotShard(fd);
    std::lock_guard lock(shard.mu);
    auto it = shard.slots.find(fd);
    if (it == shard.slots.end()) return;
    a = it->second.address;
    shard.slots.erase(it);
  }
  releaseAddress(a);
}

uint64_t Admission::slotOf(int fd) const {
  if (!enabled_ || fd < 0) return 0;
  Shard& shard = slotShard(fd);
  std::lock_guard lock(shard.mu);
  auto it = shard.slots.find(fd);
  return it == shard.slots.end() ? 0 : it->second.id;
}

void Admission::releaseIf(int fd, uint64_t slot) {
  if (!enabled_ || fd < 0 || slot == 0) return;
  Address a;
  {
    Shard& shard = slotShard(fd);
    std::lock_guard lock(shard.mu);
    auto it = shard.slots.find(fd);
    if (it == shard.slots.end() || it->second.id != slot) return;
    a = it->second.address;
    shard.slots.erase(it);
  }
  releaseAddress(a);
}

size_t Admission::trackedAddresses() const {
  size_t n = 0;
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].addresses.size();
  }
  return n;
}

void Admission::sweep(int64_t now_ms) {
  if (!per_address_) return;
  for (size_t i = 0; i < kShards; ++i) {
    Shard& shard = shards_[i];
    std::lock_guard lock(shard.mu);
    absl::erase_if(shard.addresses, [&](auto& entry) {
      PerAddress& pa = entry.second;
      return pa.connections == 0 &&
             (limits_.max_connect_rate_per_ip == 0 ||
              pa.bucket.full(now_ms, limits_.max_connect_rate_per_ip));
    });
  }
}

bool Admission::updateMemory(uint64_t rss_bytes) {
  if (limits_.max_memory_bytes == 0) return false;
  const bool was = overloaded();
  bool now = was;
  if (!was && rss_bytes > limits_.max_memory_bytes) {
    now = true;
    base::logger("node").warn(
        "overloaded: resident memory {} bytes is over --max_memory_bytes={}; new connections "
        "are refused (0x89 Server busy) until it is under 90% of it",
        rss_bytes, limits_.max_memory_bytes);
  } else if (was && rss_bytes < limits_.max_memory_bytes / 10 * 9) {
    now = false;
    base::logger("node").info("no longer overloaded: resident memory {} bytes; accepting new "
                              "connections again", rss_bytes);
  }
  overloaded_.store(now, std::memory_order_relaxed);
  return now;
}

uint64_t Admission::residentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

handlers::ConnectionRejection Admission::rejectionOf(Verdict v) {
  switch (v) {
    case Verdict::kMaxConnectionsPerIp: return handlers::ConnectionRejection::kMaxConnectionsPerIp;
    case Verdict::kConnectRate: return handlers::ConnectionRejection::kConnectRate;
    default: return handlers::ConnectionRejection::kMaxConnections;
  }
}

void Admission::turnAway(int fd, Verdict v, const Address& address, int64_t now_ms) {
  linger l{1, 0};  // RST on close
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  ::close(fd);
  uint64_t count = 0;
  if (!shouldLog(v, now_ms, &count)) return;
  const char* why = v == Verdict::kMaxConnections       ? "--max_connections"
                    : v == Verdict::kMaxConnectionsPerIp ? "--max_connections_per_ip"
                                                         : "--max_connect_rate_per_ip";
  base::logger("net").warn("turned away {} connection(s) over {} since the last such line (the last "
                           "from {})",
                           count, why, addressText(address));
}

bool Admission::shouldLog(Verdict v, int64_t now_ms, uint64_t* count) {
  LogState& s = log_[static_cast<int>(v) & 3];
  s.count.fetch_add(1, std::memory_order_relaxed);
  int64_t next = s.next_ms.load(std::memory_order_relaxed);
  if (now_ms < next) return false;
  // One thread wins the second's line; the others count.
  if (!s.next_ms.compare_exchange_strong(next, now_ms + 1000, std::memory_order_relaxed)) {
    return false;
  }
  *count = s.count.exchange(0, std::memory_order_relaxed);
  return true;
}

}  // namespace gannet::server
