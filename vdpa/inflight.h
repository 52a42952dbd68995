#pragma once
// Packed rings across an eswitchd restart: the ring position kept in the front-end's inflight area
// (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD).
//
// A packed ring keeps no index in guest memory that a new back-end could restart from (a split ring has the used
// index, which rte_vhost resynchronises to). A VMM whose back-end crashed cannot ask it where it stopped
// (GET_VRING_BASE), so after a restart it sends SET_VRING_BASE with whatever it last knew. A VMM that supports
// inflight tracking (QEMU's vhost-user-blk does; its virtio-net and DPDK's virtio_user do not) asks the back-end
// for a shared area at start (GET_INFLIGHT_FD: rte_vhost allocates a memfd), keeps the fd, and gives the same area
// back to the restarted back-end (SET_INFLIGHT_FD) before it sets up the rings.
//
// What rte_vhost 22.11 does with it (lib/vhost/vhost_user.c): it does not offer the protocol feature for its
// built-in net back-end (VHOST_USER_PROTOCOL_FEATURES lacks it: the port adds it), allocates and maps the area,
// and at SET_VRING_KICK builds a resubmit list from the per-descriptor `inflight` flags that only a back-end using
// rte_vhost_set/clr_inflight_desc_* sets (vhost-user-blk style). Its net datapath never writes the area:
// rte_vhost_enqueue/dequeue_burst complete every descriptor they take inside the call, so between two bursts
// nothing is in flight but the ring position itself.
//
// So the engine keeps exactly that: after each burst that moved a packed vring, its position (avail and used index
// with their wrap counters, rte_vhost's `index | wrap << 15` form) goes into the area's first 8 bytes (the `features`
// word of struct rte_vhost_inflight_info_packed, which rte_vhost neither reads nor writes) with a marker, in one
// aligned 8-byte store: a SIGKILL between two stores cannot leave half a position (rte_vhost's own
// old_used_idx / old_used_wrap_counter pair would take two). On a new session whose area carries a marked
// position, the vring takes it (rte_vhost_set_vring_base) before the device is published to the workers.

#include <rte_vhost.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace esw::vdpa {

inline constexpr uint64_t kInflightMarker = 0x45535750;  // "ESWP": a position written by this engine

// Adds VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD to what the socket offers (after rte_vhost_driver_register, before
// rte_vhost_driver_start). False when rte_vhost refuses.
bool offer_inflight(const char* socket);

// GET_INFLIGHT_FD / SET_INFLIGHT_FD as a front-end sends them (the vhost-user spec's VhostUserInflight).
struct InflightMsg {
  uint64_t mmap_size = 0, mmap_offset = 0;
  uint16_t num_queues = 0, queue_size = 0;
};
// rte_vhost 22.11's size of one vring's share of the area (lib/vhost/vhost_user.c get_pervq_shm_size_*).
uint64_t inflight_vring_bytes(uint16_t queue_size, bool packed);
// rte_vhost 22.11 trusts these messages (lib/vhost/vhost_user.c): GET allocates and zeroes num_queues x
// queue_size descriptors' worth of memory; SET maps `mmap_size` bytes of the front-end's fd and then writes each
// vring's header at its per-vring offset, however small the mapping, and a later SET_VRING_KICK reads
// `desc_num` descriptors from it; either message while the device runs unmaps the area rte_vhost and this engine
// are using. So the port checks them first (vhost_port.cc's message hook) and refuses, naming why:
//  - while the device runs (`running`);
//  - num_queues not 1..`max_vrings` (the vport's configured vrings), queue_size not 1..32768;
//  - SET: mmap_size below num_queues x the per-vring size, offset + size overflowing, or beyond the end of the
//    fd's file (`fd_bytes`, from fstat; -1: no fd).
// Returns "" when rte_vhost may handle it.
std::string check_inflight_msg(bool set, const InflightMsg& m, bool packed, unsigned max_vrings, bool running,
                               int64_t fd_bytes);

// The position word of packed vring `vring`'s inflight area, or null (split ring, no area given); `size`: the
// ring's size.
uint64_t* inflight_position_word(int vid, uint16_t vring, uint16_t& size);

// What a new session's packed vring found in its inflight area. kRefused: a recorded slot at or beyond the
// ring's `size` (the area is the front-end's memory; the vring keeps what SET_VRING_BASE gave).
enum class InflightRestore { kNone, kSame, kSet, kFailed, kRefused };
InflightRestore restore_from_inflight(int vid, uint16_t vring, uint64_t* word, uint16_t size);

// A worker, after a burst that moved the vring (no lock, no syscall). Two tx queues may send to the same guest RX
// vring (a guest with fewer queue pairs on than configured) under different locks: rte_vhost serialises their
// enqueues, but their records may cross, so a record only replaces one that is behind it on the ring (positions
// compared modulo two laps of `size` slots: slot + size while the wrap counter is 0).
inline void record_inflight_position(int vid, uint16_t vring, uint64_t* word, uint16_t size) noexcept {
  uint16_t avail = 0, used = 0;
  if (rte_vhost_get_vring_base(vid, vring, &avail, &used) != 0 || size == 0) return;
  const uint64_t now = kInflightMarker << 32 | uint64_t{avail} << 16 | used;
  const auto lap = [size](uint64_t w) { return (w & 0x7fff) + ((w >> 15) & 1 ? 0u : size); };  // the used position
  uint64_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
  do {
    if (old >> 32 == kInflightMarker) {
      const uint32_t ahead = static_cast<uint32_t>((lap(now) + 2u * size - lap(old)) % (2u * size));
      if (ahead == 0 || ahead >= size) return;  // recorded already, or a later burst's record is there
    }
  } while (!__atomic_compare_exchange_n(word, &old, now, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

}  // namespace esw::vdpa
