#pragma once
// Protocol numbers the switch knows, defined once: the parser, the binding check, the field registry, packet
// synthesis (trace) and the rule compiler all use these. Host order; to_be16() gives the wire (network) order for
// comparisons against FlowKey fields, which hold what the packet carries, from_be16() reads one. No DPDK needed.

#include <bit>
#include <cstdint>

namespace esw::dp {

// Wire order of a 16-bit host-order constant, at compile time.
constexpr uint16_t to_be16(uint16_t host) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    return static_cast<uint16_t>(host << 8 | host >> 8);
  } else {
    return host;
  }
}
// Host order of a 16-bit wire-order value (the same swap).
constexpr uint16_t from_be16(uint16_t wire) noexcept { return to_be16(wire); }

// ---- Ethernet types (also VLAN TPIDs) ----
inline constexpr uint16_t kEthTypeIpv4 = 0x0800;
inline constexpr uint16_t kEthTypeArp = 0x0806;
inline constexpr uint16_t kEthTypeRarp = 0x8035;  // reverse ARP: how a migrated guest announces its MAC (QEMU, rte_vhost)
inline constexpr uint16_t kEthTypeVlan = 0x8100;  // 802.1Q
inline constexpr uint16_t kEthTypeQinQ = 0x88a8;  // 802.1ad
inline constexpr uint16_t kEthTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEthTypeTeb = 0x6558;   // transparent Ethernet bridging: Geneve's inner Ethernet

// ---- IP protocol numbers (and IPv6 extension headers) ----
inline constexpr uint8_t kIpv6HopByHop = 0;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kIpv6Routing = 43;
inline constexpr uint8_t kIpv6Fragment = 44;
inline constexpr uint8_t kIpv6Ah = 51;
inline constexpr uint8_t kProtoIcmpv6 = 58;
inline constexpr uint8_t kIpv6DestOpts = 60;

// ---- UDP ports ----
inline constexpr uint16_t kPortDhcpServer = 67;
inline constexpr uint16_t kPortDhcpClient = 68;
inline constexpr uint16_t kPortDhcp6Client = 546;
inline constexpr uint16_t kPortDhcp6Server = 547;
inline constexpr uint16_t kPortVxlan = 4789;
inline constexpr uint16_t kPortRoce = 4791;  // RoCEv2
inline constexpr uint16_t kPortGeneve = 6081;

// ---- ICMP and ICMPv6 types ----
inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpv6EchoRequest = 128;
inline constexpr uint8_t kIcmpv6EchoReply = 129;
inline constexpr uint8_t kNdRouterSolicit = 133;
inline constexpr uint8_t kNdRouterAdvert = 134;
inline constexpr uint8_t kNdNeighborSolicit = 135;
inline constexpr uint8_t kNdNeighborAdvert = 136;
inline constexpr uint8_t kMldv2Report = 143;

// ---- ND options ----
inline constexpr uint8_t kNdOptSourceLl = 1;
inline constexpr uint8_t kNdOptTargetLl = 2;
inline constexpr uint8_t kNdOptNonce = 14;

// ---- TCP ----
inline constexpr uint16_t kTcpFlagFin = 0x001;
inline constexpr uint16_t kTcpFlagSyn = 0x002;
inline constexpr uint16_t kTcpFlagRst = 0x004;
inline constexpr uint16_t kTcpFlagAck = 0x010;
inline constexpr uint8_t kTcpOptEol = 0;
inline constexpr uint8_t kTcpOptNop = 1;
inline constexpr uint8_t kTcpOptExp = 254;                         // RFC 6994 experimental option
inline constexpr uint8_t kSmcExId[4] = {0xe2, 0xd4, 0xc3, 0xd9};  // SMC-R/D: "SMCR" in EBCDIC
inline constexpr uint8_t kSmcOptLen = 6;                          // kind, length, ExID
// CLC message eyecatchers (first 4 payload bytes of a CLC message): SMC-R ("SMCR") and SMC-D ("SMCD").
inline constexpr uint8_t kClcEyecatcherR[4] = {0xe2, 0xd4, 0xc3, 0xd9};
inline constexpr uint8_t kClcEyecatcherD[4] = {0xe2, 0xd4, 0xc3, 0xc4};

// ---- RoCEv2 (InfiniBand transport) ----
inline constexpr uint32_t kBthLen = 12;
inline constexpr uint32_t kRethLen = 16;  // virtual address (8), rkey (4), DMA length (4)
// Opcodes whose BTH is followed by a RETH: RC and UC RDMA WRITE FIRST, WRITE ONLY (with immediate too), and RC
// RDMA READ request (UC has no READ).
constexpr bool roce_has_reth(uint8_t opcode) noexcept {
  switch (opcode) {
    case 0x06: case 0x0a: case 0x0b: case 0x0c:  // RC
    case 0x26: case 0x2a: case 0x2b:             // UC
      return true;
    default:
      return false;
  }
}

// ---- tunnels ----
inline constexpr uint8_t kVxlanFlagI = 0x08;  // VNI present

}  // namespace esw::dp
