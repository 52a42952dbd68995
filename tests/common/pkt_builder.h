#pragma once
// Test helper: craft packets layer by layer as std::vector<uint8_t>.
//
//   using namespace esw::test;
//   Bytes pkt = PacketBuilder()
//                   .eth({.dst = mac("02:00:00:00:00:02")})
//                   .vlan({.vid = 100, .pcp = 3})
//                   .ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2"), .ttl = 17})
//                   .tcp({.sport = 1234, .dport = 80, .flags = kTcpSyn, .options = tcp_opt_smc()})
//                   .payload(64)
//                   .build();
//
// Filled in by build() unless the spec sets them explicitly (std::optional fields), so consistent packets need
// no arithmetic and inconsistent ones are one field away:
//  - Ethernet / VLAN type and Geneve protocol <- the next layer (VLAN TPID, ARP, IPv4, IPv6, Ethernet);
//  - IPv4 protocol, IPv6 / extension next header <- the next layer (TCP, UDP, ICMP, ICMPv6, ext header, IP);
//  - UDP destination port <- the next layer (VXLAN 4789, Geneve 6081, BTH 4791);
//  - IPv4 IHL / total length, IPv6 payload length, UDP length, TCP data offset;
//  - IPv4 header checksum, TCP / UDP / ICMPv6 checksums (pseudo-header of the nearest enclosing IP header),
//    ICMP checksum. Inner layers are finished before outer ones, so tunnel checksums are right too.
// Lengths cover everything up to the end of the packet except pad_to() padding (Ethernet trailer).
// offset_of() gives where a layer starts, to compare with parser offsets or to patch bytes afterwards.
//
// Header-only, test code: throws std::invalid_argument on misuse, allocates freely.

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace esw::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;
using Ip4 = std::array<uint8_t, 4>;
using Ip6 = std::array<uint8_t, 16>;

// ---- protocol numbers ---------------------------------------------------------------------------------------

inline constexpr uint16_t kEthTypeIpv4 = 0x0800;
inline constexpr uint16_t kEthTypeArp = 0x0806;
inline constexpr uint16_t kEthTypeVlan = 0x8100;
inline constexpr uint16_t kEthTypeQinQ = 0x88a8;
inline constexpr uint16_t kEthTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEthTypeTeb = 0x6558;  // transparent Ethernet bridging (Geneve inner Ethernet)

inline constexpr uint8_t kIpProtoHopByHop = 0;
inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoIpip = 4;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpProtoIpv6 = 41;
inline constexpr uint8_t kIpProtoRouting = 43;
inline constexpr uint8_t kIpProtoFragment = 44;
inline constexpr uint8_t kIpProtoEsp = 50;
inline constexpr uint8_t kIpProtoAh = 51;
inline constexpr uint8_t kIpProtoIcmpv6 = 58;
inline constexpr uint8_t kIpProtoNone = 59;
inline constexpr uint8_t kIpProtoDestOpts = 60;
inline constexpr uint8_t kIpProtoExperiment = 253;  // RFC 3692: default for IPv4 over raw payload

inline constexpr uint16_t kUdpPortVxlan = 4789;
inline constexpr uint16_t kUdpPortGeneve = 6081;
inline constexpr uint16_t kUdpPortRoce = 4791;

inline constexpr uint16_t kArpRequest = 1;
inline constexpr uint16_t kArpReply = 2;

// TCP flag bits (host order, the 12 bits after the data offset)
inline constexpr uint16_t kTcpFin = 0x001;
inline constexpr uint16_t kTcpSyn = 0x002;
inline constexpr uint16_t kTcpRst = 0x004;
inline constexpr uint16_t kTcpPsh = 0x008;
inline constexpr uint16_t kTcpAck = 0x010;
inline constexpr uint16_t kTcpUrg = 0x020;
inline constexpr uint16_t kTcpEce = 0x040;
inline constexpr uint16_t kTcpCwr = 0x080;
inline constexpr uint16_t kTcpNs = 0x100;

inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreach = 3;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpv6DestUnreach = 1;
inline constexpr uint8_t kIcmpv6EchoRequest = 128;
inline constexpr uint8_t kIcmpv6EchoReply = 129;
inline constexpr uint8_t kNdRouterSolicit = 133;
inline constexpr uint8_t kNdRouterAdvert = 134;
inline constexpr uint8_t kNdNeighborSolicit = 135;
inline constexpr uint8_t kNdNeighborAdvert = 136;
inline constexpr uint8_t kNdOptSourceLl = 1;
inline constexpr uint8_t kNdOptTargetLl = 2;
inline constexpr uint8_t kNdOptPrefixInfo = 3;
inline constexpr uint8_t kNdOptMtu = 5;
inline constexpr uint32_t kNaRouter = 0x80000000;
inline constexpr uint32_t kNaSolicited = 0x40000000;
inline constexpr uint32_t kNaOverride = 0x20000000;

inline constexpr uint8_t kBthOpRcSendOnly = 0x04;
inline constexpr uint8_t kBthOpRcRdmaWriteOnly = 0x0a;
inline constexpr uint8_t kBthOpUdSendOnly = 0x64;

// ---- addresses and byte helpers -----------------------------------------------------------------------------

inline Mac mac(std::string_view text) {
  Mac m{};
  unsigned v[6];
  char tail;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
    throw std::invalid_argument("not a MAC address: " + s);
  for (int i = 0; i < 6; ++i) {
    if (v[i] > 0xff) throw std::invalid_argument("not a MAC address: " + s);
    m[i] = static_cast<uint8_t>(v[i]);
  }
  return m;
}

inline Ip4 ip4(std::string_view text) {
  Ip4 a{};
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), a.data()) != 1) throw std::invalid_argument("not an IPv4 address: " + s);
  return a;
}

inline Ip6 ip6(std::string_view text) {
  Ip6 a{};
  const std::string s(text);
  if (inet_pton(AF_INET6, s.c_str(), a.data()) != 1) throw std::invalid_argument("not an IPv6 address: " + s);
  return a;
}

inline void put16(Bytes& b, size_t at, uint16_t v) {
  b.at(at) = static_cast<uint8_t>(v >> 8);
  b.at(at + 1) = static_cast<uint8_t>(v);
}
inline void put24(Bytes& b, size_t at, uint32_t v) {
  b.at(at) = static_cast<uint8_t>(v >> 16);
  put16(b, at + 1, static_cast<uint16_t>(v));
}
inline void put32(Bytes& b, size_t at, uint32_t v) {
  put16(b, at, static_cast<uint16_t>(v >> 16));
  put16(b, at + 2, static_cast<uint16_t>(v));
}
inline uint16_t get16(const Bytes& b, size_t at) { return static_cast<uint16_t>(b.at(at) << 8 | b.at(at + 1)); }

// Concatenates byte strings, e.g. concat({tcp_opt_mss(1460), tcp_opt_nop(), tcp_opt_smc()}).
inline Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

template <size_t N>
Bytes bytes_of(const std::array<uint8_t, N>& a) {
  return Bytes(a.begin(), a.end());
}

// ---- checksums ----------------------------------------------------------------------------------------------

// One's-complement sum of 16-bit big-endian words, not folded.
inline uint32_t ones_sum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  return sum;
}
inline uint16_t fold_checksum(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
// RFC 1071 Internet checksum of p[0, n) (host-order value to store big-endian).
inline uint16_t internet_checksum(const uint8_t* p, size_t n) { return fold_checksum(ones_sum(p, n)); }

// Pseudo-header sum for an L4 segment of l4_len bytes of protocol proto under the IPv4 (v4) or IPv6 header
// at l3.
inline uint32_t pseudo_header_sum(const Bytes& pkt, size_t l3, bool v4, uint8_t proto, size_t l4_len) {
  uint32_t sum = 0;
  if (v4) {
    sum = ones_sum(&pkt.at(l3 + 12), 8);
  } else {
    sum = ones_sum(&pkt.at(l3 + 8), 32);
    sum += static_cast<uint32_t>(l4_len >> 16);
  }
  sum += static_cast<uint32_t>(l4_len & 0xffff);
  sum += proto;
  return sum;
}

// Checks the IPv4 header checksum of the header at l3.
inline bool ipv4_checksum_ok(const Bytes& pkt, size_t l3) {
  const size_t ihl = (pkt.at(l3) & 0x0fu) * 4;
  if (l3 + ihl > pkt.size()) return false;
  return internet_checksum(&pkt[l3], ihl) == 0;
}

// Checks the TCP / UDP / ICMP / ICMPv6 checksum of the L4 header at l4 (proto) under the IP header at l3.
// The L4 data ends where the IP header's length says. A UDP checksum of 0 (none, IPv4) counts as ok.
inline bool l4_checksum_ok(const Bytes& pkt, size_t l3, size_t l4, uint8_t proto) {
  const bool v4 = pkt.at(l3) >> 4 == 4;
  const size_t ip_end = v4 ? l3 + get16(pkt, l3 + 2) : l3 + 40 + get16(pkt, l3 + 4);
  if (ip_end > pkt.size() || l4 >= ip_end) return false;
  const size_t n = ip_end - l4;
  if (proto == kIpProtoUdp && v4 && get16(pkt, l4 + 6) == 0) return true;
  const uint32_t pseudo = proto == kIpProtoIcmp ? 0 : pseudo_header_sum(pkt, l3, v4, proto, n);
  return fold_checksum(ones_sum(&pkt[l4], n, pseudo)) == 0;
}

// ---- options ------------------------------------------------------------------------------------------------

inline Bytes tcp_opt_eol() { return {0}; }
inline Bytes tcp_opt_nop() { return {1}; }
inline Bytes tcp_opt_mss(uint16_t mss) { return {2, 4, static_cast<uint8_t>(mss >> 8), static_cast<uint8_t>(mss)}; }
inline Bytes tcp_opt_wscale(uint8_t shift) { return {3, 3, shift}; }
inline Bytes tcp_opt_sack_permitted() { return {4, 2}; }
inline Bytes tcp_opt_timestamp(uint32_t val, uint32_t ecr) {
  Bytes b(10);
  b[0] = 8;
  b[1] = 10;
  put32(b, 2, val);
  put32(b, 6, ecr);
  return b;
}
// RFC 6994 experimental option with a 32-bit ExID followed by data.
inline Bytes tcp_opt_experimental(uint32_t exid, const Bytes& data = {}) {
  Bytes b(6);
  b[0] = 254;
  b[1] = static_cast<uint8_t>(6 + data.size());
  put32(b, 2, exid);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}
inline constexpr uint32_t kSmcExId = 0xE2D4C3D9;  // "SMCR" in EBCDIC
// The SMC option as Linux sends it on SYN / SYN-ACK: NOP NOP 254 6 E2 D4 C3 D9.
inline Bytes tcp_opt_smc() { return concat({tcp_opt_nop(), tcp_opt_nop(), tcp_opt_experimental(kSmcExId)}); }

inline Bytes ipv4_opt_nop() { return {1}; }
inline Bytes ipv4_opt_router_alert() { return {0x94, 4, 0, 0}; }

// ND option carrying a link-layer address (kNdOptSourceLl / kNdOptTargetLl).
inline Bytes nd_opt_lladdr(uint8_t type, const Mac& m) {
  Bytes b{type, 1};
  b.insert(b.end(), m.begin(), m.end());
  return b;
}
inline Bytes nd_opt_prefix_info(const Ip6& prefix, uint8_t prefix_len, uint32_t valid = 86400,
                                uint32_t preferred = 14400) {
  Bytes b(32);
  b[0] = kNdOptPrefixInfo;
  b[1] = 4;
  b[2] = prefix_len;
  b[3] = 0xc0;  // on-link, autonomous
  put32(b, 4, valid);
  put32(b, 8, preferred);
  std::copy(prefix.begin(), prefix.end(), b.begin() + 16);
  return b;
}
inline Bytes nd_opt_mtu(uint32_t mtu) {
  Bytes b(8);
  b[0] = kNdOptMtu;
  b[1] = 1;
  put32(b, 4, mtu);
  return b;
}

// ---- layer specs --------------------------------------------------------------------------------------------
// Field order matters for designated initializers: keep the common fields first.

struct EthSpec {
  Mac dst = {0x02, 0, 0, 0, 0, 0x02};
  Mac src = {0x02, 0, 0, 0, 0, 0x01};
  std::optional<uint16_t> type;  // default: from the next layer, 0 if none
};

struct VlanSpec {
  uint16_t vid = 0;
  uint8_t pcp = 0;
  bool dei = false;
  uint16_t tpid = kEthTypeVlan;  // written into the previous layer's type field
  std::optional<uint16_t> type;
};

struct ArpSpec {
  uint16_t op = kArpRequest;
  Mac sha = {0x02, 0, 0, 0, 0, 0x01};
  Ip4 spa = {198, 18, 0, 1};
  Mac tha = {};
  Ip4 tpa = {198, 18, 0, 2};
  uint16_t htype = 1;
  uint16_t ptype = kEthTypeIpv4;
  uint8_t hlen = 6;
  uint8_t plen = 4;
};

struct Ipv4Spec {
  Ip4 src = {198, 18, 0, 1};
  Ip4 dst = {198, 18, 0, 2};
  uint8_t tos = 0;
  uint8_t ttl = 64;
  uint16_t id = 0;
  bool df = false;
  bool mf = false;
  uint16_t frag_offset = 0;  // in 8-byte units
  Bytes options;             // padded with End-of-Options to a multiple of 4
  std::optional<uint8_t> proto;
  std::optional<uint8_t> ihl;
  std::optional<uint16_t> total_length;
  std::optional<uint16_t> checksum;
  std::optional<uint8_t> version;
};

struct Ipv6Spec {
  Ip6 src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  Ip6 dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  uint8_t tclass = 0;
  uint32_t flow_label = 0;
  uint8_t hop_limit = 64;
  std::optional<uint8_t> next_header;
  std::optional<uint16_t> payload_length;
  std::optional<uint8_t> version;
};

// Hop-by-hop (0), routing (43), destination options (60) or AH (51). data is what follows the next-header and
// length bytes; it is zero-padded (Pad1 options) to the header's size unit (8 bytes; AH 4, total a multiple
// of 8).
struct Ipv6ExtSpec {
  uint8_t type = kIpProtoDestOpts;
  Bytes data;
  std::optional<uint8_t> next_header;
  std::optional<uint8_t> hdr_ext_len;  // the raw length byte
};

struct Ipv6FragSpec {
  uint16_t offset = 0;  // in 8-byte units
  bool more = false;
  uint32_t id = 0x12345678;
  std::optional<uint8_t> next_header;
};

struct TcpSpec {
  uint16_t sport = 10000;
  uint16_t dport = 80;
  uint16_t flags = kTcpAck;  // kTcp* bits (12 bits)
  uint32_t seq = 1;
  uint32_t ack = 0;
  uint16_t window = 65535;
  uint16_t urgent = 0;
  Bytes options;  // padded with End-of-Option-List to a multiple of 4
  std::optional<uint8_t> data_offset;  // in 32-bit words
  std::optional<uint16_t> checksum;
};

struct UdpSpec {
  uint16_t sport = 10000;
  std::optional<uint16_t> dport;  // default: from the next layer (VXLAN, Geneve, BTH), else 53
  std::optional<uint16_t> length;
  std::optional<uint16_t> checksum;  // 0 = none
};

struct IcmpSpec {
  uint8_t type = kIcmpEchoRequest;
  uint8_t code = 0;
  uint32_t rest = 0x00010001;  // identifier / sequence for echo
  std::optional<uint16_t> checksum;
};

// ICMPv6 message; body is everything after the checksum. Use the nd_* helpers for Neighbour Discovery.
struct Icmpv6Spec {
  uint8_t type = kIcmpv6EchoRequest;
  uint8_t code = 0;
  Bytes body = {0, 1, 0, 1};
  std::optional<uint16_t> checksum;
};

struct VxlanSpec {
  uint32_t vni = 0;
  uint8_t flags = 0x08;  // I flag
};

struct GeneveSpec {
  uint32_t vni = 0;
  Bytes options;  // TLVs, padded with zeros to a multiple of 4
  bool oam = false;
  bool critical = false;
  uint8_t version = 0;
  std::optional<uint16_t> protocol;  // default: from the next layer (Ethernet 0x6558, IPv4, IPv6)
  std::optional<uint8_t> opt_len;    // the raw 6-bit length in 4-byte words
};

// InfiniBand Base Transport Header (RoCEv2 after UDP 4791).
struct BthSpec {
  uint32_t dest_qp = 0;  // 24 bits
  uint8_t opcode = kBthOpRcSendOnly;
  uint32_t psn = 0;  // 24 bits
  uint16_t pkey = 0xffff;
  bool solicited = false;
  bool mig_req = true;
  uint8_t pad_count = 0;
  uint8_t tver = 0;
  bool ack_req = false;
};

inline Icmpv6Spec nd_ns(const Ip6& target, std::optional<Mac> sll = std::nullopt, const Bytes& extra_opts = {}) {
  Icmpv6Spec s;
  s.type = kNdNeighborSolicit;
  s.body = Bytes(4, 0);
  s.body.insert(s.body.end(), target.begin(), target.end());
  if (sll) {
    const Bytes o = nd_opt_lladdr(kNdOptSourceLl, *sll);
    s.body.insert(s.body.end(), o.begin(), o.end());
  }
  s.body.insert(s.body.end(), extra_opts.begin(), extra_opts.end());
  return s;
}

inline Icmpv6Spec nd_na(const Ip6& target, std::optional<Mac> tll = std::nullopt,
                        uint32_t flags = kNaSolicited | kNaOverride, const Bytes& extra_opts = {}) {
  Icmpv6Spec s;
  s.type = kNdNeighborAdvert;
  s.body = Bytes(4, 0);
  put32(s.body, 0, flags);
  s.body.insert(s.body.end(), target.begin(), target.end());
  if (tll) {
    const Bytes o = nd_opt_lladdr(kNdOptTargetLl, *tll);
    s.body.insert(s.body.end(), o.begin(), o.end());
  }
  s.body.insert(s.body.end(), extra_opts.begin(), extra_opts.end());
  return s;
}

inline Icmpv6Spec nd_rs(std::optional<Mac> sll = std::nullopt, const Bytes& extra_opts = {}) {
  Icmpv6Spec s;
  s.type = kNdRouterSolicit;
  s.body = Bytes(4, 0);
  if (sll) {
    const Bytes o = nd_opt_lladdr(kNdOptSourceLl, *sll);
    s.body.insert(s.body.end(), o.begin(), o.end());
  }
  s.body.insert(s.body.end(), extra_opts.begin(), extra_opts.end());
  return s;
}

inline Icmpv6Spec nd_ra(std::optional<Mac> sll = std::nullopt, const Bytes& extra_opts = {},
                        uint8_t cur_hop_limit = 64, uint16_t router_lifetime = 1800) {
  Icmpv6Spec s;
  s.type = kNdRouterAdvert;
  s.body = Bytes(12, 0);
  s.body[0] = cur_hop_limit;
  put16(s.body, 2, router_lifetime);
  if (sll) {
    const Bytes o = nd_opt_lladdr(kNdOptSourceLl, *sll);
    s.body.insert(s.body.end(), o.begin(), o.end());
  }
  s.body.insert(s.body.end(), extra_opts.begin(), extra_opts.end());
  return s;
}

// ---- the builder --------------------------------------------------------------------------------------------

class PacketBuilder {
 public:
  enum class Kind {
    kEth, kVlan, kArp, kIpv4, kIpv6, kIpv6Ext, kIpv6Frag, kTcp, kUdp, kIcmp, kIcmpv6, kVxlan, kGeneve, kBth,
    kPayload,
  };

  PacketBuilder& eth(const EthSpec& s = {}) { return add(s); }
  PacketBuilder& vlan(const VlanSpec& s = {}) { return add(s); }
  PacketBuilder& arp(const ArpSpec& s = {}) { return add(s); }
  PacketBuilder& ipv4(const Ipv4Spec& s = {}) { return add(s); }
  PacketBuilder& ipv6(const Ipv6Spec& s = {}) { return add(s); }
  PacketBuilder& ipv6_ext(const Ipv6ExtSpec& s) { return add(s); }
  PacketBuilder& ipv6_frag(const Ipv6FragSpec& s = {}) { return add(s); }
  PacketBuilder& tcp(const TcpSpec& s = {}) { return add(s); }
  PacketBuilder& udp(const UdpSpec& s = {}) { return add(s); }
  PacketBuilder& icmp(const IcmpSpec& s = {}) { return add(s); }
  PacketBuilder& icmpv6(const Icmpv6Spec& s = {}) { return add(s); }
  PacketBuilder& vxlan(const VxlanSpec& s = {}) { return add(s); }
  PacketBuilder& geneve(const GeneveSpec& s = {}) { return add(s); }
  PacketBuilder& bth(const BthSpec& s = {}) { return add(s); }
  // Opaque bytes (application data, or hand-made headers the builder does not know).
  PacketBuilder& payload(const Bytes& b) { return add(Payload{b}); }
  // n bytes of a recognisable pattern (i + seed).
  PacketBuilder& payload(size_t n, uint8_t seed = 0) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i + seed);
    return payload(b);
  }
  // Ethernet padding: appends zeros until the frame is min_len bytes. Not counted in any length field.
  PacketBuilder& pad_to(size_t min_len) {
    pad_to_ = min_len;
    return *this;
  }

  // Where the nth layer of that kind starts. Throws if there is none.
  size_t offset_of(Kind k, size_t nth = 0) const {
    size_t off = 0;
    for (const Layer& l : layers_) {
      if (kind_of(l) == k && nth-- == 0) return off;
      off += header_size(l);
    }
    throw std::invalid_argument("offset_of: no such layer");
  }

  // Size of the frame without padding.
  size_t size() const {
    size_t n = 0;
    for (const Layer& l : layers_) n += header_size(l);
    return n;
  }

  Bytes build() const {
    const size_t n = layers_.size();
    std::vector<size_t> start(n + 1, 0);
    for (size_t i = 0; i < n; ++i) start[i + 1] = start[i] + header_size(layers_[i]);
    const size_t data_end = start[n];
    Bytes pkt(std::max(data_end, pad_to_), 0);
    for (size_t i = 0; i < n; ++i) write_layer(pkt, i, start, data_end);
    // Checksums once every header is in place (pseudo-headers read the IP addresses), inner layers first:
    // outer checksums cover them.
    for (size_t i = n; i-- > 0;) write_checksum(pkt, i, start, data_end);
    return pkt;
  }

 private:
  struct Payload {
    Bytes data;
  };
  // Same order as Kind.
  using Layer = std::variant<EthSpec, VlanSpec, ArpSpec, Ipv4Spec, Ipv6Spec, Ipv6ExtSpec, Ipv6FragSpec, TcpSpec,
                             UdpSpec, IcmpSpec, Icmpv6Spec, VxlanSpec, GeneveSpec, BthSpec, Payload>;
  static_assert(std::variant_size_v<Layer> == static_cast<size_t>(Kind::kPayload) + 1);

  template <typename T>
  PacketBuilder& add(const T& s) {
    layers_.emplace_back(s);
    return *this;
  }

  static Kind kind_of(const Layer& l) { return static_cast<Kind>(l.index()); }

  static size_t round_up(size_t v, size_t unit) { return (v + unit - 1) / unit * unit; }

  static size_t header_size(const Layer& l) {
    return std::visit(
        [](const auto& s) -> size_t {
          using T = std::decay_t<decltype(s)>;
          if constexpr (std::is_same_v<T, EthSpec>) return 14;
          else if constexpr (std::is_same_v<T, VlanSpec>) return 4;
          else if constexpr (std::is_same_v<T, ArpSpec>) return 28;
          else if constexpr (std::is_same_v<T, Ipv4Spec>) return 20 + round_up(s.options.size(), 4);
          else if constexpr (std::is_same_v<T, Ipv6Spec>) return 40;
          else if constexpr (std::is_same_v<T, Ipv6ExtSpec>) return round_up(2 + s.data.size(), 8);
          else if constexpr (std::is_same_v<T, Ipv6FragSpec>) return 8;
          else if constexpr (std::is_same_v<T, TcpSpec>) return 20 + round_up(s.options.size(), 4);
          else if constexpr (std::is_same_v<T, UdpSpec>) return 8;
          else if constexpr (std::is_same_v<T, IcmpSpec>) return 8;
          else if constexpr (std::is_same_v<T, Icmpv6Spec>) return 4 + s.body.size();
          else if constexpr (std::is_same_v<T, VxlanSpec>) return 8;
          else if constexpr (std::is_same_v<T, GeneveSpec>) return 8 + round_up(s.options.size(), 4);
          else if constexpr (std::is_same_v<T, BthSpec>) return 12;
          else return s.data.size();  // Payload
        },
        l);
  }

  // Value for the previous layer's ethertype field when this layer follows it.
  static std::optional<uint16_t> ethertype_of(const Layer* l) {
    if (l == nullptr) return std::nullopt;
    switch (kind_of(*l)) {
      case Kind::kVlan:
        return std::get<VlanSpec>(*l).tpid;
      case Kind::kArp:
        return kEthTypeArp;
      case Kind::kIpv4:
        return kEthTypeIpv4;
      case Kind::kIpv6:
        return kEthTypeIpv6;
      case Kind::kEth:
        return kEthTypeTeb;
      default:
        return std::nullopt;
    }
  }

  // Value for the previous layer's protocol / next-header field when this layer follows an IP header.
  static std::optional<uint8_t> ip_proto_of(const Layer* l) {
    if (l == nullptr) return std::nullopt;
    switch (kind_of(*l)) {
      case Kind::kIpv4:
        return kIpProtoIpip;
      case Kind::kIpv6:
        return kIpProtoIpv6;
      case Kind::kIpv6Ext:
        return std::get<Ipv6ExtSpec>(*l).type;
      case Kind::kIpv6Frag:
        return kIpProtoFragment;
      case Kind::kTcp:
        return kIpProtoTcp;
      case Kind::kUdp:
        return kIpProtoUdp;
      case Kind::kIcmp:
        return kIpProtoIcmp;
      case Kind::kIcmpv6:
        return kIpProtoIcmpv6;
      default:
        return std::nullopt;
    }
  }

  static std::optional<uint16_t> udp_port_of(const Layer* l) {
    if (l == nullptr) return std::nullopt;
    switch (kind_of(*l)) {
      case Kind::kVxlan:
        return kUdpPortVxlan;
      case Kind::kGeneve:
        return kUdpPortGeneve;
      case Kind::kBth:
        return kUdpPortRoce;
      default:
        return std::nullopt;
    }
  }

  // The IP header enclosing layer i (skipping IPv6 extension headers), for pseudo-headers.
  size_t enclosing_ip(size_t i) const {
    while (i-- > 0) {
      const Kind k = kind_of(layers_[i]);
      if (k == Kind::kIpv4 || k == Kind::kIpv6) return i;
      if (k != Kind::kIpv6Ext && k != Kind::kIpv6Frag) break;
    }
    throw std::invalid_argument("L4 header without an IP header before it");
  }

  void write_layer(Bytes& pkt, size_t i, const std::vector<size_t>& start, size_t data_end) const {
    const Layer* next = i + 1 < layers_.size() ? &layers_[i + 1] : nullptr;
    const size_t at = start[i];
    const size_t hlen = start[i + 1] - at;
    const size_t to_end = data_end - at;  // this header and everything after it, without padding
    std::visit(
        [&](const auto& s) {
          using T = std::decay_t<decltype(s)>;
          if constexpr (std::is_same_v<T, EthSpec>) {
            std::copy(s.dst.begin(), s.dst.end(), pkt.begin() + at);
            std::copy(s.src.begin(), s.src.end(), pkt.begin() + at + 6);
            put16(pkt, at + 12, s.type.value_or(ethertype_of(next).value_or(0)));
          } else if constexpr (std::is_same_v<T, VlanSpec>) {
            put16(pkt, at, static_cast<uint16_t>((s.pcp & 7) << 13 | (s.dei ? 0x1000 : 0) | (s.vid & 0xfff)));
            put16(pkt, at + 2, s.type.value_or(ethertype_of(next).value_or(0)));
          } else if constexpr (std::is_same_v<T, ArpSpec>) {
            put16(pkt, at, s.htype);
            put16(pkt, at + 2, s.ptype);
            pkt[at + 4] = s.hlen;
            pkt[at + 5] = s.plen;
            put16(pkt, at + 6, s.op);
            std::copy(s.sha.begin(), s.sha.end(), pkt.begin() + at + 8);
            std::copy(s.spa.begin(), s.spa.end(), pkt.begin() + at + 14);
            std::copy(s.tha.begin(), s.tha.end(), pkt.begin() + at + 18);
            std::copy(s.tpa.begin(), s.tpa.end(), pkt.begin() + at + 24);
          } else if constexpr (std::is_same_v<T, Ipv4Spec>) {
            pkt[at] = static_cast<uint8_t>(s.version.value_or(4) << 4 | (s.ihl.value_or(hlen / 4) & 0x0f));
            pkt[at + 1] = s.tos;
            put16(pkt, at + 2, s.total_length.value_or(static_cast<uint16_t>(to_end)));
            put16(pkt, at + 4, s.id);
            put16(pkt, at + 6,
                  static_cast<uint16_t>((s.df ? 0x4000 : 0) | (s.mf ? 0x2000 : 0) | (s.frag_offset & 0x1fff)));
            pkt[at + 8] = s.ttl;
            pkt[at + 9] = s.proto.value_or(ip_proto_of(next).value_or(kIpProtoExperiment));
            std::copy(s.src.begin(), s.src.end(), pkt.begin() + at + 12);
            std::copy(s.dst.begin(), s.dst.end(), pkt.begin() + at + 16);
            std::copy(s.options.begin(), s.options.end(), pkt.begin() + at + 20);
          } else if constexpr (std::is_same_v<T, Ipv6Spec>) {
            put32(pkt, at,
                  static_cast<uint32_t>(s.version.value_or(6)) << 28 | static_cast<uint32_t>(s.tclass) << 20 |
                      (s.flow_label & 0xfffff));
            put16(pkt, at + 4, s.payload_length.value_or(static_cast<uint16_t>(to_end - 40)));
            pkt[at + 6] = s.next_header.value_or(ip_proto_of(next).value_or(kIpProtoNone));
            pkt[at + 7] = s.hop_limit;
            std::copy(s.src.begin(), s.src.end(), pkt.begin() + at + 8);
            std::copy(s.dst.begin(), s.dst.end(), pkt.begin() + at + 24);
          } else if constexpr (std::is_same_v<T, Ipv6ExtSpec>) {
            pkt[at] = s.next_header.value_or(ip_proto_of(next).value_or(kIpProtoNone));
            const size_t raw_len = s.type == kIpProtoAh ? hlen / 4 - 2 : hlen / 8 - 1;
            pkt[at + 1] = s.hdr_ext_len.value_or(static_cast<uint8_t>(raw_len));
            std::copy(s.data.begin(), s.data.end(), pkt.begin() + at + 2);
          } else if constexpr (std::is_same_v<T, Ipv6FragSpec>) {
            pkt[at] = s.next_header.value_or(ip_proto_of(next).value_or(kIpProtoNone));
            put16(pkt, at + 2, static_cast<uint16_t>(s.offset << 3 | (s.more ? 1 : 0)));
            put32(pkt, at + 4, s.id);
          } else if constexpr (std::is_same_v<T, TcpSpec>) {
            put16(pkt, at, s.sport);
            put16(pkt, at + 2, s.dport);
            put32(pkt, at + 4, s.seq);
            put32(pkt, at + 8, s.ack);
            put16(pkt, at + 12,
                  static_cast<uint16_t>((s.data_offset.value_or(hlen / 4) & 0x0f) << 12 | (s.flags & 0x0fff)));
            put16(pkt, at + 14, s.window);
            put16(pkt, at + 18, s.urgent);
            std::copy(s.options.begin(), s.options.end(), pkt.begin() + at + 20);
          } else if constexpr (std::is_same_v<T, UdpSpec>) {
            put16(pkt, at, s.sport);
            put16(pkt, at + 2, s.dport.value_or(udp_port_of(next).value_or(53)));
            put16(pkt, at + 4, s.length.value_or(static_cast<uint16_t>(to_end)));
          } else if constexpr (std::is_same_v<T, IcmpSpec>) {
            pkt[at] = s.type;
            pkt[at + 1] = s.code;
            put32(pkt, at + 4, s.rest);
          } else if constexpr (std::is_same_v<T, Icmpv6Spec>) {
            pkt[at] = s.type;
            pkt[at + 1] = s.code;
            std::copy(s.body.begin(), s.body.end(), pkt.begin() + at + 4);
          } else if constexpr (std::is_same_v<T, VxlanSpec>) {
            pkt[at] = s.flags;
            put24(pkt, at + 4, s.vni);
          } else if constexpr (std::is_same_v<T, GeneveSpec>) {
            pkt[at] = static_cast<uint8_t>((s.version & 3) << 6 | (s.opt_len.value_or((hlen - 8) / 4) & 0x3f));
            pkt[at + 1] = static_cast<uint8_t>((s.oam ? 0x80 : 0) | (s.critical ? 0x40 : 0));
            put16(pkt, at + 2, s.protocol.value_or(ethertype_of(next).value_or(kEthTypeTeb)));
            put24(pkt, at + 4, s.vni);
            std::copy(s.options.begin(), s.options.end(), pkt.begin() + at + 8);
          } else if constexpr (std::is_same_v<T, BthSpec>) {
            pkt[at] = s.opcode;
            pkt[at + 1] = static_cast<uint8_t>((s.solicited ? 0x80 : 0) | (s.mig_req ? 0x40 : 0) |
                                               (s.pad_count & 3) << 4 | (s.tver & 0x0f));
            put16(pkt, at + 2, s.pkey);
            put24(pkt, at + 5, s.dest_qp);
            pkt[at + 8] = s.ack_req ? 0x80 : 0;
            put24(pkt, at + 9, s.psn);
          } else if constexpr (std::is_same_v<T, Payload>) {
            std::copy(s.data.begin(), s.data.end(), pkt.begin() + at);
          }
        },
        layers_[i]);
  }

  // Fills the checksum field of layer i (still zero), unless its spec sets one.
  void write_checksum(Bytes& pkt, size_t i, const std::vector<size_t>& start, size_t data_end) const {
    const size_t at = start[i];
    const size_t hlen = start[i + 1] - at;
    const size_t to_end = data_end - at;
    std::visit(
        [&](const auto& s) {
          using T = std::decay_t<decltype(s)>;
          if constexpr (std::is_same_v<T, Ipv4Spec>) {
            put16(pkt, at + 10, s.checksum.value_or(internet_checksum(&pkt[at], hlen)));
          } else if constexpr (std::is_same_v<T, TcpSpec>) {
            put16(pkt, at + 16, s.checksum.value_or(l4_checksum(pkt, i, kIpProtoTcp, at, to_end)));
          } else if constexpr (std::is_same_v<T, UdpSpec>) {
            uint16_t csum = l4_checksum(pkt, i, kIpProtoUdp, at, to_end);
            if (csum == 0) csum = 0xffff;  // 0 means "no checksum"
            put16(pkt, at + 6, s.checksum.value_or(csum));
          } else if constexpr (std::is_same_v<T, IcmpSpec>) {
            put16(pkt, at + 2, s.checksum.value_or(internet_checksum(&pkt[at], to_end)));
          } else if constexpr (std::is_same_v<T, Icmpv6Spec>) {
            put16(pkt, at + 2, s.checksum.value_or(l4_checksum(pkt, i, kIpProtoIcmpv6, at, to_end)));
          }
        },
        layers_[i]);
  }

  // Checksum of the L4 header of layer i (checksum field still zero) and everything after it.
  uint16_t l4_checksum(const Bytes& pkt, size_t i, uint8_t proto, size_t at, size_t len) const {
    const size_t l3 = enclosing_ip(i);
    size_t l3_off = 0;
    for (size_t j = 0; j < l3; ++j) l3_off += header_size(layers_[j]);
    const bool v4 = kind_of(layers_[l3]) == Kind::kIpv4;
    return fold_checksum(ones_sum(&pkt[at], len, pseudo_header_sum(pkt, l3_off, v4, proto, len)));
  }

  std::vector<Layer> layers_;
  size_t pad_to_ = 0;
};

using Kind = PacketBuilder::Kind;

}  // namespace esw::test
