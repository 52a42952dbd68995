// The tenant library (esw_smc.h). Speaks dataplane/smc/ism_protocol.h to the vport's endpoint; the byte stream
// follows the SMC-D CDC layout (shared/design/SMC-NOTES.md). No exceptions cross the C API.

#include "dataplane/smc/tenant/esw_smc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "dataplane/smc/clc.h"
#include "dataplane/smc/ism_protocol.h"
#include "dataplane/smc/tenant/fd_io.h"

namespace proto = esw::smc::ism::proto;
namespace clc = esw::smc;

namespace {

thread_local char g_err[160] = "";

int set_err(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
int set_err(int status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
  return status;
}

constexpr size_t kHdr = 32;
constexpr uint8_t kCdcType = 0xFE;
constexpr uint8_t kProdWriteBlocked = 0x80;
constexpr uint8_t kStateDoneWriting = 0x80;
constexpr uint8_t kStateClosed = 0x40;
constexpr uint8_t kStateAbort = 0x20;
constexpr int kSpin = 200;

struct Cursor {
  uint16_t wrap;
  uint32_t count;
  uint8_t prod_flags;
  uint8_t state_flags;
};

uint64_t encode(uint64_t pos, uint64_t ring, uint8_t prod_flags, uint8_t state_flags) {
  uint64_t wrap = (pos / ring) & 0xFFFF, count = pos % ring;
  return wrap | (count << 16) | (static_cast<uint64_t>(prod_flags) << 48) | (static_cast<uint64_t>(state_flags) << 56);
}

Cursor decode(uint64_t w) {
  return Cursor{static_cast<uint16_t>(w), static_cast<uint32_t>(w >> 16), static_cast<uint8_t>(w >> 48),
                static_cast<uint8_t>(w >> 56)};
}

uint64_t load_word(const uint8_t* map, size_t off) {
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(const_cast<uint8_t*>(map) + off))
      .load(std::memory_order_acquire);
}

void store_word(uint8_t* map, size_t off, uint64_t v) {
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(map + off)).store(v, std::memory_order_release);
}

// Distance from `mine` (a local byte position) to the peer's cursor, modulo the cursor space (65536 wraps of the
// ring). Returns false when the cursor is not a valid position or is more than a ring ahead.
bool distance(const Cursor& c, uint64_t mine, uint64_t ring, uint64_t* out) {
  if (c.count >= ring) return false;
  const uint64_t space = ring * 65536;
  uint64_t theirs = static_cast<uint64_t>(c.wrap) * ring + c.count;
  uint64_t d = (theirs + space - mine % space) % space;
  if (d > ring) return false;
  *out = d;
  return true;
}

// How far the peer's cursor is behind `mine` (same checks as distance(), other direction).
bool behind(const Cursor& c, uint64_t mine, uint64_t ring, uint64_t* out) {
  if (c.count >= ring) return false;
  const uint64_t space = ring * 65536;
  uint64_t theirs = static_cast<uint64_t>(c.wrap) * ring + c.count;
  uint64_t d = (mine % space + space - theirs) % space;
  if (d > ring) return false;
  *out = d;
  return true;
}

}  // namespace

struct esw_smc {
  int fd = -1;
  uint32_t next_id = 1;
  uint64_t dmb_size = 1u << 20;  // for the CLC functions
  uint32_t claimed_local = 0;    // tests: claim this local IPv4 when binding the flow
};

struct esw_smc_dmb {
  uint64_t token = 0;
  uint64_t size = 0;
  uint8_t* map = nullptr;
  int mem_fd = -1;
  int event_fd = -1;
  bool own = false;
};

struct esw_smcd_stream {
  esw_smc* s = nullptr;
  esw_smc_dmb* own = nullptr;   // the peer writes here; we read
  esw_smc_dmb* peer = nullptr;  // we write here
  uint64_t ring_own = 0, ring_peer = 0;
  uint64_t sent = 0;      // bytes produced into the peer's ring
  uint64_t received = 0;  // bytes consumed from our ring
  uint8_t prod_flags = 0, state_flags = 0;
  int err = 0;            // sticky
  int timeout_ms = 0;
  int spin = kSpin;      // the most a receiver polls before sleeping
  int spin_cur = kSpin;  // adaptive: halved when polling ended in sleep anyway, doubled when it found data
  uint32_t probes = 0;
};

namespace {

int rpc(esw_smc* s, uint16_t op, uint64_t a, uint64_t b, uint64_t c, proto::Reply* rp, int fds[2]) {
  proto::Request rq{proto::kVersion, op, s->next_id++, a, b, c};
  if (send(s->fd, &rq, sizeof rq, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof rq))
    return set_err(-errno ? -errno : -EIO, "esw_smc: request to the ISM endpoint failed: %s", std::strerror(errno));
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 2)];
  iovec iov{rp, sizeof *rp};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof cbuf;
  ssize_t n;
  do n = recvmsg(s->fd, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  int got[2] = {-1, -1};
  for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof got))
      std::memcpy(got, CMSG_DATA(cm), sizeof got);
  auto drop = [&] {
    for (int f : got)
      if (f >= 0) close(f);
  };
  if (n == 0) return drop(), set_err(-ECONNRESET, "esw_smc: the ISM endpoint closed the connection");
  if (n < 0) return drop(), set_err(-errno, "esw_smc: reading the ISM reply failed: %s", std::strerror(errno));
  if (n != static_cast<ssize_t>(sizeof *rp) || rp->version != proto::kVersion || rp->id != rq.id || rp->op != op)
    return drop(), set_err(-EPROTO, "esw_smc: malformed reply from the ISM endpoint");
  rp->reason[sizeof rp->reason - 1] = 0;
  if (rp->status != 0) return drop(), set_err(rp->status, "%s", rp->reason);
  if (fds) {
    if (rp->nfds != 2 || got[0] < 0 || got[1] < 0)
      return drop(), set_err(-EPROTO, "esw_smc: reply without the DMB's file descriptors");
    fds[0] = got[0], fds[1] = got[1];
  } else {
    drop();
  }
  return 0;
}

int map_dmb(const proto::Reply& rp, int fds[2], bool own, esw_smc_dmb** out) {
  struct stat st{};
  if (fstat(fds[0], &st) != 0 || static_cast<uint64_t>(st.st_size) != rp.b || rp.b <= kHdr) {
    close(fds[0]), close(fds[1]);
    return set_err(-EPROTO, "esw_smc: DMB size from the service does not match its memfd");
  }
  void* m = mmap(nullptr, rp.b, own ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
  if (m == MAP_FAILED) {
    int e = errno;
    close(fds[0]), close(fds[1]);
    return set_err(-e, "esw_smc: mmap of the DMB failed: %s", std::strerror(e));
  }
  auto* d = new (std::nothrow) esw_smc_dmb{rp.a, rp.b, static_cast<uint8_t*>(m), fds[0], fds[1], own};
  if (!d) {
    munmap(m, rp.b);
    close(fds[0]), close(fds[1]);
    return set_err(-ENOMEM, "esw_smc: out of memory");
  }
  *out = d;
  return 0;
}

void signal_fd(int fd) {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(fd, &one, sizeof one);
}

// Writes our cursors into the peer's DMB. The consumer word at 16 also carries the connection state flags, and
// the service sets the abort flag there when it revokes that DMB (unregister, rule change, vport removal): the
// word is replaced only by a compare-exchange that finds no abort flag, so our own updates never wipe it (a
// plain store did: a revoke while the peer was still sending was lost, and the reader waited for data forever).
// Returns false when the DMB we write to is aborted (revoked by the service, or the peer aborted); the producer
// cursor is then not advanced, so nothing written after the revoke is announced.
bool publish(esw_smcd_stream* st) {
  uint8_t* p = st->peer->map;
  std::atomic_ref<uint64_t> cons(*reinterpret_cast<uint64_t*>(p + 16));
  const uint64_t want = encode(st->received, st->ring_own, st->prod_flags, st->state_flags);
  uint64_t seen = cons.load(std::memory_order_acquire);
  do {
    if (decode(seen).state_flags & kStateAbort) return false;
  } while (!cons.compare_exchange_weak(seen, want, std::memory_order_acq_rel, std::memory_order_acquire));
  p[0] = kCdcType;
  store_word(p, 8, encode(st->sent, st->ring_peer, 0, 0));
  return true;
}

// The DMB we write has the abort flag while the peer has not closed: the service revoked it (a rule change that
// drops the connection's TCP flow, vport or endpoint removal) or the peer aborted. The service raised that DMB's
// eventfd, which the peer waits on, not ours: a waiting side finds the flag here within one wait_event period.
// (A peer closing orderly sets Closed in our DMB first and then unregisters its own, which the service marks
// aborted too: that is the end of the stream, not a reset.)
bool peer_dmb_revoked(const esw_smcd_stream* st) {
  if (!(decode(load_word(st->peer->map, 16)).state_flags & kStateAbort)) return false;
  return !(decode(load_word(st->own->map, 16)).state_flags & kStateClosed);
}

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Sleeps until our DMB's eventfd fires (or 100 ms pass); -ECONNRESET when the endpoint hung up.
int wait_event(esw_smcd_stream* st) {
  pollfd p[2] = {{st->own->event_fd, POLLIN, 0}, {st->s->fd, POLLRDHUP, 0}};
  int n = poll(p, 2, 100);
  if (n > 0 && (p[1].revents & (POLLHUP | POLLRDHUP | POLLERR)))
    return set_err(-ECONNRESET, "esw_smc: the ISM endpoint went away (eswitchd stopped or vport removed)");
  if (n > 0 && (p[0].revents & POLLIN)) {
    uint64_t v;
    [[maybe_unused]] ssize_t r = read(st->own->event_fd, &v, sizeof v);
  }
  return 0;
}

// The DMB eventfds are non-blocking (EFD_NONBLOCK from the service): reading one clears it or fails with EAGAIN.
void drain_event(int fd) {
  uint64_t v;
  [[maybe_unused]] ssize_t r = read(fd, &v, sizeof v);
}

// Something for a reader: data in our ring, or the peer's end (done writing, closed, abort, revoke).
bool pending(const esw_smcd_stream* st) {
  uint64_t avail = 0;
  if (!distance(decode(load_word(st->own->map, 8)), st->received, st->ring_own, &avail) || avail > 0) return true;
  return (decode(load_word(st->own->map, 16)).state_flags & (kStateDoneWriting | kStateClosed | kStateAbort)) ||
         peer_dmb_revoked(st);
}

int fail_stream(esw_smcd_stream* st, int status) {
  st->err = status;
  return status;
}

}  // namespace

extern "C" {

const char* esw_smc_last_error(void) { return g_err; }

int esw_smc_open(const char* path, esw_smc** out) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (!path || std::strlen(path) >= sizeof sa.sun_path) return set_err(-EINVAL, "esw_smc_open: path too long");
  std::strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return set_err(-errno, "esw_smc_open: socket: %s", std::strerror(errno));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    close(fd);
    return set_err(-e, "esw_smc_open: connect %s: %s", path, std::strerror(e));
  }
  auto* s = new (std::nothrow) esw_smc{fd, 1};
  if (!s) return close(fd), set_err(-ENOMEM, "esw_smc_open: out of memory");
  *out = s;
  return 0;
}

void esw_smc_close(esw_smc* s) {
  if (!s) return;
  close(s->fd);
  delete s;
}

int esw_smc_gid(esw_smc* s, uint64_t* gid, uint64_t* gid_ext, uint16_t* chid) {
  proto::Reply rp{};
  int r = rpc(s, proto::kHello, 0, 0, 0, &rp, nullptr);
  if (r) return r;
  if (gid) *gid = rp.a;
  if (gid_ext) *gid_ext = rp.b;
  if (chid) *chid = static_cast<uint16_t>(rp.c);
  return 0;
}

int esw_smc_query_gid(esw_smc* s, uint64_t gid, uint64_t gid_ext) {
  proto::Reply rp{};
  return rpc(s, proto::kQueryGid, gid, gid_ext, 0, &rp, nullptr);
}

int esw_smc_register_dmb(esw_smc* s, uint64_t size, uint64_t peer_gid, uint64_t peer_gid_ext, esw_smc_dmb** out) {
  proto::Reply rp{};
  int fds[2];
  int r = rpc(s, proto::kRegister, size, peer_gid, peer_gid_ext, &rp, fds);
  if (r) return r;
  r = map_dmb(rp, fds, true, out);
  if (r) {
    proto::Reply ignored{};
    rpc(s, proto::kUnregister, rp.a, 0, 0, &ignored, nullptr);
  }
  return r;
}

int esw_smc_bind_flow(esw_smc* s, esw_smc_dmb* own, uint32_t local_ip, uint32_t remote_ip, uint16_t local_port,
                      uint16_t remote_port) {
  proto::Reply rp{};
  return rpc(s, proto::kBindFlow, own->token, static_cast<uint64_t>(local_ip) << 32 | remote_ip,
             static_cast<uint64_t>(local_port) << 16 | remote_port, &rp, nullptr);
}

int esw_smc_attach_dmb(esw_smc* s, uint64_t token, esw_smc_dmb** out) {
  proto::Reply rp{};
  int fds[2];
  int r = rpc(s, proto::kAttach, token, 0, 0, &rp, fds);
  if (r) return r;
  return map_dmb(rp, fds, false, out);
}

int esw_smc_release_dmb(esw_smc* s, esw_smc_dmb* d) {
  if (!d) return 0;
  proto::Reply rp{};
  int r = rpc(s, d->own ? proto::kUnregister : proto::kDetach, d->token, 0, 0, &rp, nullptr);
  munmap(d->map, d->size);
  close(d->mem_fd);
  close(d->event_fd);
  delete d;
  return r;
}

uint64_t esw_smc_dmb_token(const esw_smc_dmb* d) { return d->token; }
uint64_t esw_smc_dmb_size(const esw_smc_dmb* d) { return d->size; }
void* esw_smc_dmb_data(esw_smc_dmb* d) { return d->map; }
int esw_smc_dmb_signal(esw_smc_dmb* d) {
  signal_fd(d->event_fd);
  return 0;
}

int esw_smcd_stream_open(esw_smc* s, esw_smc_dmb* own, uint64_t peer_token, esw_smcd_stream** out) {
  if (!own || !own->own) return set_err(-EINVAL, "esw_smcd_stream_open: `own` must be a DMB this process registered");
  esw_smc_dmb* peer = nullptr;
  int r = esw_smc_attach_dmb(s, peer_token, &peer);
  if (r) return r;
  auto* st = new (std::nothrow) esw_smcd_stream{};
  if (!st) {
    esw_smc_release_dmb(s, peer);
    return set_err(-ENOMEM, "esw_smcd_stream_open: out of memory");
  }
  st->s = s;
  st->own = own;
  st->peer = peer;
  st->ring_own = own->size - kHdr;
  st->ring_peer = peer->size - kHdr;
  if (!publish(st) && peer_dmb_revoked(st)) fail_stream(st, -ECONNRESET);  // the next send/recv reports it
  *out = st;
  return 0;
}

void esw_smcd_set_spin(esw_smcd_stream* st, int spins) { st->spin = st->spin_cur = spins < 0 ? 0 : spins; }

void esw_smcd_set_timeout_ms(esw_smcd_stream* st, int timeout_ms) { st->timeout_ms = timeout_ms; }

ssize_t esw_smcd_send(esw_smcd_stream* st, const void* buf, size_t len) { return esw_smcd_send_flags(st, buf, len, 0); }

ssize_t esw_smcd_send_flags(esw_smcd_stream* st, const void* buf, size_t len, int flags) {
  if (st->err) return st->err;
  if (st->state_flags & (kStateDoneWriting | kStateClosed))
    return set_err(-EPIPE, "esw_smcd_send: this side has shut down writing");
  const auto* src = static_cast<const uint8_t*>(buf);
  size_t done = 0;
  int spins = 0;
  int64_t deadline = st->timeout_ms > 0 ? now_ms() + st->timeout_ms : 0;
  while (done < len) {
    Cursor cons = decode(load_word(st->own->map, 16));
    if ((cons.state_flags & kStateAbort) || peer_dmb_revoked(st))
      return fail_stream(st, set_err(-ECONNRESET, "esw_smcd_send: the peer aborted or went away"));
    if (cons.state_flags & kStateClosed)
      return fail_stream(st, set_err(-EPIPE, "esw_smcd_send: the peer closed the connection"));
    // The peer's consumer cursor: how far it has read of the ring we write; never ahead of what we sent, never
    // more than a ring behind.
    uint64_t inflight;
    if (!behind(cons, st->sent, st->ring_peer, &inflight) || inflight > st->sent)
      return fail_stream(st, set_err(-EPROTO, "esw_smcd_send: peer's consumer cursor is outside the ring, ahead of "
                                              "what was sent or more than a ring behind"));
    uint64_t space = st->ring_peer - inflight;
    if (space == 0 && (flags & ESW_SMCD_DONTWAIT)) {
      if (done > 0) break;
      if (!(st->prod_flags & kProdWriteBlocked)) {  // ask the receiver to signal us when it consumes
        st->prod_flags |= kProdWriteBlocked;
        if (!publish(st)) continue;
        std::atomic_thread_fence(std::memory_order_seq_cst);
        continue;
      }
      return set_err(-EAGAIN, "esw_smcd_send: the peer's DMB is full");
    }
    if (space == 0) {
      if (spins++ < st->spin) {
        __builtin_ia32_pause();
        continue;
      }
      if (!(st->prod_flags & kProdWriteBlocked)) {
        st->prod_flags |= kProdWriteBlocked;
        if (!publish(st)) continue;  // aborted: the checks above say how (reset, or the peer closed)
        std::atomic_thread_fence(std::memory_order_seq_cst);
        continue;  // re-check after announcing, so a consumer update in between is not missed
      }
      if (deadline && now_ms() > deadline)
        return set_err(-ETIMEDOUT, "esw_smcd_send: no space in the peer's DMB within the timeout");
      int w = wait_event(st);
      if (w) return fail_stream(st, w);
      continue;
    }
    spins = 0;
    if (st->prod_flags & kProdWriteBlocked) {
      // The reader's "space again" signal is not for pollers waiting to read: drop it unless something is pending.
      st->prod_flags &= static_cast<uint8_t>(~kProdWriteBlocked);
      drain_event(st->own->event_fd);
      if (pending(st)) signal_fd(st->own->event_fd);
    }
    uint64_t n = std::min<uint64_t>(space, len - done);
    uint64_t off = st->sent % st->ring_peer;
    uint64_t first = std::min<uint64_t>(n, st->ring_peer - off);
    std::memcpy(st->peer->map + kHdr + off, src + done, first);
    if (n > first) std::memcpy(st->peer->map + kHdr, src + done + first, n - first);
    st->sent += n;
    done += n;
    if (!publish(st)) {  // written but not announced: the connection ended meanwhile
      if (peer_dmb_revoked(st))
        return fail_stream(st, set_err(-ECONNRESET, "esw_smcd_send: the peer's DMB was revoked or aborted"));
      return fail_stream(st, set_err(-EPIPE, "esw_smcd_send: the peer closed the connection"));
    }
    // Signal only when the reader had consumed everything before this write: otherwise it has been signalled for
    // that data and will look at the producer cursor again (it re-checks after its last read emptied the ring).
    // Our producer store, this fence, the load of its consumer cursor; its consumer store, a fence, its load of
    // our producer cursor: one side sees the other's store.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    uint64_t unread;
    if (!behind(decode(load_word(st->own->map, 16)), st->sent - n, st->ring_peer, &unread) || unread == 0)
      signal_fd(st->peer->event_fd);
  }
  return static_cast<ssize_t>(done);
}

ssize_t esw_smcd_recv(esw_smcd_stream* st, void* buf, size_t len) { return esw_smcd_recv_flags(st, buf, len, 0); }

ssize_t esw_smcd_recv_flags(esw_smcd_stream* st, void* buf, size_t len, int flags) {
  if (st->err) {
    signal_fd(st->own->event_fd);  // stays readable for level-triggered pollers
    return st->err;
  }
  if (len == 0) return 0;
  bool drained = false;
  auto* dst = static_cast<uint8_t*>(buf);
  int spins = 0;
  // Polling pays only when the peer runs on another CPU at the same time; on a machine with more runnable tasks
  // than CPUs it takes the CPU the peer needs (measured: 20000 polls made ping-pong 9x slower there, 0 polls was
  // best). So the budget adapts per stream, and a stream polled down to 0 tries 16 polls every 256th wait.
  int budget = st->spin_cur;
  if (budget < 16 && (++st->probes & 255) == 0) budget = std::min(16, st->spin);
  int64_t deadline = st->timeout_ms > 0 ? now_ms() + st->timeout_ms : 0;
  for (;;) {
    Cursor prod = decode(load_word(st->own->map, 8));
    Cursor cons = decode(load_word(st->own->map, 16));
    if ((cons.state_flags & kStateAbort) || peer_dmb_revoked(st))
      return fail_stream(st, set_err(-ECONNRESET, "esw_smcd_recv: the peer aborted or went away"));
    uint64_t avail;
    if (!distance(prod, st->received, st->ring_own, &avail))
      return fail_stream(st, set_err(-EPROTO, "esw_smcd_recv: peer's producer cursor is outside the ring or more "
                                              "than a ring ahead"));
    if (avail > 0) {
      if (spins > 0 && spins <= budget)  // polling found it: allow more next time
        st->spin_cur = static_cast<int>(std::min<int64_t>(st->spin, int64_t{st->spin_cur} * 2 + 1));
      uint64_t n = std::min<uint64_t>(avail, len);
      uint64_t off = st->received % st->ring_own;
      uint64_t first = std::min<uint64_t>(n, st->ring_own - off);
      std::memcpy(dst, st->own->map + kHdr + off, first);
      if (n > first) std::memcpy(dst + first, st->own->map + kHdr, n - first);
      if (flags & ESW_SMCD_PEEK) {
        signal_fd(st->own->event_fd);  // still readable
        return static_cast<ssize_t>(n);
      }
      st->received += n;
      // Keep the eventfd's level meaningful for pollers of it (esw-smc-run dups it over the program's fd): raised
      // while data or an end is pending, drained when the ring is empty (then checked once more, so a signal
      // raised between our read and the drain is not lost).
      // What was read was written before any revoke; a revoke seen now ends the stream at the next call.
      if (!publish(st) && peer_dmb_revoked(st))
        fail_stream(st, set_err(-ECONNRESET, "esw_smcd_recv: the peer's DMB was revoked or aborted"));
      // Our consumer store (publish) before the loads below: the writer skips its signal while it sees unread data.
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (n < avail) {
        signal_fd(st->own->event_fd);
      } else {
        drain_event(st->own->event_fd);
        if (pending(st)) signal_fd(st->own->event_fd);
      }
      if (decode(load_word(st->own->map, 16)).prod_flags & kProdWriteBlocked) signal_fd(st->peer->event_fd);
      return static_cast<ssize_t>(n);
    }
    if (cons.state_flags & (kStateDoneWriting | kStateClosed)) {
      if (flags & ESW_SMCD_DONTWAIT) signal_fd(st->own->event_fd);
      return 0;
    }
    if (flags & ESW_SMCD_DONTWAIT) {
      // Nothing there: consume the pending signals, then look once more (a signal raised after the drain stays).
      if (drained) return set_err(-EAGAIN, "esw_smcd_recv: no data");
      drain_event(st->own->event_fd);
      drained = true;
      continue;
    }
    if (spins++ < budget) {
      __builtin_ia32_pause();
      continue;
    }
    if (spins == budget + 1) st->spin_cur /= 2;  // polled in vain: poll less next time
    if (deadline && now_ms() > deadline)
      return set_err(-ETIMEDOUT, "esw_smcd_recv: no data within the timeout");
    int w = wait_event(st);
    if (w) return fail_stream(st, w);
  }
}

int esw_smcd_shutdown(esw_smcd_stream* st) {
  st->state_flags |= kStateDoneWriting;
  if (!publish(st) && peer_dmb_revoked(st))
    return fail_stream(st, set_err(-ECONNRESET, "esw_smcd_shutdown: the peer's DMB was revoked or aborted"));
  signal_fd(st->peer->event_fd);
  return 0;
}

static int end_stream(esw_smcd_stream* st, uint8_t flags) {
  st->state_flags |= flags;
  (void)publish(st);  // an aborted peer DMB keeps its abort flag; the close goes on
  signal_fd(st->peer->event_fd);
  // The peer's DMB may be gone already (the peer closed, died or its vport was removed): not an error here.
  int r1 = esw_smc_release_dmb(st->s, st->peer);
  if (r1 == -ENOENT) r1 = 0;
  int r2 = esw_smc_release_dmb(st->s, st->own);
  delete st;
  return r1 ? r1 : r2;
}

int esw_smcd_close(esw_smcd_stream* st) { return end_stream(st, kStateDoneWriting | kStateClosed); }
int esw_smcd_abort(esw_smcd_stream* st) { return end_stream(st, kStateAbort); }

int esw_smcd_event_fd(const esw_smcd_stream* st) { return st->own->event_fd; }

ssize_t esw_smcd_readable(esw_smcd_stream* st) {
  if (st->err) return st->err;
  uint64_t avail = 0;
  if (!distance(decode(load_word(st->own->map, 8)), st->received, st->ring_own, &avail)) return 0;
  return static_cast<ssize_t>(avail);
}

void esw_smcd_counts(const esw_smcd_stream* st, uint64_t* sent, uint64_t* received) {
  if (sent) *sent = st->sent;
  if (received) *received = st->received;
}

int esw_smc_set_dmb_size(esw_smc* s, uint64_t size) {
  for (uint64_t n = 0; n <= 6; ++n)
    if (size == (uint64_t{16384} << n)) return s->dmb_size = size, 0;
  return set_err(-EINVAL, "esw_smc_set_dmb_size: size must be 16 KiB << n, n <= 6");
}
void esw_smc_set_claimed_local(esw_smc* s, uint32_t ipv4) { s->claimed_local = ipv4; }

int esw_smc_listen(esw_smc* s, uint32_t ip, uint16_t port, int on) {
  proto::Reply rp{};
  return rpc(s, on ? proto::kListen : proto::kUnlisten, static_cast<uint64_t>(ip) << 16 | port, 0, 0, &rp, nullptr);
}
int esw_smc_connect_intent(esw_smc* s, uint32_t dst_ip, uint16_t dst_port, uint16_t src_port) {
  proto::Reply rp{};
  return rpc(s, proto::kConnectIntent, static_cast<uint64_t>(dst_ip) << 32 | uint64_t{dst_port} << 16 | src_port, 0, 0,
             &rp, nullptr);
}
int esw_smc_take_intent(esw_smc* s, uint32_t local_ip, uint16_t local_port, uint16_t peer_port) {
  proto::Reply rp{};
  return rpc(s, proto::kTakeIntent, static_cast<uint64_t>(local_ip) << 32 | uint64_t{local_port} << 16 | peer_port, 0,
             0, &rp, nullptr);
}

}  // extern "C"

// ---- CLC (SMC-Dv2 over the emulated ISM) ------------------------------------------------------------------------
namespace {

constexpr char kEid[] = "ESWITCH-SMCD-EMULATED-ISM-LOCAL ";  // 32 chars

using esw::smc::tenant::read_all;
using esw::smc::tenant::write_all;

// One CLC message from the TCP stream (header first for the length). -EPROTO: not a valid CLC message.
int read_clc(int fd, clc::Message& m) {
  uint8_t raw[clc::kMaxMsgLen];
  if (!read_all(fd, raw, 8)) return set_err(errno ? -errno : -ECONNRESET, "esw_smc clc: connection ended in the handshake");
  const uint16_t len = static_cast<uint16_t>(raw[5] << 8 | raw[6]);
  if (len < 8 || len > sizeof raw) return set_err(-EPROTO, "esw_smc clc: message length %u out of range", len);
  if (!read_all(fd, raw + 8, len - 8u)) return set_err(errno ? -errno : -ECONNRESET, "esw_smc clc: connection ended in the handshake");
  clc::Result r = clc::parse(std::span<const uint8_t>(raw, len), m);
  if (!r.ok()) return set_err(-EPROTO, "esw_smc clc: invalid message: %s", r.reason);
  return 0;
}
int send_clc(int fd, const clc::Message& m) {
  uint8_t buf[clc::kMaxMsgLen];
  clc::Result r = clc::build(m, buf);
  if (!r.ok()) return set_err(-EINVAL, "esw_smc clc: build: %s", r.reason);
  if (!write_all(fd, buf, r.size)) return set_err(errno ? -errno : -EPIPE, "esw_smc clc: send failed");
  return 0;
}

void fill_peer_id(uint8_t* id) {
  const pid_t p = getpid();
  std::memset(id, 0, 8);
  std::memcpy(id, &p, sizeof p);
}

clc::Message decline_msg(uint32_t code) {
  clc::Message m;
  m.hdr.type = clc::MsgType::kDecline;
  m.hdr.version = 2;
  m.hdr.typev1 = clc::Path::kD;
  fill_peer_id(m.decline.peer_id);
  m.decline.diag = code;
  m.decline.os_type = clc::kOsLinux;
  return m;
}

uint8_t size_code(uint64_t size) {
  uint8_t n = 0;
  while ((uint64_t{16384} << n) < size && n < 6) ++n;
  return n;
}

clc::Message accept_confirm(clc::MsgType t, uint64_t gid, uint64_t gid_ext, uint16_t chid, uint64_t token,
                            uint64_t size) {
  clc::Message m;
  m.hdr.type = t;
  m.hdr.version = 2;
  m.hdr.typev1 = clc::Path::kD;
  m.hdr.flag = true;  // first contact
  clc::SmcdAcceptConfirm& d = m.accept_confirm.d;
  d.ism_gid = gid;
  d.gid_ext = gid_ext;
  d.chid = chid;
  d.dmb_token = token;
  d.dmbe_size = size_code(size);
  std::memcpy(m.accept_confirm.eid, kEid, clc::kEidLen);
  clc::FirstContactExt& f = m.accept_confirm.fce;
  f.present = true;
  f.v2x = true;
  f.os_type = clc::kOsLinux;
  f.release = 1;
  std::memcpy(f.hostname, "eswitch-tenant", 14);
  return m;
}

bool proposal_gid(const clc::Message& m, clc::IsmGid* out) {
  const clc::Identity id = clc::identity(m);
  for (int i = 0; i < id.ism_count; ++i) {
    if (id.ism[i].emulated) {
      *out = id.ism[i];
      return true;
    }
  }
  return false;
}

// Binds the own DMB to the TCP flow: 0, or the Decline code (CNFERR when eswitchd refused the flow).
uint32_t bind_flow(esw_smc* s, esw_smc_dmb* own, int fd) {
  sockaddr_in l{}, r{};
  socklen_t ll = sizeof l, rl = sizeof r;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&l), &ll) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&r), &rl) != 0 || l.sin_family != AF_INET)
    return clc::kDeclInterr;
  const uint32_t local = s->claimed_local ? s->claimed_local : ntohl(l.sin_addr.s_addr);
  const int rc = esw_smc_bind_flow(s, own, local, ntohl(r.sin_addr.s_addr), ntohs(l.sin_port), ntohs(r.sin_port));
  if (rc == 0) return 0;
  return rc == -EACCES ? clc::kDeclCnfErr : clc::kDeclInterr;
}

int fallback(uint32_t* decline, uint32_t code) {
  if (decline) *decline = code;
  return ESW_SMCD_FALLBACK;
}

}  // namespace

extern "C" {

int esw_smcd_accept_fd(esw_smc* s, int fd, esw_smcd_stream** out, uint32_t* decline) {
  *out = nullptr;
  if (decline) *decline = 0;
  uint8_t head[8];
  ssize_t k;
  do k = recv(fd, head, sizeof head, MSG_PEEK | MSG_WAITALL);
  while (k < 0 && errno == EINTR);
  if (k != 8 || (std::memcmp(head, clc::kEyecatcherR, 4) != 0 && std::memcmp(head, clc::kEyecatcherD, 4) != 0))
    return fallback(decline, 0);  // not SMC: plain TCP from the first byte
  clc::Message m;
  if (int r = read_clc(fd, m)) return r;
  if (m.hdr.type != clc::MsgType::kProposal) return set_err(-EPROTO, "esw_smcd_accept_fd: first CLC message is not a Proposal");
  clc::IsmGid peer{};
  uint64_t gid = 0, gid_ext = 0;
  uint16_t chid = 0;
  uint32_t code = 0;
  esw_smc_dmb* own = nullptr;
  if (!s || esw_smc_gid(s, &gid, &gid_ext, &chid) != 0) {
    code = clc::kDeclNoSmcdDev;  // no SMC-D device here
  } else if (!proposal_gid(m, &peer) || peer.chid != chid) {
    code = clc::kDeclNoSmcd2Dev;  // no common emulated ISM
  } else if (esw_smc_query_gid(s, peer.gid, peer.gid_ext) != 0) {
    code = clc::kDeclNoSmcd2Dev;  // the GID is no local vport's
  } else if (esw_smc_register_dmb(s, s->dmb_size, peer.gid, peer.gid_ext, &own) != 0) {
    code = clc::kDeclMaxDmb;  // out of DMBs (limit)
  } else if ((code = bind_flow(s, own, fd)) != 0) {
    esw_smc_release_dmb(s, own);
  }
  if (code) {
    if (int r = send_clc(fd, decline_msg(code))) return r;
    return fallback(decline, code);
  }
  auto bail = [&](int r) {
    esw_smc_release_dmb(s, own);
    return r;
  };
  if (int r = send_clc(fd, accept_confirm(clc::MsgType::kAccept, gid, gid_ext, chid, esw_smc_dmb_token(own), s->dmb_size)))
    return bail(r);
  if (int r = read_clc(fd, m)) return bail(r);
  if (m.hdr.type == clc::MsgType::kDecline) {
    bail(0);
    return fallback(decline, m.decline.diag);
  }
  if (m.hdr.type != clc::MsgType::kConfirm || m.accept_confirm.d.ism_gid != peer.gid ||
      m.accept_confirm.d.gid_ext != peer.gid_ext)
    return bail(set_err(-EPROTO, "esw_smcd_accept_fd: the Confirm does not match the Proposal"));
  if (int r = esw_smcd_stream_open(s, own, m.accept_confirm.d.dmb_token, out)) return bail(r);
  return 0;
}

int esw_smcd_connect_fd(esw_smc* s, int fd, esw_smcd_stream** out, uint32_t* decline) {
  *out = nullptr;
  if (decline) *decline = 0;
  uint64_t gid = 0, gid_ext = 0;
  uint16_t chid = 0;
  if (int r = esw_smc_gid(s, &gid, &gid_ext, &chid)) return r;
  clc::Message p;
  p.hdr.type = clc::MsgType::kProposal;
  p.hdr.version = 2;
  p.hdr.typev1 = clc::Path::kNone;
  p.hdr.typev2 = clc::Path::kD;
  fill_peer_id(p.proposal.peer_id);
  p.proposal.has_v2_ext = true;
  p.proposal.has_smcd_v2_ext = true;
  p.proposal.v2.eid_count = 1;
  p.proposal.v2.ism_count = 2;
  p.proposal.v2.release = 1;
  p.proposal.v2.feature_mask = 1;  // emulated ISM
  std::memcpy(p.proposal.v2.ueids[0], kEid, clc::kEidLen);
  p.proposal.smcd_v2.ism[0] = {gid, chid};
  p.proposal.smcd_v2.ism[1] = {gid_ext, chid};
  if (int r = send_clc(fd, p)) return r;
  clc::Message m;
  if (int r = read_clc(fd, m)) return r;
  if (m.hdr.type == clc::MsgType::kDecline) return fallback(decline, m.decline.diag);
  if (m.hdr.type != clc::MsgType::kAccept || m.hdr.typev1 != clc::Path::kD)
    return set_err(-EPROTO, "esw_smcd_connect_fd: the answer to the Proposal is not an SMC-D Accept");
  const clc::SmcdAcceptConfirm d = m.accept_confirm.d;
  esw_smc_dmb* own = nullptr;
  uint32_t code = 0;
  if (d.chid != chid || esw_smc_query_gid(s, d.ism_gid, d.gid_ext) != 0) code = clc::kDeclNoSmcd2Dev;
  else if (esw_smc_register_dmb(s, s->dmb_size, d.ism_gid, d.gid_ext, &own) != 0) code = clc::kDeclMaxDmb;
  else if ((code = bind_flow(s, own, fd)) != 0) esw_smc_release_dmb(s, own), own = nullptr;
  if (code) {
    if (int r = send_clc(fd, decline_msg(code))) return r;
    return fallback(decline, code);
  }
  if (int r = send_clc(fd, accept_confirm(clc::MsgType::kConfirm, gid, gid_ext, chid, esw_smc_dmb_token(own), s->dmb_size))) {
    esw_smc_release_dmb(s, own);
    return r;
  }
  if (int r = esw_smcd_stream_open(s, own, d.dmb_token, out)) {
    esw_smc_release_dmb(s, own);
    return r;
  }
  return 0;
}

}  // extern "C"
