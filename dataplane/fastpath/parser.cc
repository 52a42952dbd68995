#include "dataplane/fastpath/parser.h"

#include <cstdint>
#include <cstring>

#include "dataplane/fastpath/proto.h"

namespace esw::dp {
namespace {

constexpr uint32_t kEthHdrLen = 14;
constexpr uint32_t kVlanTagLen = 4;
constexpr uint32_t kArpLen = 28;
constexpr uint32_t kIpv4MinLen = 20;
constexpr uint32_t kIpv6HdrLen = 40;
constexpr uint32_t kIpv6ExtMinLen = 8;
constexpr uint32_t kMaxIpv6ExtHeaders = 8;
constexpr uint32_t kTcpMinLen = 20;
constexpr uint32_t kUdpLen = 8;
constexpr uint32_t kIcmpMinLen = 4;
constexpr uint32_t kVxlanLen = 8;
constexpr uint32_t kGeneveMinLen = 8;

constexpr uint32_t kNdOptLlLen = 8;  // Ethernet link-layer address option

// Host-order value of a big-endian field; only for fields we branch on or convert to host order.
inline uint16_t rd16(const uint8_t* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t rd24(const uint8_t* p) noexcept {
  return static_cast<uint32_t>(p[0]) << 16 | static_cast<uint32_t>(p[1]) << 8 | p[2];
}

// Network-order 16-bit field holding one byte in the low (second) byte: ICMP type/code.
inline uint16_t be16_low_byte(uint8_t v) noexcept {
  const uint8_t b[2] = {0, v};
  uint16_t r;
  std::memcpy(&r, b, 2);
  return r;
}

// TCI copied as on the wire, with the CFI/DEI bit (kVlanPresentHost, 0x1000) forced on: it is bit 4 of the
// first byte, so no byte swap is needed.
inline uint16_t tci_present(const uint8_t* p) noexcept {
  static_assert(kVlanPresentHost == 0x1000);
  const uint8_t b[2] = {static_cast<uint8_t>(p[0] | 0x10), p[1]};
  uint16_t r;
  std::memcpy(&r, b, 2);
  return r;
}

inline bool is_vlan_tpid(uint16_t t) noexcept { return t == kEthTypeVlan || t == kEthTypeQinQ; }

// Everything a layer needs. Each parse_* gets [pos, end): its header starts at pos and may not extend past
// end (the bound set by the enclosing length fields). They return false iff the packet is malformed, and
// write key fields / offsets only after their whole header is validated.
struct Ctx {
  const uint8_t* data;
  FlowKey& key;
  HeaderOffsets& off;
};

bool parse_vxlan(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  if (end - pos < kVxlanLen) return false;
  const uint8_t* h = c.data + pos;
  if (!(h[0] & kVxlanFlagI)) return true;  // no valid VNI: carried as plain UDP
  const uint32_t inner = pos + kVxlanLen;
  if (end - inner < kEthHdrLen) return false;
  c.key.tun_id = rd24(h + 4);
  c.key.flags |= kFlagTunnel;
  c.off.tun = static_cast<uint16_t>(pos);
  c.off.inner_l2 = static_cast<uint16_t>(inner);
  return true;
}

bool parse_geneve(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  if (end - pos < kGeneveMinLen) return false;
  const uint8_t* h = c.data + pos;
  if (h[0] >> 6 != 0) return false;  // only version 0 exists
  const uint32_t hdr_len = kGeneveMinLen + (h[0] & 0x3fu) * 4;
  if (end - pos < hdr_len) return false;
  const uint32_t inner = pos + hdr_len;
  const bool ethernet = rd16(h + 2) == kEthTypeTeb;
  if (ethernet && end - inner < kEthHdrLen) return false;
  c.key.tun_id = rd24(h + 4);
  c.key.flags |= kFlagTunnel;
  c.off.tun = static_cast<uint16_t>(pos);
  if (ethernet) c.off.inner_l2 = static_cast<uint16_t>(inner);
  return true;
}

bool parse_bth(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  if (end - pos < kBthLen) return false;
  const uint8_t* h = c.data + pos;
  c.key.roce_dqp = rd24(h + 5);
  c.key.flags |= kFlagRoce;
  // The RETH (rkey) of a WRITE/READ request; a packet too short for it is not malformed, it just carries no
  // rkey the switch could check (strict mode then refuses it: it is not a well-formed request).
  if (roce_has_reth(h[0]) && end - pos >= kBthLen + kRethLen) c.key.flags |= kFlagRoceReth;
  return true;
}

bool parse_udp(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  const uint32_t avail = end - pos;
  if (avail < kUdpLen) return false;
  const uint8_t* h = c.data + pos;
  const uint32_t udp_len = rd16(h + 4);
  const bool fragment = c.key.ip_frag != 0;
  if (!fragment && (udp_len < kUdpLen || udp_len > avail)) return false;
  std::memcpy(&c.key.tp_src, h, 2);
  std::memcpy(&c.key.tp_dst, h + 2, 2);
  c.off.l4 = static_cast<uint16_t>(pos);
  if (fragment) return true;  // the rest of the datagram is elsewhere: no tunnel without reassembly
  const uint32_t payload = pos + kUdpLen;
  const uint32_t payload_end = pos + udp_len;
  switch (rd16(h + 2)) {
    case kPortVxlan:
      return parse_vxlan(c, payload, payload_end);
    case kPortGeneve:
      return parse_geneve(c, payload, payload_end);
    case kPortRoce:
      return parse_bth(c, payload, payload_end);
    default:
      return true;
  }
}

// Walks the TCP options in o[0, n). Returns false on a length error.
bool walk_tcp_options(const uint8_t* o, uint32_t n, uint8_t& smc) noexcept {
  uint32_t i = 0;
  while (i < n) {
    const uint8_t kind = o[i];
    if (kind == kTcpOptEol) break;
    if (kind == kTcpOptNop) {
      ++i;
      continue;
    }
    if (n - i < 2) return false;
    const uint32_t opt_len = o[i + 1];
    if (opt_len < 2 || opt_len > n - i) return false;
    if (kind == kTcpOptExp && opt_len >= 6 && std::memcmp(o + i + 2, kSmcExId, 4) == 0) smc = 1;
    i += opt_len;
  }
  return true;
}

bool parse_tcp(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  const uint32_t avail = end - pos;
  if (avail < kTcpMinLen) return false;
  const uint8_t* h = c.data + pos;
  const uint32_t hdr_len = (h[12] >> 4) * 4u;
  if (hdr_len < kTcpMinLen || hdr_len > avail) return false;
  uint8_t smc = 0;
  if (hdr_len > kTcpMinLen && !walk_tcp_options(h + kTcpMinLen, hdr_len - kTcpMinLen, smc)) return false;
  std::memcpy(&c.key.tp_src, h, 2);
  std::memcpy(&c.key.tp_dst, h + 2, 2);
  const uint8_t fl[2] = {static_cast<uint8_t>(h[12] & 0x0f), h[13]};
  std::memcpy(&c.key.tcp_flags, fl, 2);
  c.key.smc_option = smc;
  c.off.l4 = static_cast<uint16_t>(pos);
  // What the SMC stage looks at (one flag, so other traffic pays one branch there): the option on a SYN, the end
  // of a connection, and a payload that starts like a CLC message.
  const uint8_t* payload = h + hdr_len;
  // (1-3 bytes: the start of an eyecatcher, a CLC header split early, which the SMC stage must follow too.)
  const uint32_t plen = avail - hdr_len;
  if ((smc && (h[13] & kTcpFlagSyn)) || (h[13] & (kTcpFlagFin | kTcpFlagRst)) ||
      (plen >= 4 && (std::memcmp(payload, kClcEyecatcherR, 4) == 0 ||
                     std::memcmp(payload, kClcEyecatcherD, 4) == 0)) ||
      (plen != 0 && plen < 4 && std::memcmp(payload, kClcEyecatcherR, plen) == 0)) {
    c.key.flags |= kFlagSmc;
  }
  return true;
}

bool parse_icmp(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  if (end - pos < kIcmpMinLen) return false;
  const uint8_t* h = c.data + pos;
  c.key.tp_src = be16_low_byte(h[0]);
  c.key.tp_dst = be16_low_byte(h[1]);
  c.off.l4 = static_cast<uint16_t>(pos);
  return true;
}

bool parse_icmpv6(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  const uint32_t avail = end - pos;
  if (avail < kIcmpMinLen) return false;
  const uint8_t* h = c.data + pos;
  const uint8_t type = h[0];
  const uint8_t code = h[1];
  uint32_t opts = 0;  // offset of the ND options in the message; 0 = not ND
  if (code == 0 && c.key.ip_frag == 0) {
    switch (type) {
      case kNdRouterSolicit:
        opts = 8;
        break;
      case kNdRouterAdvert:
        opts = 16;
        break;
      case kNdNeighborSolicit:
      case kNdNeighborAdvert:
        opts = 24;
        break;
      default:
        break;
    }
  }
  const uint8_t* sll = nullptr;
  const uint8_t* tll = nullptr;
  if (opts != 0) {
    if (avail < opts) return false;
    for (uint32_t i = opts; i < avail;) {
      if (avail - i < 2) return false;
      const uint32_t opt_len = h[i + 1] * 8u;
      if (opt_len == 0 || opt_len > avail - i) return false;
      if (opt_len == kNdOptLlLen) {
        // The first of each wins, as in Linux (later duplicates are ignored).
        if (h[i] == kNdOptSourceLl && sll == nullptr) sll = h + i + 2;
        if (h[i] == kNdOptTargetLl && tll == nullptr) tll = h + i + 2;
      }
      i += opt_len;
    }
    if (opts == 24) std::memcpy(c.key.nd_target, h + 8, 16);
    if (sll != nullptr) std::memcpy(c.key.arp_sha, sll, 6);
    if (tll != nullptr) std::memcpy(c.key.arp_tha, tll, 6);
  }
  c.key.tp_src = be16_low_byte(type);
  c.key.tp_dst = be16_low_byte(code);
  c.off.l4 = static_cast<uint16_t>(pos);
  return true;
}

bool parse_ipv4(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  const uint32_t avail = end - pos;
  if (avail < kIpv4MinLen) return false;
  const uint8_t* h = c.data + pos;
  const uint32_t hdr_len = (h[0] & 0x0fu) * 4;
  const uint32_t total_len = rd16(h + 2);
  if (h[0] >> 4 != 4 || hdr_len < kIpv4MinLen || total_len < hdr_len || total_len > avail) return false;
  c.key.ip_tos = h[1];
  c.key.ip_ttl = h[8];
  c.key.ip_proto = h[9];
  std::memcpy(&c.key.ipv4_src, h + 12, 4);
  std::memcpy(&c.key.ipv4_dst, h + 16, 4);
  c.off.l3 = static_cast<uint16_t>(pos);
  c.off.l3_len = static_cast<uint16_t>(hdr_len);
  const uint16_t frag = rd16(h + 6);
  if (frag & 0x3fff) {  // MF or offset
    c.key.ip_frag = kFragAny;
    if (frag & 0x1fff) {
      c.key.ip_frag |= kFragLater;
      return true;
    }
  }
  const uint32_t l4 = pos + hdr_len;
  const uint32_t l4_end = pos + total_len;  // excludes Ethernet padding
  switch (h[9]) {
    case kProtoTcp:
      return parse_tcp(c, l4, l4_end);
    case kProtoUdp:
      return parse_udp(c, l4, l4_end);
    case kProtoIcmp:
      return parse_icmp(c, l4, l4_end);
    default:
      return true;
  }
}

bool parse_ipv6(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  if (end - pos < kIpv6HdrLen) return false;
  const uint8_t* h = c.data + pos;
  if (h[0] >> 4 != 6) return false;
  const uint32_t l3_end = pos + kIpv6HdrLen + rd16(h + 4);
  if (l3_end > end) return false;
  c.key.ip_tos = static_cast<uint8_t>(h[0] << 4 | h[1] >> 4);
  c.key.ip_ttl = h[7];
  std::memcpy(c.key.ipv6_src, h + 8, 16);
  std::memcpy(c.key.ipv6_dst, h + 24, 16);
  c.off.l3 = static_cast<uint16_t>(pos);

  uint8_t next = h[6];
  uint32_t p = pos + kIpv6HdrLen;
  for (uint32_t n = 0;; ++n) {
    if (next != kIpv6HopByHop && next != kIpv6Routing && next != kIpv6DestOpts && next != kIpv6Fragment &&
        next != kIpv6Ah)
      break;
    if (n == kMaxIpv6ExtHeaders || l3_end - p < kIpv6ExtMinLen) return false;
    const uint8_t* x = c.data + p;
    uint32_t ext_len;
    bool later = false;
    if (next == kIpv6Fragment) {
      ext_len = 8;
      c.key.ip_frag |= kFragAny;
      later = (rd16(x + 2) & 0xfff8) != 0;
    } else if (next == kIpv6Ah) {
      ext_len = (x[1] + 2u) * 4;
    } else {
      ext_len = (x[1] + 1u) * 8;
    }
    if (ext_len > l3_end - p) return false;
    next = x[0];
    p += ext_len;
    if (later) {
      c.key.ip_frag |= kFragLater;
      c.key.ip_proto = next;
      c.off.l3_len = static_cast<uint16_t>(p - pos);
      return true;
    }
  }
  c.key.ip_proto = next;
  c.off.l3_len = static_cast<uint16_t>(p - pos);
  switch (next) {
    case kProtoTcp:
      return parse_tcp(c, p, l3_end);
    case kProtoUdp:
      return parse_udp(c, p, l3_end);
    case kProtoIcmpv6:
      return parse_icmpv6(c, p, l3_end);
    default:
      return true;
  }
}

bool parse_arp(Ctx& c, uint32_t pos, uint32_t end) noexcept {
  if (end - pos < kArpLen) return false;
  const uint8_t* h = c.data + pos;
  // htype 1, ptype 0x0800, hlen 6, plen 4
  static constexpr uint8_t kEthIpv4[6] = {0x00, 0x01, 0x08, 0x00, 6, 4};
  if (std::memcmp(h, kEthIpv4, sizeof kEthIpv4) != 0) return false;
  c.key.ip_proto = h[7];  // low byte of the opcode
  std::memcpy(c.key.arp_sha, h + 8, 6);
  std::memcpy(&c.key.ipv4_src, h + 14, 4);
  std::memcpy(c.key.arp_tha, h + 18, 6);
  std::memcpy(&c.key.ipv4_dst, h + 24, 4);
  c.off.l3 = static_cast<uint16_t>(pos);
  return true;
}

bool parse_frame(Ctx& c, uint32_t len) noexcept {
  if (len < kEthHdrLen) return false;
  const uint8_t* d = c.data;
  std::memcpy(c.key.eth_dst, d, 6);
  std::memcpy(c.key.eth_src, d + 6, 6);
  uint32_t pos = 12;  // ethertype / first TPID
  uint16_t type = rd16(d + pos);
  if (is_vlan_tpid(type)) {
    if (len < kEthHdrLen + kVlanTagLen) return false;
    c.key.vlan_tci[0] = tci_present(d + 14);
    c.key.flags |= kFlagVlan;
    c.off.vlan = 12;
    pos = 16;
    type = rd16(d + pos);
    if (type == kEthTypeVlan) {
      if (len < kEthHdrLen + 2 * kVlanTagLen) return false;
      c.key.vlan_tci[1] = tci_present(d + 18);
      c.key.flags |= kFlagQinQ;
      pos = 20;
      type = rd16(d + pos);
      if (is_vlan_tpid(type)) return false;  // a third tag
    } else if (type == kEthTypeQinQ) {
      return false;  // an S-tag inside a tag
    }
  }
  std::memcpy(&c.key.eth_type, d + pos, 2);
  pos += 2;
  switch (type) {
    case kEthTypeIpv4:
      return parse_ipv4(c, pos, len);
    case kEthTypeIpv6:
      return parse_ipv6(c, pos, len);
    case kEthTypeArp:
      return parse_arp(c, pos, len);
    default:
      return true;
  }
}

}  // namespace

bool parse_packet(const uint8_t* data, uint32_t len, uint16_t in_port, FlowKey& key,
                  HeaderOffsets& off) noexcept {
  std::memset(&key, 0, sizeof key);
  key.in_port = in_port;
  off = HeaderOffsets{};
  Ctx c{data, key, off};
  if (parse_frame(c, len)) return true;
  key.flags |= kFlagMalformed;
  return false;
}

}  // namespace esw::dp
