#include "dataplane/daemon/event_loop.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "dataplane/error.h"

namespace esw::dp {

struct EventLoop::Notifier::Wake {
  int fd = -1;
  explicit Wake(int f) : fd(f) {}
  Wake(const Wake&) = delete;
  Wake& operator=(const Wake&) = delete;
  ~Wake() {
    if (fd >= 0) ::close(fd);
  }
  void wake() const noexcept {
    const uint64_t one = 1;
    // EAGAIN only when the counter is about to overflow: the loop is awake anyway.
    (void)!::write(fd, &one, sizeof(one));
  }
};

namespace {

constexpr EventLoop::Id kWakeId = 0;
constexpr int kMaxEvents = 64;
constexpr int kMaxSignal = 64;

// The signal path: the handler only sets a bit and writes the owning loop's eventfd (async-signal-safe).
std::atomic<int> g_signal_fd{-1};
std::atomic<uint64_t> g_signal_pending{0};
EventLoop* g_signal_owner = nullptr;  // loop thread only
std::array<struct sigaction, kMaxSignal + 1> g_old_actions{};

void on_signal(int signo) {
  const int saved = errno;
  if (signo > 0 && signo <= kMaxSignal) g_signal_pending.fetch_or(uint64_t{1} << (signo - 1));
  const int fd = g_signal_fd.load();
  if (fd >= 0) {
    const uint64_t one = 1;
    (void)!::write(fd, &one, sizeof(one));
  }
  errno = saved;
}

std::string errno_text(int err) { return fmt::format("{} (errno {})", std::strerror(err), err); }

uint32_t to_epoll(uint32_t interest) {
  uint32_t ev = 0;
  if (interest & EventLoop::kRead) ev |= EPOLLIN | EPOLLRDHUP;
  if (interest & EventLoop::kWrite) ev |= EPOLLOUT;
  return ev;
}

uint32_t from_epoll(uint32_t ev) {
  uint32_t out = 0;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) out |= EventLoop::kRead;
  if (ev & EPOLLOUT) out |= EventLoop::kWrite;
  if (ev & EPOLLHUP) out |= EventLoop::kHangup;
  if (ev & EPOLLERR) out |= EventLoop::kError;
  return out;
}

}  // namespace

void EventLoop::Notifier::notify() noexcept {
  if (removed_.load(std::memory_order_acquire)) return;
  if (pending_.exchange(true, std::memory_order_acq_rel)) return;  // already on its way
  wake_->wake();
}

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw Error(fmt::format("event loop: epoll_create1: {}", errno_text(errno)));
  const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    const int err = errno;
    ::close(epoll_fd_);
    throw Error(fmt::format("event loop: eventfd (wake-up): {}", errno_text(err)));
  }
  wake_ = std::make_shared<Notifier::Wake>(efd);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, efd, &ev) != 0) {
    const int err = errno;
    ::close(epoll_fd_);
    throw Error(fmt::format("event loop: epoll_ctl(ADD) fd {} (wake-up eventfd): {}", efd, errno_text(err)));
  }
}

EventLoop::~EventLoop() {
  std::vector<Id> ids;
  ids.reserve(handlers_.size());
  for (const auto& [id, h] : handlers_) ids.push_back(id);
  for (Id id : ids) remove(id);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

std::shared_ptr<EventLoop::Handler> EventLoop::find(Id id) const {
  auto it = handlers_.find(id);
  return it == handlers_.end() ? nullptr : it->second;
}

std::string EventLoop::purpose(Id id) const {
  auto h = find(id);
  return h ? h->purpose : std::string();
}

EventLoop::Id EventLoop::add_fd(int fd, uint32_t interest, FdCallback cb, std::string purpose) {
  if (!cb) throw Error(fmt::format("event loop: add_fd fd {} ({}): no callback", fd, purpose));
  const Id id = next_id();
  epoll_event ev{};
  ev.events = to_epoll(interest);
  ev.data.u64 = id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    throw Error(fmt::format("event loop: epoll_ctl(ADD) fd {} ({}): {}", fd, purpose, errno_text(errno)));
  }
  auto h = std::make_shared<Handler>();
  h->kind = Kind::kFd;
  h->purpose = std::move(purpose);
  h->fd = fd;
  h->interest = interest;
  h->fd_cb = std::move(cb);
  handlers_.emplace(id, std::move(h));
  return id;
}

void EventLoop::modify_fd(Id id, uint32_t interest) {
  auto h = find(id);
  if (h == nullptr || h->kind != Kind::kFd) {
    throw Error(fmt::format("event loop: modify_fd: handler {} is not a registered fd", id));
  }
  if (h->interest == interest) return;
  epoll_event ev{};
  ev.events = to_epoll(interest);
  ev.data.u64 = id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, h->fd, &ev) != 0) {
    throw Error(fmt::format("event loop: epoll_ctl(MOD) fd {} ({}): {}", h->fd, h->purpose, errno_text(errno)));
  }
  h->interest = interest;
}

EventLoop::Id EventLoop::add_timer_impl(std::chrono::nanoseconds delay, std::chrono::nanoseconds period, Callback cb,
                                        std::string purpose) {
  if (!cb) throw Error(fmt::format("event loop: timer ({}): no callback", purpose));
  if (delay.count() < 0 || period.count() < 0) {
    throw Error(fmt::format("event loop: timer ({}): negative delay or period", purpose));
  }
  const Id id = next_id();
  auto h = std::make_shared<Handler>();
  h->kind = Kind::kTimer;
  h->purpose = std::move(purpose);
  h->cb = std::move(cb);
  h->period = period;
  h->deadline = Clock::now() + delay;
  timers_.push({h->deadline, timer_seq_++, id});
  handlers_.emplace(id, std::move(h));
  return id;
}

EventLoop::Id EventLoop::add_timer(std::chrono::nanoseconds period, Callback cb, std::string purpose) {
  if (period.count() <= 0) throw Error(fmt::format("event loop: periodic timer ({}): period must be > 0", purpose));
  return add_timer_impl(period, period, std::move(cb), std::move(purpose));
}

EventLoop::Id EventLoop::add_oneshot(std::chrono::nanoseconds delay, Callback cb, std::string purpose) {
  return add_timer_impl(delay, std::chrono::nanoseconds(0), std::move(cb), std::move(purpose));
}

std::shared_ptr<EventLoop::Notifier> EventLoop::add_notifier(Callback cb, std::string purpose) {
  if (!cb) throw Error(fmt::format("event loop: notifier ({}): no callback", purpose));
  const Id id = next_id();
  auto h = std::make_shared<Handler>();
  h->kind = Kind::kNotifier;
  h->purpose = std::move(purpose);
  h->cb = std::move(cb);
  h->notifier = std::shared_ptr<Notifier>(new Notifier(id, wake_));
  auto n = h->notifier;
  handlers_.emplace(id, std::move(h));
  return n;
}

EventLoop::Id EventLoop::add_signal(int signo, SignalCallback cb, std::string purpose) {
  if (!cb) throw Error(fmt::format("event loop: signal {} ({}): no callback", signo, purpose));
  if (signo <= 0 || signo > kMaxSignal) {
    throw Error(fmt::format("event loop: signal {} ({}): out of range", signo, purpose));
  }
  if (g_signal_owner != nullptr && g_signal_owner != this) {
    throw Error(fmt::format("event loop: signal {} ({}): another event loop handles signals", signo, purpose));
  }
  if (signals_.count(signo) != 0) {
    throw Error(fmt::format("event loop: signal {} ({}): already handled by \"{}\"", signo, purpose,
                            this->purpose(signals_[signo])));
  }
  g_signal_owner = this;
  g_signal_fd.store(wake_->fd);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (sigaction(signo, &sa, &g_old_actions[signo]) != 0) {
    throw Error(fmt::format("event loop: sigaction({}) ({}): {}", signo, purpose, errno_text(errno)));
  }
  const Id id = next_id();
  auto h = std::make_shared<Handler>();
  h->kind = Kind::kSignal;
  h->purpose = std::move(purpose);
  h->signal_cb = std::move(cb);
  h->signo = signo;
  handlers_.emplace(id, std::move(h));
  signals_[signo] = id;
  return id;
}

void EventLoop::remove(Id id) {
  auto it = handlers_.find(id);
  if (it == handlers_.end()) return;
  std::shared_ptr<Handler> h = std::move(it->second);  // a running callback holds its own reference
  handlers_.erase(it);
  switch (h->kind) {
    case Kind::kFd:
      // ENOENT/EBADF: the owner closed the fd first, which took it out of epoll already.
      (void)epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, h->fd, nullptr);
      break;
    case Kind::kTimer:
      break;  // its heap entry is skipped when it comes up
    case Kind::kNotifier:
      h->notifier->removed_.store(true, std::memory_order_release);
      break;
    case Kind::kSignal:
      sigaction(h->signo, &g_old_actions[h->signo], nullptr);
      signals_.erase(h->signo);
      if (signals_.empty() && g_signal_owner == this) {
        g_signal_fd.store(-1);
        g_signal_owner = nullptr;
      }
      break;
  }
}

bool EventLoop::post(Callback fn) {
  {
    std::lock_guard lock(post_mu_);
    if (posted_.size() >= kPostCapacity) return false;
    posted_.push_back(std::move(fn));
  }
  wake_->wake();
  return true;
}

void EventLoop::stop() noexcept {
  stop_.store(true, std::memory_order_release);
  wake_->wake();
}

size_t EventLoop::dispatch_wake() {
  uint64_t v;
  while (::read(wake_->fd, &v, sizeof(v)) > 0) {
  }
  size_t ran = 0;
  // Signals first: a stop request should not wait behind posted work.
  const uint64_t sigs = g_signal_owner == this ? g_signal_pending.exchange(0) : 0;
  for (int s = 1; s <= kMaxSignal && sigs != 0; ++s) {
    if ((sigs & (uint64_t{1} << (s - 1))) == 0) continue;
    auto it = signals_.find(s);
    if (it == signals_.end()) continue;
    auto h = find(it->second);
    if (h == nullptr) continue;
    h->signal_cb(s);
    ++ran;
  }
  // Notifiers: collect first, since a callback may add or remove handlers.
  std::vector<std::pair<Id, std::shared_ptr<Handler>>> due;
  for (const auto& [id, h] : handlers_) {
    if (h->kind == Kind::kNotifier && h->notifier->pending_.load(std::memory_order_acquire)) due.emplace_back(id, h);
  }
  std::sort(due.begin(), due.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [id, h] : due) {
    if (handlers_.count(id) == 0) continue;  // removed by an earlier callback of this round
    // Cleared before the call: a notify() during the callback runs it again.
    h->notifier->pending_.store(false, std::memory_order_release);
    h->cb();
    ++ran;
  }
  std::deque<Callback> posted;
  {
    std::lock_guard lock(post_mu_);
    posted.swap(posted_);
  }
  for (auto& fn : posted) {
    fn();
    ++ran;
  }
  return ran;
}

size_t EventLoop::run_timers() {
  size_t ran = 0;
  const Clock::time_point now = Clock::now();
  while (!timers_.empty() && timers_.top().deadline <= now) {
    const TimerEntry e = timers_.top();
    timers_.pop();
    auto h = find(e.id);
    if (h == nullptr || h->kind != Kind::kTimer || h->deadline != e.deadline) continue;  // removed
    if (h->period.count() == 0) {
      handlers_.erase(e.id);  // a one-shot is gone once it fires; `h` keeps it alive for the call
      h->cb();
      ++ran;
      continue;
    }
    h->cb();
    ++ran;
    // Re-armed after the call, unless the callback removed it. Fell behind (a slow callback, a busy loop): the
    // next call is one period from now, not a burst of catch-up calls.
    auto still = handlers_.find(e.id);
    if (still == handlers_.end() || still->second != h) continue;
    const Clock::time_point after = Clock::now();
    Clock::time_point next = e.deadline + h->period;
    if (next <= after) next = after + h->period;
    h->deadline = next;
    timers_.push({next, timer_seq_++, e.id});
  }
  return ran;
}

size_t EventLoop::run_once(std::chrono::milliseconds max_wait) {
  // Skip removed timers at the top so they do not cut the wait short.
  while (!timers_.empty()) {
    auto h = find(timers_.top().id);
    if (h != nullptr && h->kind == Kind::kTimer && h->deadline == timers_.top().deadline) break;
    timers_.pop();
  }
  int timeout = max_wait.count() < 0 ? -1 : static_cast<int>(std::min<int64_t>(max_wait.count(), INT32_MAX));
  if (!timers_.empty()) {
    const auto until = timers_.top().deadline - Clock::now();
    // Rounded up: waking a little late is fine, waking early would spin until the deadline.
    const int64_t ms = until.count() <= 0 ? 0
                                          : std::chrono::ceil<std::chrono::milliseconds>(until).count();
    if (timeout < 0 || ms < timeout) timeout = static_cast<int>(std::min<int64_t>(ms, INT32_MAX));
  }
  if (stop_requested()) timeout = 0;
  std::array<epoll_event, kMaxEvents> events;
  const int n = epoll_wait(epoll_fd_, events.data(), kMaxEvents, timeout);
  if (n < 0 && errno != EINTR) {
    throw Error(fmt::format("event loop: epoll_wait (epoll fd {}): {}", epoll_fd_, errno_text(errno)));
  }
  size_t ran = 0;
  bool woken = false;
  for (int i = 0; i < n; ++i) {
    const Id id = events[i].data.u64;
    if (id == kWakeId) {
      woken = true;
      continue;
    }
    auto h = find(id);
    if (h == nullptr || h->kind != Kind::kFd) continue;  // removed by an earlier callback of this round
    h->fd_cb(from_epoll(events[i].events));
    ++ran;
  }
  if (woken) ran += dispatch_wake();
  ran += run_timers();
  return ran;
}

void EventLoop::run() {
  while (!stop_requested()) run_once(std::chrono::milliseconds(-1));
  stop_.store(false, std::memory_order_release);
}

}  // namespace esw::dp
