#pragma once
// The compact, fixed-layout key every packet is parsed into once, and that every rule matches against
// (value + mask of the same layout). Shared by the parser, the classifier, the exact-match cache, trace
// and the control plane's rule compiler.
//
// Layout rules:
//  - 128 bytes, 16 x uint64_t words, so masked hashing and comparison work word by word and a subtable
//    only touches the words its mask uses.
//  - All multi-byte protocol fields are stored in NETWORK byte order, exactly as on the wire, so the parser
//    copies bytes and never swaps; the control plane converts once when it compiles a rule.
//    Exceptions (host order): in_port, regs[], flags, smc_option, ip_frag, tun_id, roce_dqp.
//  - Fields that do not apply to a packet are zero, so a rule that wildcards them matches and a rule that
//    matches them on zero is well defined.
//  - Like Open vSwitch, ICMP/ICMPv6 type and code live in tp_src/tp_dst (as 16-bit values, big-endian, with
//    the type/code in the low byte), ARP opcode in ip_proto (low 8 bits of the opcode), ARP SPA/TPA in
//    ipv4_src/ipv4_dst, ARP SHA/THA and ND SLL/TLL in arp_sha/arp_tha.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace esw::dp {

// vlan_tci[] values: the 802.1Q TCI in network order with this bit forced on when a tag is present
// (OVS convention: a present tag with VID 0 still differs from "no tag").
inline constexpr uint16_t kVlanPresentHost = 0x1000;  // CFI/DEI bit position, host order

// ip_frag bits
inline constexpr uint8_t kFragAny = 0x1;    // packet is a fragment (first or later)
inline constexpr uint8_t kFragLater = 0x2;  // fragment offset != 0 (no L4 header in this packet)

// flags bits (parser results that rules may match on; also used by the pipeline)
inline constexpr uint16_t kFlagVlan = 0x0001;       // at least one VLAN tag
inline constexpr uint16_t kFlagQinQ = 0x0002;       // two tags (802.1ad outer)
inline constexpr uint16_t kFlagTunnel = 0x0004;     // VXLAN/Geneve header recognised (tun_id valid)
inline constexpr uint16_t kFlagRoce = 0x0008;       // RoCEv2 BTH recognised (roce_dqp valid)
inline constexpr uint16_t kFlagRoceReth = 0x0010;   // ... and an RDMA WRITE FIRST/ONLY or READ request: a RETH follows
inline constexpr uint16_t kFlagSmc = 0x0020;        // TCP segment the SMC stage looks at: SYN with the SMC option,
                                                    // FIN or RST, or payload starting with a CLC eyecatcher
inline constexpr uint16_t kFlagMalformed = 0x8000;  // truncated or inconsistent headers

struct alignas(64) FlowKey {
  // word 0
  uint16_t in_port;      // host order: switch port index
  uint16_t eth_type;     // network order: innermost ethertype after VLAN tags
  uint16_t vlan_tci[2];  // network order: [0] outer, [1] inner; 0 = no tag
  // words 1-2
  uint8_t eth_dst[6];
  uint8_t eth_src[6];
  uint8_t ip_proto;  // IPv4 protocol / IPv6 final next header / ARP opcode (low byte)
  uint8_t ip_tos;    // DSCP << 2 | ECN (IPv4 TOS, IPv6 traffic class)
  uint8_t ip_ttl;    // IPv4 TTL / IPv6 hop limit
  uint8_t ip_frag;   // kFrag* bits
  // word 3
  uint32_t ipv4_src;  // network order (also ARP SPA)
  uint32_t ipv4_dst;  // network order (also ARP TPA)
  // word 4
  uint16_t tp_src;     // network order: L4 source port / ICMP type
  uint16_t tp_dst;     // network order: L4 destination port / ICMP code
  uint16_t tcp_flags;  // network order: the 12 flag bits of the TCP header
  uint8_t smc_option;  // 1 if the TCP header carries the SMC experimental option (kind 254, ExID 0xE2D4C3D9)
  uint8_t pad0;
  // words 5-10
  uint8_t ipv6_src[16];
  uint8_t ipv6_dst[16];
  uint8_t nd_target[16];
  // words 11-12
  uint8_t arp_sha[6];  // also ND source link-layer address option
  uint8_t arp_tha[6];  // also ND target link-layer address option
  uint32_t tun_id;     // host order: VXLAN VNI / Geneve VNI
  // words 13-15
  uint32_t roce_dqp;  // host order: RoCEv2 BTH destination QP (24 bits)
  uint16_t flags;     // host order: kFlag*
  uint16_t pad1;
  uint32_t regs[4];  // host order: metadata registers (set_register action), 0 at ingress
};

static_assert(sizeof(FlowKey) == 128, "FlowKey must stay 16 words");
static_assert(offsetof(FlowKey, eth_dst) == 8);
static_assert(offsetof(FlowKey, ipv4_src) == 24);
static_assert(offsetof(FlowKey, tp_src) == 32);
static_assert(offsetof(FlowKey, ipv6_src) == 40);
static_assert(offsetof(FlowKey, arp_sha) == 88);
static_assert(offsetof(FlowKey, roce_dqp) == 104);
static_assert(offsetof(FlowKey, regs) == 112);

inline constexpr size_t kFlowKeyWords = sizeof(FlowKey) / sizeof(uint64_t);

// Word access to a key whose fields are also written one by one: the may_alias type keeps that legal under
// strict aliasing (the compiler may not reorder field stores and word loads past each other).
using KeyWord = uint64_t __attribute__((__may_alias__));
inline const KeyWord* key_words(const FlowKey& k) { return reinterpret_cast<const KeyWord*>(&k); }
inline KeyWord* key_words(FlowKey& k) { return reinterpret_cast<KeyWord*>(&k); }

// Where the headers start inside the packet; filled by the parser, used by actions (set_field, push/pop
// VLAN, TTL decrement) so they never re-parse. 0xffff = absent.
struct HeaderOffsets {
  static constexpr uint16_t kNone = 0xffff;
  uint16_t l2 = 0;         // Ethernet header
  uint16_t vlan = kNone;   // first VLAN tag (the 4 bytes after the MAC addresses)
  uint16_t l3 = kNone;     // IPv4/IPv6/ARP header
  uint16_t l4 = kNone;     // TCP/UDP/ICMP header (first fragment only)
  uint16_t tun = kNone;    // VXLAN/Geneve header
  uint16_t inner_l2 = kNone;  // inner Ethernet after VXLAN/Geneve
  uint16_t l3_len = 0;     // bytes of IPv4 header incl. options / IPv6 header incl. extension headers
  uint16_t pad = 0;
};

}  // namespace esw::dp
