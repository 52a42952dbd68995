#pragma once
// When a client-mode vhost-user vport connects to its guest's socket (issue 10 item 3: reconnect under 100 ms).
//
// rte_vhost's own client reconnect retries once a second (lib/vhost/socket.c vhost_user_client_reconnect:
// sleep(1)), so a VM whose socket comes back waits up to a second for eswitchd. Instead the port registers its
// socket with RTE_VHOST_USER_NO_RECONNECT and eswitchd decides every connect itself, on the main lcore:
//  - an inotify watch on the socket's directory: the socket's name created, moved in or its attributes changed
//    (QEMU binds, then listens: a connect in between is refused, so a failed attempt is retried quickly);
//  - the session closed (the guest stopped or died): one attempt at once, as rte_vhost does;
//  - a fallback tick once a second: the socket exists and is not the one a connect was last refused on
//    (a socket file whose listener died stays refused; a new listener always makes a new file), or the last
//    failure was something else than "refused / no such file" (e.g. a full listen backlog).
// A guest that ends its sessions as soon as they start (a hostile or broken VMM: accept, close, accept...) would
// make that a tight loop of connects, session logs and rte_vhost registrations on the main lcore. So a session
// shorter than kShortSessionNs holds every next attempt back, 16 ms after the first such session, doubling up to
// a second; a session that lasts resets it. Counted (`reconnects_held`).
// A connect attempt is rte_vhost_driver_unregister + register + start (VhostUserPort::reconnect_driver): with no
// session and no rte_vhost reconnect thread for this socket there is nothing to tear down and no other party
// that could connect meanwhile (the only connects are these, made on the main lcore). The connect itself is
// non-blocking (rte_vhost's client socket is O_NONBLOCK), so the main loop never waits on the guest.
//
// SocketWatch holds the timing and the two fds (inotify, timerfd for the quick retries) the main loop polls
// through the port's service_fds(); the port makes the attempts. Main lcore only, no locks.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace esw::vdpa {

class SocketWatch {
 public:
  enum class Trigger : uint8_t { kNone, kOpen, kAppeared, kClosed, kRetry, kTick };
  static const char* trigger_name(Trigger t);

  SocketWatch() = default;
  SocketWatch(const SocketWatch&) = delete;
  SocketWatch& operator=(const SocketWatch&) = delete;
  ~SocketWatch() { close(); }

  // Watches `socket`'s directory. Returns "" or what failed (the port then still connects on the fallback tick).
  std::string open(const std::string& socket);
  void close() noexcept;
  bool active() const { return active_; }
  std::vector<int> fds() const;

  // The main lcore's turn (the port's service()): drains the fds and says whether a connect attempt is due now
  // and why. `session` says whether the port has a vhost-user session (no attempt while it has).
  Trigger due(bool session, uint64_t now_ns) noexcept;
  // The session just closed: the next due() attempts at once.
  void session_closed() noexcept { closed_pending_ = true; }
  // The outcome of the attempt due() asked for; `err` is errno after a failed one.
  void attempted(Trigger why, bool connected, int err, uint64_t now_ns) noexcept;

  // When the trigger that led to the last successful attempt happened (the socket appeared, ...), for the log.
  uint64_t trigger_ns() const { return trigger_ns_; }
  // What a quick retry retries for (the socket appeared, the session closed, the port opened...).
  Trigger retry_for() const { return retry_for_; }
  // Counted from due()'s attempts (not the port's first connect at open).
  uint64_t attempts() const { return attempts_; }
  uint64_t connects() const { return connects_; }
  uint64_t tick_connects() const { return tick_connects_; }  // made by the once-a-second fallback, not the watch
  uint64_t held() const { return held_; }  // sessions that ended too soon, after which the next attempt waited
  // How long attempts wait after the last too-short session (0: they do not).
  uint64_t hold_ns() const { return hold_ns_; }
  static constexpr uint64_t kShortSessionNs = 1'000'000'000;
  void add_counters(std::vector<std::pair<std::string, uint64_t>>& out) const;

  static uint64_t now_ns();

 private:
  struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    int64_t ctime_ns = 0;
    bool operator==(const FileId&) const = default;
  };
  static bool socket_id(const std::string& path, FileId& id);
  void drain_inotify() noexcept;
  void arm_retry(uint64_t now_ns) noexcept;
  void arm_timer(uint64_t in_ns) noexcept;
  void disarm_retry() noexcept;
  void add_watch() noexcept;

  std::string socket_, dir_, name_;
  bool active_ = false;
  int inotify_fd_ = -1;
  int watch_wd_ = -1;
  int timer_fd_ = -1;
  bool appeared_pending_ = false;
  bool closed_pending_ = false;
  bool had_session_ = false;
  uint64_t appeared_ns_ = 0;
  // Quick retries after a trigger: until retry_until_ns_, every kRetryStep (the timerfd wakes the main loop).
  uint64_t retry_until_ns_ = 0;
  uint64_t next_retry_ns_ = 0;
  Trigger retry_for_ = Trigger::kNone;
  uint64_t retry_origin_ns_ = 0;
  uint64_t next_tick_ns_ = 0;
  // The socket a connect was refused on (ECONNREFUSED / ENOENT): the fallback tick does not retry it.
  FileId refused_{};
  bool refused_valid_ = false;
  bool last_err_hopeless_ = false;
  uint64_t trigger_ns_ = 0;
  // Damping of sessions that end at once (see above).
  uint64_t session_start_ns_ = 0;
  uint64_t hold_ns_ = 0;
  uint64_t hold_until_ns_ = 0;
  uint64_t attempts_ = 0, connects_ = 0, tick_connects_ = 0, held_ = 0;
};

}  // namespace esw::vdpa
