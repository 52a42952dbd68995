// dataplane/daemon/event_loop.h without EAL: fds, timers, removal during dispatch, cross-thread wake-ups, stop.

#include "dataplane/daemon/event_loop.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/error.h"

namespace {

using esw::dp::EventLoop;
using namespace std::chrono_literals;

struct SocketPair {
  int a = -1, b = -1;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
};

// Runs the loop until `done` or `limit` passes; false on timeout.
template <typename Pred>
bool run_until(EventLoop& loop, Pred done, std::chrono::milliseconds limit = 5000ms) {
  const auto end = EventLoop::Clock::now() + limit;
  while (!done()) {
    if (EventLoop::Clock::now() > end) return false;
    loop.run_once(10ms);
  }
  return true;
}

TEST(EventLoop, ReadAndWriteInterestAndModify) {
  EventLoop loop;
  SocketPair sp;
  std::string got;
  int writable = 0;
  const auto id = loop.add_fd(sp.a, EventLoop::kRead, [&](uint32_t ev) {
    if (ev & EventLoop::kRead) {
      char buf[64];
      const ssize_t n = read(sp.a, buf, sizeof(buf));
      if (n > 0) got.append(buf, static_cast<size_t>(n));
    }
    if (ev & EventLoop::kWrite) ++writable;
  }, "test socket");
  EXPECT_EQ(loop.purpose(id), "test socket");
  EXPECT_EQ(loop.run_once(0ms), 0u) << "nothing to read yet";
  ASSERT_EQ(write(sp.b, "hello", 5), 5);
  ASSERT_TRUE(run_until(loop, [&] { return got == "hello"; }));
  EXPECT_EQ(writable, 0) << "write interest was not asked for";
  loop.modify_fd(id, EventLoop::kWrite);
  loop.run_once(100ms);
  EXPECT_EQ(writable, 1);
  loop.modify_fd(id, 0);
  ASSERT_EQ(write(sp.b, "x", 1), 1);
  EXPECT_EQ(loop.run_once(20ms), 0u) << "no interest: nothing reported";
  loop.remove(id);
  EXPECT_EQ(loop.handlers(), 0u);
}

TEST(EventLoop, ErrorsNameThePurposeAndTheFd) {
  EventLoop loop;
  try {
    loop.add_fd(987654, EventLoop::kRead, [](uint32_t) {}, "a closed fd");
    FAIL() << "no error for a bad fd";
  } catch (const esw::dp::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("fd 987654"), std::string::npos) << msg;
    EXPECT_NE(msg.find("a closed fd"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Bad file descriptor"), std::string::npos) << msg;
  }
  EXPECT_THROW(loop.add_timer(0ns, [] {}, "zero period"), esw::dp::Error);
  EXPECT_THROW(loop.modify_fd(12345, EventLoop::kRead), esw::dp::Error);
  loop.remove(12345);  // unknown ids are ignored
}

TEST(EventLoop, HangupIsReported) {
  EventLoop loop;
  SocketPair sp;
  uint32_t seen = 0;
  loop.add_fd(sp.a, 0, [&](uint32_t ev) { seen |= ev; }, "hangup");
  close(sp.b);
  sp.b = -1;
  ASSERT_TRUE(run_until(loop, [&] { return seen != 0; }));
  EXPECT_TRUE(seen & EventLoop::kHangup);
}

TEST(EventLoop, TimersFireInDeadlineOrderAndEqualDeadlinesInRegistrationOrder) {
  EventLoop loop;
  std::vector<std::string> order;
  loop.add_oneshot(60ms, [&] { order.push_back("c60"); }, "c");
  loop.add_oneshot(20ms, [&] { order.push_back("a20"); }, "a");
  loop.add_oneshot(40ms, [&] { order.push_back("b40-1"); }, "b1");
  loop.add_oneshot(0ms, [&] { order.push_back("now"); }, "now");
  const auto start = EventLoop::Clock::now();
  ASSERT_TRUE(run_until(loop, [&] { return order.size() == 4; }));
  EXPECT_EQ(order, (std::vector<std::string>{"now", "a20", "b40-1", "c60"}));
  EXPECT_GE(EventLoop::Clock::now() - start, 60ms) << "a timer fired early";
  EXPECT_EQ(loop.handlers(), 0u) << "one-shots remove themselves";

  // Same deadline (zero delay): registration order.
  order.clear();
  for (int i = 0; i < 5; ++i) loop.add_oneshot(0ms, [&, i] { order.push_back(std::to_string(i)); }, "same");
  loop.run_once(0ms);
  EXPECT_EQ(order, (std::vector<std::string>{"0", "1", "2", "3", "4"}));
}

TEST(EventLoop, PeriodicTimerRepeatsWithoutCatchUpBursts) {
  EventLoop loop;
  int ticks = 0;
  const auto id = loop.add_timer(10ms, [&] {
    ++ticks;
    if (ticks == 1) std::this_thread::sleep_for(60ms);  // falls six periods behind
  }, "tick");
  ASSERT_TRUE(run_until(loop, [&] { return ticks >= 1; }));
  loop.run_once(0ms);
  EXPECT_EQ(ticks, 1) << "a late periodic timer must not fire back-to-back to catch up";
  ASSERT_TRUE(run_until(loop, [&] { return ticks >= 4; }));
  loop.remove(id);
  const int now = ticks;
  loop.run_once(50ms);
  EXPECT_EQ(ticks, now) << "removed timer fired";
}

TEST(EventLoop, RemovingHandlersDuringDispatchIsSafe) {
  EventLoop loop;
  SocketPair s1, s2;
  int calls1 = 0, calls2 = 0;
  EventLoop::Id id1 = 0, id2 = 0;
  // Both become readable in the same round; whichever runs first removes both: the other must not run.
  id1 = loop.add_fd(s1.a, EventLoop::kRead, [&](uint32_t) {
    ++calls1;
    loop.remove(id1);  // itself: its std::function must survive until it returns
    loop.remove(id2);
  }, "first");
  id2 = loop.add_fd(s2.a, EventLoop::kRead, [&](uint32_t) {
    ++calls2;
    loop.remove(id2);
    loop.remove(id1);
  }, "second");
  ASSERT_EQ(write(s1.b, "x", 1), 1);
  ASSERT_EQ(write(s2.b, "y", 1), 1);
  std::this_thread::sleep_for(10ms);
  loop.run_once(100ms);
  EXPECT_EQ(calls1 + calls2, 1) << "a handler removed in the same round still ran";
  EXPECT_EQ(loop.handlers(), 0u);
  loop.run_once(20ms);
  EXPECT_EQ(calls1 + calls2, 1);

  // A timer removing a later timer due in the same round, and itself (periodic).
  int fired_b = 0, fired_a = 0;
  EventLoop::Id ta = 0, tb = 0;
  ta = loop.add_timer(5ms, [&] {
    ++fired_a;
    loop.remove(tb);
    loop.remove(ta);
  }, "a");
  tb = loop.add_timer(5ms, [&] { ++fired_b; }, "b");
  std::this_thread::sleep_for(20ms);
  loop.run_once(0ms);
  EXPECT_EQ(fired_a, 1);
  EXPECT_EQ(fired_b, 0);
  loop.run_once(30ms);
  EXPECT_EQ(fired_a, 1);

  // A handler that re-registers a new handler on the same fd number from inside its callback.
  SocketPair s3;
  int old_calls = 0, new_calls = 0;
  EventLoop::Id id3 = 0;
  id3 = loop.add_fd(s3.a, EventLoop::kRead, [&](uint32_t) {
    ++old_calls;
    loop.remove(id3);
    char c;
    (void)!read(s3.a, &c, 1);
    loop.add_fd(s3.a, EventLoop::kRead, [&](uint32_t) {
      ++new_calls;
      char d;
      (void)!read(s3.a, &d, 1);
    }, "again");
  }, "once");
  ASSERT_EQ(write(s3.b, "1", 1), 1);
  ASSERT_TRUE(run_until(loop, [&] { return old_calls == 1; }));
  ASSERT_EQ(write(s3.b, "2", 1), 1);
  ASSERT_TRUE(run_until(loop, [&] { return new_calls == 1; }));
  EXPECT_EQ(old_calls, 1);
}

TEST(EventLoop, NotifierFromAnotherThreadRunsOnTheLoopThreadAndCoalesces) {
  EventLoop loop;
  const auto loop_thread = std::this_thread::get_id();
  int runs = 0;
  bool on_loop_thread = true;
  auto n = loop.add_notifier([&] {
    ++runs;
    on_loop_thread = on_loop_thread && std::this_thread::get_id() == loop_thread;
  }, "test notifier");
  std::thread t([n] {
    for (int i = 0; i < 100; ++i) n->notify();
  });
  t.join();
  loop.run_once(1000ms);
  EXPECT_EQ(runs, 1) << "100 notifications before the loop ran are one callback";
  EXPECT_TRUE(on_loop_thread);
  EXPECT_EQ(loop.run_once(20ms), 0u);

  // Notified while waiting: wakes the loop well before its timeout.
  std::thread t2([n] {
    std::this_thread::sleep_for(20ms);
    n->notify();
  });
  const auto start = EventLoop::Clock::now();
  loop.run_once(5000ms);
  t2.join();
  EXPECT_EQ(runs, 2);
  EXPECT_LT(EventLoop::Clock::now() - start, 2000ms);

  loop.remove(n->id());
  n->notify();  // harmless after removal
  EXPECT_EQ(loop.run_once(20ms), 0u);
  EXPECT_EQ(runs, 2);
}

TEST(EventLoop, PostedClosuresRunInOrderOnTheLoopThreadAndTheQueueIsBounded) {
  EventLoop loop;
  std::vector<int> got;
  std::atomic<int> refused{0};
  std::thread t([&] {
    for (int i = 0; i < 100; ++i) {
      if (!loop.post([&got, i] { got.push_back(i); })) ++refused;
    }
  });
  t.join();
  ASSERT_TRUE(run_until(loop, [&] { return got.size() == 100; }));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], i);
  EXPECT_EQ(refused.load(), 0);

  size_t accepted = 0;
  for (size_t i = 0; i < EventLoop::kPostCapacity + 10; ++i) accepted += loop.post([] {}) ? 1 : 0;
  EXPECT_EQ(accepted, EventLoop::kPostCapacity);
  loop.run_once(0ms);
  EXPECT_TRUE(loop.post([] {})) << "room again once the loop ran";
}

TEST(EventLoop, StopFromAnotherThreadEndsRunAndRunCanStartAgain) {
  EventLoop loop;
  int ticks = 0;
  loop.add_timer(5ms, [&] { ++ticks; }, "tick");
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    loop.stop();
  });
  const auto start = EventLoop::Clock::now();
  loop.run();
  t.join();
  EXPECT_LT(EventLoop::Clock::now() - start, 3000ms);
  EXPECT_GE(ticks, 2);
  EXPECT_FALSE(loop.stop_requested());
  // A callback can stop the loop too.
  loop.add_oneshot(10ms, [&] { loop.stop(); }, "stopper");
  loop.run();
  SUCCEED();
}

TEST(EventLoop, SignalsArriveAsCallbacksAndDispositionsAreRestored) {
  struct sigaction before {};
  sigaction(SIGUSR1, nullptr, &before);
  {
    EventLoop loop;
    int got = 0;
    loop.add_signal(SIGUSR1, [&](int s) {
      got = s;
      loop.stop();
    }, "test signal");
    EXPECT_THROW(loop.add_signal(SIGUSR1, [](int) {}, "twice"), esw::dp::Error);
    EventLoop other;
    EXPECT_THROW(other.add_signal(SIGUSR2, [](int) {}, "second loop"), esw::dp::Error);
    std::thread t([] {
      std::this_thread::sleep_for(20ms);
      kill(getpid(), SIGUSR1);
    });
    loop.run();
    t.join();
    EXPECT_EQ(got, SIGUSR1);
  }
  struct sigaction after {};
  sigaction(SIGUSR1, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

}  // namespace
