#pragma once
// IPv4 fragments through net_af_packet, as they were sent.
//
// DPDK 22.11's af_packet PMD joins each of its sockets to a PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG
// (drivers/net/af_packet/rte_eth_af_packet.c; no devarg turns it off in 22.11). With that flag the kernel runs
// ip_check_defrag() on every IPv4 fragment before the socket sees it and holds the fragments for reassembly, so
// a switch on af_packet would never see the fragments a tenant sent (neither the binding nor the tables), only
// at best a reassembled datagram larger than the MTU. A switch must forward frames as they were sent.
//
// Fix: eswitchd defines setsockopt() itself (af_packet_frags.cc) and exports it (-Wl,--export-dynamic-symbol,
// dataplane/meson.build), so the PMD's call - the PMD is a plugin loaded by EAL - resolves to it; for
// SOL_PACKET/PACKET_FANOUT it clears PACKET_FANOUT_FLAG_DEFRAG and keeps the rest (hash fanout over the queue
// pairs, rollover), everything else goes to the kernel unchanged. Fragments then hash to one queue by addresses
// (the flow dissector does not read ports of fragments), so queue spreading stays consistent.

#include <cstdint>
#include <vector>

namespace esw::dp {

// True when this process's setsockopt() is the one above (the executable exports it): af_packet ports keep
// fragments. False in a program that links the ports library without the export (then af_packet defragments).
bool af_packet_keeps_fragments() noexcept;

// The af_packet sockets the PMD set up since the last call (seen at their PACKET_FANOUT setsockopt), in order:
// EthdevPort takes them right after probing a net_af_packet device, to read the kernel's ring-overflow drops
// (PACKET_STATISTICS tp_drops, which DPDK 22.11 does not report) as the port's imissed. Main lcore only.
std::vector<int> take_af_packet_sockets();
// Drops counted by the kernel on these sockets since the last call (PACKET_STATISTICS resets on read).
uint64_t af_packet_kernel_drops(const std::vector<int>& fds) noexcept;

}  // namespace esw::dp
