// vdpa/socket_watch.h without EAL: real inotify and real unix sockets in a temporary directory, the clock given
// by the test. When is a connect attempt due, and when not (no socket, a socket whose listener is gone).

#include "vdpa/socket_watch.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace {

using esw::vdpa::SocketWatch;
using Trigger = SocketWatch::Trigger;
constexpr uint64_t kMs = 1'000'000;

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/esw-sockwatch-XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// A unix socket bound at `path`, listening unless `listen_too` is false. Closed (file left behind) by the caller.
int bind_socket(const std::string& path, bool listen_too = true) {
  const int s = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return -1;
  if (listen_too) listen(s, 4);
  return s;
}

TEST(SocketWatch, NothingIsDueWithoutASocket) {
  TempDir d;
  SocketWatch w;
  ASSERT_EQ(w.open(d.path + "/vm.sock"), "");
  EXPECT_EQ(w.fds().size(), 2u);
  uint64_t now = SocketWatch::now_ns();
  w.attempted(Trigger::kOpen, false, ENOENT, now);
  for (int i = 0; i < 50; ++i) {
    now += 100 * kMs;  // five seconds of service ticks
    EXPECT_EQ(w.due(false, now), Trigger::kNone) << i;
  }
  EXPECT_EQ(w.attempts(), 0u);
}

TEST(SocketWatch, ASocketThatAppearsIsDueAtOnce) {
  TempDir d;
  const std::string sock = d.path + "/vm.sock";
  SocketWatch w;
  ASSERT_EQ(w.open(sock), "");
  uint64_t now = SocketWatch::now_ns();
  w.attempted(Trigger::kOpen, false, ENOENT, now);
  EXPECT_EQ(w.due(false, now), Trigger::kNone);
  const int s = bind_socket(sock);
  ASSERT_GE(s, 0);
  EXPECT_EQ(w.due(false, now), Trigger::kAppeared);  // the inotify event, not a timer: same `now`
  w.attempted(Trigger::kAppeared, true, 0, now);
  EXPECT_EQ(w.connects(), 1u);
  EXPECT_EQ(w.tick_connects(), 0u);
  // While the session is up nothing is due, whatever happens to the file.
  now += 5000 * kMs;
  EXPECT_EQ(w.due(true, now), Trigger::kNone);
  ::close(s);
  // The session closes: one attempt at once.
  EXPECT_EQ(w.due(false, now), Trigger::kClosed);
}

TEST(SocketWatch, BoundButNotListeningIsRetriedQuicklyThenLeftAlone) {
  TempDir d;
  const std::string sock = d.path + "/vm.sock";
  SocketWatch w;
  ASSERT_EQ(w.open(sock), "");
  uint64_t now = SocketWatch::now_ns();
  const int s = bind_socket(sock, /*listen_too=*/false);
  ASSERT_GE(s, 0);
  ASSERT_EQ(w.due(false, now), Trigger::kAppeared);
  w.attempted(Trigger::kAppeared, false, ECONNREFUSED, now);
  // Quick retries at 1, 2, 4 ... ms after the trigger, within about a second.
  int retries = 0;
  uint64_t first_retry = 0;
  for (uint64_t t = now; t < now + 3000 * kMs; t += kMs / 2) {
    const Trigger why = w.due(false, t);
    if (why == Trigger::kNone) continue;
    EXPECT_EQ(why, Trigger::kRetry) << "at " << (t - now) / kMs << " ms";
    if (retries++ == 0) first_retry = t - now;
    w.attempted(why, false, ECONNREFUSED, t);
  }
  EXPECT_LE(first_retry, 2 * kMs);
  EXPECT_GE(retries, 8);
  EXPECT_LE(retries, 12);
  // Refused for good (its listener never came): the once-a-second check leaves that file alone...
  for (uint64_t t = now + 3000 * kMs; t < now + 6000 * kMs; t += 100 * kMs) EXPECT_EQ(w.due(false, t), Trigger::kNone);
  ::close(s);
  // ...until it is made again.
  std::filesystem::remove(sock);
  const int s2 = bind_socket(sock);
  ASSERT_GE(s2, 0);
  EXPECT_EQ(w.due(false, now + 6000 * kMs), Trigger::kAppeared);
  ::close(s2);
}

TEST(SocketWatch, ListenerBehindAFullBacklogIsRetriedEverySecond) {
  TempDir d;
  const std::string sock = d.path + "/vm.sock";
  const int s = bind_socket(sock);
  ASSERT_GE(s, 0);
  SocketWatch w;
  ASSERT_EQ(w.open(sock), "");  // the socket was there before the watch: only the tick finds it
  uint64_t now = SocketWatch::now_ns();
  w.attempted(Trigger::kOpen, false, EAGAIN, now);
  int ticks = 0;
  for (uint64_t t = now; t < now + 4500 * kMs; t += 10 * kMs) {
    const Trigger why = w.due(false, t);
    if (why == Trigger::kTick) ++ticks;
    if (why != Trigger::kNone) w.attempted(why, false, EAGAIN, t);
  }
  EXPECT_GE(ticks, 3);  // EAGAIN is not "nobody listens": tried again once a second (after the quick retries)
  EXPECT_LE(ticks, 4);
  w.attempted(Trigger::kTick, true, 0, now + 4600 * kMs);
  EXPECT_EQ(w.tick_connects(), 1u);
  ::close(s);
}

TEST(SocketWatch, ADirectoryThatGoesAwayIsWatchedAgainWhenBack) {
  TempDir d;
  const std::string dir = d.path + "/run";
  std::filesystem::create_directory(dir);
  const std::string sock = dir + "/vm.sock";
  SocketWatch w;
  ASSERT_EQ(w.open(sock), "");
  uint64_t now = SocketWatch::now_ns();
  w.attempted(Trigger::kOpen, false, ENOENT, now);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(w.due(false, now), Trigger::kNone);
  std::filesystem::create_directory(dir);
  const int s = bind_socket(sock);
  ASSERT_GE(s, 0);
  // The old watch died with the directory; the next tick watches the new one and finds the socket.
  EXPECT_EQ(w.due(false, now + 1100 * kMs), Trigger::kAppeared);
  ::close(s);
}

// A VMM that accepts and closes at once, again and again: each too-short session holds the next attempt back
// (16 ms, doubling to a second), so the main lcore is not spun in a connect loop; a session that lasts resets it.
TEST(SocketWatch, SessionsThatEndAtOnceAreHeldBackDoubling) {
  TempDir d;
  const std::string sock = d.path + "/vm.sock";
  const int s = bind_socket(sock);
  ASSERT_GE(s, 0);
  SocketWatch w;
  ASSERT_EQ(w.open(sock), "");
  uint64_t now = SocketWatch::now_ns();
  w.attempted(Trigger::kOpen, true, 0, now);
  uint64_t expect_hold = 16 * kMs;
  for (int round = 0; round < 9; ++round) {
    now += kMs;  // the session ends 1 ms after it began
    ASSERT_EQ(w.due(false, now), Trigger::kNone) << round;
    EXPECT_EQ(w.hold_ns(), expect_hold) << round;
    EXPECT_EQ(w.due(false, now + expect_hold - 1), Trigger::kNone) << round;
    now += expect_hold;
    ASSERT_EQ(w.due(false, now), Trigger::kClosed) << round;
    w.attempted(Trigger::kClosed, true, 0, now);
    ASSERT_EQ(w.due(true, now), Trigger::kNone);
    expect_hold = std::min(2 * expect_hold, 1000 * kMs);
  }
  EXPECT_EQ(w.held(), 9u);
  EXPECT_EQ(w.hold_ns(), 1000 * kMs);
  // A session that lasts: its end is followed by an attempt at once, and the hold starts again from 16 ms.
  now += 5000 * kMs;
  EXPECT_EQ(w.due(false, now), Trigger::kClosed);
  EXPECT_EQ(w.hold_ns(), 0u);
  w.attempted(Trigger::kClosed, true, 0, now);
  now += kMs;
  EXPECT_EQ(w.due(false, now), Trigger::kNone);
  EXPECT_EQ(w.hold_ns(), 16 * kMs);
  ::close(s);
}

}  // namespace
