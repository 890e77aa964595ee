// The event loop and Connection over a real socketpair: bytes in, partial packets
// kept, output coalesced and flushed at the end of an iteration, peer close seen.

#include "broker/net/connection.h"

#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "broker/net/event_loop.h"

namespace gannet::net {
namespace {

// Consumes input in 4-byte "packets" and echoes each back; records closes.
class Echo4 : public Connection::Callbacks {
 public:
  explicit Echo4(Connection& c) : c_(c) {}
  size_t onData(std::string_view data) override {
    size_t used = 0;
    while (data.size() - used >= 4) {
      c_.send(data.substr(used, 4));
      used += 4;
      ++packets;
    }
    return used;
  }
  void onClosed(std::string_view why) override { closed = true; }
  void onWritable() override {}
  int packets = 0;
  bool closed = false;

 private:
  Connection& c_;
};

std::string readExactly(int fd, size_t n) {
  std::string out;
  char buf[256];
  while (out.size() < n) {
    ssize_t r = ::read(fd, buf, std::min(sizeof(buf), n - out.size()));
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

TEST(ConnectionTest, KeepsPartialPacketsAndEchoes) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  FlushList flush;
  loop.addIterationEndHook([&] { flush.flushAll(); });
  Connection conn(loop, flush, sv[0], "pair");
  Echo4 echo(conn);
  conn.setCallbacks(&echo);
  ASSERT_TRUE(conn.start().ok());
  std::thread t([&] { loop.run(); });

  int client = sv[1];
  int flags = 0;
  ::fcntl(client, F_GETFL, &flags);
  ::fcntl(client, F_SETFL, 0);  // blocking on the test side
  ASSERT_EQ(::write(client, "abcdef", 6), 6);  // one packet and a half
  EXPECT_EQ(readExactly(client, 4), "abcd");
  ASSERT_EQ(::write(client, "gh1234", 6), 6);  // completes "efgh", then "1234"
  EXPECT_EQ(readExactly(client, 8), "efgh1234");

  ::close(client);
  loop.post([&] { loop.stop(); });
  t.join();
  EXPECT_EQ(echo.packets, 3);
}

TEST(ConnectionTest, PeerCloseIsReported) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  FlushList flush;
  Connection conn(loop, flush, sv[0], "pair");
  Echo4 echo(conn);
  conn.setCallbacks(&echo);
  ASSERT_TRUE(conn.start().ok());
  ::close(sv[1]);
  loop.addIterationEndHook([&] {
    if (echo.closed) loop.stop();
  });
  loop.run();
  EXPECT_TRUE(echo.closed);
  EXPECT_TRUE(conn.closed());
}

TEST(EventLoopTest, PostRunsOnLoopThreadInOrder) {
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  std::vector<int> seen;
  std::thread t([&] { loop.run(); });
  for (int i = 0; i < 100; ++i) loop.post([&seen, i] { seen.push_back(i); });
  loop.post([&] { loop.stop(); });
  t.join();
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

}  // namespace
}  // namespace gannet::net
