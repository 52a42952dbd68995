#pragma once
// A vhost-user front-end written by hand (the VMM's role, as QEMU plays it), for the in-process vhost-user tests:
// one session on a vport's socket, guest memory = a memfd it maps too and hands over in SET_MEM_TABLE, split vrings
// of queue pair 0 laid out by the test itself, so a test can post exactly the descriptors it wants (hostile ones
// too), read the used rings back, and speak the optional parts of the protocol (protocol features, the dirty-page
// log area) message by message.
//
// Guest memory (kMemSize, guest-physical kGuestBase.., and the front-end's user addresses = its mapping):
//   vring 0 (the guest's RX) at 0x0000: descriptors +0x0000, avail ring +0x1000, used ring +0x2000
//   vring 1 (the guest's TX) at 0x4000: likewise
//   TX buffers from kBuffers (2048 bytes per descriptor head), RX buffers from kRxBuffers (one 4 KiB page each)

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace esw::test::vu {

// vhost-user requests (the vhost-user protocol specification) and virtio bits used by the tests.
enum : uint32_t {
  kGetFeatures = 1, kSetFeatures = 2, kSetOwner = 3, kSetMemTable = 5, kSetLogBase = 6, kSetVringNum = 8,
  kSetVringAddr = 9, kSetVringBase = 10, kGetVringBase = 11, kSetVringKick = 12, kSetVringCall = 13,
  kGetProtocolFeatures = 15, kSetProtocolFeatures = 16, kSetVringEnable = 18, kNetSetMtu = 20,
  kGetInflightFd = 31, kSetInflightFd = 32,
};
// Header flags: the protocol version (1), a reply, and "reply with an ack" (with REPLY_ACK negotiated).
constexpr uint32_t kFlagVersion = 1, kFlagReply = 1u << 2, kFlagNeedReply = 1u << 3;
constexpr uint64_t kVersion1 = 1ULL << 32;
constexpr uint64_t kProtocolFeatures = 1ULL << 30;  // VHOST_USER_F_PROTOCOL_FEATURES
constexpr uint64_t kLogAll = 1ULL << 26;             // VHOST_F_LOG_ALL
constexpr uint64_t kProtoLogShmfd = 1ULL << 1;       // VHOST_USER_PROTOCOL_F_LOG_SHMFD
constexpr uint64_t kProtoInflight = 1ULL << 12;      // VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD
constexpr uint64_t kRingPacked = 1ULL << 34;         // VIRTIO_F_RING_PACKED
constexpr uint32_t kVringFLog = 1u << 0;             // VHOST_VRING_F_LOG: log the used ring at log_guest_addr
constexpr uint16_t kDescNext = 1, kDescWrite = 2;
constexpr uint16_t kPackedAvail = 1u << 7, kPackedUsed = 1u << 15;  // packed descriptor flags (virtio 1.2 2.8)
constexpr uint32_t kRingSize = 256;
constexpr size_t kMemSize = 2u << 20;
constexpr uint64_t kGuestBase = 0x40000000;  // guest-physical address of the shared memory
constexpr size_t kNetHdr = 12;               // virtio_net_hdr with VERSION_1 (num_buffers included)
constexpr size_t kPage = 4096;               // VHOST_LOG_PAGE: one bit of the dirty log per guest page

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
struct UsedElem {
  uint32_t id;
  uint32_t len;
};

struct FrontEnd {
  int fd = -1;
  int mem_fd = -1;
  uint8_t* mem = nullptr;
  int kick[2] = {-1, -1}, call[2] = {-1, -1};
  uint16_t tx_avail = 0;  // next avail index of the guest's TX vring (vring 1)
  uint16_t rx_avail = 0;  // next avail index of the guest's RX vring (vring 0)
  // Packed rings (RING_PACKED negotiated): the driver's positions per vring, kept across sessions like a guest
  // driver keeps them (next slot to make available / to find used, and their wrap counters).
  struct PackedPos {
    uint16_t avail = 0, used = 0;
    bool avail_wrap = true, used_wrap = true;
  };
  bool packed = false;
  PackedPos ppos[2];
  // The inflight area (INFLIGHT_SHMFD): the fd the back-end gave at GET_INFLIGHT_FD, kept across sessions.
  int inflight_fd = -1;
  uint64_t inflight_size = 0;

  static constexpr size_t kRing[2] = {0x0000, 0x4000};
  static constexpr size_t kAvail = 0x1000, kUsed = 0x2000;  // within a vring's area
  static constexpr size_t kBuffers = 0x10000;
  static constexpr size_t kRxBuffers = 0x100000;  // kRingSize pages up to kMemSize

  explicit FrontEnd(const std::string& path) {
    if (!connect_to(path)) throw std::runtime_error("connect");
    mem_fd = memfd_create("esw-vhost-guest", MFD_CLOEXEC);
    if (mem_fd < 0 || ftruncate(mem_fd, kMemSize) != 0) throw std::runtime_error("memfd");
    void* p = mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    mem = static_cast<uint8_t*>(p);
    std::memset(mem, 0, kMemSize);
  }
  ~FrontEnd() {
    ::close(fd);
    for (int f : {mem_fd, kick[0], kick[1], call[0], call[1], inflight_fd}) {
      if (f >= 0) ::close(f);
    }
    if (mem != nullptr) munmap(mem, kMemSize);
  }
  // A new session on `path` (the back-end restarted): guest memory and the rings' contents stay as they are.
  bool connect_to(const std::string& path) {
    if (fd >= 0) ::close(fd);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return false;
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return true;
  }
  FrontEnd(const FrontEnd&) = delete;
  FrontEnd& operator=(const FrontEnd&) = delete;

  // One message: header {u32 request, u32 flags, u32 size}, payload, optional fds (SCM_RIGHTS).
  bool send(uint32_t request, const void* payload, uint32_t size, const std::vector<int>& fds = {},
            uint32_t flags = kFlagVersion) {
    std::vector<uint8_t> b(12 + size);
    std::memcpy(b.data(), &request, 4);
    std::memcpy(b.data() + 4, &flags, 4);
    std::memcpy(b.data() + 8, &size, 4);
    if (size != 0) std::memcpy(b.data() + 12, payload, size);
    iovec iov{b.data(), b.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
    if (!fds.empty()) {
      m.msg_control = control;
      m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return sendmsg(fd, &m, MSG_NOSIGNAL) == static_cast<ssize_t>(b.size());
  }
  bool send_u64(uint32_t request, uint64_t v, const std::vector<int>& fds = {}) { return send(request, &v, 8, fds); }
  bool send_state(uint32_t request, uint32_t index, uint32_t num) {
    const uint32_t s[2] = {index, num};
    return send(request, s, sizeof(s));
  }
  // The back-end's reply to `request`: its payload (the header checked: same request, the reply flag), or nothing
  // when the back-end closed the session, timed out or answered something else.
  std::optional<std::vector<uint8_t>> reply(uint32_t request, int* fd_out = nullptr) {
    uint8_t h[12];
    if (!recv_all(h, sizeof(h), fd_out)) return std::nullopt;
    uint32_t req = 0, flags = 0, size = 0;
    std::memcpy(&req, h, 4);
    std::memcpy(&flags, h + 4, 4);
    std::memcpy(&size, h + 8, 4);
    if (req != request || !(flags & kFlagReply) || size > 4096) return std::nullopt;
    std::vector<uint8_t> payload(size);
    if (size != 0 && !recv_all(payload.data(), size)) return std::nullopt;
    return payload;
  }
  // A reply's u64 (GET_FEATURES, GET_PROTOCOL_FEATURES), or nothing when the back-end closed the session or timed out.
  std::optional<uint64_t> get_u64(uint32_t request) {
    if (!send(request, nullptr, 0)) return std::nullopt;
    return reply_u64(request);
  }
  // A reply carrying a u64 (also REPLY_ACK's: 0 success, else failure).
  std::optional<uint64_t> reply_u64(uint32_t request) {
    const auto p = reply(request);
    if (!p || p->size() != 8) return std::nullopt;
    uint64_t v = 0;
    std::memcpy(&v, p->data(), 8);
    return v;
  }
  // True once the back-end has closed the session (recv sees the end of the stream).
  bool closed_by_backend() {
    char c;
    const ssize_t n = ::recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  uint64_t gpa(size_t off) const { return kGuestBase + off; }
  uint64_t uva(size_t off) const { return reinterpret_cast<uint64_t>(mem + off); }

  // The set-up a virtio-net driver's VMM does: owner, features (and, with PROTOCOL_FEATURES, the protocol features
  // `protocol`), the memory table, both vrings of queue pair 0 (with `log_used`, VHOST_VRING_F_LOG and the used
  // ring's guest-physical address as log_guest_addr, as QEMU gives them; for a packed ring the descriptor ring's,
  // where rte_vhost 22.11 logs used descriptors: log_guest_addr + slot * 16), enabled when protocol features are on.
  //
  // Packed rings (RING_PACKED in `features`): descriptor ring at +0, driver event area at +kAvail, device event
  // area at +kUsed; SET_VRING_BASE says `base[v]` (rte_vhost's `index | wrap << 15`; a fresh ring: slot 0, wrap 1).
  // With INFLIGHT_SHMFD in `protocol` the front-end behaves as a VMM that supports inflight tracking (QEMU's
  // vhost-user-blk): it asks for the area once (GET_INFLIGHT_FD) and keeps the fd, and gives it back at every
  // session start (SET_INFLIGHT_FD), before the rings are set up.
  bool setup(uint64_t features, uint64_t protocol = 0, bool log_used = false, const uint16_t* base = nullptr) {
    packed = (features & kRingPacked) != 0;
    if (!send(kSetOwner, nullptr, 0) || !send_u64(kSetFeatures, features)) return false;
    if (features & kProtocolFeatures) {
      const auto offered = get_u64(kGetProtocolFeatures);
      if (!offered || (*offered & protocol) != protocol || !send_u64(kSetProtocolFeatures, protocol)) return false;
    }
    if (protocol & kProtoInflight) {
      struct {
        uint64_t mmap_size, mmap_offset;
        uint16_t num_queues, queue_size;
      } inflight{0, 0, 2, static_cast<uint16_t>(kRingSize)};
      if (inflight_fd < 0) {
        if (!send(kGetInflightFd, &inflight, sizeof(inflight))) return false;
        const auto r = reply(kGetInflightFd, &inflight_fd);
        if (!r || r->size() != sizeof(inflight) || inflight_fd < 0) return false;
        std::memcpy(&inflight, r->data(), sizeof(inflight));
        inflight_size = inflight.mmap_size;
      }
      inflight.mmap_size = inflight_size;
      inflight.mmap_offset = 0;
      if (!send(kSetInflightFd, &inflight, sizeof(inflight), {inflight_fd})) return false;
    }
    struct {
      uint32_t nregions, padding;
      struct {
        uint64_t gpa, size, uva, mmap_offset;
      } regions[8];
    } table{};
    table.nregions = 1;
    table.regions[0] = {kGuestBase, kMemSize, uva(0), 0};
    if (!send(kSetMemTable, &table, sizeof(table), {mem_fd})) return false;
    for (uint32_t v = 0; v < 2; ++v) {
      const uint32_t b = base != nullptr ? base[v] : (packed ? 1u << 15 : 0u);
      if (!send_state(kSetVringNum, v, kRingSize) || !send_state(kSetVringBase, v, b)) return false;
      struct {
        uint32_t index, flags;
        uint64_t desc, used, avail, log;
      } addr{v, log_used ? kVringFLog : 0, uva(kRing[v]), uva(kRing[v] + kUsed), uva(kRing[v] + kAvail),
             log_used ? gpa(kRing[v] + (packed ? 0 : kUsed)) : 0};
      if (!send(kSetVringAddr, &addr, sizeof(addr))) return false;
      for (int* f : {&kick[v], &call[v]}) {
        if (*f >= 0) ::close(*f);  // a session before this one
        *f = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      }
      if (!send_u64(kSetVringCall, v, {call[v]}) || !send_u64(kSetVringKick, v, {kick[v]})) return false;
      if ((features & kProtocolFeatures) && !send_state(kSetVringEnable, v, 1)) return false;
    }
    return true;
  }

  Desc* desc(unsigned vring) { return reinterpret_cast<Desc*>(mem + kRing[vring]); }
  Desc* tx_desc() { return desc(1); }
  uint16_t used_idx(unsigned vring) const {
    return __atomic_load_n(reinterpret_cast<const uint16_t*>(mem + kRing[vring] + kUsed) + 1, __ATOMIC_ACQUIRE);
  }
  UsedElem used(unsigned vring, uint16_t i) const {
    UsedElem e;
    std::memcpy(&e, mem + kRing[vring] + kUsed + 4 + 8u * (i % kRingSize), sizeof(e));
    return e;
  }
  // Makes descriptor `head` available on vring `vring` (avail ring: flags, idx, ring[]) and kicks it.
  void post_on(unsigned vring, uint16_t head) {
    uint16_t& next = vring == 0 ? rx_avail : tx_avail;
    auto* avail = reinterpret_cast<uint16_t*>(mem + kRing[vring] + kAvail);
    avail[2 + (next % kRingSize)] = head;
    __atomic_store_n(&avail[1], static_cast<uint16_t>(++next), __ATOMIC_RELEASE);
    const uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(kick[vring], &one, sizeof(one));
  }
  void post(uint16_t head) { post_on(1, head); }
  uint16_t tx_used() const { return used_idx(1); }
  // A well-formed frame in TX descriptor `head`: the virtio-net header, then the frame, in one buffer.
  void post_frame(uint16_t head, const std::vector<uint8_t>& f) {
    const size_t off = kBuffers + head * 2048u;
    std::memset(mem + off, 0, kNetHdr);
    std::memcpy(mem + off + kNetHdr, f.data(), f.size());
    tx_desc()[head] = {gpa(off), static_cast<uint32_t>(kNetHdr + f.size()), 0, 0};
    post(head);
  }
  // Packed rings: descriptor slots of 16 bytes {le64 addr; le32 len; le16 id; le16 flags}. The driver makes a
  // slot available with AVAIL = its avail wrap counter and USED = the opposite (flags stored last); the device
  // marks it used with AVAIL = USED = its used wrap counter.
  uint8_t* packed_slot(unsigned vring, uint16_t slot) { return mem + kRing[vring] + 16u * slot; }
  // Makes one buffer (one descriptor, buffer id `id`) available on packed vring `vring` and kicks it.
  void packed_post(unsigned vring, size_t off, uint32_t len, uint16_t id, uint16_t flags) {
    PackedPos& p = ppos[vring];
    uint8_t* d = packed_slot(vring, p.avail);
    const uint64_t addr = gpa(off);
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &id, 2);
    const uint16_t f = static_cast<uint16_t>(flags | (p.avail_wrap ? kPackedAvail : kPackedUsed));
    __atomic_store_n(reinterpret_cast<uint16_t*>(d + 14), f, __ATOMIC_RELEASE);
    if (++p.avail == kRingSize) {
      p.avail = 0;
      p.avail_wrap = !p.avail_wrap;
    }
    const uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(kick[vring], &one, sizeof(one));
  }
  // The next used buffer of packed vring `vring` (its id and written length), if the device marked one.
  std::optional<UsedElem> packed_take_used(unsigned vring) {
    PackedPos& p = ppos[vring];
    const uint8_t* d = packed_slot(vring, p.used);
    const uint16_t f = __atomic_load_n(reinterpret_cast<const uint16_t*>(d + 14), __ATOMIC_ACQUIRE);
    const bool avail = f & kPackedAvail, used = f & kPackedUsed;
    if (avail != p.used_wrap || used != p.used_wrap) return std::nullopt;
    UsedElem e{};
    uint16_t id = 0;
    std::memcpy(&e.len, d + 8, 4);
    std::memcpy(&id, d + 12, 2);
    e.id = id;
    if (++p.used == kRingSize) {
      p.used = 0;
      p.used_wrap = !p.used_wrap;
    }
    return e;
  }
  // The device's position as the driver knows it: the next slot it will mark used (rte_vhost's packed form).
  uint16_t packed_base(unsigned vring) const {
    return static_cast<uint16_t>(ppos[vring].used | (ppos[vring].used_wrap ? 1u << 15 : 0u));
  }
  // A frame on the packed TX vring in buffer `id` (TX buffer area, 2048 bytes per id).
  void packed_post_frame(uint16_t id, const std::vector<uint8_t>& f) {
    const size_t off = kBuffers + (id % kRingSize) * 2048u;
    std::memset(mem + off, 0, kNetHdr);
    std::memcpy(mem + off + kNetHdr, f.data(), f.size());
    packed_post(1, off, static_cast<uint32_t>(kNetHdr + f.size()), id, 0);
  }
  void packed_post_rx_buffer(uint16_t id) { packed_post(0, rx_buffer(id % kRingSize), kPage, id, kDescWrite); }

  // An empty RX buffer for the engine to write a frame into: descriptor `head` = the page rx_buffer(head).
  static size_t rx_buffer(uint16_t head) { return kRxBuffers + head * kPage; }
  void post_rx_buffer(uint16_t head) {
    desc(0)[head] = {gpa(rx_buffer(head)), static_cast<uint32_t>(kPage), kDescWrite, 0};
    post_on(0, head);
  }
  // The frame the engine wrote for RX used entry `e` (without the virtio-net header).
  std::vector<uint8_t> rx_frame(const UsedElem& e) const {
    const uint8_t* p = mem + rx_buffer(static_cast<uint16_t>(e.id % kRingSize)) + kNetHdr;
    return std::vector<uint8_t>(p, p + (e.len > kNetHdr ? e.len - kNetHdr : 0));
  }

 private:
  // Reads n bytes; an fd passed with them (SCM_RIGHTS) goes to *fd_out (closed when the caller wants none).
  bool recv_all(uint8_t* b, size_t n, int* fd_out = nullptr) {
    size_t got = 0;
    while (got < n) {
      iovec iov{b + got, n - got};
      msghdr m{};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
      m.msg_control = control;
      m.msg_controllen = sizeof(control);
      const ssize_t k = ::recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
      if (k <= 0) return false;
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int f = -1;
        std::memcpy(&f, CMSG_DATA(c), sizeof(f));
        if (fd_out != nullptr && *fd_out < 0) {
          *fd_out = f;
        } else {
          ::close(f);
        }
      }
      got += static_cast<size_t>(k);
    }
    return true;
  }
};

}  // namespace esw::test::vu
