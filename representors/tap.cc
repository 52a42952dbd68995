#include "representors/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <rte_errno.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "dataplane/error.h"

namespace esw::rep {

namespace {

constexpr unsigned kRingSize = 1024;        // per queue; a full ring drops (counted), it never blocks
constexpr unsigned kServiceBudget = 256;    // frames per direction per service() call
constexpr unsigned kMaxSegs = 16;

// A representor is the host end of a vport's wire. Left alone, the host's IPv6 stack would start talking on it
// (link-local address, DAD, router solicitations, MLD) and those frames would reach the guest unasked; the
// operator can turn IPv6 back on (sysctl net.ipv6.conf.rep-<vport>.disable_ipv6=0).
void quiet_host_end(const std::string& ifname) {
  if (FILE* f = fopen(fmt::format("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ifname).c_str(), "w")) {
    fputs("1", f);
    fclose(f);
  }
}

rte_ring* make_ring(const char* what, uint16_t index, unsigned q) {
  static std::atomic<unsigned> seq{0};
  const std::string name = fmt::format("rep{}{}{}_{}", what, index, q, seq++);
  return rte_ring_create(name.c_str(), kRingSize, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
}

}  // namespace

TapRepresentor::~TapRepresentor() { close(); }

void TapRepresentor::fail(const std::string& what, int err) const {
  std::string msg = fmt::format("representor {}: {}", spec_.name, what);
  if (err != 0) msg += fmt::format(": {}", strerror(err));
  if (err == EPERM || err == EACCES) msg += " (eswitchd needs root or CAP_NET_ADMIN)";
  throw dp::Error(msg);
}

void TapRepresentor::open(const dp::PortSpec& spec, uint16_t index, rte_mempool* pool, uint16_t nb_workers) {
  spec_ = spec;
  index_ = index;
  pool_ = pool;
  dev_name_ = spec.devargs;
  driver_ = "tap";
  if (dev_name_.empty() || dev_name_.size() >= IFNAMSIZ) {
    fail(fmt::format("interface name '{}' must have 1 to {} characters", dev_name_, IFNAMSIZ - 1), 0);
  }
  try {
    fd_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) fail("cannot open /dev/net/tun", errno);
    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    std::memcpy(ifr.ifr_name, dev_name_.c_str(), dev_name_.size());
    if (ioctl(fd_, TUNSETIFF, &ifr) != 0) {
      const int err = errno;
      fail(err == EBUSY ? "cannot create the tap netdev (another process holds an interface of that name)"
                        : "cannot create the tap netdev",
           err);
    }
    quiet_host_end(dev_name_);
    const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) {
      ifreq hw{};
      std::memcpy(hw.ifr_name, dev_name_.c_str(), dev_name_.size());
      if (ioctl(s, SIOCGIFHWADDR, &hw) == 0) std::memcpy(mac_.addr_bytes, hw.ifr_hwaddr.sa_data, 6);
      ::close(s);
    }
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) fail("cannot create its wake-up eventfd", errno);
    rx_ring_ = make_ring("r", index, 0);
    if (rx_ring_ == nullptr) fail("cannot create its rx ring", rte_errno);
    for (uint16_t w = 0; w < std::max<uint16_t>(nb_workers, 1); ++w) {
      tx_rings_.push_back(make_ring("t", index, w));
      if (tx_rings_.back() == nullptr) fail("cannot create its tx rings", rte_errno);
    }
  } catch (...) {
    open_ = true;
    close();
    throw;
  }
  open_ = true;
}

void TapRepresentor::set_flags_up(bool up) noexcept {
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, dev_name_.c_str(), dev_name_.size());
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    if (up) ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    else ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
    ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  ::close(s);
}

void TapRepresentor::start() {
  if (!open_) fail("not open", 0);
  set_flags_up(true);
  started_ = true;
  set_carrier(carrier_);
}

void TapRepresentor::stop() noexcept {
  if (!started_) return;
  started_ = false;
  set_flags_up(false);
}

void TapRepresentor::set_carrier(bool up) noexcept {
  carrier_ = up;
  if (fd_ < 0) return;
  int on = up ? 1 : 0;
  ioctl(fd_, TUNSETCARRIER, &on);
}

void TapRepresentor::free_ring(rte_ring*& r) noexcept {
  if (r == nullptr) return;
  rte_mbuf* pkts[64];
  unsigned n;
  while ((n = rte_ring_dequeue_burst(r, reinterpret_cast<void**>(pkts), 64, nullptr)) != 0) {
    rte_pktmbuf_free_bulk(pkts, n);
  }
  rte_ring_free(r);
  r = nullptr;
}

void TapRepresentor::close() noexcept {
  if (!open_) return;
  stop();
  free_ring(rx_ring_);
  for (rte_ring*& r : tx_rings_) free_ring(r);
  tx_rings_.clear();
  if (fd_ >= 0) ::close(fd_);  // the netdev goes with its last fd
  fd_ = -1;
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
  open_ = false;
}

dp::DriverCounters TapRepresentor::driver_counters() const {
  dp::DriverCounters c;
  c.valid = true;
  c.ipackets = from_host_;
  c.opackets = to_host_;
  c.imissed = rx_ring_full_;
  c.rx_nombuf = rx_nombuf_;
  c.ierrors = rx_errors_;
  c.oerrors = write_errors_;
  return c;
}

dp::PortIo TapRepresentor::io() const noexcept {
  return dp::PortIo::burst_fns(&TapRepresentor::rx_burst, &TapRepresentor::tx_burst,
                               const_cast<TapRepresentor*>(this), static_cast<uint16_t>(tx_rings_.size()));
}

uint16_t TapRepresentor::rx_burst(void* dev, uint16_t, rte_mbuf** pkts, uint16_t n) noexcept {
  auto* self = static_cast<TapRepresentor*>(dev);
  return static_cast<uint16_t>(rte_ring_sc_dequeue_burst(self->rx_ring_, reinterpret_cast<void**>(pkts), n, nullptr));
}

uint16_t TapRepresentor::tx_burst(void* dev, uint16_t queue, rte_mbuf** pkts, uint16_t n) noexcept {
  auto* self = static_cast<TapRepresentor*>(dev);
  const auto sent = static_cast<uint16_t>(
      rte_ring_sp_enqueue_burst(self->tx_rings_[queue], reinterpret_cast<void**>(pkts), n, nullptr));
  if (sent == 0) return 0;
  // Dekker with service(): our enqueue before our read of wake_armed_, its store of wake_armed_ before its
  // drain - so either it sees the frames or we see it armed and wake it. One fence per burst to a representor.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (self->wake_armed_.load(std::memory_order_relaxed) &&
      self->wake_armed_.exchange(false, std::memory_order_acq_rel)) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = write(self->wake_fd_, &one, sizeof one);
  }
  return sent;
}

void TapRepresentor::service() noexcept {
  if (!open_) return;
  uint64_t v;
  [[maybe_unused]] const ssize_t r = read(wake_fd_, &v, sizeof v);  // clear it (non-blocking)
  wake_armed_.store(true, std::memory_order_seq_cst);                 // then drain: see tx_burst
  from_host();
  if (to_host()) {  // over budget: come back through the loop rather than starve the other handlers
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = write(wake_fd_, &one, sizeof one);
  }
}

void TapRepresentor::from_host() noexcept {
  for (unsigned i = 0; i < kServiceBudget; ++i) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) {
      ++rx_nombuf_;  // the frame stays in the kernel's queue until an mbuf is free (or the kernel drops it)
      return;
    }
    const ssize_t len = read(fd_, rte_pktmbuf_mtod(m, void*), rte_pktmbuf_tailroom(m));
    if (len <= 0) {
      rte_pktmbuf_free(m);
      if (len < 0 && errno != EAGAIN && errno != EINTR) ++rx_errors_;
      return;
    }
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = static_cast<uint32_t>(len);
    m->port = index_;
    if (!started_ || rte_ring_sp_enqueue(rx_ring_, m) != 0) {
      ++rx_ring_full_;
      rte_pktmbuf_free(m);
      continue;
    }
    ++from_host_;
  }
}

bool TapRepresentor::to_host() noexcept {
  rte_mbuf* pkts[64];
  bool more = false;
  for (rte_ring* r : tx_rings_) {
    unsigned budget = kServiceBudget;
    while (budget != 0) {
      const unsigned n = rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(pkts), std::min(64u, budget), nullptr);
      if (n == 0) break;
      budget -= n;
      for (unsigned i = 0; i < n; ++i) {
        iovec iov[kMaxSegs];
        unsigned segs = 0;
        for (rte_mbuf* s = pkts[i]; s != nullptr && segs < kMaxSegs; s = s->next) {
          iov[segs].iov_base = rte_pktmbuf_mtod(s, void*);
          iov[segs].iov_len = s->data_len;
          ++segs;
        }
        if (started_ && writev(fd_, iov, static_cast<int>(segs)) >= 0) ++to_host_;
        else ++write_errors_;
      }
      rte_pktmbuf_free_bulk(pkts, n);
    }
    more = more || rte_ring_count(r) != 0;
  }
  return more;
}

}  // namespace esw::rep
