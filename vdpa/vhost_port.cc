#include "vdpa/vhost_port.h"

#include <linux/virtio_config.h>  // VIRTIO_F_RING_PACKED
#include <rte_pause.h>
#include <rte_vdpa.h>
#include <rte_version.h>
#include <rte_vhost.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "dataplane/error.h"
#include "dataplane/fastpath/proto.h"
#include "vdpa/inflight.h"
#include "vdpa/vhost_wake.h"

namespace esw::vdpa {

namespace {

constexpr uint16_t kNoVring = 0xffff;
constexpr uint16_t kVhostBurst = 32;  // rte_vhost's MAX_PKT_BURST: it takes at most this many per call

// Offloads not offered: ECN and UFO. Partial checksums and TCP segmentation from the guest are completed in
// rx_burst (offload.h); towards the guest only whole frames are sent, so GUEST_CSUM/TSO cost nothing.
// (virtio spec feature bits; <linux/virtio_net.h> does not compile as C++, <linux/virtio_config.h> gives
// VIRTIO_F_RING_PACKED.)
constexpr uint64_t bit(unsigned b) { return 1ULL << b; }
// CSUM, GUEST_CSUM and HOST/GUEST_TSO4/6 stay as rte_vhost offers them.
constexpr unsigned kFGuestEcn = 9, kFGuestUfo = 10, kFHostEcn = 13, kFHostUfo = 14, kFMrgRxbuf = 15, kFMq = 22,
                   kFVersion1 = 32;
constexpr uint64_t kDisabledFeatures = bit(kFHostEcn) | bit(kFGuestEcn) | bit(kFHostUfo) | bit(kFGuestUfo);

// Server-mode sockets started since rte_vhost's event thread was last woken (vhost_wake.h).
std::atomic<int> g_wake_pending{0};

// rte_vhost calls back with a vid; the socket path names the port that registered it.
std::mutex g_registry_mu;
std::map<std::string, VhostUserPort*>& registry() {
  static std::map<std::string, VhostUserPort*> m;
  return m;
}

template <typename F>
void with_port(int vid, F&& f) noexcept {
  char path[PATH_MAX];
  if (rte_vhost_get_ifname(vid, path, sizeof(path)) != 0) return;
  std::lock_guard<std::mutex> lock(g_registry_mu);  // the port stays registered (alive) during the callback
  auto it = registry().find(path);
  if (it != registry().end()) f(*it->second);
}

// vhost-user messages, seen before rte_vhost's own handlers (rte_vhost_extern_callback_register). `msg` is
// rte_vhost's message context: the message as on the wire (vhost-user spec: le32 request, le32 flags, le32 size,
// payload), then the fds that came with it. Looked at:
//  - VHOST_USER_NET_SET_MTU: refused (RESULT_ERR: rte_vhost answers the front-end's REPLY_ACK with a failure) when
//    it is above the vport's MTU, else left to rte_vhost;
//  - GET_INFLIGHT_FD / SET_INFLIGHT_FD: checked (inflight.h check_inflight_msg) since rte_vhost 22.11 trusts
//    their sizes; a refused one closes the session (NEED_REPLY cleared, so RESULT_ERR makes rte_vhost drop the
//    connection) and the fd it carried is closed here (rte_vhost does not close the fds of a message a hook
//    refused).
constexpr uint32_t kVhostUserNetSetMtu = 20, kVhostUserGetInflightFd = 31, kVhostUserSetInflightFd = 32;
constexpr uint32_t kVhostUserNeedReply = 1u << 3;
// DPDK 22.11's struct vhu_msg_context (lib/vhost/vhost_user.h, not installed): VhostUserMsg (644 bytes, packed:
// the 12-byte header and the largest payload), int fds[8], int fd_num.
static_assert(RTE_VER_YEAR == 22 && RTE_VER_MONTH == 11, "the message context layout below is DPDK 22.11's");
constexpr size_t kCtxFds = 644, kCtxFdNum = kCtxFds + 8 * sizeof(int);

rte_vhost_msg_result pre_msg_inflight(int vid, uint8_t* b, uint32_t request, uint32_t size) {
  if (size != 20) return RTE_VHOST_MSG_RESULT_NOT_HANDLED;  // rte_vhost's handler refuses a wrong size itself
  InflightMsg m;
  std::memcpy(&m.mmap_size, b + 12, 8);
  std::memcpy(&m.mmap_offset, b + 20, 8);
  std::memcpy(&m.num_queues, b + 28, 2);
  std::memcpy(&m.queue_size, b + 30, 2);
  const bool set = request == kVhostUserSetInflightFd;
  int fd_num = 0, fd = -1;
  std::memcpy(&fd_num, b + kCtxFdNum, sizeof(fd_num));
  if (fd_num >= 1 && fd_num <= 8) std::memcpy(&fd, b + kCtxFds, sizeof(fd));
  int64_t fd_bytes = -1;
  struct stat st{};
  if (set && fd_num == 1 && fd >= 0 && fstat(fd, &st) == 0) fd_bytes = st.st_size;
  bool ok = true;
  with_port(vid, [&](VhostUserPort& p) { ok = p.on_inflight_msg(vid, set, m, fd_bytes); });
  if (ok) return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
  if (fd_num >= 1 && fd_num <= 8) {
    for (int i = 0; i < fd_num; ++i) {
      int f = -1;
      std::memcpy(&f, b + kCtxFds + i * sizeof(int), sizeof(f));
      if (f >= 0) ::close(f);
      f = -1;
      std::memcpy(b + kCtxFds + i * sizeof(int), &f, sizeof(f));
    }
    fd_num = 0;
    std::memcpy(b + kCtxFdNum, &fd_num, sizeof(fd_num));
  }
  uint32_t flags = 0;
  std::memcpy(&flags, b + 4, sizeof(flags));
  flags &= ~kVhostUserNeedReply;
  std::memcpy(b + 4, &flags, sizeof(flags));
  return RTE_VHOST_MSG_RESULT_ERR;
}

rte_vhost_msg_result cb_pre_msg(int vid, void* msg) {
  auto* b = static_cast<uint8_t*>(msg);
  uint32_t request = 0, size = 0;
  std::memcpy(&request, b, sizeof(request));
  std::memcpy(&size, b + 8, sizeof(size));
  if (request == kVhostUserGetInflightFd || request == kVhostUserSetInflightFd) {
    return pre_msg_inflight(vid, b, request, size);
  }
  if (request != kVhostUserNetSetMtu) return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
  if (size < sizeof(uint64_t)) return RTE_VHOST_MSG_RESULT_NOT_HANDLED;  // rte_vhost's handler refuses it
  uint64_t mtu = 0;
  std::memcpy(&mtu, b + 12, sizeof(mtu));
  bool ok = true;
  with_port(vid, [&](VhostUserPort& p) { ok = p.on_set_mtu(vid, mtu); });
  return ok ? RTE_VHOST_MSG_RESULT_NOT_HANDLED : RTE_VHOST_MSG_RESULT_ERR;
}
const rte_vhost_user_extern_ops kExternOps = {.pre_msg_handle = cb_pre_msg, .post_msg_handle = nullptr};

int cb_new_device(int vid) {
  with_port(vid, [vid](VhostUserPort& p) { p.on_new_device(vid); });
  return 0;
}
void cb_destroy_device(int vid) {
  with_port(vid, [vid](VhostUserPort& p) { p.on_destroy_device(vid); });
}
int cb_new_connection(int vid) {
  // Before the session's first message is read (rte_vhost adds the socket to its poll set after this returns).
  rte_vhost_extern_callback_register(vid, &kExternOps, nullptr);
  with_port(vid, [vid](VhostUserPort& p) { p.on_connection(vid, true); });
  return 0;
}
void cb_destroy_connection(int vid) {
  with_port(vid, [vid](VhostUserPort& p) { p.on_connection(vid, false); });
}
int cb_features_changed(int vid, uint64_t features) {
  with_port(vid, [&](VhostUserPort& p) { p.on_features_changed(vid, features); });
  return 0;
}
int cb_vring_state(int vid, uint16_t vring, int enable) {
  with_port(vid, [&](VhostUserPort& p) { p.on_vring_state(vid, vring, enable != 0); });
  return 0;
}

const rte_vhost_device_ops kOps = {
    .new_device = cb_new_device,
    .destroy_device = cb_destroy_device,
    .vring_state_changed = cb_vring_state,
    .features_changed = cb_features_changed,
    .new_connection = cb_new_connection,
    .destroy_connection = cb_destroy_connection,
    .guest_notified = nullptr,
    .reserved = {nullptr},
};

bool is_socket_in_use(const std::string& path) {
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return false;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  const bool in_use = connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(s);
  return in_use;
}

}  // namespace

VhostUserArgs parse_vhost_user_args(const std::string& devargs) {
  VhostUserArgs a;
  bool have_socket = false;
  size_t pos = 0;
  while (pos <= devargs.size()) {
    const size_t end = std::min(devargs.find(',', pos), devargs.size());
    const std::string kv = devargs.substr(pos, end - pos);
    pos = end + 1;
    if (kv.empty()) continue;
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) throw dp::Error(fmt::format("vhost_user: '{}' is not key=value", kv));
    const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "socket") {
      a.socket = v;
      have_socket = true;
    } else if (k == "mode") {
      if (v == "server") a.client = false;
      else if (v == "client") a.client = true;
      else throw dp::Error(fmt::format("vhost_user: mode '{}' is not server or client", v));
    } else if (k == "vdpa") {
      if (v.empty()) throw dp::Error("vhost_user: vdpa needs a device name");
      a.vdpa = v;
    } else if (k == "mtu") {
      char* e = nullptr;
      const long n = std::strtol(v.c_str(), &e, 10);
      if (v.empty() || *e != '\0' || n < 68 || n > 65535) {
        throw dp::Error(fmt::format("vhost_user: mtu '{}' is not in 68..65535", v));
      }
      a.mtu = static_cast<uint16_t>(n);
    } else if (k == "queues") {
      char* e = nullptr;
      const long n = std::strtol(v.c_str(), &e, 10);
      if (v.empty() || *e != '\0' || n < 1 || n > kMaxQueues) {
        throw dp::Error(fmt::format("vhost_user: queues '{}' is not in 1..{}", v, kMaxQueues));
      }
      a.queues = static_cast<uint16_t>(n);
    } else {
      throw dp::Error(fmt::format("vhost_user: unknown key '{}'", k));
    }
  }
  if (!have_socket || a.socket.empty() || a.socket[0] != '/') {
    throw dp::Error(fmt::format("vhost_user: socket '{}' must be an absolute path", a.socket));
  }
  if (a.socket.size() >= sizeof(sockaddr_un::sun_path)) {
    throw dp::Error(fmt::format("vhost_user: socket path '{}' is longer than {} characters", a.socket,
                                sizeof(sockaddr_un::sun_path) - 1));
  }
  return a;
}

std::string format_vhost_user_args(const VhostUserArgs& a) {
  return fmt::format("socket={},mode={},queues={}{}{}", a.socket, a.client ? "client" : "server", a.queues,
                     a.vdpa.empty() ? "" : ",vdpa=" + a.vdpa, a.mtu == 0 ? "" : fmt::format(",mtu={}", a.mtu));
}

VhostUserPort::~VhostUserPort() { close(); }

void VhostUserPort::fail(const std::string& what) const {
  throw dp::Error(fmt::format("vport {}: vhost-user socket {}: {}", spec_.name, args_.socket, what));
}

void VhostUserPort::open(const dp::PortSpec& spec, uint16_t index, rte_mempool* pool, uint16_t nb_workers) {
  spec_ = spec;
  index_ = index;
  pool_ = pool;
  nb_workers_ = std::max<uint16_t>(nb_workers, 1);
  try {
    args_ = parse_vhost_user_args(spec.devargs);
  } catch (const dp::Error& e) {
    throw dp::Error(fmt::format("vport {}: {}", spec.name, e.what()));
  }
  spec_.rx_queues = args_.queues;  // the switch polls one rx queue per queue pair
  spec_.tx_queues = args_.queues;
  dev_name_ = args_.socket;
  driver_ = "vhost_user";

  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    if (registry().count(args_.socket)) fail("already used by another vport");
    registry()[args_.socket] = this;
  }
  open_ = true;  // from here on close() undoes what was done
  try {
    struct stat st{};
    if (::stat(args_.socket.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) fail("the path exists and is not a socket");
      if (!args_.client) {
        // A socket file nobody listens on is left over from an earlier run: rte_vhost could not bind over it.
        if (is_socket_in_use(args_.socket)) fail("another process is listening on it");
        ::unlink(args_.socket.c_str());
      }
    } else if (errno != ENOENT) {
      fail(fmt::format("cannot stat it: {}", strerror(errno)));
    } else {
      const size_t slash = args_.socket.rfind('/');
      const std::string dir = slash == 0 ? "/" : args_.socket.substr(0, slash);
      // A server socket's directory is made as the API socket's is (e.g. /run/eswitch on a fresh boot); a client
      // connects to where the guest listens, which must exist.
      std::error_code ec;
      if (!args_.client && ::stat(dir.c_str(), &st) != 0) std::filesystem::create_directories(dir, ec);
      if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        fail(fmt::format("directory {} does not exist{}", dir, ec ? fmt::format(" and cannot be made: {}", ec.message()) : ""));
      }
    }
    event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd_ < 0) fail(fmt::format("eventfd: {}", strerror(errno)));
    if (nb_workers_ > args_.queues) {
      txq_locks_.resize(args_.queues);
      for (auto& l : txq_locks_) rte_spinlock_init(&l);
    }
    for (uint16_t q = 0; q < kMaxQueues; ++q) tx_vring_[q].store(kNoVring, std::memory_order_relaxed);
    for (uint16_t q = 0; q < args_.queues; ++q) {
      rxq_[q].held.assign(size_t{kVhostBurst} * kMaxSegments, nullptr);
      rxq_[q].held_at = rxq_[q].held_n = 0;
    }

    register_driver();
    if (args_.client) {
      // From here on eswitchd makes the client's connects itself (no rte_vhost reconnect thread: socket_watch.h).
      const std::string werr = sock_watch_.open(args_.socket);
      if (!werr.empty()) {
        fmt::print("eswitchd: vport {}: warning: vhost-user socket {}: no socket watch ({}): reconnects only once a "
                   "second\n", spec_.name, args_.socket, werr);
        fflush(stdout);
      }
      sock_watch_.attempted(SocketWatch::Trigger::kOpen, live_sessions_.load() > 0, connect_errno_, SocketWatch::now_ns());
    }
  } catch (...) {
    close();
    throw;
  }
}

void VhostUserPort::register_driver() {
  // Client mode: one connect attempt per start, no rte_vhost reconnect thread (eswitchd reconnects: socket_watch.h).
  const uint64_t flags = args_.client ? RTE_VHOST_USER_CLIENT | RTE_VHOST_USER_NO_RECONNECT : 0;
  if (rte_vhost_driver_register(args_.socket.c_str(), flags) != 0) fail("rte_vhost_driver_register failed");
  registered_ = true;
  if (rte_vhost_driver_disable_features(args_.socket.c_str(), kDisabledFeatures) != 0) {
    fail("cannot disable the offload features");
  }
  rte_vhost_driver_get_features(args_.socket.c_str(), &offered_);
  const uint64_t wanted = bit(kFVersion1) | bit(kFMrgRxbuf) | bit(kFMq);
  if ((offered_ & wanted) != wanted) {
    fail(fmt::format("rte_vhost does not offer VERSION_1, MRG_RXBUF and MQ (0x{:x})", offered_));
  }
  if (!args_.vdpa.empty()) {
    // Hardware vDPA: the device serves the virtqueues; the switch only manages the socket's life.
    rte_vdpa_device* dev = rte_vdpa_find_device_by_name(args_.vdpa.c_str());
    if (dev == nullptr) {
      fail(fmt::format("no vDPA device named '{}' on this host (a hardware vDPA device exists once its driver "
                       "probed it, e.g. an mlx5 VF/SF given to the EAL with class=vdpa)",
                       args_.vdpa));
    }
    if (rte_vhost_driver_attach_vdpa_device(args_.socket.c_str(), dev) != 0) {
      fail(fmt::format("rte_vhost_driver_attach_vdpa_device refused vDPA device '{}'", args_.vdpa));
    }
  }
  // Packed rings survive a restart through the front-end's inflight area (inflight.h).
  if (args_.vdpa.empty() && !offer_inflight(args_.socket.c_str())) fail("cannot offer INFLIGHT_SHMFD");
  if (rte_vhost_driver_callback_register(args_.socket.c_str(), &kOps) != 0) fail("cannot register the callbacks");
  // Listening (server) or connecting (client) starts here so that a bad socket is an error of this port's
  // open; the guest's device is not used by the workers before the port is started and polled.
  // A client whose guest is not listening yet is not an error: the socket watch connects when it is.
  errno = 0;
  if (rte_vhost_driver_start(args_.socket.c_str()) != 0) {
    connect_errno_ = errno;
    if (!args_.client) fail("rte_vhost_driver_start failed (bind/connect)");
  } else {
    connect_errno_ = 0;
    if (!args_.client) {
      // rte_vhost's event thread polls the new listen fd only from its next wake-up (vhost_wake.h): the next
      // service() of any vhost-user port, after the ports opened together (one apply), makes one for them all.
      g_wake_pending.fetch_add(1);
      const uint64_t one = 1;
      [[maybe_unused]] auto r = ::write(event_fd_, &one, sizeof(one));
    }
  }
  driver_started_ = true;
}

void VhostUserPort::start() {
  if (!open_) fail("not open");
  started_ = true;
}

void VhostUserPort::stop() noexcept { started_ = false; }

void VhostUserPort::unregister_driver() noexcept {
  if (!registered_) return;
  // rte_vhost refuses while one of its callbacks for this socket runs; it is short (destroy_device waits only
  // for workers' bursts), so retry for a while.
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (rte_vhost_driver_unregister(args_.socket.c_str()) == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  registered_ = false;
  driver_started_ = false;
}

void VhostUserPort::close() noexcept {
  if (!open_) return;
  stop();
  const bool created_socket = driver_started_ && !args_.client;  // never remove a socket someone else listens on
  sock_watch_.close();
  live_sessions_.store(0);  // rte_vhost_driver_unregister closes sessions without destroy_connection
  unregister_driver();  // disconnects the guest: destroy_device runs (here or on the vhost thread) before return
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    auto it = registry().find(args_.socket);
    if (it != registry().end() && it->second == this) registry().erase(it);
  }
  if (created_socket) {
    struct stat st{};
    if (::stat(args_.socket.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(args_.socket.c_str());
  }
  vid_.store(-1, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.clear();
    live_vid_ = -1;
  }
  if (event_fd_ >= 0) ::close(event_fd_);
  event_fd_ = -1;
  for (Queue& q : rxq_) {  // segments no burst took yet
    for (uint32_t i = q.held_at; i < q.held_n; ++i) rte_pktmbuf_free(q.held[i]);
    q.held_at = q.held_n = 0;
  }
  txq_locks_.clear();
  open_ = false;
}

// --- rte_vhost's thread -------------------------------------------------------------------------------------

void VhostUserPort::post(const Event& e) noexcept {
  events_.push_back(e);
  const uint64_t one = 1;
  if (event_fd_ >= 0) [[maybe_unused]] auto r = ::write(event_fd_, &one, sizeof(one));
}

void VhostUserPort::on_features_changed(int vid, uint64_t features) noexcept {
  // The front-end sets LOG_ALL at the start of a migration and clears it at the end (rte_vhost then logs every
  // guest page it writes into the log area the front-end gave it). QEMU sends its log area
  // (VHOST_USER_SET_LOG_BASE) before the SET_FEATURES that turns LOG_ALL on (hw/virtio/vhost.c
  // vhost_migration_log), so its size is known here.
  const bool was = (log_features_.exchange(features, std::memory_order_relaxed) >> VhostUserPort::kLogAllBit) & 1;
  const bool now = (features >> VhostUserPort::kLogAllBit) & 1;
  if (was == now) return;
  uint64_t base = 0, size = 0;
  if (now) {
    rte_vhost_get_log_base(vid, &base, &size);
    log_starts_.fetch_add(1, std::memory_order_relaxed);
    log_area_bytes_.store(size, std::memory_order_relaxed);
  }
  std::lock_guard<std::mutex> lock(mu_);
  post({EventKind::kLog, vid, 0, now, size});
}

bool VhostUserPort::on_set_mtu(int vid, uint64_t mtu) noexcept {
  const bool ok = args_.mtu == 0 || mtu <= args_.mtu;
  if (ok) {
    frontend_mtu_.store(mtu, std::memory_order_relaxed);
  } else {
    mtu_refused_.fetch_add(1, std::memory_order_relaxed);
  }
  std::lock_guard<std::mutex> lock(mu_);
  post({EventKind::kMtu, vid, 0, ok, mtu});
  return ok;
}

bool VhostUserPort::on_inflight_msg(int vid, bool set, const InflightMsg& m, int64_t fd_bytes) noexcept {
  uint64_t features = 0;
  rte_vhost_get_negotiated_features(vid, &features);
  std::lock_guard<std::mutex> lock(mu_);
  const std::string why = check_inflight_msg(set, m, (features >> VIRTIO_F_RING_PACKED) & 1, 2u * args_.queues,
                                             live_vid_ == vid, fd_bytes);
  if (why.empty()) return true;
  inflight_refused_.fetch_add(1, std::memory_order_relaxed);
  if (refusal_notes_.size() < 8) refusal_notes_.push_back(why);  // logged by service(); all are counted
  if (event_fd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(event_fd_, &one, sizeof(one));
  }
  return false;
}

void VhostUserPort::on_new_device(int vid) noexcept {
  uint64_t features = 0;
  rte_vhost_get_negotiated_features(vid, &features);
  suppress_guest_kicks(vid);
  // A migration's source never turns LOG_ALL off (its device stops first): the destination's device does.
  on_features_changed(vid, features);
  std::lock_guard<std::mutex> lock(mu_);
  live_vid_ = vid;
  take_inflight_positions_locked(vid);
  // A resumed vport's packed rings take the stream's positions before any worker may use the device.
  if (rings_restore_pending_) restore_note_ = restore_rings_locked(vid);
  post({EventKind::kNew, vid, 0, true, features});
}

// The workers poll every vring they serve, so the guest need not notify (kick) the device when it adds buffers:
// for a polling guest such as DPDK's virtio PMD a kick is a write to the vring's kick eventfd, one system call
// per tx burst and per rx refill, which the guest would otherwise spend on every burst (bench/README.md, issue
// 10: it made the guest the limit of PVP). Suppressed as DPDK's net_vhost does, in new_device (rte_vhost's
// thread, no queue lock held): VRING_USED_F_NO_NOTIFY on split rings, the device event flags DISABLE on packed
// ones (with EVENT_IDX rte_vhost leaves the guest's avail event alone, so the guest rarely kicks anyway).
// rte_vhost keeps the setting when a vring is enabled later (a guest's further queue pairs); a vring whose
// addresses the guest had not given by then keeps kicking: a cost, never a loss (nothing here waits for kicks).
// Not from the main lcore: it would spin on a vring lock that rte_vhost's thread holds while it handles a
// message on the same shared core.
void VhostUserPort::suppress_guest_kicks(int vid) noexcept {
  const uint16_t n = rte_vhost_get_vring_num(vid);
  for (uint16_t i = 0; i < n; ++i) rte_vhost_enable_guest_notification(vid, i, 0);
}

void VhostUserPort::on_connection(int vid, bool up) noexcept {
  live_sessions_.fetch_add(up ? 1 : -1, std::memory_order_acq_rel);
  std::lock_guard<std::mutex> lock(mu_);
  post({EventKind::kConnection, vid, 0, up, 0});
}

void VhostUserPort::on_destroy_device(int vid) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (live_vid_ == vid) live_vid_ = -1;
    vid_.store(-1, std::memory_order_seq_cst);
    post({EventKind::kDestroy, vid, 0, false, 0});
  }
  // rte_vhost frees the device when this returns: wait until no worker is inside a burst that read the vid.
  for (const Queue* qs : {rxq_, txq_}) {
    for (uint16_t q = 0; q < kMaxQueues; ++q) {
      while (qs[q].busy.load(std::memory_order_seq_cst) != 0) rte_pause();
    }
  }
  for (auto& w : inflight_) w.store(nullptr, std::memory_order_relaxed);  // rte_vhost unmaps the area next
}

// A new session's packed vrings: the position word of each one's inflight area, and the position a restarted
// eswitchd left there taken back (rte_vhost's thread, mu_ held, before the device is published).
void VhostUserPort::take_inflight_positions_locked(int vid) noexcept {
  unsigned areas = 0, set = 0, same = 0, fresh = 0, failed = 0, refused = 0;
  for (uint16_t i = 0; i < 2 * kMaxQueues; ++i) {
    uint64_t* word = i < 2 * args_.queues ? inflight_position_word(vid, i, inflight_ring_size_[i]) : nullptr;
    if (word != nullptr) {
      ++areas;
      switch (restore_from_inflight(vid, i, word, inflight_ring_size_[i])) {
        case InflightRestore::kSet: ++set; break;
        case InflightRestore::kSame: ++same; break;
        case InflightRestore::kNone: ++fresh; break;
        case InflightRestore::kFailed: ++failed; break;
        case InflightRestore::kRefused: ++refused; break;
      }
    }
    inflight_[i].store(word, std::memory_order_release);
  }
  if (areas == 0) return;
  inflight_sessions_.fetch_add(1, std::memory_order_relaxed);
  inflight_restored_.fetch_add(set, std::memory_order_relaxed);
  inflight_note_ = fmt::format("packed vrings with an inflight area (INFLIGHT_SHMFD): {} set to the position "
                               "recorded there, {} already there, {} fresh, {} failed, {} refused (a slot beyond the ring)", set, same, fresh,
                               failed, refused);
}

void VhostUserPort::on_vring_state(int vid, uint16_t vring, bool enable) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  post({EventKind::kVring, vid, vring, enable, 0});
}

// --- main lcore ---------------------------------------------------------------------------------------------

void VhostUserPort::recompute_tx_map() noexcept {
  uint16_t on[kMaxQueues];
  uint16_t n = 0;
  for (uint16_t q = 0; q < args_.queues; ++q) {
    if (vring_on_[2 * q]) on[n++] = static_cast<uint16_t>(2 * q);
  }
  for (uint16_t q = 0; q < kMaxQueues; ++q) {
    tx_vring_[q].store(n == 0 ? kNoVring : on[q % n], std::memory_order_release);
  }
  for (uint16_t q = 0; q < kMaxQueues; ++q) {
    rx_on_[q].store(q < args_.queues && vring_on_[2 * q + 1], std::memory_order_release);
  }
}

void VhostUserPort::service() noexcept {
  if (!open_) return;
  uint64_t counter;
  [[maybe_unused]] auto r = ::read(event_fd_, &counter, sizeof(counter));
  if (const int sockets = g_wake_pending.exchange(0); sockets > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string werr = wake_vhost_event_thread();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (werr.empty()) {
      fmt::print("eswitchd: rte_vhost's event thread woken for {} new vhost-user server socket(s) ({:.1f} ms)\n",
                 sockets, ms);
    } else {
      fmt::print("eswitchd: vport {}: warning: rte_vhost's event thread not woken for {} new vhost-user server "
                 "socket(s) ({}): their first connection may wait up to 1 s\n", spec_.name, sockets, werr);
    }
    fflush(stdout);
  }
  watch_rings();
  serve_watch();  // client mode: connect when the guest's socket appears (socket_watch.h); before mu_ is taken
  std::lock_guard<std::mutex> lock(mu_);  // held briefly: the vhost thread only appends
  for (const auto& why : refusal_notes_) {
    fmt::print("eswitchd: vport {}: error: vhost-user socket {}: {}: refused, the session is closed (counted in "
               "inflight_refused)\n", spec_.name, args_.socket, why);
    fflush(stdout);
  }
  refusal_notes_.clear();
  if (events_.empty()) return;
  bool vrings_changed = false;
  int publish = -2;  // -2: leave vid_ alone
  for (const Event& e : events_) {
    switch (e.kind) {
      case EventKind::kNew:
        if (e.vid != vring_vid_) {
          std::fill(std::begin(vring_on_), std::end(vring_on_), false);
          vring_vid_ = e.vid;
          vrings_changed = true;
        }
        features_ = e.features;
        ++connects_;
        publish = e.vid;
        std::erase(unready_vids_, e.vid);
        break;
      case EventKind::kDestroy:
        ++disconnects_;
        publish = -2;
        break;
      case EventKind::kMtu:
        if (e.enable) {
          fmt::print("eswitchd: vport {}: the guest's front-end set MTU {} (VHOST_USER_NET_SET_MTU){}\n", spec_.name,
                     e.features, args_.mtu == 0 ? "" : fmt::format(", within the vport's MTU {}", args_.mtu));
        } else {
          fmt::print("eswitchd: vport {}: error: vhost-user socket {}: the guest's front-end asked for MTU {} "
                     "(VHOST_USER_NET_SET_MTU), above the vport's MTU {}: refused (the front-end does not start "
                     "the device until it asks for {} or less)\n",
                     spec_.name, args_.socket, e.features, args_.mtu, args_.mtu);
        }
        fflush(stdout);
        break;
      case EventKind::kLog:
        if (e.enable) {
          fmt::print("eswitchd: vport {}: dirty-page logging on (LOG_ALL, a migration): log area {} bytes\n",
                     spec_.name, e.features);
        } else {
          fmt::print("eswitchd: vport {}: dirty-page logging off ({} frames delivered, {} taken while it was on)\n",
                     spec_.name, logged_frames(txq_), logged_frames(rxq_));
        }
        fflush(stdout);
        break;
      case EventKind::kConnection:
        // The vhost-user socket session (before the guest's driver makes the device ready, and after it is gone).
        fmt::print("eswitchd: vport {}: vhost-user session {} on {}\n", spec_.name, e.enable ? "opened" : "closed",
                   args_.socket);
        if (e.enable) {
          ++sessions_;
          unready_vids_.push_back(e.vid);
        } else if (std::find(unready_vids_.begin(), unready_vids_.end(), e.vid) != unready_vids_.end()) {
          std::erase(unready_vids_, e.vid);
          ++sessions_unready_;
          fmt::print("eswitchd: vport {}: error: vhost-user socket {}: the session closed before the guest's device "
                     "was ready (the front-end's negotiation was refused - see rte_vhost's message above - or it "
                     "gave up; counted in sessions_unready)\n", spec_.name, args_.socket);
        }
        fflush(stdout);
        break;
      case EventKind::kVring:
        if (e.vid != vring_vid_) {
          std::fill(std::begin(vring_on_), std::end(vring_on_), false);
          vring_vid_ = e.vid;
        }
        if (e.vring < 2 * kMaxQueues) vring_on_[e.vring] = e.enable;
        if (e.enable && e.vring >= 2 * args_.queues) {
          // rte_vhost 22.11 announces its own maximum queue count, so a guest may enable more queue pairs than
          // configured: those vrings are never polled nor sent to (refused), and counted.
          if (vrings_refused_++ == 0) {
            fmt::print("eswitchd: vport {}: the guest enabled vring {} beyond the {} configured queue pair(s): "
                       "not served (counted in vrings_refused)\n", spec_.name, e.vring, args_.queues);
            fflush(stdout);
          }
        }
        vrings_changed = true;
        break;
    }
  }
  events_.clear();
  if (vrings_changed) recompute_tx_map();
  // A guest enables its queue pairs after the device is up (Linux virtio_net: one per vCPU): say when that changes.
  if (vrings_changed && publish < 0 && vid_.load(std::memory_order_relaxed) >= 0 &&
      enabled_queue_pairs() != reported_pairs_) {
    reported_pairs_ = enabled_queue_pairs();
    fmt::print("eswitchd: vport {}: {} of {} queue pairs on\n", spec_.name, reported_pairs_, args_.queues);
    fflush(stdout);
  }
  // Only the device rte_vhost still has (a destroy may have followed the new_device event): destroy_device
  // takes mu_ too, so it cannot slip between this check and the store.
  if (publish >= 0 && publish == live_vid_) {
    vid_.store(publish, std::memory_order_seq_cst);
    reported_pairs_ = enabled_queue_pairs();
    fmt::print("eswitchd: vport {}: vhost-user guest connected on {} (features 0x{:x}, {} of {} queue pairs on)\n",
               spec_.name, args_.socket, features_, enabled_queue_pairs(), args_.queues);
    if (!inflight_note_.empty()) {
      fmt::print("eswitchd: vport {}: {}\n", spec_.name, inflight_note_);
      inflight_note_.clear();
    }
    if (!resumed_vrings_.empty() && resumed_vrings_.size() == 2u * args_.queues) {
      // After a migration: where the guest's rings are now against where the stream left them (a split ring
      // restarts from its used index in guest memory; a packed ring took the stream's positions unless the
      // guest restarted it: restore_rings_locked).
      std::string cmp;
      const bool packed = (features_ >> VIRTIO_F_RING_PACKED) & 1;
      for (uint16_t i = 0; i < 2 * args_.queues; ++i) {
        uint16_t a = 0, u = 0;
        rte_vhost_get_vring_base(publish, i, &a, &u);
        const MigVring now = MigVring::from_vhost_base(a, u, packed);
        cmp += fmt::format(" vring{} {}->{}", i, ring_position(resumed_vrings_[i], packed), ring_position(now, packed));
      }
      fmt::print("eswitchd: vport {}: resumed from a migration stream ({} ring); avail/used stream->now:{}{}\n",
                 spec_.name, packed ? "packed" : "split", cmp, restore_note_.empty() ? "" : "; " + restore_note_);
      restore_note_.clear();
    }
    fflush(stdout);
  }
}

void VhostUserPort::watch_rings() noexcept {
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
  if (now < next_watch_ns_) return;
  next_watch_ns_ = now + 1'000'000'000;
  // Packed rings have no index rte_vhost reads under its lock (rte_vhost_avail_entries is split-only): not watched.
  const bool split = !((features_ >> VIRTIO_F_RING_PACKED) & 1);
  // An empty pool also stops the engine (rte_vhost cannot allocate): that is not the guest's doing.
  const bool pool_ok = pool_ != nullptr && rte_mempool_avail_count(pool_) >= 2u * kVhostBurst;
  const bool polled = mig_rx_allowed(mig_state());
  for (uint16_t q = 0; q < args_.queues; ++q) {
    RingWatch& w = watch_[q];
    Queue& rq = rxq_[q];
    // The same handshake as a worker's: destroy_device waits for the mark, so the device outlives the calls.
    rq.busy.fetch_add(1, std::memory_order_seq_cst);
    const int vid = vid_.load(std::memory_order_seq_cst);
    uint16_t pending = 0, avail = 0, used = 0;
    const bool on = vid >= 0 && split && rx_on_[q].load(std::memory_order_relaxed) &&
                    rte_vhost_get_vring_base(vid, static_cast<uint16_t>(2 * q + 1), &avail, &used) == 0;
    if (on) pending = rte_vhost_avail_entries(vid, static_cast<uint16_t>(2 * q + 1));
    rq.busy.fetch_sub(1, std::memory_order_release);
    if (!on) {
      w = RingWatch{};
      continue;
    }
    const bool stuck = w.seen && polled && pool_ok && pending != 0 && w.pending != 0 && avail == w.last_avail;
    if (stuck && !w.stalled) {
      w.stalled = true;
      ++vring_stalls_;
      fmt::print("eswitchd: vport {}: error: vhost-user socket {}: the guest's TX vring {} has {} descriptor(s) the "
                 "engine cannot take, stuck at avail index {} for a second (a descriptor outside guest memory or a "
                 "broken chain): that vring is stalled until the guest resets it; counted in vring_stalls, other "
                 "vports are not affected\n",
                 spec_.name, args_.socket, 2 * q + 1, pending, avail);
      fflush(stdout);
    } else if (w.stalled && avail != w.last_avail) {
      w.stalled = false;
      fmt::print("eswitchd: vport {}: the guest's TX vring {} moves again (avail index {})\n", spec_.name, 2 * q + 1,
                 avail);
      fflush(stdout);
    }
    w.seen = true;
    w.pending = pending;
    w.last_avail = avail;
  }
}

uint64_t VhostUserPort::logged_frames(const Queue* qs) const {
  uint64_t n = 0;
  for (uint16_t q = 0; q < kMaxQueues; ++q) n += qs[q].logged;
  return n;
}

uint16_t VhostUserPort::enabled_queue_pairs() const {
  uint16_t n = 0;
  for (uint16_t q = 0; q < args_.queues; ++q) n += rx_on_[q].load(std::memory_order_relaxed) ? 1 : 0;
  return n;
}

dp::DriverCounters VhostUserPort::driver_counters() const {
  dp::DriverCounters c;
  c.valid = true;
  c.ipackets = carried_rx_;
  c.opackets = carried_tx_;
  c.oerrors = carried_refused_;
  for (uint16_t q = 0; q < kMaxQueues; ++q) {
    c.ipackets += rxq_[q].packets;
    c.opackets += txq_[q].packets;
    c.oerrors += txq_[q].dropped;
    c.ierrors += rxq_[q].offload.errors;  // offload requests that made no sense: frame dropped
    c.ierrors += rxq_[q].mtu_dropped;     // frames above the vport's MTU: dropped
  }
  return c;
}

namespace {
// virtio 1.2 feature bits by name (the ones rte_vhost can negotiate for virtio-net).
constexpr std::pair<unsigned, const char*> kFeatureNames[] = {
    {0, "CSUM"},          {1, "GUEST_CSUM"},   {3, "MTU"},           {5, "MAC"},          {7, "GUEST_TSO4"},
    {8, "GUEST_TSO6"},    {9, "GUEST_ECN"},    {10, "GUEST_UFO"},    {11, "HOST_TSO4"},   {12, "HOST_TSO6"},
    {13, "HOST_ECN"},     {14, "HOST_UFO"},    {15, "MRG_RXBUF"},    {16, "STATUS"},      {17, "CTRL_VQ"},
    {18, "CTRL_RX"},      {19, "CTRL_VLAN"},   {21, "GUEST_ANNOUNCE"}, {22, "MQ"},        {23, "CTRL_MAC_ADDR"},
    {24, "NOTIFY_ON_EMPTY"}, {26, "LOG_ALL"},  {27, "ANY_LAYOUT"},   {28, "INDIRECT_DESC"}, {29, "EVENT_IDX"},
    {30, "PROTOCOL_FEATURES"}, {32, "VERSION_1"}, {33, "ACCESS_PLATFORM"}, {34, "RING_PACKED"},
    {35, "IN_ORDER"},     {36, "ORDER_PLATFORM"}, {37, "SR_IOV"},    {38, "NOTIFICATION_DATA"}};
}  // namespace

dp::PeerStatus VhostUserPort::peer_status() const {
  dp::PeerStatus s;
  s.present = true;
  s.connected = vid_.load(std::memory_order_acquire) >= 0;
  s.features = s.connected ? features_ : 0;
  for (const auto& [b, name] : kFeatureNames) {
    if (s.features & bit(b)) s.feature_names.emplace_back(name);
  }
  s.connects = connects_;
  s.disconnects = disconnects_;
  s.queues.resize(args_.queues);
  OffloadCounters o;
  uint64_t mtu_dropped = 0;
  for (uint16_t q = 0; q < args_.queues; ++q) {
    mtu_dropped += rxq_[q].mtu_dropped;
    o.csum_completed += rxq_[q].offload.csum_completed;
    o.gso_frames += rxq_[q].offload.gso_frames;
    o.gso_segments += rxq_[q].offload.gso_segments;
    o.errors += rxq_[q].offload.errors;
  }
  s.counters = {{"csum_completed", o.csum_completed},
                {"gso_frames", o.gso_frames},
                {"gso_segments", o.gso_segments},
                {"offload_errors", o.errors},
                {"announces", announces_sent()},
                {"vrings_refused", vrings_refused_},
                {"sessions", sessions_},
                {"sessions_unready", sessions_unready_},
                {"vring_stalls", vring_stalls_},
                {"mtu", args_.mtu},
                {"frontend_mtu", frontend_mtu_.load(std::memory_order_relaxed)},
                {"mtu_refused", mtu_refused_.load(std::memory_order_relaxed)},
                {"mtu_dropped", mtu_dropped},
                {"rings_restored", restored_rings_.load(std::memory_order_relaxed)},
                {"inflight_sessions", inflight_sessions_.load(std::memory_order_relaxed)},
                {"inflight_restored", inflight_restored_.load(std::memory_order_relaxed)},
                {"inflight_refused", inflight_refused_.load(std::memory_order_relaxed)},
                {"dirty_logging", dirty_logging() ? 1u : 0u},
                {"log_starts", log_starts_.load(std::memory_order_relaxed)},
                {"log_area_bytes", log_area_bytes_.load(std::memory_order_relaxed)},
                {"log_enqueued", logged_frames(txq_)},
                {"log_dequeued", logged_frames(rxq_)}};
  sock_watch_.add_counters(s.counters);
  s.state = mig_state_name(mig_state());
  for (uint16_t q = 0; q < args_.queues; ++q) {
    dp::PeerQueue& pq = s.queues[q];
    pq.rx_enabled = s.connected && rx_on_[q].load(std::memory_order_relaxed);
    pq.tx_enabled = s.connected && vring_on_[2 * q];
    pq.rx_packets = rxq_[q].packets;
    pq.tx_packets = txq_[q].packets;
    pq.tx_dropped = txq_[q].dropped;
  }
  return s;
}

dp::PortIo VhostUserPort::io() const noexcept {
  if (!args_.vdpa.empty()) {
    // The vDPA device moves the guest's packets itself: nothing for the workers to poll or send here.
    constexpr dp::BurstFn none = [](void*, uint16_t, rte_mbuf**, uint16_t) noexcept -> uint16_t { return 0; };
    return dp::PortIo::burst_fns(none, none, const_cast<VhostUserPort*>(this), args_.queues, nullptr);
  }
  return dp::PortIo::burst_fns(&VhostUserPort::rx_burst, &VhostUserPort::tx_burst, const_cast<VhostUserPort*>(this),
                               args_.queues,
                               txq_locks_.empty() ? nullptr : const_cast<rte_spinlock_t*>(txq_locks_.data()));
}

// --- workers ------------------------------------------------------------------------------------------------

uint16_t VhostUserPort::rx_burst(void* dev, uint16_t queue, rte_mbuf** pkts, uint16_t n) noexcept {
  auto* self = static_cast<VhostUserPort*>(dev);
  if (queue >= kMaxQueues || !self->rx_on_[queue].load(std::memory_order_acquire)) return 0;
  Queue& rq = self->rxq_[queue];
  rq.busy.fetch_add(1, std::memory_order_seq_cst);
  // Read after marking busy (seq_cst): set_mig_state() stores the state, then waits for the busy marks.
  if (!mig_rx_allowed(static_cast<MigState>(self->mig_.load(std::memory_order_seq_cst)))) {
    rq.busy.fetch_sub(1, std::memory_order_release);
    return 0;
  }
  const int vid = self->vid_.load(std::memory_order_seq_cst);
  uint16_t got = 0;
  // Segments an earlier burst had no room for go first.
  while (got < n && rq.held_at < rq.held_n) pkts[got++] = rq.held[rq.held_at++];
  if (rq.held_at == rq.held_n) rq.held_at = rq.held_n = 0;
  if (vid >= 0 && rq.held_n == 0 && got < n) {
    if (queue == 0 && self->announce_armed_.load(std::memory_order_relaxed) && n - got > 1) {
      got = static_cast<uint16_t>(got + (self->inject_announce(pkts + got, n) ? 1 : 0));
    }
    rte_mbuf* fresh[kVhostBurst];
    const uint16_t k = rte_vhost_dequeue_burst(vid, static_cast<uint16_t>(2 * queue + 1), self->pool_, fresh,
                                               std::min<uint16_t>(static_cast<uint16_t>(n - got), kVhostBurst));
    if (k != 0) {
      if (uint64_t* w = self->inflight_[2 * queue + 1].load(std::memory_order_acquire)) {
        record_inflight_position(vid, static_cast<uint16_t>(2 * queue + 1), w, self->inflight_ring_size_[2 * queue + 1]);
      }
    }
    rte_mbuf* segs[kMaxSegments];
    const bool mtu = self->args_.mtu != 0;
    for (uint16_t i = 0; i < k; ++i) {
      if (!needs_offload(fresh[i])) {
        if (mtu && self->above_mtu(fresh[i])) {
          rte_pktmbuf_free(fresh[i]);
          ++rq.mtu_dropped;
          continue;
        }
        pkts[got++] = fresh[i];
        continue;
      }
      const uint16_t made = complete_offloads(fresh[i], self->pool_, segs, rq.offload);
      for (uint16_t s = 0; s < made; ++s) {
        if (mtu && self->above_mtu(segs[s])) {  // a TSO frame cut at an MSS the vport's MTU does not allow
          rte_pktmbuf_free(segs[s]);
          ++rq.mtu_dropped;
          continue;
        }
        if (got < n) {
          pkts[got++] = segs[s];
        } else {
          rq.held[rq.held_n++] = segs[s];  // room: at most kVhostBurst frames of kMaxSegments each
        }
      }
    }
  }
  rq.busy.fetch_sub(1, std::memory_order_release);
  rq.packets += got;
  if (self->dirty_logging()) rq.logged += got;
  return got;
}

// Whether the frame's L3 part (after the Ethernet header and up to two 802.1Q/802.1ad tags) is above the MTU.
bool VhostUserPort::above_mtu(rte_mbuf* m) const noexcept {
  if (m->pkt_len <= static_cast<uint32_t>(args_.mtu) + RTE_ETHER_HDR_LEN) return false;  // the common case
  uint8_t buf[RTE_ETHER_HDR_LEN + 8];
  uint32_t l2 = RTE_ETHER_HDR_LEN;
  const auto* h = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, std::min<uint32_t>(m->pkt_len, sizeof(buf)), buf));
  if (h != nullptr) {
    for (uint32_t at = 12; at + 2 <= std::min<uint32_t>(m->pkt_len, sizeof(buf)) && l2 < RTE_ETHER_HDR_LEN + 8;
         at += 4) {
      const uint16_t type = static_cast<uint16_t>(h[at] << 8 | h[at + 1]);
      if (type != RTE_ETHER_TYPE_VLAN && type != RTE_ETHER_TYPE_QINQ) break;
      l2 += 4;
    }
  }
  return m->pkt_len > l2 + args_.mtu;
}

uint16_t VhostUserPort::tx_burst(void* dev, uint16_t queue, rte_mbuf** pkts, uint16_t n) noexcept {
  auto* self = static_cast<VhostUserPort*>(dev);
  if (queue >= kMaxQueues) return 0;
  const uint16_t vring = self->tx_vring_[queue].load(std::memory_order_acquire);
  if (vring == kNoVring) return 0;
  Queue& tq = self->txq_[queue];
  tq.busy.fetch_add(1, std::memory_order_seq_cst);
  if (!mig_tx_allowed(static_cast<MigState>(self->mig_.load(std::memory_order_seq_cst)))) {
    tq.busy.fetch_sub(1, std::memory_order_release);
    return 0;  // stopped for migration: the switch counts tx_dropped and frees them
  }
  const int vid = self->vid_.load(std::memory_order_seq_cst);
  uint16_t sent = 0;
  if (vid >= 0) {
    while (sent < n) {
      const uint16_t chunk = std::min<uint16_t>(static_cast<uint16_t>(n - sent), kVhostBurst);
      const uint16_t k = rte_vhost_enqueue_burst(vid, vring, pkts + sent, chunk);
      sent = static_cast<uint16_t>(sent + k);
      if (k < chunk) break;
    }
    if (sent != 0) {
      if (uint64_t* w = self->inflight_[vring].load(std::memory_order_acquire)) {
        record_inflight_position(vid, vring, w, self->inflight_ring_size_[vring]);
      }
    }
  }
  tq.busy.fetch_sub(1, std::memory_order_release);
  if (vid < 0) return 0;
  // rte_vhost copied the frames into the guest's buffers: the mbufs are still ours.
  rte_pktmbuf_free_bulk(pkts, sent);
  tq.packets += sent;
  tq.dropped += n - sent;
  if (self->dirty_logging()) tq.logged += sent;
  return sent;
}

}  // namespace esw::vdpa

// --- migration (main lcore, but inject_announce: the worker polling rx queue 0) ------------------------------

namespace esw::vdpa {


void VhostUserPort::quiesce() noexcept {
  for (const Queue* qs : {rxq_, txq_}) {
    for (uint16_t q = 0; q < kMaxQueues; ++q) {
      while (qs[q].busy.load(std::memory_order_seq_cst) != 0) rte_pause();
    }
  }
}

void VhostUserPort::set_mig_state(MigState s) noexcept {
  const MigState before = mig_state();
  mig_.store(static_cast<uint8_t>(s), std::memory_order_seq_cst);
  // A burst that read the old state may still run: wait for it, so that once this returns nothing the new
  // state forbids happens (STOP_COPY reads the vring indices right after).
  quiesce();
  if (s == MigState::kRunning && before != MigState::kRunning && !resumed_vrings_.empty()) {
    announce_armed_.store(true, std::memory_order_release);
  }
}

// A RARP from the guest's MAC (what rte_vhost's SEND_RARP handling and QEMU's announce send): the network's
// learning bridges move the MAC to this port. Built in a fresh mbuf placed first in the burst, as if the guest
// had sent it; the binding lets RARP from the bound MAC through.
bool VhostUserPort::inject_announce(rte_mbuf** pkts, uint16_t /*n*/) noexcept {
  bool armed = true;
  if (!announce_armed_.compare_exchange_strong(armed, false, std::memory_order_acq_rel)) return false;
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) {
    announce_armed_.store(true, std::memory_order_relaxed);  // next burst
    return false;
  }
  constexpr uint16_t kLen = 60;  // 14 + 28, padded to the minimum frame
  auto* p = rte_pktmbuf_mtod(m, uint8_t*);
  std::memset(p, 0, kLen);
  std::memset(p, 0xff, 6);
  std::memcpy(p + 6, announce_mac_.addr_bytes, 6);
  p[12] = dp::kEthTypeRarp >> 8;
  p[13] = dp::kEthTypeRarp & 0xff;
  uint8_t* a = p + 14;
  a[1] = 1;                 // htype ethernet
  a[2] = 0x08;              // ptype IPv4
  a[4] = 6;                 // hlen
  a[5] = 4;                 // plen
  a[7] = 3;                 // op: reverse request
  std::memcpy(a + 8, announce_mac_.addr_bytes, 6);   // sender hardware address
  std::memcpy(a + 18, announce_mac_.addr_bytes, 6);  // target hardware address
  m->data_len = kLen;
  m->pkt_len = kLen;
  pkts[0] = m;
  announces_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

namespace {

// Packed ring (virtio 1.2 2.8): descriptors of 16 bytes {le64 addr; le32 len; le16 id; le16 flags}; the driver
// makes slot i available by setting AVAIL (bit 7) to its wrap counter and USED (bit 15) to the opposite. Counts
// the slots available from the device's position (index, wrap) on: what the guest offered that the device has
// not taken. (<linux/virtio_ring.h> does not compile as C++.)
uint16_t packed_available(const rte_vhost_vring& vr, uint16_t index, bool wrap) {
  if (vr.desc_packed == nullptr || vr.size == 0 || index >= vr.size) return 0;
  const auto* base = reinterpret_cast<const uint8_t*>(vr.desc_packed);
  uint16_t n = 0;
  while (n < vr.size) {
    const auto* flags = reinterpret_cast<const uint16_t*>(base + 16u * index + 14);
    const uint16_t f = __atomic_load_n(flags, __ATOMIC_ACQUIRE);
    const bool avail = (f >> 7) & 1, used = (f >> 15) & 1;
    if (avail != wrap || used == wrap) break;
    ++n;
    if (++index == vr.size) {
      index = 0;
      wrap = !wrap;
    }
  }
  return n;
}
}  // namespace

void VhostUserPort::save_mig(MigStream& s) const {
  const int vid = vid_.load(std::memory_order_acquire);
  s.features = vid >= 0 ? features_ : 0;
  s.packed = (s.features >> VIRTIO_F_RING_PACKED) & 1;
  s.queue_pairs = args_.queues;
  s.vrings.assign(2 * args_.queues, MigVring{});
  for (uint16_t i = 0; i < 2 * args_.queues; ++i) {
    MigVring& v = s.vrings[i];
    const bool enabled = vring_on_[i];
    if (vid >= 0) {
      uint16_t avail = 0, used = 0;
      // Packed: index | wrap counter << 15 for both (DPDK 22.11 lib/vhost/vhost.c).
      if (rte_vhost_get_vring_base(vid, i, &avail, &used) == 0) v = MigVring::from_vhost_base(avail, used, s.packed);
      rte_vhost_vring vr{};
      if (rte_vhost_get_vhost_vring(vid, i, &vr) == 0) {
        if (s.packed) {
          v.inflight = packed_available(vr, v.last_avail, v.avail_wrap);
        } else if (vr.avail != nullptr) {
          // Split ring: what the guest made available that the engine has not taken yet.
          // (struct vring_avail is {le16 flags; le16 idx; ...}.)
          const auto* avail_idx = reinterpret_cast<const uint16_t*>(vr.avail) + 1;
          v.inflight = static_cast<uint16_t>(__atomic_load_n(avail_idx, __ATOMIC_ACQUIRE) - v.last_avail);
        }
      }
    }
    v.enabled = enabled;
  }
  const dp::DriverCounters d = driver_counters();
  s.counters.engine_rx = d.ipackets;
  s.counters.engine_tx = d.opackets;
  s.counters.engine_tx_refused = d.oerrors;
}

void VhostUserPort::load_mig(const MigStream& s, const dp::PortCounters& carried) noexcept {
  carried_ = carried;
  // The engine's own counts continue too: what this port counted so far (nothing, normally) plus the stream's.
  carried_rx_ = s.counters.engine_rx;
  carried_tx_ = s.counters.engine_tx;
  carried_refused_ = s.counters.engine_tx_refused;
  if (rte_ether_unformat_addr(s.hw_addr.c_str(), &announce_mac_) != 0) announce_mac_ = rte_ether_addr{};
  std::string note;
  {
    std::lock_guard<std::mutex> lock(mu_);  // the vhost thread reads them in new_device
    resumed_vrings_ = s.vrings;
    rings_restore_pending_ = s.packed && s.vrings.size() == 2u * args_.queues;
    // The guest's session may be up already (it reached this eswitchd before the stream was installed): the
    // vport is RESUMING, so nothing polls its rings while they are set.
    if (rings_restore_pending_ && live_vid_ >= 0) note = restore_rings_locked(live_vid_);
    if (resumed_vrings_.empty()) resumed_vrings_.push_back({});  // marks "resumed" for the announce
  }
  if (!note.empty()) {
    fmt::print("eswitchd: vport {}: {}\n", spec_.name, note);
    fflush(stdout);
  }
}

std::string VhostUserPort::ring_position(const MigVring& v, bool packed) {
  if (!packed) return fmt::format("{}/{}", v.last_avail, v.last_used);
  return fmt::format("{}w{}/{}w{}", v.last_avail, v.avail_wrap ? 1 : 0, v.last_used, v.used_wrap ? 1 : 0);
}

// A packed ring has no index in guest memory that the device could restart from (a split ring has the used
// index, which rte_vhost resynchronises to): its position is where the device last stopped, which only the stream
// knows once the front-end lost its session with the source. So each vring takes the stream's avail/used
// index and wrap counters (rte_vhost_set_vring_base), unless the front-end restarted the ring (slot 0, wrap
// counters 1: a driver reset, or DPDK virtio_user's reconnect, which re-initialises packed rings): then the
// stream's positions no longer exist in it. Called with mu_ held, before the device is polled.
std::string VhostUserPort::restore_rings_locked(int vid) noexcept {
  rings_restore_pending_ = false;
  unsigned set = 0, same = 0, restarted = 0, failed = 0;
  for (uint16_t i = 0; i < resumed_vrings_.size(); ++i) {
    uint16_t a = 0, u = 0;
    if (rte_vhost_get_vring_base(vid, i, &a, &u) != 0) {
      ++failed;
      continue;
    }
    const MigVring now = MigVring::from_vhost_base(a, u, true);
    const MigVring& want = resumed_vrings_[i];
    if (now.same_position(want)) {
      ++same;
    } else if (now.last_avail == 0 && now.avail_wrap && now.last_used == 0 && now.used_wrap) {
      ++restarted;
    } else if (rte_vhost_set_vring_base(vid, i, want.vhost_avail(), want.vhost_used()) == 0) {
      ++set;
    } else {
      ++failed;
    }
  }
  restored_rings_.fetch_add(set, std::memory_order_relaxed);
  return fmt::format("packed rings from the stream: {} set to the stream's avail/used and wrap counters, {} already "
                     "there, {} restarted by the guest (kept), {} without a ring",
                     set, same, restarted, failed);
}

void VhostUserPort::add_carried(dp::PortCounters& c) const { c += carried_; }

}  // namespace esw::vdpa
