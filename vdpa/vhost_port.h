#pragma once
// A vhost-user vport served by rte_vhost directly: no net_vhost ethdev between the switch and the guest's
// virtqueues, so a vhost-user vport costs no ethdev (Debian's DPDK has RTE_MAX_ETHPORTS = 32).
//
//   guest TX vring 2q+1 --rte_vhost_dequeue_burst (worker polling rx queue q)--> switch
//   switch --rte_vhost_enqueue_burst (worker w on tx queue w % queues)--> guest RX vring 2q
//
// Threading, three parties:
//  - rte_vhost's own thread runs the device callbacks (new_device, destroy_device, vring_state_changed). They
//    never touch switch state: they record an event in a small mutex-protected queue and write an eventfd.
//  - The main lcore (service(), when that eventfd is readable or on the service tick) applies the events: the
//    device becomes usable by the workers (its vid published), vrings are enabled or disabled.
//  - Workers call the two burst functions (PortIo kBurstFn). They read the published vid and per-vring flags;
//    while the device is not usable rx returns 0 and tx returns 0 (the switch counts tx_dropped and frees).
//  - Client mode: every connect to the guest's socket is made by the main lcore (socket_watch.h: as soon as the
//    socket appears), none by an rte_vhost reconnect thread.
//  One exception to "events go through the main lcore": destroy_device must not return while a worker can still
//  be inside rte_vhost with that vid (rte_vhost frees the device once the callback returns). The callback
//  withdraws the vid itself and waits for the per-queue busy marks of the workers to clear (a Dekker handshake:
//  a worker marks its queue busy, then reads the vid; the callback clears the vid, then reads the marks).
//
// devargs (canonical, written by the switch's plan from the config's `attach.vhost_user`):
//   "socket=/abs/path,mode=server|client,queues=N[,vdpa=NAME][,mtu=M]"   (N in 1..kMaxQueues, M in 68..65535)
//
// mtu=M: the vport's MTU. A front-end that sets a larger one (VHOST_USER_NET_SET_MTU: QEMU's host_mtu= with
// VIRTIO_NET_F_MTU negotiated) is refused with a logged error (with REPLY_ACK the front-end gets the failure:
// QEMU then reports "MTU not supported by the backend" and does not start the device); frames from the guest
// whose L3 part (after the Ethernet header and up to two VLAN tags) is above M are dropped and counted
// (peer counters mtu_dropped; also the device's ierrors). The value the guest's driver reads is the
// front-end's (virtio config space belongs to QEMU); the port checks it and records it (frontend_mtu).
//
// vdpa=NAME: a hardware vDPA device (an rte_vdpa device probed by its driver: mlx5, ifc, sfc) is attached to the
// socket with rte_vhost_driver_attach_vdpa_device; the device moves the guest's descriptors itself, so the port
// has no software queues (its bursts are empty). No such device: open() fails naming it.
//
// Features: VERSION_1, MRG_RXBUF, MQ, CTRL_VQ (processed by the front-end: QEMU / virtio_user), EVENT_IDX,
// RING_PACKED, IN_ORDER, INDIRECT_DESC, as rte_vhost offers them; CSUM, HOST_TSO4/6 (completed in software as
// frames leave the guest: offload.h), GUEST_CSUM, GUEST_TSO4/6 (harmless: the switch only ever gives the guest
// whole frames). ECN and UFO are not offered.

#include <rte_ether.h>
#include <rte_mempool.h>
#include <rte_spinlock.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/ports/port.h"
#include "vdpa/inflight.h"
#include "vdpa/migration.h"
#include "vdpa/offload.h"
#include "vdpa/socket_watch.h"

namespace esw::vdpa {

inline constexpr uint16_t kMaxQueues = 8;  // queue pairs per vport

struct VhostUserArgs {
  std::string socket;
  bool client = false;  // false: eswitchd listens (server), true: eswitchd connects (and reconnects)
  uint16_t queues = 1;
  std::string vdpa;  // non-empty: attach this hardware vDPA device (rte_vdpa name) instead of the software engine
  uint16_t mtu = 0;  // 0: no limit; else the largest L3 packet the guest may send (and the largest front-end MTU)
};

// Parses the canonical devargs; throws dp::Error naming what is wrong.
VhostUserArgs parse_vhost_user_args(const std::string& devargs);
std::string format_vhost_user_args(const VhostUserArgs& args);

class VhostUserPort final : public dp::Port {
 public:
  VhostUserPort() = default;
  ~VhostUserPort() override;
  void open(const dp::PortSpec& spec, uint16_t index, rte_mempool* pool, uint16_t nb_workers) override;
  void start() override;
  void stop() noexcept override;
  void close() noexcept override;
  bool link_up() const override { return started_ && vid_.load(std::memory_order_acquire) >= 0; }
  dp::DriverCounters driver_counters() const override;
  dp::PeerStatus peer_status() const override;
  dp::PortIo io() const noexcept override;
  std::vector<int> service_fds() const override {
    std::vector<int> fds{event_fd_};
    for (int fd : sock_watch_.fds()) fds.push_back(fd);  // client mode: the socket watch (socket_watch.h)
    return fds;
  }
  bool needs_service() const noexcept override { return open_; }
  void service() noexcept override;

  // What the guest negotiated (0 while no device) and what this port offers, for tests and `show`.
  uint64_t negotiated_features() const { return features_; }
  uint64_t offered_features() const { return offered_; }
  bool device_ready() const { return vid_.load(std::memory_order_acquire) >= 0; }
  uint16_t enabled_queue_pairs() const;

  // rte_vhost callbacks (its thread), dispatched by socket path to the port that registered it.
  void on_new_device(int vid) noexcept;
  void on_destroy_device(int vid) noexcept;
  void on_connection(int vid, bool up) noexcept;
  void on_vring_state(int vid, uint16_t vring, bool enable) noexcept;
  void on_features_changed(int vid, uint64_t features) noexcept;
  // VHOST_USER_NET_SET_MTU (rte_vhost's message thread, before rte_vhost handles it): false refuses it.
  bool on_set_mtu(int vid, uint64_t mtu) noexcept;
  // GET/SET_INFLIGHT_FD (rte_vhost's message thread, before rte_vhost handles it; inflight.h check_inflight_msg):
  // false refuses it (counted, logged by service()).
  bool on_inflight_msg(int vid, bool set, const InflightMsg& m, int64_t fd_bytes) noexcept;

  // Migration (main lcore; vdpa/migration.h). set_mig_state() does not check the arc (the caller does); it
  // returns once no worker is inside a burst that the new state forbids. save_mig() fills the engine's part of a
  // stream (features, vrings, engine counters); load_mig() takes a checked stream's engine part and the switch
  // counters to carry on from; the guest's MAC is announced (RARP) when the vport next reaches RUNNING.
  MigState mig_state() const { return static_cast<MigState>(mig_.load(std::memory_order_relaxed)); }
  void set_mig_state(MigState s) noexcept;
  void save_mig(MigStream& s) const;
  void load_mig(const MigStream& s, const dp::PortCounters& carried) noexcept;
  bool dirty_logging() const { return (log_features_.load(std::memory_order_relaxed) >> kLogAllBit) & 1; }
  static constexpr unsigned kLogAllBit = 26;  // VHOST_F_LOG_ALL (<linux/vhost_types.h> is not C++-clean here)
  uint64_t announces_sent() const { return announces_.load(std::memory_order_relaxed); }
  void add_carried(dp::PortCounters& c) const override;

 private:
  struct alignas(64) Queue {
    std::atomic<uint32_t> busy{0};  // > 0 while a worker is inside rte_vhost for this queue
    uint64_t packets = 0;           // written by the one worker (rx) / the lock holder (tx)
    uint64_t dropped = 0;           // tx: not taken by the guest (ring full) while the device was usable
    // rx: guest offloads completed (offload.h); segments of a GSO frame that did not fit in the burst wait in
    // `held` for the next one (room for a whole burst of maximal GSO frames: allocated at open).
    OffloadCounters offload;
    uint64_t mtu_dropped = 0;       // rx: frames above the vport's MTU
    uint64_t logged = 0;            // frames moved while dirty-page logging was on (LOG_ALL: a migration)
    std::vector<rte_mbuf*> held;
    uint32_t held_at = 0, held_n = 0;
  };
  enum class EventKind : uint8_t { kNew, kDestroy, kVring, kConnection, kMtu, kLog };
  bool inject_announce(rte_mbuf** pkts, uint16_t n) noexcept;
  void quiesce() noexcept;
  std::string restore_rings_locked(int vid) noexcept;  // mu_ held
  void take_inflight_positions_locked(int vid) noexcept;  // mu_ held (inflight.h)
  static std::string ring_position(const MigVring& v, bool packed);
  struct Event {
    EventKind kind;
    int vid;
    uint16_t vring;
    bool enable;
    uint64_t features;  // kNew: what the guest negotiated; kMtu: the MTU the front-end set (enable: accepted);
                        // kLog: the log area's size in bytes (enable: LOG_ALL on)
  };
  bool above_mtu(rte_mbuf* m) const noexcept;
  void watch_rings() noexcept;
  void suppress_guest_kicks(int vid) noexcept;  // rte_vhost's thread: the guest's kicks off on its vrings
  uint64_t logged_frames(const Queue* qs) const;  // frames moved while dirty-page logging was on

  static uint16_t rx_burst(void* dev, uint16_t queue, rte_mbuf** pkts, uint16_t n) noexcept;
  static uint16_t tx_burst(void* dev, uint16_t queue, rte_mbuf** pkts, uint16_t n) noexcept;
  [[noreturn]] void fail(const std::string& what) const;
  void post(const Event& e) noexcept;
  void recompute_tx_map() noexcept;
  void unregister_driver() noexcept;
  // rte_vhost_driver_register ... start: listens (server) or makes one connect attempt (client; connect_errno_
  // says why it failed). Throws dp::Error naming what failed.
  void register_driver();

  // Client mode: eswitchd makes every connect itself (socket_watch.h; these two are defined in socket_watch.cc).
  bool reconnect_driver(int& err) noexcept;
  void serve_watch() noexcept;
  SocketWatch sock_watch_;
  std::atomic<int> live_sessions_{0};  // vhost-user sessions open on the socket (new_connection - destroy_connection)
  int connect_errno_ = 0;

  VhostUserArgs args_;
  rte_mempool* pool_ = nullptr;
  uint16_t nb_workers_ = 1;
  int event_fd_ = -1;
  bool registered_ = false;
  bool driver_started_ = false;

  // Worker-visible state, written on the main lcore (vid_ also cleared by destroy_device, see above).
  std::atomic<int> vid_{-1};
  std::atomic<bool> rx_on_[kMaxQueues] = {};         // guest TX vring 2q+1 enabled
  std::atomic<uint16_t> tx_vring_[kMaxQueues] = {};  // our tx queue -> guest RX vring (0xffff: none enabled)
  Queue rxq_[kMaxQueues];
  Queue txq_[kMaxQueues];
  std::vector<rte_spinlock_t> txq_locks_;

  // Migration: the state (MigState) read by the workers; an announce (RARP) armed on resume, sent by the worker
  // polling rx queue 0 once the guest is up and the state lets frames in.
  std::atomic<uint8_t> mig_{static_cast<uint8_t>(MigState::kRunning)};
  std::atomic<bool> announce_armed_{false};
  std::atomic<uint64_t> announces_{0};
  std::atomic<uint64_t> log_features_{0};  // features as last (re)negotiated: LOG_ALL is bit 26
  // Dirty-page logging (rte_vhost's thread writes, show reads): times LOG_ALL came on, the size of the log area
  // the front-end gave (VHOST_USER_SET_LOG_BASE, read with rte_vhost_get_log_base when LOG_ALL came on).
  std::atomic<uint64_t> log_starts_{0};
  std::atomic<uint64_t> log_area_bytes_{0};
  dp::PortCounters carried_{};             // switch counters carried over from a migration stream
  uint64_t carried_rx_ = 0, carried_tx_ = 0, carried_refused_ = 0;
  rte_ether_addr announce_mac_{};          // the guest's MAC (the vport's hw_addr), from the stream
  // From the stream (under mu_: the vhost thread reads them in new_device): compared with the guest's rings when
  // it connects; a packed ring's positions are set back from them once (restore_rings_locked).
  std::vector<MigVring> resumed_vrings_;
  bool rings_restore_pending_ = false;
  std::string restore_note_;  // what the restore did, logged with the guest's session
  std::atomic<uint64_t> restored_rings_{0};  // packed vrings set from a stream

  // Packed rings across a restart (inflight.h): each packed vring's position word in the front-end's inflight
  // area (null: none), set on rte_vhost's thread before the device is published, cleared by destroy_device after
  // the workers left; what the new session took from it (under mu_ until logged).
  std::atomic<uint64_t*> inflight_[2 * kMaxQueues] = {};
  uint16_t inflight_ring_size_[2 * kMaxQueues] = {};  // written before inflight_[i] is published
  std::atomic<uint64_t> inflight_restored_{0};  // vrings set from an inflight area
  std::atomic<uint64_t> inflight_sessions_{0};  // sessions that gave an inflight area (packed)
  std::string inflight_note_;
  std::atomic<uint64_t> inflight_refused_{0};  // GET/SET_INFLIGHT_FD refused (check_inflight_msg)
  std::vector<std::string> refusal_notes_;       // why, under mu_ until service() logs them (at most 8 pending)

  // Main lcore state.
  bool vring_on_[2 * kMaxQueues] = {};  // as rte_vhost reported them for device vring_vid_
  int vring_vid_ = -1;
  uint64_t features_ = 0;
  uint64_t offered_ = 0;
  uint64_t connects_ = 0, disconnects_ = 0;
  uint16_t reported_pairs_ = 0;  // queue pairs on when last logged
  uint64_t vrings_refused_ = 0;  // vrings the guest enabled beyond the configured queue pairs (not served)
  // Sessions (vhost-user connections) and those closed before the guest's device was ever ready: a front-end
  // that negotiated something rte_vhost refused (features not offered, bad memory table...) or gave up.
  uint64_t sessions_ = 0, sessions_unready_ = 0;
  std::vector<int> unready_vids_;
  // The stall watch (split rings; main lcore, once a second): a guest TX vring whose available descriptors the
  // engine cannot take (a descriptor outside guest memory, a broken chain: rte_vhost leaves it at the head of the
  // ring) while the worker polls it and the pool has mbufs. Counted once per episode (vring_stalls).
  struct RingWatch {
    uint16_t last_avail = 0;
    uint16_t pending = 0;
    bool seen = false;
    bool stalled = false;
  };
  RingWatch watch_[kMaxQueues] = {};
  uint64_t next_watch_ns_ = 0;
  uint64_t vring_stalls_ = 0;
  // VHOST_USER_NET_SET_MTU, written by rte_vhost's thread.
  std::atomic<uint64_t> frontend_mtu_{0};  // the last MTU accepted (0: none set)
  std::atomic<uint64_t> mtu_refused_{0};   // front-end MTUs above the vport's

  // Shared with rte_vhost's thread.
  std::mutex mu_;
  std::vector<Event> events_;
  int live_vid_ = -1;  // the device rte_vhost currently has for this socket (-1: none)
};

}  // namespace esw::vdpa
