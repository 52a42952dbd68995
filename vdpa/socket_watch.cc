#include "vdpa/socket_watch.h"

#include <rte_vhost.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "vdpa/vhost_port.h"

namespace esw::vdpa {

namespace {
// Quick retries after a trigger: 1, 2, 4 ... 512 ms after it (QEMU binds its socket, then listens: a connect
// between the two is refused), then the socket counts as refused until it is made again.
constexpr uint64_t kFirstRetryNs = 1'000'000;
constexpr uint64_t kRetryWindowNs = 1'100'000'000;
constexpr uint64_t kTickNs = 1'000'000'000;  // the fallback, as often as rte_vhost's own reconnect thread
constexpr uint64_t kFirstHoldNs = 16'000'000;  // after a session shorter than kShortSessionNs; doubles to kTickNs
}  // namespace

const char* SocketWatch::trigger_name(Trigger t) {
  switch (t) {
    case Trigger::kNone: return "nothing";
    case Trigger::kOpen: return "the port opened";
    case Trigger::kAppeared: return "the socket appeared";
    case Trigger::kClosed: return "the session closed";
    case Trigger::kRetry: return "a quick retry";
    case Trigger::kTick: return "the once-a-second check";
  }
  return "?";
}

uint64_t SocketWatch::now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::string SocketWatch::open(const std::string& socket) {
  close();
  socket_ = socket;
  const size_t slash = socket.rfind('/');
  dir_ = slash == 0 ? "/" : socket.substr(0, slash);
  name_ = socket.substr(slash + 1);
  active_ = true;
  next_tick_ns_ = now_ns() + kTickNs;
  std::string err;
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) err = fmt::format("timerfd_create: {}", strerror(errno));
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    err += fmt::format("{}inotify_init1: {}", err.empty() ? "" : "; ", strerror(errno));
  } else {
    add_watch();
    if (watch_wd_ < 0) err += fmt::format("{}inotify_add_watch {}: {}", err.empty() ? "" : "; ", dir_, strerror(errno));
  }
  return err;
}

void SocketWatch::close() noexcept {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (timer_fd_ >= 0) ::close(timer_fd_);
  inotify_fd_ = timer_fd_ = watch_wd_ = -1;
  active_ = false;
  appeared_pending_ = closed_pending_ = had_session_ = false;
  retry_until_ns_ = 0;
  refused_valid_ = false;
}

std::vector<int> SocketWatch::fds() const {
  std::vector<int> v;
  if (inotify_fd_ >= 0) v.push_back(inotify_fd_);
  if (timer_fd_ >= 0) v.push_back(timer_fd_);
  return v;
}

void SocketWatch::add_watch() noexcept {
  if (inotify_fd_ < 0) return;
  watch_wd_ = inotify_add_watch(inotify_fd_, dir_.c_str(),
                                IN_CREATE | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
  // A directory made again after it vanished: its socket may already be there.
  if (watch_wd_ >= 0) {
    FileId id;
    if (socket_id(socket_, id) && !(refused_valid_ && id == refused_)) {
      appeared_pending_ = true;
      appeared_ns_ = now_ns();
    }
  }
}

bool SocketWatch::socket_id(const std::string& path, FileId& id) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  return true;
}

void SocketWatch::drain_inotify() noexcept {
  if (inotify_fd_ < 0) return;
  alignas(inotify_event) char buf[4096];
  for (;;) {
    const ssize_t n = ::read(inotify_fd_, buf, sizeof(buf));
    if (n <= 0) return;
    for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        watch_wd_ = -1;  // the directory went away: watched again from the tick once it is back
        continue;
      }
      const bool ours = ev->len > 0 && name_ == ev->name;
      if (ours || (ev->mask & IN_Q_OVERFLOW)) {
        appeared_pending_ = true;
        appeared_ns_ = now_ns();
      }
    }
  }
}

void SocketWatch::arm_retry(uint64_t now) noexcept { arm_timer(next_retry_ns_ > now ? next_retry_ns_ - now : 1); }

void SocketWatch::arm_timer(uint64_t in) noexcept {
  if (timer_fd_ < 0) return;
  itimerspec t{};
  t.it_value.tv_sec = static_cast<time_t>(in / 1'000'000'000);
  t.it_value.tv_nsec = static_cast<long>(in % 1'000'000'000);
  timerfd_settime(timer_fd_, 0, &t, nullptr);
}

void SocketWatch::disarm_retry() noexcept {
  retry_until_ns_ = 0;
  if (timer_fd_ < 0) return;
  itimerspec t{};
  timerfd_settime(timer_fd_, 0, &t, nullptr);
}

SocketWatch::Trigger SocketWatch::due(bool session, uint64_t now) noexcept {
  if (!active_) return Trigger::kNone;
  drain_inotify();
  if (timer_fd_ >= 0) {
    uint64_t expirations;
    [[maybe_unused]] auto r = ::read(timer_fd_, &expirations, sizeof(expirations));
  }
  if (had_session_ && !session) {
    closed_pending_ = true;
    if (now - session_start_ns_ < kShortSessionNs) {
      hold_ns_ = hold_ns_ == 0 ? kFirstHoldNs : std::min(2 * hold_ns_, kTickNs);
      hold_until_ns_ = now + hold_ns_;
      ++held_;
    } else {
      hold_ns_ = 0;
    }
  }
  had_session_ = session;
  if (session) {
    appeared_pending_ = closed_pending_ = false;
    if (retry_until_ns_ != 0) disarm_retry();
    return Trigger::kNone;
  }
  if (watch_wd_ < 0 && inotify_fd_ >= 0 && now >= next_tick_ns_) add_watch();
  if (now < hold_until_ns_) {  // the last session ended too soon: whatever is pending waits (the timer wakes us)
    arm_timer(hold_until_ns_ - now);
    return Trigger::kNone;
  }
  if (appeared_pending_) {
    appeared_pending_ = closed_pending_ = false;
    retry_origin_ns_ = appeared_ns_;
    return Trigger::kAppeared;
  }
  if (closed_pending_) {
    closed_pending_ = false;
    retry_origin_ns_ = now;
    return Trigger::kClosed;
  }
  if (retry_until_ns_ != 0) {
    if (now > retry_until_ns_) {
      disarm_retry();
    } else if (now >= next_retry_ns_) {
      return Trigger::kRetry;
    } else {
      arm_retry(now);  // woken early (another fd, the service tick): keep the timer
      return Trigger::kNone;
    }
  }
  if (now >= next_tick_ns_) {
    next_tick_ns_ = now + kTickNs;
    FileId id;
    if (!socket_id(socket_, id)) return Trigger::kNone;       // nothing to connect to: the watch says when
    if (last_err_hopeless_ && refused_valid_ && id == refused_) return Trigger::kNone;  // its listener is gone
    retry_origin_ns_ = now;
    return Trigger::kTick;
  }
  return Trigger::kNone;
}

void SocketWatch::attempted(Trigger why, bool connected, int err, uint64_t now) noexcept {
  if (why != Trigger::kOpen) ++attempts_;
  if (connected) {
    if (why != Trigger::kOpen) ++connects_;
    if (why == Trigger::kTick) ++tick_connects_;
    trigger_ns_ = why == Trigger::kOpen ? now : retry_origin_ns_;
    had_session_ = true;
    session_start_ns_ = now;
    appeared_pending_ = closed_pending_ = false;  // served by this connect
    refused_valid_ = last_err_hopeless_ = false;
    disarm_retry();
    return;
  }
  last_err_hopeless_ = err == ECONNREFUSED || err == ENOENT;
  FileId id;
  const bool exists = socket_id(socket_, id);
  refused_valid_ = last_err_hopeless_ && exists;
  if (refused_valid_) refused_ = id;
  // Nothing to retry quickly without a socket (the watch says when it is made), nor after the once-a-second check
  // (a file the watch did not report as new: a listener behind a full backlog is tried again on the next check).
  if (!exists || why == Trigger::kTick) {
    disarm_retry();
    return;
  }
  if (why == Trigger::kRetry) {
    next_retry_ns_ = retry_origin_ns_ + 2 * (next_retry_ns_ - retry_origin_ns_);
  } else {
    retry_for_ = why;
    if (why == Trigger::kOpen) retry_origin_ns_ = now;
    retry_until_ns_ = retry_origin_ns_ + kRetryWindowNs;
    next_retry_ns_ = now + kFirstRetryNs;
  }
  if (next_retry_ns_ > retry_until_ns_) {
    disarm_retry();
  } else {
    arm_retry(now);
  }
}

void SocketWatch::add_counters(std::vector<std::pair<std::string, uint64_t>>& out) const {
  if (!active_) return;
  out.emplace_back("reconnect_attempts", attempts_);
  out.emplace_back("reconnects", connects_);
  out.emplace_back("reconnects_tick", tick_connects_);
  out.emplace_back("reconnects_held", held_);
}

// --- the port's side (vhost_port.h), main lcore ------------------------------------------------------------

bool VhostUserPort::reconnect_driver(int& err) noexcept {
  unregister_driver();  // no session (the caller checked) and no rte_vhost reconnect: nothing is torn down
  try {
    register_driver();
  } catch (const std::exception& e) {
    fmt::print("eswitchd: vport {}: error: reconnect: {}\n", spec_.name, e.what());
    fflush(stdout);
    err = EINVAL;
    return false;
  }
  err = connect_errno_;
  return live_sessions_.load(std::memory_order_acquire) > 0;
}

void VhostUserPort::serve_watch() noexcept {
  if (!args_.client || !sock_watch_.active()) return;
  const SocketWatch::Trigger why = sock_watch_.due(live_sessions_.load(std::memory_order_acquire) > 0, SocketWatch::now_ns());
  if (why == SocketWatch::Trigger::kNone) return;
  int err = 0;
  const bool ok = reconnect_driver(err);
  const uint64_t now = SocketWatch::now_ns();
  sock_watch_.attempted(why, ok, err, now);
  if (ok) {
    fmt::print("eswitchd: vport {}: connected to the guest's socket {} {:.1f} ms after {} (socket watch; {} "
               "reconnects)\n",
               spec_.name, args_.socket, static_cast<double>(now - sock_watch_.trigger_ns()) / 1e6,
               SocketWatch::trigger_name(why == SocketWatch::Trigger::kRetry ? sock_watch_.retry_for() : why),
               sock_watch_.connects());
    fflush(stdout);
  }
}

}  // namespace esw::vdpa
