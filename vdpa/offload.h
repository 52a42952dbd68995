#pragma once
// Guest offloads completed in software as frames leave the guest (vhost_port.cc rx_burst), before they enter the
// switch: no port behind the switch is assumed to offload anything, so every frame the switch sees is whole.
//
//  - VIRTIO_NET_HDR_F_NEEDS_CSUM (feature CSUM): rte_vhost's dequeue turns it into RTE_MBUF_F_TX_TCP_CKSUM /
//    RTE_MBUF_F_TX_UDP_CKSUM with l2_len/l3_len; the TCP/UDP checksum is computed here.
//  - GSO frames (HOST_TSO4 / HOST_TSO6): RTE_MBUF_F_TX_TCP_SEG with tso_segsz and l4_len; the frame is cut into
//    MSS-sized segments in fresh single-segment mbufs (IPv4 total length, id and header checksum; IPv6 payload
//    length; TCP sequence numbers, FIN/PSH only on the last segment, CWR only on the first; TCP checksum).
//    rte_gso (Debian's DPDK 22.11) segments TCP over IPv4 only and leaves multi-segment mbufs; this covers IPv6
//    too and hands the switch contiguous frames.
// Per-packet work, no locks, no logging; allocations come from the port's pool like any received frame.

#include <rte_mbuf.h>

#include <cstdint>

namespace esw::vdpa {

inline constexpr uint16_t kMaxSegments = 128;  // per GSO frame (64 KiB / MSS 512)

struct OffloadCounters {
  uint64_t csum_completed = 0;  // frames whose L4 checksum was computed here
  uint64_t gso_frames = 0;      // GSO frames segmented
  uint64_t gso_segments = 0;    // segments made from them
  uint64_t errors = 0;          // offload requests that made no sense (bad lengths, no mbufs): frame dropped
};

// Whether `m` asks for anything (rx_burst's fast check).
inline bool needs_offload(const rte_mbuf* m) {
  return (m->ol_flags & (RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG)) != 0;
}

// Completes `m`'s offloads. Returns how many frames are in out[0..) (m itself when only a checksum was needed;
// fresh segments, m freed, for a GSO frame; 0 with m freed on error, counted). out has room for kMaxSegments.
uint16_t complete_offloads(rte_mbuf* m, rte_mempool* pool, rte_mbuf** out, OffloadCounters& c) noexcept;

}  // namespace esw::vdpa
