#pragma once
// Live migration of a vhost-user vport: the VFIO migration v2 state machine (linux include/uapi/linux/vfio.h,
// enum vfio_device_mig_state and the arc list above it) and the versioned device-state stream that STOP_COPY
// writes and RESUMING loads. No DPDK here: the port (vhost_port.h) and the API (dataplane/daemon/
// api_methods_vport.cc) drive it; tests/unit/migration_test.cc checks the arcs and hostile streams.
//
// What each state means for a vport (the vhost-user engine's reading of the VFIO text):
//   RUNNING       frames flow both ways.
//   RUNNING_P2P   the device starts nothing towards its peers: the guest's TX vrings are no longer polled
//                 (nothing enters the switch from it); frames to the guest are still delivered.
//   STOP          no descriptor consumed or produced: neither direction is polled (frames to it are dropped and
//                 counted as tx_dropped, as for a guest whose ring is full).
//   STOP_COPY     STOP, and the state was written to the stream (the arc PRE_COPY_P2P/STOP -> STOP_COPY writes).
//   RESUMING      STOP; the arc STOP -> RESUMING loads and checks a stream; RESUMING -> STOP installs it.
//   PRE_COPY      RUNNING with dirty-page logging: rte_vhost logs every guest page it writes once the front-end
//                 negotiated LOG_ALL and gave a log area (VHOST_USER_SET_LOG_BASE); the port reports whether it
//                 did. PRE_COPY_P2P: the same with RUNNING_P2P's quiescence.
// Only the single arcs of the uapi text are legal; the kernel's "combination transitions" (shortest paths) are
// not taken implicitly: the caller steps through them, and anything else is refused naming both states.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace esw::vdpa {

enum class MigState : uint8_t { kRunning, kRunningP2P, kStop, kStopCopy, kResuming, kPreCopy, kPreCopyP2P };

const char* mig_state_name(MigState s);
std::optional<MigState> parse_mig_state(std::string_view name);  // "RUNNING", "running", "running_p2p", ...
bool mig_arc_legal(MigState from, MigState to);
// Empty when legal, else "illegal migration arc RUNNING -> STOP_COPY (legal from RUNNING: RUNNING_P2P, PRE_COPY)".
std::string mig_arc_error(MigState from, MigState to);
// Whether workers may take frames from the guest (rx) / give frames to it (tx) in this state.
bool mig_rx_allowed(MigState s);
bool mig_tx_allowed(MigState s);

// The device state a vport carries from one eswitchd to another.
// Version 2: the ring layout (split / packed) and, per vring, the avail and used indices with their wrap counters
// as separate fields (version 1 had rte_vhost's packed 16-bit form only, and no layout). Only version 2 is read.
inline constexpr uint32_t kMigStreamVersion = 2;
inline constexpr uint16_t kMigMaxQueuePairs = 8;
inline constexpr size_t kMigMaxAddrs = 64;        // bound ipv4 / ipv6 entries
inline constexpr size_t kMigMaxAddrLen = 64;      // one address or prefix as text
inline constexpr size_t kMigMaxRules = 1024;      // runtime rules naming the vport
inline constexpr size_t kMigMaxRuleLen = 4096;    // one rule's text
inline constexpr size_t kMigMaxDropReasons = 64;
inline constexpr size_t kMigMaxStreamBytes = 8u << 20;

// Where the device is in one vring. Split ring: the free-running 16-bit last avail / last used indices, no wrap
// counters. Packed ring: descriptor indices 0..32767 and the device's avail / used wrap counters (the ring's
// position is index + wrap; rte_vhost_get/set_vring_base pack them as `index | wrap << 15`).
struct MigVring {
  uint16_t last_avail = 0, last_used = 0;
  bool avail_wrap = false, used_wrap = false;  // packed rings only (false for a split ring)
  uint16_t inflight = 0;                       // descriptors the guest made available that are not used yet
  bool enabled = false;

  // rte_vhost's 16-bit form (rte_vhost_get_vring_base / rte_vhost_set_vring_base, DPDK 22.11 lib/vhost/vhost.c).
  static MigVring from_vhost_base(uint16_t avail, uint16_t used, bool packed);
  uint16_t vhost_avail() const { return static_cast<uint16_t>(last_avail | (avail_wrap ? 0x8000 : 0)); }
  uint16_t vhost_used() const { return static_cast<uint16_t>(last_used | (used_wrap ? 0x8000 : 0)); }
  bool same_position(const MigVring& o) const {
    return last_avail == o.last_avail && last_used == o.last_used && avail_wrap == o.avail_wrap &&
           used_wrap == o.used_wrap;
  }
};

struct MigCounters {
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, tx_dropped = 0;
  std::vector<uint64_t> dropped;  // by drop reason index (dataplane/fastpath/stats.h DropReason)
  uint64_t engine_rx = 0, engine_tx = 0, engine_tx_refused = 0;  // the vhost engine's own counts
};

struct MigStream {
  std::string vport;
  uint64_t features = 0;  // what the guest negotiated
  bool packed = false;    // the ring layout: RING_PACKED (bit 34) negotiated; must agree with `features`
  uint16_t queue_pairs = 0;
  std::vector<MigVring> vrings;  // 2 * queue_pairs: RX vring 2q, TX vring 2q+1
  std::string hw_addr;           // the binding as configured
  std::vector<std::string> ipv4, ipv6;
  MigCounters counters;
  std::vector<std::string> rules;  // runtime rules naming the vport, as added
};

std::vector<uint8_t> encode_mig_stream(const MigStream& s);
// Parses and checks a stream: magic, version, sizes, every count and length bounded, text printable, the
// checksum, nothing left over. On error returns false and `error` names the byte offset and the field.
bool decode_mig_stream(const uint8_t* data, size_t len, MigStream& out, std::string& error);

}  // namespace esw::vdpa
