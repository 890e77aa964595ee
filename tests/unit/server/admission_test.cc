// server::Admission: the connection limits at accept, shared by the workers
// (docs/security.md, "Limits").

#include "broker/server/admission.h"

#include <arpa/inet.h>

#include <atomic>
#include <thread>
#include <vector>

#include "base/token_bucket.h"
#include "gtest/gtest.h"

namespace gannet::server {
namespace {

using Verdict = Admission::Verdict;

Admission::Address ip(const char* v4) {
  sockaddr_storage ss{};
  auto* s = reinterpret_cast<sockaddr_in*>(&ss);
  s->sin_family = AF_INET;
  inet_pton(AF_INET, v4, &s->sin_addr);
  return Admission::addressOf(ss);
}

Admission::Limits limits(uint32_t total, uint32_t per_ip, uint32_t rate) {
  Admission::Limits l;
  l.max_connections = total;
  l.max_connections_per_ip = per_ip;
  l.max_connect_rate_per_ip = rate;
  return l;
}

TEST(TokenBucketTest, BurstOfTheRateThenRefillsAtTheRate) {
  base::TokenBucket b;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.take(1000, 10)) << i;
  EXPECT_FALSE(b.take(1000, 10));
  EXPECT_FALSE(b.take(1099, 10));  // 0.99 of a token
  EXPECT_TRUE(b.take(1100, 10));   // 100 ms = 1 token at 10/s
  EXPECT_FALSE(b.take(1100, 10));
  EXPECT_FALSE(b.full(1500, 10));
  EXPECT_TRUE(b.full(2100, 10));
  // Never more than the burst, however long it waited.
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.take(100000, 10));
  EXPECT_FALSE(b.take(100000, 10));
}

TEST(TokenBucketTest, ClockGoingBackDoesNotMint) {
  base::TokenBucket b;
  EXPECT_TRUE(b.take(5000, 1));
  EXPECT_FALSE(b.take(4000, 1));
  EXPECT_FALSE(b.take(5500, 1));
  EXPECT_TRUE(b.take(6000, 1));
}

TEST(AdmissionTest, NoLimitsIsDisabled) {
  Admission a(limits(0, 0, 0));
  EXPECT_FALSE(a.enabled());
  EXPECT_EQ(a.admit(3, ip("10.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.connections(), 0u);
}

TEST(AdmissionTest, MaxConnectionsPerNode) {
  Admission a(limits(3, 0, 0));
  ASSERT_TRUE(a.enabled());
  EXPECT_EQ(a.admit(10, ip("10.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(11, ip("10.0.0.2"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(12, ip("10.0.0.3"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(13, ip("10.0.0.4"), 0), Verdict::kMaxConnections);
  EXPECT_EQ(a.connections(), 3u);
  a.release(11);
  EXPECT_EQ(a.connections(), 2u);
  EXPECT_EQ(a.admit(13, ip("10.0.0.4"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.connections(), 3u);
}

TEST(AdmissionTest, MaxConnectionsPerAddressIsPerAddress) {
  Admission a(limits(0, 2, 0));
  EXPECT_EQ(a.admit(10, ip("127.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(11, ip("127.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(12, ip("127.0.0.1"), 0), Verdict::kMaxConnectionsPerIp);
  // Another address (127.0.0.2 is another source on loopback) is not affected.
  EXPECT_EQ(a.admit(12, ip("127.0.0.2"), 0), Verdict::kAdmitted);
  a.release(10);
  EXPECT_EQ(a.admit(13, ip("127.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.connections(), 3u);
}

TEST(AdmissionTest, ConnectRatePerAddress) {
  Admission a(limits(0, 0, 5));
  int fd = 100;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.admit(fd++, ip("10.1.1.1"), 1000), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(fd++, ip("10.1.1.1"), 1000), Verdict::kConnectRate);
  EXPECT_EQ(a.admit(fd++, ip("10.1.1.2"), 1000), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(fd++, ip("10.1.1.1"), 1200), Verdict::kAdmitted);  // 200 ms: one token
  EXPECT_EQ(a.admit(fd++, ip("10.1.1.1"), 1200), Verdict::kConnectRate);
  // Rate-limited connections hold nothing.
  EXPECT_EQ(a.connections(), 7u);
}

TEST(AdmissionTest, ConnectionRefusedForCountTakesNoToken) {
  Admission a(limits(0, 1, 2));
  EXPECT_EQ(a.admit(10, ip("10.1.1.1"), 0), Verdict::kAdmitted);  // token 1 of 2
  EXPECT_EQ(a.admit(11, ip("10.1.1.1"), 0), Verdict::kMaxConnectionsPerIp);
  EXPECT_EQ(a.admit(12, ip("10.1.1.1"), 0), Verdict::kMaxConnectionsPerIp);
  a.release(10);
  EXPECT_EQ(a.admit(13, ip("10.1.1.1"), 0), Verdict::kAdmitted);  // token 2 of 2
}

TEST(AdmissionTest, ReleaseIsOncePerSlot) {
  Admission a(limits(10, 10, 0));
  EXPECT_EQ(a.admit(7, ip("10.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(8, ip("10.0.0.1"), 0), Verdict::kAdmitted);
  a.release(7);
  a.release(7);   // twice: no-op
  a.release(99);  // never admitted: no-op
  a.release(-1);
  EXPECT_EQ(a.connections(), 1u);
}

TEST(AdmissionTest, MigratedConnectionCountedOnceReleasedOnce) {
  // A connection migrates to another worker with its fd: the other thread
  // releases it; the slot is not admitted again there.
  Admission a(limits(0, 1, 0));
  EXPECT_EQ(a.admit(20, ip("10.0.0.9"), 0), Verdict::kAdmitted);
  std::thread other([&] { a.release(20); });
  other.join();
  EXPECT_EQ(a.connections(), 0u);
  a.release(20);  // the old worker must not release again; if it did, nothing happens
  EXPECT_EQ(a.connections(), 0u);
  EXPECT_EQ(a.admit(21, ip("10.0.0.9"), 0), Verdict::kAdmitted);
}

TEST(AdmissionTest, StaleSlotOfAReusedFdIsFreedAtAdmit) {
  // A socket closed without its slot released (closed while migrating):
  // accept(2) hands its number out again; the stale slot goes first.
  Admission a(limits(1, 1, 0));
  EXPECT_EQ(a.admit(30, ip("10.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(30, ip("10.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.connections(), 1u);
}

TEST(AdmissionTest, ReleaseIfLeavesANewerSlotAlone) {
  Admission a(limits(0, 5, 0));
  EXPECT_EQ(a.admit(40, ip("10.0.0.1"), 0), Verdict::kAdmitted);
  const uint64_t old_slot = a.slotOf(40);
  EXPECT_NE(old_slot, 0u);
  // fd 40 closed while migrating, then reused by a new connection.
  EXPECT_EQ(a.admit(40, ip("10.0.0.2"), 0), Verdict::kAdmitted);
  a.releaseIf(40, old_slot);
  EXPECT_EQ(a.connections(), 1u);
  a.releaseIf(40, a.slotOf(40));
  EXPECT_EQ(a.connections(), 0u);
  EXPECT_EQ(a.slotOf(40), 0u);
}

TEST(AdmissionTest, SweepForgetsIdleAddresses) {
  Admission a(limits(0, 3, 10));
  EXPECT_EQ(a.admit(50, ip("10.0.0.1"), 0), Verdict::kAdmitted);
  EXPECT_EQ(a.admit(51, ip("10.0.0.2"), 0), Verdict::kAdmitted);
  a.release(51);
  EXPECT_EQ(a.trackedAddresses(), 2u);
  a.sweep(50);  // 10.0.0.2's bucket is not full yet
  EXPECT_EQ(a.trackedAddresses(), 2u);
  a.sweep(1000);
  EXPECT_EQ(a.trackedAddresses(), 1u);  // 10.0.0.1 still has a connection
  a.release(50);
  a.sweep(2000);
  EXPECT_EQ(a.trackedAddresses(), 0u);
}

TEST(AdmissionTest, ManyWorkersAtOnceNeverExceedTheLimits) {
  constexpr uint32_t kPerIp = 8;
  Admission a(limits(0, kPerIp, 0));
  const Admission::Address addr = ip("192.0.2.7");
  std::atomic<int> held{0}, max_held{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&, w] {
      for (int i = 0; i < 20000; ++i) {
        const int fd = 1000 + w * 100 + i % 50;  // each worker reuses its own fd numbers
        if (a.admit(fd, addr, 0) != Verdict::kAdmitted) continue;
        const int now = ++held;
        int m = max_held.load();
        while (now > m && !max_held.compare_exchange_weak(m, now)) {
        }
        --held;
        a.release(fd);
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_LE(max_held.load(), static_cast<int>(kPerIp));
  EXPECT_EQ(a.connections(), 0u);
  a.sweep(0);
  EXPECT_EQ(a.trackedAddresses(), 0u);
}

TEST(AdmissionTest, OverloadHasHysteresis) {
  Admission::Limits l;
  l.max_memory_bytes = 1000;
  Admission a(l);
  EXPECT_FALSE(a.enabled());  // not a connection limit
  EXPECT_FALSE(a.updateMemory(1000));
  EXPECT_TRUE(a.updateMemory(1001));
  EXPECT_TRUE(a.overloaded());
  EXPECT_TRUE(a.updateMemory(950));  // under the limit, not under 90%
  EXPECT_FALSE(a.updateMemory(899));
  EXPECT_FALSE(a.overloaded());
  Admission off(Admission::Limits{});
  EXPECT_FALSE(off.updateMemory(uint64_t{1} << 40));
}

TEST(AdmissionTest, LogsAtMostOnceASecondPerVerdictWithTheCount) {
  Admission a(limits(1, 0, 0));
  uint64_t n = 0;
  EXPECT_TRUE(a.shouldLog(Verdict::kMaxConnections, 1000, &n));
  EXPECT_EQ(n, 1u);
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(a.shouldLog(Verdict::kMaxConnections, 1500, &n));
  EXPECT_TRUE(a.shouldLog(Verdict::kConnectRate, 1500, &n));  // its own second
  EXPECT_TRUE(a.shouldLog(Verdict::kMaxConnections, 2000, &n));
  EXPECT_EQ(n, 51u);
}

TEST(AdmissionTest, AddressText) {
  EXPECT_EQ(Admission::addressText(ip("127.0.0.2")), "127.0.0.2");
  sockaddr_storage ss{};
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
  s6->sin6_family = AF_INET6;
  inet_pton(AF_INET6, "2001:db8::1", &s6->sin6_addr);
  EXPECT_EQ(Admission::addressText(Admission::addressOf(ss)), "2001:db8::1");
}

}  // namespace
}  // namespace gannet::server
