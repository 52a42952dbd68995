#pragma once
// eswitchd's one event loop: everything the main lcore waits for — sockets, timers, work posted by other
// threads, signals — is a handler registered here, and every callback runs on the thread that calls run() or
// run_once() (eswitchd's main thread). Subsystems register with it instead of owning a loop of their own, so
// the switch state they touch stays single-threaded and lock-free.
//
// Registration API (all of it on the loop thread, except Notifier::notify(), post() and stop()):
//
//   Id add_fd(fd, kRead|kWrite, [](uint32_t events) {...}, "purpose")   fd readiness, level-triggered
//   void modify_fd(id, kRead|kWrite)                                    change the interest (0: only errors)
//   Id add_timer(period, [] {...}, "purpose")                           periodic, first run after one period
//   Id add_oneshot(delay, [] {...}, "purpose")                          once, then removed by itself
//   std::shared_ptr<Notifier> add_notifier([] {...}, "purpose")         another thread calls notify(): the
//                                                                       callback runs once on the loop thread
//   Id add_signal(SIGTERM, [](int sig) {...}, "purpose")                a signal, delivered as a callback
//   void remove(id)                                                     any handler kind; safe anywhere
//   bool post([] {...})                                                 any thread: run this closure on the loop
//
// Guarantees:
//  - Removing or modifying any handler from inside any callback (including its own) is safe: a removed
//    handler's callback is never called again, not even for events already collected in the same round, and a
//    callback object is destroyed only after it has returned. Ids are never reused.
//  - Timers due at the same instant fire in registration order. A periodic timer that falls behind (a slow
//    callback) does not fire in bursts to catch up: its next deadline is one period after it ran.
//  - remove() of an fd handler takes the fd out of epoll before returning; it never closes the fd (the owner
//    does, after remove()).
//  - Errors throw esw::dp::Error naming the call, the handler's purpose, the fd and errno's text.
//
// Callbacks must not block: they share the thread with the API, telemetry, switch maintenance and (later)
// representor and vhost events. Long work goes to a helper thread that reports back through a Notifier or post().
//
// Threading: one loop thread (the one that constructs the loop). Notifier::notify() and stop() are
// async-signal-safe and may be called from any thread; post() from any thread except a signal handler.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

namespace esw::dp {

class EventLoop {
 public:
  using Id = uint64_t;  // 0 is never a handler
  using Clock = std::chrono::steady_clock;
  using FdCallback = std::function<void(uint32_t events)>;
  using Callback = std::function<void()>;
  using SignalCallback = std::function<void(int signo)>;

  // Interest for add_fd/modify_fd, and what an fd callback receives (kHangup and kError are always reported).
  static constexpr uint32_t kRead = 1u << 0;
  static constexpr uint32_t kWrite = 1u << 1;
  static constexpr uint32_t kHangup = 1u << 2;  // the peer closed both directions
  static constexpr uint32_t kError = 1u << 3;

  // Closures waiting for the loop beyond this many make post() return false (the poster is far ahead of us).
  static constexpr size_t kPostCapacity = 4096;

  // A cross-thread wake-up: notify() from any thread (or a signal handler) makes the notifier's callback run
  // once on the loop thread; notifications before it runs coalesce. After remove(id()) or the loop's end,
  // notify() does nothing, so a thread may keep the shared_ptr longer than the loop lives.
  class Notifier {
   public:
    void notify() noexcept;
    Id id() const { return id_; }

   private:
    friend class EventLoop;
    struct Wake;
    Notifier(Id id, std::shared_ptr<Wake> wake) : id_(id), wake_(std::move(wake)) {}
    Id id_;
    std::shared_ptr<Wake> wake_;
    std::atomic<bool> pending_{false};
    std::atomic<bool> removed_{false};
  };

  // Throws esw::dp::Error when epoll or the wake-up eventfd cannot be created.
  EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();  // drops every handler (closes no registered fd) and restores the signal dispositions it changed

  Id add_fd(int fd, uint32_t interest, FdCallback cb, std::string purpose);
  void modify_fd(Id id, uint32_t interest);
  Id add_timer(std::chrono::nanoseconds period, Callback cb, std::string purpose);
  Id add_oneshot(std::chrono::nanoseconds delay, Callback cb, std::string purpose);
  std::shared_ptr<Notifier> add_notifier(Callback cb, std::string purpose);
  // The signal's disposition becomes "wake the loop"; at most one EventLoop per process handles signals.
  Id add_signal(int signo, SignalCallback cb, std::string purpose);
  // Unknown or already removed ids are ignored (a callback may race its own removal with another's).
  void remove(Id id);

  // Any thread: queues `fn` to run on the loop thread, in posting order. False when kPostCapacity closures
  // are already waiting (nothing is queued then).
  bool post(Callback fn);

  // Waits at most `max_wait` (or until the next timer is due), then runs every callback that is ready.
  // Returns how many callbacks ran. max_wait < 0 waits for the next event or timer without limit.
  size_t run_once(std::chrono::milliseconds max_wait);
  // run_once() until stop() is called. Resets the stop request on return, so run() can be called again.
  void run();
  // Any thread or signal handler: run() returns after the callbacks of the current round.
  void stop() noexcept;
  bool stop_requested() const { return stop_.load(std::memory_order_acquire); }

  size_t handlers() const { return handlers_.size(); }
  // For error messages and tests: the purpose a handler was registered with ("" when unknown).
  std::string purpose(Id id) const;

 private:
  enum class Kind { kFd, kTimer, kNotifier, kSignal };
  struct Handler {
    Kind kind;
    std::string purpose;
    int fd = -1;
    uint32_t interest = 0;
    FdCallback fd_cb;
    Callback cb;
    SignalCallback signal_cb;
    int signo = 0;
    std::chrono::nanoseconds period{0};  // 0: one-shot
    Clock::time_point deadline{};
    std::shared_ptr<Notifier> notifier;
  };
  struct TimerEntry {
    Clock::time_point deadline;
    uint64_t seq;  // registration / re-arm order: earlier first at equal deadlines
    Id id;
    bool operator>(const TimerEntry& o) const { return deadline != o.deadline ? deadline > o.deadline : seq > o.seq; }
  };

  Id next_id() { return next_id_++; }
  Id add_timer_impl(std::chrono::nanoseconds delay, std::chrono::nanoseconds period, Callback cb,
                    std::string purpose);
  std::shared_ptr<Handler> find(Id id) const;
  size_t dispatch_wake();
  size_t run_timers();

  int epoll_fd_ = -1;
  std::shared_ptr<Notifier::Wake> wake_;  // the eventfd every cross-thread path writes to
  std::unordered_map<Id, std::shared_ptr<Handler>> handlers_;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers_;
  uint64_t timer_seq_ = 0;
  Id next_id_ = 1;
  std::atomic<bool> stop_{false};
  std::mutex post_mu_;
  std::deque<Callback> posted_;  // under post_mu_
  std::map<int, Id> signals_;    // signo -> handler
};

}  // namespace esw::dp
