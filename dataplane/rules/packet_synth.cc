#include "dataplane/rules/packet_synth.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

#include "dataplane/fastpath/checksum.h"
#include "dataplane/fastpath/parser.h"
#include "dataplane/fastpath/proto.h"

namespace esw::dp {
namespace {

constexpr uint16_t kLaterFragOffset = 185;  // 1480 bytes: the second fragment of a 1500-byte MTU datagram
constexpr size_t kMinFrame = 64;

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;
using Ip6 = std::array<uint8_t, 16>;

constexpr Mac kMacSrc = {0x02, 0, 0, 0, 0, 0x01};
constexpr Mac kMacDst = {0x02, 0, 0, 0, 0, 0x02};
constexpr Ip6 kIp6Src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
constexpr Ip6 kIp6Dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
constexpr uint32_t kIp4Src = 0xc6120001;  // 198.18.0.1
constexpr uint32_t kIp4Dst = 0xc6120002;  // 198.18.0.2
// What a Linux SYN carries: MSS 1460, NOP NOP SACK-permitted, NOP window scale 7.
constexpr uint8_t kSynOptions[12] = {2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7};
constexpr uint8_t kSmcOption[8] = {kTcpOptNop, kTcpOptNop, kTcpOptExp, 6,  // NOP NOP kind len ExID
                                   kSmcExId[0], kSmcExId[1], kSmcExId[2], kSmcExId[3]};

const uint8_t* bytes_of(const FlowKey& k) { return reinterpret_cast<const uint8_t*>(&k); }
uint8_t* bytes_of(FlowKey& k) { return reinterpret_cast<uint8_t*>(&k); }

uint16_t host16(uint16_t net) { return ntohs(net); }

bool masked(const MaskedKey& m, size_t off, size_t n) {
  const uint8_t* p = bytes_of(m.mask) + off;
  return std::any_of(p, p + n, [](uint8_t b) { return b != 0; });
}

// K[off, off+n) = the rule's bits where masked, dflt elsewhere.
void choose(FlowKey& k, const MaskedKey& m, size_t off, size_t n, const void* dflt) {
  const uint8_t* d = static_cast<const uint8_t*>(dflt);
  const uint8_t* v = bytes_of(m.value) + off;
  const uint8_t* mk = bytes_of(m.mask) + off;
  uint8_t* out = bytes_of(k) + off;
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((d[i] & ~mk[i]) | (v[i] & mk[i]));
}

#define ESW_MASKED(field) masked(m, offsetof(FlowKey, field), sizeof(FlowKey::field))
#define ESW_CHOOSE(field, dflt)                                \
  do {                                                         \
    const auto d_ = (dflt);                                    \
    static_assert(sizeof d_ == sizeof(FlowKey::field));        \
    choose(k, m, offsetof(FlowKey, field), sizeof d_, &d_);    \
  } while (0)

// The key of the packet to build: the rule's bits, defaults (consistent with them) everywhere else.
FlowKey choose_key(const MaskedKey& m) {
  FlowKey k{};
  ESW_CHOOSE(in_port, uint16_t{0});
  ESW_CHOOSE(eth_src, kMacSrc);
  ESW_CHOOSE(eth_dst, kMacDst);
  ESW_CHOOSE(vlan_tci, (std::array<uint16_t, 2>{0, 0}));

  const bool proto_masked = ESW_MASKED(ip_proto);
  const bool v6_hint = ESW_MASKED(ipv6_src) || ESW_MASKED(ipv6_dst) || ESW_MASKED(nd_target) ||
                       (proto_masked && m.value.ip_proto == kProtoIcmpv6);
  const bool arp_hint = ESW_MASKED(arp_sha) || ESW_MASKED(arp_tha);
  ESW_CHOOSE(eth_type, htons(v6_hint ? kEthTypeIpv6 : arp_hint ? kEthTypeArp : kEthTypeIpv4));
  const uint16_t eth = host16(k.eth_type);
  const bool v4 = eth == kEthTypeIpv4, v6 = eth == kEthTypeIpv6, arp = eth == kEthTypeArp, ip = v4 || v6;

  const bool tunnel = (m.value.tun_id & m.mask.tun_id) != 0;
  const bool roce = (m.value.roce_dqp & m.mask.roce_dqp) != 0;
  uint8_t proto = 0;
  if (arp) {
    proto = 1;  // request
  } else if (ip) {
    if (tunnel || roce) {
      proto = kProtoUdp;
    } else if (ESW_MASKED(tcp_flags) || ESW_MASKED(smc_option)) {
      proto = kProtoTcp;
    } else if (v6 && (ESW_MASKED(nd_target) || arp_hint)) {
      proto = kProtoIcmpv6;
    } else {
      proto = kProtoTcp;
    }
  }
  ESW_CHOOSE(ip_proto, proto);
  ESW_CHOOSE(ip_tos, uint8_t{0});
  ESW_CHOOSE(ip_frag, uint8_t{0});
  ESW_CHOOSE(ipv4_src, htonl(v4 || arp ? kIp4Src : 0));
  ESW_CHOOSE(ipv4_dst, htonl(v4 || arp ? kIp4Dst : 0));
  ESW_CHOOSE(ipv6_src, v6 ? kIp6Src : Ip6{});
  ESW_CHOOSE(ipv6_dst, v6 ? kIp6Dst : Ip6{});

  const bool l4 = ip && !(k.ip_frag & kFragLater);
  uint16_t sport = 0, dport = 0, flags = 0;
  if (l4 && k.ip_proto == kProtoTcp) {
    sport = 1024;
    dport = 80;
    flags = kTcpFlagSyn;
  } else if (l4 && k.ip_proto == kProtoUdp) {
    sport = 1024;
    dport = tunnel ? kPortVxlan : roce ? kPortRoce : 80;
  } else if (l4 && v4 && k.ip_proto == kProtoIcmp) {
    sport = kIcmpEchoRequest;
  } else if (l4 && v6 && k.ip_proto == kProtoIcmpv6) {
    sport = ESW_MASKED(arp_tha)                                 ? kNdNeighborAdvert
            : (ESW_MASKED(nd_target) || ESW_MASKED(arp_sha)) ? kNdNeighborSolicit
                                                             : kIcmpv6EchoRequest;
  }
  ESW_CHOOSE(tp_src, htons(sport));
  ESW_CHOOSE(tp_dst, htons(dport));
  ESW_CHOOSE(tcp_flags, htons(flags));
  ESW_CHOOSE(smc_option, uint8_t{0});

  const uint16_t type = host16(k.tp_src), code = host16(k.tp_dst);
  const bool icmp6 = l4 && v6 && k.ip_proto == kProtoIcmpv6;
  const bool nd_msg = icmp6 && code == 0 && type >= kNdRouterSolicit && type <= kNdNeighborAdvert;
  const bool nd_target = nd_msg && (type == kNdNeighborSolicit || type == kNdNeighborAdvert) && k.ip_frag == 0;
  ESW_CHOOSE(ip_ttl, uint8_t{nd_msg ? uint8_t{255} : uint8_t{64}});
  ESW_CHOOSE(nd_target, nd_target ? kIp6Dst : Ip6{});
  Mac sha{};
  if (arp) std::copy(k.eth_src, k.eth_src + 6, sha.begin());
  ESW_CHOOSE(arp_sha, sha);
  ESW_CHOOSE(arp_tha, Mac{});
  ESW_CHOOSE(tun_id, uint32_t{0});
  const bool bth = l4 && k.ip_proto == kProtoUdp && host16(k.tp_dst) == kPortRoce;
  ESW_CHOOSE(roce_dqp, uint32_t{bth ? 1u : 0u});
  ESW_CHOOSE(regs, (std::array<uint32_t, 4>{}));
  return k;
}

#undef ESW_CHOOSE
#undef ESW_MASKED

// ---- byte writing -----------------------------------------------------------------------------------------------

void u8(Bytes& b, uint8_t v) { b.push_back(v); }
void u16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void u24(Bytes& b, uint32_t v) {
  u8(b, static_cast<uint8_t>(v >> 16));
  u16(b, static_cast<uint16_t>(v));
}
void u32(Bytes& b, uint32_t v) {
  u16(b, static_cast<uint16_t>(v >> 16));
  u16(b, static_cast<uint16_t>(v));
}
void raw(Bytes& b, const void* p, size_t n) {
  const uint8_t* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
}
void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
// A recognisable payload pattern.
void payload(Bytes& b, size_t n) {
  for (size_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(i));
}

uint32_t ones_sum(const uint8_t* p, size_t n, uint32_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) s += static_cast<uint32_t>(p[n - 1] << 8);
  return s;
}
uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}


// ---- layers -----------------------------------------------------------------------------------------------------

Bytes build_frame(const FlowKey& k);

// An L4 segment, checksum field zero; finished by the IP layer (pseudo-header, RoCE ICRC).
struct Segment {
  Bytes b;
  int csum_at = -1;     // offset of the 16-bit checksum, -1 = none
  bool pseudo = true;   // checksum covers the IP pseudo-header (not ICMPv4)
  bool udp = false;     // 0 is sent as 0xffff
  bool roce = false;    // last 4 bytes are the ICRC
};

Segment build_tcp(const FlowKey& k, size_t min_len) {
  Segment s;
  const uint16_t flags = host16(k.tcp_flags) & 0x0fff;
  const bool syn = (flags & kTcpFlagSyn) != 0;
  const size_t hdr = 20 + (syn ? sizeof kSynOptions : 0) + (k.smc_option ? sizeof kSmcOption : 0);
  raw(s.b, &k.tp_src, 2);
  raw(s.b, &k.tp_dst, 2);
  u32(s.b, 1);                       // sequence number
  u32(s.b, flags & kTcpFlagAck ? 1 : 0);  // acknowledgment number
  u8(s.b, static_cast<uint8_t>((hdr / 4) << 4 | (flags >> 8)));
  u8(s.b, static_cast<uint8_t>(flags));
  u16(s.b, 0xffff);  // window
  u16(s.b, 0);       // checksum
  u16(s.b, 0);       // urgent pointer
  if (syn) raw(s.b, kSynOptions, sizeof kSynOptions);
  if (k.smc_option) raw(s.b, kSmcOption, sizeof kSmcOption);
  payload(s.b, min_len > hdr ? min_len - hdr : 0);
  s.csum_at = 16;
  return s;
}

Segment build_udp(const FlowKey& k, size_t min_len) {
  Segment s;
  s.udp = true;
  s.csum_at = 6;
  raw(s.b, &k.tp_src, 2);
  raw(s.b, &k.tp_dst, 2);
  u32(s.b, 0);  // length, checksum
  const uint16_t dport = host16(k.tp_dst);
  if (dport == kPortVxlan || dport == kPortGeneve) {
    if (dport == kPortVxlan) {
      u32(s.b, 0x08000000);  // I flag
    } else {
      u32(s.b, kEthTypeTeb);  // version 0, no options, protocol: Ethernet
    }
    u24(s.b, k.tun_id);
    u8(s.b, 0);
    MaskedKey inner;
    const Bytes frame = build_frame(choose_key(inner));
    raw(s.b, frame.data(), frame.size());
    if (s.b.size() < min_len) payload(s.b, min_len - s.b.size());
  } else if (dport == kPortRoce) {
    u8(s.b, 0x04);  // RC SEND only
    u8(s.b, 0x40);  // migration state 1, no pad, transport version 0
    u16(s.b, 0xffff);  // default partition key
    u8(s.b, 0);
    u24(s.b, k.roce_dqp);
    u8(s.b, 0);  // no ack request
    u24(s.b, 1);  // PSN
    const size_t used = s.b.size() + 4;
    size_t n = min_len > used ? min_len - used : 0;
    n = (n + 3) & ~size_t{3};  // no BTH pad count needed
    payload(s.b, std::max<size_t>(n, 16));
    u32(s.b, 0);  // ICRC, filled by the IP layer
    s.roce = true;
  } else if (s.b.size() < min_len) {
    payload(s.b, min_len - s.b.size());
  }
  put16(s.b, 4, static_cast<uint16_t>(s.b.size()));
  return s;
}

Segment build_icmp(const FlowKey& k, size_t min_len) {
  Segment s;
  s.pseudo = false;
  s.csum_at = 2;
  const uint8_t type = static_cast<uint8_t>(host16(k.tp_src));
  u8(s.b, type);
  u8(s.b, static_cast<uint8_t>(host16(k.tp_dst)));
  u16(s.b, 0);
  const bool echo = type == kIcmpEchoRequest || type == kIcmpEchoReply;
  u16(s.b, echo ? 0x4553 : 0);  // identifier "ES"
  u16(s.b, echo ? 1 : 0);       // sequence
  payload(s.b, min_len > 8 ? min_len - 8 : 0);
  return s;
}

Segment build_icmpv6(const FlowKey& k, size_t min_len) {
  Segment s;
  s.csum_at = 2;
  const uint8_t type = static_cast<uint8_t>(host16(k.tp_src));
  const uint8_t code = static_cast<uint8_t>(host16(k.tp_dst));
  u8(s.b, type);
  u8(s.b, code);
  u16(s.b, 0);
  const bool nd = code == 0 && k.ip_frag == 0 && type >= kNdRouterSolicit && type <= kNdNeighborAdvert;
  if (!nd) {
    const bool echo = type == kIcmpv6EchoRequest || type == kIcmpv6EchoReply;
    u16(s.b, echo ? 0x4553 : 0);
    u16(s.b, echo ? 1 : 0);
    payload(s.b, min_len > 8 ? min_len - 8 : 0);
    return s;
  }
  switch (type) {
    case kNdRouterSolicit:
      u32(s.b, 0);
      break;
    case kNdRouterAdvert:
      u8(s.b, 64);       // current hop limit
      u8(s.b, 0);        // flags
      u16(s.b, 1800);    // router lifetime
      u32(s.b, 0);       // reachable time
      u32(s.b, 0);       // retrans timer
      break;
    case kNdNeighborSolicit:
      u32(s.b, 0);
      raw(s.b, k.nd_target, 16);
      break;
    default:                  // NA
      u32(s.b, 0x60000000);  // solicited, override
      raw(s.b, k.nd_target, 16);
      break;
  }
  static constexpr uint8_t kZero[6] = {};
  if (std::memcmp(k.arp_sha, kZero, 6) != 0) {
    u8(s.b, kNdOptSourceLl);
    u8(s.b, 1);
    raw(s.b, k.arp_sha, 6);
  }
  if (std::memcmp(k.arp_tha, kZero, 6) != 0) {
    u8(s.b, kNdOptTargetLl);
    u8(s.b, 1);
    raw(s.b, k.arp_tha, 6);
  }
  while (s.b.size() < min_len) {  // options only: pad with nonce options (RFC 3971), not trailing bytes
    u8(s.b, kNdOptNonce);
    u8(s.b, 1);
    payload(s.b, 6);
  }
  return s;
}

Segment build_l4(const FlowKey& k, bool v6, size_t min_len) {
  if (k.ip_frag & kFragLater) {
    Segment s;
    payload(s.b, std::max<size_t>(min_len, 8));
    return s;
  }
  switch (k.ip_proto) {
    case kProtoTcp:
      return build_tcp(k, min_len);
    case kProtoUdp:
      return build_udp(k, min_len);
    case kProtoIcmp:
      if (!v6) return build_icmp(k, min_len);
      break;
    case kProtoIcmpv6:
      if (v6) return build_icmpv6(k, min_len);
      break;
    default:
      break;
  }
  Segment s;
  payload(s.b, min_len);
  return s;
}

// RoCEv2 ICRC: CRC-32 over 8 bytes of 1s (the absent LRH), the IP header with its variant fields (IPv4 TOS, TTL,
// checksum; IPv6 traffic class, flow label, hop limit) set to 1s, the UDP header with its checksum set to 1s,
// the BTH with its reserved byte before the QPN set to 1s, and the payload; stored little-endian.
void fill_icrc(Bytes& pkt, size_t l3, size_t l4, bool v6) {
  const size_t n = pkt.size() - 4 - l3;
  Bytes p(8 + n, 0xff);
  std::copy_n(pkt.begin() + static_cast<ptrdiff_t>(l3), n, p.begin() + 8);
  if (v6) {
    p[8] = 0x6f;
    p[9] = 0xff;
    p[10] = 0xff;
    p[11] = 0xff;
    p[8 + 7] = 0xff;
  } else {
    p[8 + 1] = 0xff;
    p[8 + 8] = 0xff;
    p[8 + 10] = 0xff;
    p[8 + 11] = 0xff;
  }
  const size_t udp = 8 + (l4 - l3);
  p[udp + 6] = 0xff;
  p[udp + 7] = 0xff;
  p[udp + 8 + 4] = 0xff;
  const uint32_t icrc = crc32_ieee(p.data(), p.size());
  const size_t at = pkt.size() - 4;
  for (int i = 0; i < 4; ++i) pkt[at + static_cast<size_t>(i)] = static_cast<uint8_t>(icrc >> (8 * i));
}

void finish_segment(Bytes& pkt, const Segment& s, size_t l3, size_t l4, bool v6, uint8_t proto) {
  if (s.roce) fill_icrc(pkt, l3, l4, v6);
  if (s.csum_at < 0) return;
  const size_t len = pkt.size() - l4;
  uint32_t sum = 0;
  if (s.pseudo) {
    if (v6) {
      sum = ones_sum(&pkt[l3 + 8], 32);
      sum += static_cast<uint32_t>(len >> 16) + static_cast<uint32_t>(len & 0xffff);
    } else {
      sum = ones_sum(&pkt[l3 + 12], 8);
      sum += static_cast<uint32_t>(len);
    }
    sum += proto;
  }
  uint16_t c = fold(ones_sum(&pkt[l4], len, sum));
  if (s.udp && c == 0) c = 0xffff;
  put16(pkt, l4 + static_cast<size_t>(s.csum_at), c);
}

void build_ipv4(const FlowKey& k, Bytes& pkt) {
  const size_t l3 = pkt.size();
  const size_t min_len = kMinFrame > l3 + 20 ? kMinFrame - l3 - 20 : 0;
  const Segment s = build_l4(k, false, min_len);
  uint16_t frag = 0x4000;  // DF
  if (k.ip_frag & kFragLater) {
    frag = kLaterFragOffset;
  } else if (k.ip_frag & kFragAny) {
    frag = 0x2000;  // MF, offset 0
  }
  u8(pkt, 0x45);
  u8(pkt, k.ip_tos);
  u16(pkt, static_cast<uint16_t>(20 + s.b.size()));
  u16(pkt, 0x1234);  // identification
  u16(pkt, frag);
  u8(pkt, k.ip_ttl);
  u8(pkt, k.ip_proto);
  u16(pkt, 0);
  raw(pkt, &k.ipv4_src, 4);
  raw(pkt, &k.ipv4_dst, 4);
  put16(pkt, l3 + 10, fold(ones_sum(&pkt[l3], 20)));
  const size_t l4 = pkt.size();
  raw(pkt, s.b.data(), s.b.size());
  finish_segment(pkt, s, l3, l4, false, k.ip_proto);
}

void build_ipv6(const FlowKey& k, Bytes& pkt) {
  const size_t l3 = pkt.size();
  const bool frag = k.ip_frag != 0;
  const size_t hdrs = 40 + (frag ? 8 : 0);
  const size_t min_len = kMinFrame > l3 + hdrs ? kMinFrame - l3 - hdrs : 0;
  const Segment s = build_l4(k, true, min_len);
  u32(pkt, 6u << 28 | static_cast<uint32_t>(k.ip_tos) << 20);
  u16(pkt, static_cast<uint16_t>(hdrs - 40 + s.b.size()));
  u8(pkt, frag ? kIpv6Fragment : k.ip_proto);
  u8(pkt, k.ip_ttl);
  raw(pkt, k.ipv6_src, 16);
  raw(pkt, k.ipv6_dst, 16);
  if (frag) {
    const bool later = (k.ip_frag & kFragLater) != 0;
    u8(pkt, k.ip_proto);
    u8(pkt, 0);
    u16(pkt, later ? static_cast<uint16_t>(kLaterFragOffset << 3) : 1);  // offset, M flag
    u32(pkt, 0x00001234);
  }
  const size_t l4 = pkt.size();
  raw(pkt, s.b.data(), s.b.size());
  finish_segment(pkt, s, l3, l4, true, k.ip_proto);
}

void build_arp(const FlowKey& k, Bytes& pkt) {
  u16(pkt, 1);       // Ethernet
  u16(pkt, kEthTypeIpv4);
  u8(pkt, 6);
  u8(pkt, 4);
  u16(pkt, k.ip_proto);  // opcode (the key holds its low byte)
  raw(pkt, k.arp_sha, 6);
  raw(pkt, &k.ipv4_src, 4);
  raw(pkt, k.arp_tha, 6);
  raw(pkt, &k.ipv4_dst, 4);
}

Bytes build_frame(const FlowKey& k) {
  Bytes pkt;
  pkt.reserve(128);
  raw(pkt, k.eth_dst, 6);
  raw(pkt, k.eth_src, 6);
  const uint16_t outer = host16(k.vlan_tci[0]);
  const uint16_t inner = host16(k.vlan_tci[1]);
  const bool two = inner != 0;
  if (outer != 0 || two) {
    u16(pkt, two ? kEthTypeQinQ : kEthTypeVlan);
    u16(pkt, static_cast<uint16_t>(outer & ~kVlanPresentHost));
  }
  if (two) {
    u16(pkt, kEthTypeVlan);
    u16(pkt, static_cast<uint16_t>(inner & ~kVlanPresentHost));
  }
  raw(pkt, &k.eth_type, 2);
  switch (host16(k.eth_type)) {
    case kEthTypeIpv4:
      build_ipv4(k, pkt);
      break;
    case kEthTypeIpv6:
      build_ipv6(k, pkt);
      break;
    case kEthTypeArp:
      build_arp(k, pkt);
      break;
    default:
      break;
  }
  if (pkt.size() < kMinFrame) pkt.resize(kMinFrame, 0);  // Ethernet padding (ARP, other Ethertypes)
  return pkt;
}

}  // namespace

bool synthesize_packet(const MaskedKey& m, std::vector<uint8_t>& out, std::string& error) {
  const FlowKey k = choose_key(m);
  out = build_frame(k);

  FlowKey got;
  HeaderOffsets off;
  const bool ok = parse_packet(out.data(), static_cast<uint32_t>(out.size()), k.in_port, got, off);
  // Compare on the rule's bits, minus metadata that is not in the bytes.
  FlowKey cmp = m.mask;
  cmp.in_port = 0;
  std::memset(cmp.regs, 0, sizeof cmp.regs);
  FlowKey diff{};
  bool differs = false;
  for (size_t i = 0; i < kFlowKeyWords; ++i) {
    key_words(diff)[i] = (key_words(got)[i] ^ key_words(m.value)[i]) & key_words(cmp)[i];
    differs |= key_words(diff)[i] != 0;
  }
  if (!differs && ok) return true;
  out.clear();
  if (!differs) {
    error = "the packet built for this match does not parse (internal error)";
    return false;
  }
  for (const FieldDef& f : all_fields()) {
    const uint8_t* d = bytes_of(diff) + f.offset;
    const bool hit = std::any_of(d, d + f.width, [](uint8_t b) { return b != 0; });
    if (!hit) continue;
    // Fields share bytes (tcp_src/icmp_type, ip_tos, vlan_tci): name one whose bits differ.
    if (f.bits != 0) {
      uint32_t dv = 0;
      if (f.big_endian) {
        for (unsigned i = 0; i < f.width; ++i) dv = dv << 8 | d[i];
      } else {
        std::memcpy(&dv, d, f.width);
      }
      if ((dv & f.bits) == 0) continue;
    }
    error = "no packet can match this: " + std::string(f.name) + "=" + format_field_value(f, m.value, m.mask, {}) +
            " is impossible with the rest of the match (a packet built for it has " + std::string(f.name) + "=" +
            format_field_value(f, got, m.mask, {}) + ")";
    return false;
  }
  error = "no packet can match this: parser flags differ";
  return false;
}

}  // namespace esw::dp
