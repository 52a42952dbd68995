// libesw_smc_preload.so: transparent SMC-D for unmodified programs (LD_PRELOAD; `esw-smc-run COMMAND...` sets it
// up, like smc-tools' smc_run). The endpoint comes from ESW_SMC_ENDPOINT (the vport's ISM socket); without it, or
// when it cannot be opened, every call passes straight through.
//
// How a connection becomes SMC-D (IPv4 stream sockets only; IPv6 and everything else stays TCP):
//  - listen(): an SMC-enabled server announces (address, port) to the ISM service (esw_smc_listen).
//  - connect(): the client binds its ephemeral port first, asks the service whether an SMC-enabled listener is
//    announced for the destination and, if so, records its intent to send a CLC Proposal (esw_smc_connect_intent);
//    after the TCP handshake it runs the CLC exchange (esw_smcd_connect_fd). No listener announced: plain TCP, no
//    byte is added (so a server not under esw-smc-run sees plain TCP).
//  - accept(): the server asks the service whether this connection's client announced a Proposal
//    (esw_smc_take_intent); only then does it read the CLC messages (esw_smcd_accept_fd). A plain client: plain
//    TCP, nothing read, no timeout-based guess.
//  - On success the TCP socket moves to another fd number (kept open, idle) and the stream's eventfd (raised by the
//    peer on data, space and close) is dup'ed over the user's fd number: poll/select/epoll on that number are the
//    kernel's own, on the eventfd (readable when data, end of stream or an error may be there; always writable). The
//    library keeps the eventfd's level right: it drains it when a read finds nothing and raises it again when data is
//    left after a read.
//  - A Decline (either side): both keep the TCP connection, as is.
//  - connect() on a non-blocking socket is done blocking (TCP and CLC handshakes) and returns 0 (allowed for
//    non-blocking connects); accept() runs the CLC exchange blocking when the client announced it.
//
// Interposed on converted fds: read/recv/recvfrom/readv/recvmsg (MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL),
// write/send/sendto/writev/sendmsg (MSG_DONTWAIT, MSG_NOSIGNAL; SIGPIPE otherwise on a closed peer), the _chk
// variants, fcntl F_GETFL/F_SETFL (O_NONBLOCK), F_DUPFD, ioctl FIONBIO/FIONREAD, shutdown, close, dup/dup2/dup3,
// getsockopt/setsockopt/getsockname/getpeername (the TCP socket's). Not converted or not supported: sendfile/splice
// on a converted fd (they reach the eventfd and fail), epoll registrations made before connect()/accept() returned,
// static binaries (LD_PRELOAD), urgent data.
// fork: the child inherits converted fds and can use them if the parent does not use the same fd concurrently (the
// DMB mappings are shared); a close in the child only closes its fd numbers (the stream stays the parent's); the
// child opens its own endpoint connection for new connections. exec: converted fds do not survive usefully (the
// program gets an eventfd).
// Threads: one thread per converted fd at a time (as the stream); the endpoint connection is serialised by a mutex.

// The build sets _FILE_OFFSET_BITS=64, which renames fcntl to fcntl64 in glibc's headers: this file defines both
// names itself.
#undef _FILE_OFFSET_BITS
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "dataplane/smc/tenant/esw_smc.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace {

template <typename F>
F real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

using connect_t = int (*)(int, const sockaddr*, socklen_t);
using accept4_t = int (*)(int, sockaddr*, socklen_t*, int);
using listen_t = int (*)(int, int);
using bind_t = int (*)(int, const sockaddr*, socklen_t);
using close_t = int (*)(int);
using read_t = ssize_t (*)(int, void*, size_t);
using write_t = ssize_t (*)(int, const void*, size_t);
using recv_t = ssize_t (*)(int, void*, size_t, int);
using send_t = ssize_t (*)(int, const void*, size_t, int);
using recvfrom_t = ssize_t (*)(int, void*, size_t, int, sockaddr*, socklen_t*);
using sendto_t = ssize_t (*)(int, const void*, size_t, int, const sockaddr*, socklen_t);
using readv_t = ssize_t (*)(int, const iovec*, int);
using recvmsg_t = ssize_t (*)(int, msghdr*, int);
using sendmsg_t = ssize_t (*)(int, const msghdr*, int);
using dup_t = int (*)(int);
using dup2_t = int (*)(int, int);
using dup3_t = int (*)(int, int, int);
using fcntl_t = int (*)(int, int, ...);
using ioctl_t = int (*)(int, unsigned long, ...);
using shutdown_t = int (*)(int, int);
using getsockopt_t = int (*)(int, int, int, void*, socklen_t*);
using setsockopt_t = int (*)(int, int, int, const void*, socklen_t);
using getname_t = int (*)(int, sockaddr*, socklen_t*);
using poll_t = int (*)(pollfd*, nfds_t, int);
using select_t = int (*)(int, fd_set*, fd_set*, fd_set*, timeval*);
using epoll_wait_t = int (*)(int, epoll_event*, int, int);

struct Real {
  connect_t connect = real<connect_t>("connect");
  accept4_t accept4 = real<accept4_t>("accept4");
  listen_t listen = real<listen_t>("listen");
  bind_t bind = real<bind_t>("bind");
  close_t close = real<close_t>("close");
  read_t read = real<read_t>("read");
  write_t write = real<write_t>("write");
  recv_t recv = real<recv_t>("recv");
  send_t send = real<send_t>("send");
  recvfrom_t recvfrom = real<recvfrom_t>("recvfrom");
  sendto_t sendto = real<sendto_t>("sendto");
  readv_t readv = real<readv_t>("readv");
  readv_t writev = real<readv_t>("writev");
  recvmsg_t recvmsg = real<recvmsg_t>("recvmsg");
  sendmsg_t sendmsg = real<sendmsg_t>("sendmsg");
  dup_t dup = real<dup_t>("dup");
  dup2_t dup2 = real<dup2_t>("dup2");
  dup3_t dup3 = real<dup3_t>("dup3");
  fcntl_t fcntl = real<fcntl_t>("fcntl");
  ioctl_t ioctl = real<ioctl_t>("ioctl");
  shutdown_t shutdown = real<shutdown_t>("shutdown");
  getsockopt_t getsockopt = real<getsockopt_t>("getsockopt");
  setsockopt_t setsockopt = real<setsockopt_t>("setsockopt");
  getname_t getsockname = real<getname_t>("getsockname");
  getname_t getpeername = real<getname_t>("getpeername");
  poll_t poll = real<poll_t>("poll");
  select_t select = real<select_t>("select");
  epoll_wait_t epoll_wait = real<epoll_wait_t>("epoll_wait");
};

Real& R() {
  static Real r;
  return r;
}

struct Conn {
  esw_smcd_stream* st = nullptr;
  // Processes holding this stream (shared memory page: fork copies the Conn, not this counter). The last process
  // to close its last fd number closes the stream (the peer sees the end); the others only drop their numbers.
  std::atomic<int>* holders = nullptr;
  int tcp_fd = -1;
  std::atomic<int> refs{1};
  std::atomic<bool> nonblock{false};
  std::atomic<bool> rd_shut{false}, wr_shut{false};
};

constexpr int kMaxFd = 65536;
std::atomic<Conn*> g_conn[kMaxFd];
// Live streams for the optional polling before poll/select/epoll_wait sleep (ESW_SMC_POLL_SPIN_US).
constexpr int kLive = 256;
std::atomic<Conn*> g_live[kLive];
std::atomic<int> g_nlive{0};
int g_spin_us = -1;
std::atomic<bool> g_listen[kMaxFd];

std::recursive_mutex g_mu;  // the endpoint connection (one request at a time)
esw_smc* g_ism = nullptr;
bool g_tried = false;
bool g_child = false;  // after fork (no cursor polling in a child)
int g_debug = -1;

bool debug() {
  if (g_debug < 0) g_debug = std::getenv("ESW_SMC_DEBUG") ? 1 : 0;
  return g_debug == 1;
}

void log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log(const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > static_cast<int>(sizeof buf) - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  [[maybe_unused]] ssize_t w = R().write(2, buf, static_cast<size_t>(n));
}

void live_add(struct Conn* c);
// Before fork: every live stream gets one more holder (the child). A stream not in the live list (more than kLive
// at once) is not counted: the first process to close it ends it.
void before_fork();

void after_fork_child() {
  g_child = true;
  g_ism = nullptr;  // the parent's endpoint connection must not carry our requests; open our own when needed
  g_tried = false;
}

// The process's endpoint connection (caller holds g_mu); nullptr: pass through.
esw_smc* ism() {
  if (g_ism || g_tried) return g_ism;
  g_tried = true;
  static bool atfork = false;
  if (!atfork) atfork = pthread_atfork(before_fork, nullptr, after_fork_child) == 0;
  const char* ep = std::getenv("ESW_SMC_ENDPOINT");
  if (!ep || !*ep) return nullptr;
  if (esw_smc_open(ep, &g_ism) != 0) {
    log("esw-smc-run: %s: SMC-D disabled, plain TCP", esw_smc_last_error());
    g_ism = nullptr;
    return nullptr;
  }
  if (const char* sz = std::getenv("ESW_SMC_DMB_SIZE")) {
    if (esw_smc_set_dmb_size(g_ism, std::strtoull(sz, nullptr, 0)) != 0) log("esw-smc-run: %s", esw_smc_last_error());
  }
  return g_ism;
}

Conn* conn_of(int fd) { return fd >= 0 && fd < kMaxFd ? g_conn[fd].load(std::memory_order_acquire) : nullptr; }

// The first live-list slot holding `from` takes `to`; false when none holds it (the list is full, or c is not in it).
bool live_swap(Conn* from, Conn* to) {
  for (auto& slot : g_live) {
    Conn* expected = from;
    if (slot.compare_exchange_strong(expected, to)) return true;
  }
  return false;
}
void live_add(Conn* c) {
  if (live_swap(nullptr, c)) g_nlive.fetch_add(1);
}
void live_del(Conn* c) {
  if (live_swap(c, nullptr)) g_nlive.fetch_sub(1);
}

void before_fork() {
  for (auto& slot : g_live)
    if (Conn* c = slot.load(std::memory_order_acquire)) c->holders->fetch_add(1);
}

void unref(Conn* c) {
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  live_del(c);
  const bool last = c->holders->fetch_sub(1) == 1;
  if (last) munmap(c->holders, sizeof *c->holders);
  if (last) {
    uint64_t sent = 0, received = 0;
    esw_smcd_counts(c->st, &sent, &received);
    std::lock_guard lock(g_mu);
    esw_smcd_close(c->st);
    if (debug()) log("esw-smc-run: smcd stream closed: sent=%llu received=%llu", static_cast<unsigned long long>(sent),
                     static_cast<unsigned long long>(received));
  }
  R().close(c->tcp_fd);
  delete c;
}

// Another fd number now refers to c (dup); whatever was recorded there is gone (the kernel closed it).
void attach(int fd, Conn* c) {
  if (fd < 0 || fd >= kMaxFd) return;
  if (c) c->refs.fetch_add(1, std::memory_order_relaxed);
  Conn* old = g_conn[fd].exchange(c, std::memory_order_acq_rel);
  if (old) unref(old);
}

bool is_inet_stream(int fd) {
  int type = 0, domain = 0;
  socklen_t l = sizeof type;
  if (R().getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) != 0 || type != SOCK_STREAM) return false;
  l = sizeof domain;
  return R().getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) == 0 && domain == AF_INET;
}

bool sock_name(int fd, bool peer, sockaddr_in* out) {
  socklen_t l = sizeof *out;
  int r = peer ? R().getpeername(fd, reinterpret_cast<sockaddr*>(out), &l) : R().getsockname(fd, reinterpret_cast<sockaddr*>(out), &l);
  return r == 0 && out->sin_family == AF_INET;
}

// The stream replaces the TCP socket at fd: the socket moves to a new number, the eventfd takes fd's number.
bool convert(int fd, esw_smcd_stream* st, bool nonblock) {
  if (fd >= kMaxFd) return false;
  const int fdflags = R().fcntl(fd, F_GETFD);
  const int tcp = R().fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (tcp < 0) return false;
  if (R().dup3(esw_smcd_event_fd(st), fd, (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
    R().close(tcp);
    return false;
  }
  auto* c = new (std::nothrow) Conn;
  if (!c) return false;
  void* h = mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (h == MAP_FAILED) {
    delete c;
    return false;
  }
  c->holders = new (h) std::atomic<int>(1);
  c->st = st;
  c->tcp_fd = tcp;
  c->nonblock = nonblock;
  attach(fd, nullptr);
  g_conn[fd].store(c, std::memory_order_release);
  live_add(c);
  return true;
}

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Before a program sleeps in poll/select/epoll_wait: poll the live streams' cursors for up to ESW_SMC_POLL_SPIN_US
// microseconds (default 0: off). True when one has data: the caller then asks the kernel without sleeping (the
// writer raises the eventfd right after publishing its cursor) before sleeping with the program's timeout. Pays only
// when the peer runs on another CPU at the same time. Single-threaded use of converted fds assumed while polling.
bool spin_for_data(int timeout_ms) {
  if (g_spin_us < 0) {
    const char* v = std::getenv("ESW_SMC_POLL_SPIN_US");
    g_spin_us = v ? std::atoi(v) : 0;
  }
  if (g_spin_us <= 0 || timeout_ms == 0 || g_nlive.load(std::memory_order_relaxed) == 0 || g_child) return false;
  const int64_t until = now_ns() + int64_t{g_spin_us} * 1000;
  for (int round = 0;; ++round) {
    for (auto& slot : g_live) {
      Conn* c = slot.load(std::memory_order_acquire);
      if (c && esw_smcd_readable(c->st) != 0) return true;
    }
    if ((round & 15) == 15 && now_ns() > until) return false;
    __builtin_ia32_pause();
  }
}

void set_blocking(int fd, int flags, bool blocking) {
  R().fcntl(fd, F_SETFL, blocking ? (flags & ~O_NONBLOCK) : flags);
}

int set_errno(ssize_t r) {
  errno = static_cast<int>(-r);
  return -1;
}

ssize_t do_recv(Conn* c, void* buf, size_t n, int flags) {
  if (c->rd_shut.load(std::memory_order_relaxed)) return 0;
  int f = 0;
  if (c->nonblock.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT)) f |= ESW_SMCD_DONTWAIT;
  if (flags & MSG_PEEK) f |= ESW_SMCD_PEEK;
  if ((flags & MSG_WAITALL) && !(f & (ESW_SMCD_DONTWAIT | ESW_SMCD_PEEK))) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = esw_smcd_recv_flags(c->st, static_cast<uint8_t*>(buf) + got, n - got, 0);
      if (r < 0) return got ? static_cast<ssize_t>(got) : set_errno(r);
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return static_cast<ssize_t>(got);
  }
  ssize_t r = esw_smcd_recv_flags(c->st, buf, n, f);
  return r < 0 ? set_errno(r) : r;
}

ssize_t do_send(Conn* c, const void* buf, size_t n, int flags, bool nosignal) {
  ssize_t r;
  if (c->wr_shut.load(std::memory_order_relaxed)) r = -EPIPE;
  else if (n == 0) return 0;
  else {
    const int f = c->nonblock.load(std::memory_order_relaxed) || (flags & MSG_DONTWAIT) ? ESW_SMCD_DONTWAIT : 0;
    r = esw_smcd_send_flags(c->st, buf, n, f);
  }
  if (r == -EPIPE && !nosignal) raise(SIGPIPE);
  return r < 0 ? set_errno(r) : r;
}

// recvfrom and recvmsg on a stream: no address (a connected stream's), no control data.
ssize_t do_recvfrom(Conn* c, void* buf, size_t n, int flags, socklen_t* alen) {
  if (alen) *alen = 0;
  return do_recv(c, buf, n, flags);
}

ssize_t do_readv(Conn* c, const iovec* iov, int cnt, int flags);
ssize_t do_recvmsg(Conn* c, msghdr* m, int flags) {
  m->msg_namelen = 0;
  m->msg_controllen = 0;
  m->msg_flags = 0;
  return do_readv(c, m->msg_iov, static_cast<int>(m->msg_iovlen), flags);
}

ssize_t do_readv(Conn* c, const iovec* iov, int cnt, int flags) {
  ssize_t total = 0;
  for (int i = 0; i < cnt; ++i) {
    if (iov[i].iov_len == 0) continue;
    ssize_t r = do_recv(c, iov[i].iov_base, iov[i].iov_len, total ? (flags | MSG_DONTWAIT) & ~MSG_WAITALL : flags);
    if (r < 0) return total ? total : -1;
    total += r;
    if (static_cast<size_t>(r) < iov[i].iov_len) break;
  }
  return total;
}

ssize_t do_writev(Conn* c, const iovec* iov, int cnt, int flags, bool nosignal) {
  ssize_t total = 0;
  for (int i = 0; i < cnt; ++i) {
    if (iov[i].iov_len == 0) continue;
    ssize_t r = do_send(c, iov[i].iov_base, iov[i].iov_len, flags, nosignal || total > 0);
    if (r < 0) return total ? total : -1;
    total += r;
    if (static_cast<size_t>(r) < iov[i].iov_len) break;
  }
  return total;
}

// Before a call that may sleep on the kernel's readiness (poll, epoll_wait): when spin_for_data saw data, the call
// is made up to 64 times without sleeping (call(0)) until it reports something; otherwise, or if it never does, it
// is made once with the program's timeout.
template <typename Call>
int spin_then_wait(int timeout, Call call) {
  if (spin_for_data(timeout)) {
    for (int i = 0; i < 64; ++i) {
      const int r = call(0);
      if (r != 0) return r;
    }
  }
  return call(timeout);
}

}  // namespace

// An interposed call FN(PARAMS) on fd: on a converted fd, SMC (an expression over the fd's Conn* c); on any other
// fd the real FN(ARGS).
#define ESW_INTERPOSE(ret, fn, params, args, smc) \
  EXPORT ret fn params {                          \
    Conn* c = conn_of(fd);                        \
    return c ? (smc) : R().fn args;               \
  }

// ---- connection set-up ------------------------------------------------------------------------------------------

EXPORT int listen(int fd, int backlog) {
  int r = R().listen(fd, backlog);
  if (r != 0 || fd >= kMaxFd || !is_inet_stream(fd)) return r;
  sockaddr_in a{};
  if (!sock_name(fd, false, &a)) return r;
  std::lock_guard lock(g_mu);
  esw_smc* s = ism();
  if (s && esw_smc_listen(s, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port), 1) == 0) {
    g_listen[fd] = true;
    if (debug()) log("esw-smc-run: fd %d listens with SMC-D on port %u", fd, ntohs(a.sin_port));
  }
  return r;
}

EXPORT int connect(int fd, const sockaddr* addr, socklen_t len) {
  if (!addr || addr->sa_family != AF_INET || len < sizeof(sockaddr_in) || conn_of(fd) || !is_inet_stream(fd))
    return R().connect(fd, addr, len);
  std::unique_lock lock(g_mu);
  esw_smc* s = ism();
  if (!s) {
    lock.unlock();
    return R().connect(fd, addr, len);
  }
  const auto* dst = reinterpret_cast<const sockaddr_in*>(addr);
  sockaddr_in local{};
  if (!sock_name(fd, false, &local) || local.sin_port == 0) {  // take the ephemeral port now, to announce it
    sockaddr_in any{};
    any.sin_family = AF_INET;
    if (R().bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || !sock_name(fd, false, &local)) {
      lock.unlock();
      return R().connect(fd, addr, len);
    }
  }
  if (esw_smc_connect_intent(s, ntohl(dst->sin_addr.s_addr), ntohs(dst->sin_port), ntohs(local.sin_port)) != 0) {
    lock.unlock();
    if (debug()) log("esw-smc-run: fd %d: no SMC-D listener announced there: plain TCP", fd);
    return R().connect(fd, addr, len);
  }
  const int fl = R().fcntl(fd, F_GETFL);
  const bool nonblock = fl > 0 && (fl & O_NONBLOCK);
  if (nonblock) set_blocking(fd, fl, true);
  int r = R().connect(fd, addr, len);
  if (r != 0) {
    int e = errno;
    if (nonblock) set_blocking(fd, fl, false);
    errno = e;
    return r;
  }
  esw_smcd_stream* st = nullptr;
  uint32_t decline = 0;
  const int h = esw_smcd_connect_fd(s, fd, &st, &decline);
  if (h == 0 && convert(fd, st, nonblock)) {
    if (debug()) log("esw-smc-run: fd %d connected over SMC-D", fd);
    return 0;
  }
  if (h == 0) esw_smcd_abort(st);
  if (nonblock) set_blocking(fd, fl, false);
  if (h == ESW_SMCD_FALLBACK) {
    if (debug()) log("esw-smc-run: fd %d: SMC-D declined (0x%08x: %s): TCP", fd, decline, esw_smc_last_error());
    return 0;
  }
  log("esw-smc-run: fd %d: CLC handshake failed: %s", fd, h < 0 ? esw_smc_last_error() : "cannot move the socket");
  errno = ECONNRESET;
  return -1;
}

EXPORT int accept4(int lfd, sockaddr* addr, socklen_t* alen, int flags) {
  int fd = R().accept4(lfd, addr, alen, flags);
  if (fd < 0 || lfd >= kMaxFd || !g_listen[lfd].load(std::memory_order_relaxed)) return fd;
  attach(fd, nullptr);  // a stale record for this number (closed behind our back) is gone
  sockaddr_in l{}, p{};
  if (!sock_name(fd, false, &l) || !sock_name(fd, true, &p)) return fd;
  std::lock_guard lock(g_mu);
  esw_smc* s = ism();
  if (!s || esw_smc_take_intent(s, ntohl(l.sin_addr.s_addr), ntohs(l.sin_port), ntohs(p.sin_port)) != 0) return fd;
  const int fl = R().fcntl(fd, F_GETFL);
  const bool nonblock = fl > 0 && (fl & O_NONBLOCK);
  if (nonblock) set_blocking(fd, fl, true);
  esw_smcd_stream* st = nullptr;
  uint32_t decline = 0;
  const int h = esw_smcd_accept_fd(s, fd, &st, &decline);
  if (h == 0 && convert(fd, st, nonblock)) {
    if (debug()) log("esw-smc-run: fd %d accepted over SMC-D", fd);
    return fd;
  }
  if (h == 0) esw_smcd_abort(st);
  if (nonblock) set_blocking(fd, fl, false);
  if (h == ESW_SMCD_FALLBACK) {
    if (debug()) log("esw-smc-run: fd %d: SMC-D declined (0x%08x): TCP", fd, decline);
    return fd;
  }
  log("esw-smc-run: accepted fd %d: CLC handshake failed: %s", fd, h < 0 ? esw_smc_last_error() : "cannot move the socket");
  R().close(fd);
  errno = ECONNABORTED;
  return -1;
}

EXPORT int accept(int lfd, sockaddr* addr, socklen_t* alen) { return accept4(lfd, addr, alen, 0); }

// ---- fd lifetime --------------------------------------------------------------------------------------------------

EXPORT int close(int fd) {
  if (fd >= 0 && fd < kMaxFd) {
    if (g_listen[fd].exchange(false)) {
      sockaddr_in a{};
      std::lock_guard lock(g_mu);
      if (sock_name(fd, false, &a) && g_ism) esw_smc_listen(g_ism, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port), 0);
    }
    if (Conn* c = g_conn[fd].exchange(nullptr, std::memory_order_acq_rel)) unref(c);
  }
  return R().close(fd);
}

EXPORT int dup(int fd) {
  int n = R().dup(fd);
  if (n >= 0) attach(n, conn_of(fd));
  return n;
}

EXPORT int dup3(int fd, int nfd, int flags) {
  int n = R().dup3(fd, nfd, flags);
  if (n >= 0) attach(n, conn_of(fd));
  return n;
}

EXPORT int dup2(int fd, int nfd) {
  if (fd == nfd) return R().dup2(fd, nfd);
  int n = R().dup2(fd, nfd);
  if (n >= 0) attach(n, conn_of(fd));
  return n;
}

namespace {
int do_fcntl(int fd, int cmd, long arg) {
  Conn* c = conn_of(fd);
  if (c && cmd == F_GETFL) return O_RDWR | (c->nonblock ? O_NONBLOCK : 0);
  if (c && cmd == F_SETFL) {
    c->nonblock = (arg & O_NONBLOCK) != 0;
    return 0;
  }
  int r = R().fcntl(fd, cmd, arg);
  if (c && r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) attach(r, c);
  return r;
}
}  // namespace

EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  return do_fcntl(fd, cmd, arg);
}

// What glibc's headers call fcntl with _FILE_OFFSET_BITS=64: the same function (the argument passes through as is).
EXPORT int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

EXPORT int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (Conn* c = conn_of(fd)) {
    if (req == FIONBIO && arg) {
      c->nonblock = *static_cast<int*>(arg) != 0;
      return 0;
    }
    if (req == FIONREAD && arg) {
      ssize_t n = esw_smcd_readable(c->st);
      *static_cast<int*>(arg) = n > 0 ? static_cast<int>(n) : 0;
      return 0;
    }
  }
  return R().ioctl(fd, req, arg);
}

EXPORT int shutdown(int fd, int how) {
  Conn* c = conn_of(fd);
  if (!c) return R().shutdown(fd, how);
  if (how == SHUT_RD || how == SHUT_RDWR) c->rd_shut = true;
  if ((how == SHUT_WR || how == SHUT_RDWR) && !c->wr_shut.exchange(true)) {
    int r = esw_smcd_shutdown(c->st);
    if (r < 0) return set_errno(r);
  }
  if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

// Socket options and names: the TCP socket's (kept open under another number).
ESW_INTERPOSE(int, getsockopt, (int fd, int level, int name, void* val, socklen_t* len), (fd, level, name, val, len),
              R().getsockopt(c->tcp_fd, level, name, val, len))
ESW_INTERPOSE(int, setsockopt, (int fd, int level, int name, const void* val, socklen_t len),
              (fd, level, name, val, len), R().setsockopt(c->tcp_fd, level, name, val, len))
ESW_INTERPOSE(int, getsockname, (int fd, sockaddr* a, socklen_t* l), (fd, a, l), R().getsockname(c->tcp_fd, a, l))
ESW_INTERPOSE(int, getpeername, (int fd, sockaddr* a, socklen_t* l), (fd, a, l), R().getpeername(c->tcp_fd, a, l))

// ---- data -------------------------------------------------------------------------------------------------------

// Reads: flags as recv(2) has them (read and readv: none).
ESW_INTERPOSE(ssize_t, read, (int fd, void* buf, size_t n), (fd, buf, n), do_recv(c, buf, n, 0))
ESW_INTERPOSE(ssize_t, recv, (int fd, void* buf, size_t n, int flags), (fd, buf, n, flags), do_recv(c, buf, n, flags))
ESW_INTERPOSE(ssize_t, recvfrom, (int fd, void* buf, size_t n, int flags, sockaddr* a, socklen_t* al),
              (fd, buf, n, flags, a, al), do_recvfrom(c, buf, n, flags, al))
ESW_INTERPOSE(ssize_t, readv, (int fd, const iovec* iov, int cnt), (fd, iov, cnt), do_readv(c, iov, cnt, 0))
ESW_INTERPOSE(ssize_t, recvmsg, (int fd, msghdr* m, int flags), (fd, m, flags), do_recvmsg(c, m, flags))
EXPORT ssize_t __read_chk(int fd, void* buf, size_t n, size_t) { return read(fd, buf, n); }
EXPORT ssize_t __recv_chk(int fd, void* buf, size_t n, size_t, int flags) { return recv(fd, buf, n, flags); }
EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t, int flags, sockaddr* a, socklen_t* al) {
  return recvfrom(fd, buf, n, flags, a, al);
}

// Writes: SIGPIPE on a closed peer unless MSG_NOSIGNAL (write and writev: always); sendto's address is ignored on
// a connected stream, as by TCP.
ESW_INTERPOSE(ssize_t, write, (int fd, const void* buf, size_t n), (fd, buf, n), do_send(c, buf, n, 0, false))
ESW_INTERPOSE(ssize_t, send, (int fd, const void* buf, size_t n, int flags), (fd, buf, n, flags),
              do_send(c, buf, n, flags, flags & MSG_NOSIGNAL))
ESW_INTERPOSE(ssize_t, sendto, (int fd, const void* buf, size_t n, int flags, const sockaddr* a, socklen_t al),
              (fd, buf, n, flags, a, al), do_send(c, buf, n, flags, flags & MSG_NOSIGNAL))
ESW_INTERPOSE(ssize_t, writev, (int fd, const iovec* iov, int cnt), (fd, iov, cnt), do_writev(c, iov, cnt, 0, false))
ESW_INTERPOSE(ssize_t, sendmsg, (int fd, const msghdr* m, int flags), (fd, m, flags),
              do_writev(c, m->msg_iov, static_cast<int>(m->msg_iovlen), flags, flags & MSG_NOSIGNAL))

// ---- readiness: the kernel's, on the eventfds; optional polling before sleeping ---------------------------------

EXPORT int poll(pollfd* fds, nfds_t n, int timeout) {
  return spin_then_wait(timeout, [&](int t) { return R().poll(fds, n, t); });
}

EXPORT int epoll_wait(int ep, epoll_event* ev, int max, int timeout) {
  return spin_then_wait(timeout, [&](int t) { return R().epoll_wait(ep, ev, max, t); });
}

EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv) {
  const int timeout = tv ? static_cast<int>(tv->tv_sec * 1000 + tv->tv_usec / 1000) : -1;
  if ((tv == nullptr || timeout > 0) && spin_for_data(timeout)) {
    fd_set r0, w0, e0;
    if (r) r0 = *r;
    if (w) w0 = *w;
    if (e) e0 = *e;
    for (int i = 0; i < 64; ++i) {
      timeval zero{0, 0};
      int k = R().select(nfds, r, w, e, &zero);
      if (k != 0) return k;
      if (r) *r = r0;
      if (w) *w = w0;
      if (e) *e = e0;
    }
  }
  return R().select(nfds, r, w, e, tv);
}
