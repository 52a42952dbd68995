#pragma once
// Per-core counters. Each worker owns one WorkerStats and is its only writer (plain increments, no atomics);
// readers on the main lcore sum all workers. A torn 64-bit read cannot happen on x86-64/aarch64, and a sum may
// lag by one burst, which is what every DPDK switch accepts for counters.

#include <rte_common.h>

#include <array>
#include <cstdint>

namespace esw::dp {

inline constexpr uint16_t kMaxPorts = 1024;  // switch port indexes (not DPDK port ids)
inline constexpr uint16_t kMaxQueuesPerPort = 16;

// Why the switch dropped a packet (not counting the port's own tx-full drops), counted per ingress port.
enum class DropReason : uint8_t {
  kNoRoute,        // nowhere to send it (e.g. a table miss whose action is drop)
  kMalformed,      // headers too short or inconsistent
  kRule,           // a rule's drop action
  kNoFate,         // the walk ended without output, to_representor or drop
  kNoRepresentor,  // to_representor, but the ingress port has no representor
  kTtlExceeded,    // dec_ttl on TTL <= 1
  kMeter,          // a meter coloured it red
  kCopyFailed,     // a mirror copy or VLAN push found no mbuf / headroom
  // Vport binding (anti-spoofing), counted on the offending vport:
  kSpoofedMac,     // source MAC is not the vport's hw_addr
  kSpoofedIp,      // source IPv4/IPv6 not bound to the vport
  kArpSpoof,       // ARP sender MAC/IP not the vport's
  kNdSpoof,        // ND NS/NA target or link-layer option not the vport's
  kRaGuard,        // router advertisement from an untrusted vport
  kDhcpGuard,      // DHCP/DHCPv6 server message from an untrusted vport, or client discovery not allowed
  kVlanViolation,  // tagged frame from an access vport
  kRoceDisabled,   // RoCEv2 from a vport with roce off
  kRoceQpNotGranted,    // roce_strict: RoCEv2 to a vport's dest QP no SMC-R CLC exchange between the two granted
  kRoceRkeyNotGranted,  // roce_strict: RDMA WRITE/READ request with an rkey not granted for that vport pair
  // SMC identity (smc_identity.h): a CLC message from a vport claiming what is not its own, counted on that vport:
  kSmcForeignMac,     // RoCE MAC != the vport's hw_addr
  kSmcForeignGid,     // SMC-R / RoCEv2 GID not derived from a bound address (IPv4-mapped, IPv6, link-local)
  kSmcForeignPrefix,  // Proposal IP area: a prefix that neither contains nor lies within a bound prefix
  kSmcFlowRefused,    // data of a connection whose CLC message was refused (both directions)
  kSmcClcUnchecked,   // part of a CLC message that cannot be checked yet: out of order, or no room to hold it
  kEthertype,      // an ethertype a spoof-checked vport may not send (not ARP/IPv4/IPv6)
  kInactive,       // the vport is inactive
  kRateLimit,      // over the vport's tx_max
  kEgressFilter,   // to a vport: not its MAC (or multicast it does not take); counted on that vport
  kCount
};
inline constexpr const char* drop_reason_name(DropReason r) {
  switch (r) {
    case DropReason::kNoRoute: return "no_route";
    case DropReason::kMalformed: return "malformed";
    case DropReason::kRule: return "rule";
    case DropReason::kNoFate: return "no_fate";
    case DropReason::kNoRepresentor: return "no_representor";
    case DropReason::kTtlExceeded: return "ttl_exceeded";
    case DropReason::kMeter: return "meter";
    case DropReason::kCopyFailed: return "copy_failed";
    case DropReason::kSpoofedMac: return "spoofed_mac";
    case DropReason::kSpoofedIp: return "spoofed_ip";
    case DropReason::kArpSpoof: return "arp_spoof";
    case DropReason::kNdSpoof: return "nd_spoof";
    case DropReason::kRaGuard: return "ra_guard";
    case DropReason::kDhcpGuard: return "dhcp_guard";
    case DropReason::kVlanViolation: return "vlan_violation";
    case DropReason::kRoceDisabled: return "roce_disabled";
    case DropReason::kRoceQpNotGranted: return "roce_qp_not_granted";
    case DropReason::kRoceRkeyNotGranted: return "roce_rkey_not_granted";
    case DropReason::kSmcForeignMac: return "smc_foreign_mac";
    case DropReason::kSmcForeignGid: return "smc_foreign_gid";
    case DropReason::kSmcForeignPrefix: return "smc_foreign_prefix";
    case DropReason::kSmcFlowRefused: return "smc_flow_refused";
    case DropReason::kSmcClcUnchecked: return "smc_clc_unchecked";
    case DropReason::kEthertype: return "ethertype";
    case DropReason::kInactive: return "inactive";
    case DropReason::kRateLimit: return "rate_limit";
    case DropReason::kEgressFilter: return "egress_filter";
    case DropReason::kCount: break;
  }
  return "?";
}

// Per-rule counters (count action), per core, indexed by rule id.
struct RuleCounter {
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

struct alignas(RTE_CACHE_LINE_SIZE) PortCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t tx_dropped = 0;  // the port's tx queue was full
  // SMC (vports): SYN/SYN-ACKs with the SMC option it sent, options removed because of its smc: deny (sent by it or
  // towards it), CLC-looking segments it sent.
  uint64_t smc_syn = 0;
  uint64_t smc_option_stripped = 0;
  uint64_t smc_clc = 0;
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> dropped{};  // by ingress port

  PortCounters& operator+=(const PortCounters& o) {
    rx_packets += o.rx_packets;
    rx_bytes += o.rx_bytes;
    tx_packets += o.tx_packets;
    tx_bytes += o.tx_bytes;
    tx_dropped += o.tx_dropped;
    smc_syn += o.smc_syn;
    smc_option_stripped += o.smc_option_stripped;
    smc_clc += o.smc_clc;
    for (size_t i = 0; i < dropped.size(); ++i) dropped[i] += o.dropped[i];
    return *this;
  }
  uint64_t dropped_total() const {
    uint64_t t = 0;
    for (uint64_t d : dropped) t += d;
    return t;
  }
};

struct alignas(RTE_CACHE_LINE_SIZE) QueueCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t polls = 0;        // rx_burst calls
  uint64_t empty_polls = 0;  // rx_burst calls that returned nothing
};

// Cycle accounting of one worker (like Open vSwitch's pmd-perf-show): TSC cycles of the poll loop, read once per
// loop iteration (not per packet). An iteration that received anything is busy (all of it: rx, pipeline, tx
// flush), an empty one idle (including its sleep). busy / packets = cycles per packet; packets / busy_loops = packets
// per busy iteration (how full the bursts are: OVS's "packets per batch").
struct WorkerCycles {
  uint64_t busy_cycles = 0;
  uint64_t idle_cycles = 0;
  uint64_t packets = 0;     // received by this worker (all its queues)
  uint64_t busy_loops = 0;  // iterations that received anything
};

struct WorkerStats {
  std::array<PortCounters, kMaxPorts> ports{};
  WorkerCycles cycles;
  uint64_t loops = 0;
  uint64_t idle_sleeps = 0;
  uint64_t smc_events = 0;       // SMC events enqueued to the main lcore
  uint64_t smc_events_lost = 0;  // ... that found the ring full (counted, never waited for)
};

}  // namespace esw::dp
