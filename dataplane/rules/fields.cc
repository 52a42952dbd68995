#include "dataplane/rules/fields.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <utility>

#include "config/net_text.h"
#include "config/suggest.h"
#include "dataplane/fastpath/proto.h"

namespace esw::dp {
namespace {

constexpr uint32_t kTciPresent = kVlanPresentHost;
constexpr uint32_t kTcpFlagNames = 0x1ff;  // the 9 named flags; 0xe00 are reserved bits

constexpr size_t kOffTci0 = offsetof(FlowKey, vlan_tci);
constexpr size_t kOffTci1 = kOffTci0 + 2;
constexpr size_t kOffRegs = offsetof(FlowKey, regs);

using Aliases = std::array<std::string_view, 3>;

constexpr FieldDef def(FieldId id, std::string_view name, Aliases aliases, size_t offset, uint8_t width, bool be,
                       uint32_t bits, uint32_t present, ValueKind kind, bool maskable, Prereq prereq,
                       std::string_view help, bool writable = true) {
  return FieldDef{id, name, aliases, static_cast<uint8_t>(offset), width, be, bits, present, kind, maskable,
                  writable, prereq, help};
}
constexpr bool kReadOnly = false;

using K = ValueKind;
using P = Prereq;
using F = FieldId;

// Canonical print order. Names and aliases after ovs-fields(7) where OVS has the field.
constexpr FieldDef kFields[] = {
    def(F::kInPort, "in_port", {}, offsetof(FlowKey, in_port), 2, false, 0xffff, 0, K::kPort, false, P::kNone,
        "ingress switch port (name or number)"),
    def(F::kEthSrc, "eth_src", {"dl_src"}, offsetof(FlowKey, eth_src), 6, false, 0, 0, K::kMac, true, P::kNone,
        "Ethernet source address"),
    def(F::kEthDst, "eth_dst", {"dl_dst"}, offsetof(FlowKey, eth_dst), 6, false, 0, 0, K::kMac, true, P::kNone,
        "Ethernet destination address"),
    def(F::kEthType, "eth_type", {"dl_type"}, offsetof(FlowKey, eth_type), 2, true, 0xffff, 0, K::kHex, false,
        P::kNone, "innermost Ethertype (after VLAN tags)", kReadOnly),
    def(F::kVlanTci, "vlan_tci", {}, kOffTci0, 2, true, 0xffff, 0, K::kHex, true, P::kNone,
        "outer 802.1Q TCI, 0x1000 = tag present (0 = no tag)", kReadOnly),
    def(F::kVlanVid, "vlan_vid", {"dl_vlan"}, kOffTci0, 2, true, 0x0fff, kTciPresent, K::kDecimal, true,
        P::kNone, "outer VLAN ID (implies a tag)"),
    def(F::kVlanPcp, "vlan_pcp", {"dl_vlan_pcp"}, kOffTci0, 2, true, 0xe000, kTciPresent, K::kDecimal, true,
        P::kNone, "outer VLAN priority (implies a tag)"),
    def(F::kInnerVlanTci, "inner_vlan_tci", {}, kOffTci1, 2, true, 0xffff, 0, K::kHex, true, P::kOuterVlan,
        "inner 802.1Q TCI, 0x1000 = tag present", kReadOnly),
    def(F::kInnerVlanVid, "inner_vlan_vid", {"cvlan_vid"}, kOffTci1, 2, true, 0x0fff, kTciPresent, K::kDecimal,
        true, P::kOuterVlan, "inner VLAN ID (implies two tags)"),
    def(F::kInnerVlanPcp, "inner_vlan_pcp", {"cvlan_pcp"}, kOffTci1, 2, true, 0xe000, kTciPresent, K::kDecimal,
        true, P::kOuterVlan, "inner VLAN priority (implies two tags)"),
    def(F::kIpv4Src, "ipv4_src", {"ip_src", "nw_src"}, offsetof(FlowKey, ipv4_src), 4, true, 0xffffffff, 0,
        K::kIpv4, true, P::kIpv4, "IPv4 source address"),
    def(F::kIpv4Dst, "ipv4_dst", {"ip_dst", "nw_dst"}, offsetof(FlowKey, ipv4_dst), 4, true, 0xffffffff, 0,
        K::kIpv4, true, P::kIpv4, "IPv4 destination address"),
    def(F::kIpv6Src, "ipv6_src", {}, offsetof(FlowKey, ipv6_src), 16, false, 0, 0, K::kIpv6, true, P::kIpv6,
        "IPv6 source address"),
    def(F::kIpv6Dst, "ipv6_dst", {}, offsetof(FlowKey, ipv6_dst), 16, false, 0, 0, K::kIpv6, true, P::kIpv6,
        "IPv6 destination address"),
    def(F::kIpProto, "ip_proto", {"nw_proto"}, offsetof(FlowKey, ip_proto), 1, false, 0xff, 0, K::kDecimal, false,
        P::kIp, "IPv4 protocol / IPv6 final next header", kReadOnly),
    def(F::kDscp, "dscp", {"ip_dscp"}, offsetof(FlowKey, ip_tos), 1, false, 0xfc, 0, K::kDecimal, true, P::kIp,
        "DSCP (upper 6 bits of TOS / traffic class), 0..63"),
    def(F::kEcn, "ecn", {"ip_ecn", "nw_ecn"}, offsetof(FlowKey, ip_tos), 1, false, 0x03, 0, K::kDecimal, true,
        P::kIp, "ECN (lower 2 bits of TOS / traffic class)"),
    def(F::kTtl, "ttl", {"nw_ttl", "ip_ttl", "hop_limit"}, offsetof(FlowKey, ip_ttl), 1, false, 0xff, 0,
        K::kDecimal, true, P::kIp, "IPv4 TTL / IPv6 hop limit"),
    def(F::kIpFrag, "ip_frag", {"nw_frag"}, offsetof(FlowKey, ip_frag), 1, false, 0x03, 0, K::kFrag, true, P::kIp,
        "fragments: no, yes, first, later, not_later", kReadOnly),
    def(F::kTcpSrc, "tcp_src", {}, offsetof(FlowKey, tp_src), 2, true, 0xffff, 0, K::kDecimal, true, P::kTcp,
        "TCP source port"),
    def(F::kTcpDst, "tcp_dst", {}, offsetof(FlowKey, tp_dst), 2, true, 0xffff, 0, K::kDecimal, true, P::kTcp,
        "TCP destination port"),
    def(F::kUdpSrc, "udp_src", {}, offsetof(FlowKey, tp_src), 2, true, 0xffff, 0, K::kDecimal, true, P::kUdp,
        "UDP source port"),
    def(F::kUdpDst, "udp_dst", {}, offsetof(FlowKey, tp_dst), 2, true, 0xffff, 0, K::kDecimal, true, P::kUdp,
        "UDP destination port"),
    def(F::kTpSrc, "tp_src", {}, offsetof(FlowKey, tp_src), 2, true, 0xffff, 0, K::kDecimal, true, P::kTcpOrUdp,
        "TCP or UDP source port (the rule gives the protocol)"),
    def(F::kTpDst, "tp_dst", {}, offsetof(FlowKey, tp_dst), 2, true, 0xffff, 0, K::kDecimal, true, P::kTcpOrUdp,
        "TCP or UDP destination port (the rule gives the protocol)"),
    def(F::kTcpFlags, "tcp_flags", {}, offsetof(FlowKey, tcp_flags), 2, true, 0x0fff, 0, K::kTcpFlags, true,
        P::kTcp, "TCP flags: +syn-ack, syn|ack or 0x012/0x017", kReadOnly),
    def(F::kSmcOption, "smc_option", {}, offsetof(FlowKey, smc_option), 1, false, 0x01, 0, K::kDecimal, false,
        P::kTcp, "1 if the TCP header carries the SMC option (kind 254, ExID 0xE2D4C3D9)", kReadOnly),
    def(F::kIcmpType, "icmp_type", {}, offsetof(FlowKey, tp_src), 2, true, 0x00ff, 0, K::kDecimal, false, P::kIcmp,
        "ICMP type"),
    def(F::kIcmpCode, "icmp_code", {}, offsetof(FlowKey, tp_dst), 2, true, 0x00ff, 0, K::kDecimal, false, P::kIcmp,
        "ICMP code"),
    def(F::kIcmpv6Type, "icmpv6_type", {}, offsetof(FlowKey, tp_src), 2, true, 0x00ff, 0, K::kDecimal, false,
        P::kIcmpv6, "ICMPv6 type"),
    def(F::kIcmpv6Code, "icmpv6_code", {}, offsetof(FlowKey, tp_dst), 2, true, 0x00ff, 0, K::kDecimal, false,
        P::kIcmpv6, "ICMPv6 code"),
    def(F::kArpOp, "arp_op", {}, offsetof(FlowKey, ip_proto), 1, false, 0xff, 0, K::kDecimal, false, P::kArp,
        "ARP opcode (low 8 bits)"),
    def(F::kArpSpa, "arp_spa", {}, offsetof(FlowKey, ipv4_src), 4, true, 0xffffffff, 0, K::kIpv4, true, P::kArp,
        "ARP sender protocol address"),
    def(F::kArpTpa, "arp_tpa", {}, offsetof(FlowKey, ipv4_dst), 4, true, 0xffffffff, 0, K::kIpv4, true, P::kArp,
        "ARP target protocol address"),
    def(F::kArpSha, "arp_sha", {}, offsetof(FlowKey, arp_sha), 6, false, 0, 0, K::kMac, true, P::kArp,
        "ARP sender hardware address"),
    def(F::kArpTha, "arp_tha", {}, offsetof(FlowKey, arp_tha), 6, false, 0, 0, K::kMac, true, P::kArp,
        "ARP target hardware address"),
    def(F::kNdTarget, "nd_target", {}, offsetof(FlowKey, nd_target), 16, false, 0, 0, K::kIpv6, true, P::kNd,
        "ND target address (icmpv6_type 135 or 136)"),
    def(F::kNdSll, "nd_sll", {}, offsetof(FlowKey, arp_sha), 6, false, 0, 0, K::kMac, true, P::kNdNs,
        "ND source link-layer address option (neighbour solicitation)"),
    def(F::kNdTll, "nd_tll", {}, offsetof(FlowKey, arp_tha), 6, false, 0, 0, K::kMac, true, P::kNdNa,
        "ND target link-layer address option (neighbour advertisement)"),
    def(F::kTunId, "tun_id", {"tunnel_id", "vni"}, offsetof(FlowKey, tun_id), 4, false, 0x00ffffff, 0,
        K::kDecimal, true, P::kNone, "VXLAN/Geneve VNI of the outer packet (0 when not a tunnel packet)"),
    def(F::kRoceDqp, "roce_dqp", {}, offsetof(FlowKey, roce_dqp), 4, false, 0x00ffffff, 0, K::kDecimal, true,
        P::kRoce, "RoCEv2 BTH destination QP", kReadOnly),
    def(F::kReg0, "reg0", {}, kOffRegs + 0, 4, false, 0xffffffff, 0, K::kHex, true, P::kNone,
        "metadata register 0 (0 at ingress)"),
    def(F::kReg1, "reg1", {}, kOffRegs + 4, 4, false, 0xffffffff, 0, K::kHex, true, P::kNone,
        "metadata register 1 (0 at ingress)"),
    def(F::kReg2, "reg2", {}, kOffRegs + 8, 4, false, 0xffffffff, 0, K::kHex, true, P::kNone,
        "metadata register 2 (0 at ingress)"),
    def(F::kReg3, "reg3", {}, kOffRegs + 12, 4, false, 0xffffffff, 0, K::kHex, true, P::kNone,
        "metadata register 3 (0 at ingress)"),
};
static_assert(std::size(kFields) == kFieldCount);

constexpr bool fields_in_id_order() {
  for (unsigned i = 0; i < kFieldCount; ++i)
    if (static_cast<unsigned>(kFields[i].id) != i) return false;
  return true;
}
static_assert(fields_in_id_order(), "kFields must be indexed by FieldId");

// ---- keywords -------------------------------------------------------------------------------------------------

enum Keyword : uint8_t {
  kKwEth,
  kKwIp,
  kKwIpv6,
  kKwArp,
  kKwTcp,
  kKwUdp,
  kKwIcmp,
  kKwTcp6,
  kKwUdp6,
  kKwIcmp6,
  kKwVlan,
  kKwNoVlan,
  kKwCount
};

constexpr KeywordDef kKeywords[] = {
    {"eth", "", "any Ethernet frame (matches everything)"},
    {"ip", "ipv4", "IPv4: eth_type=0x0800"},
    {"ipv6", "", "IPv6: eth_type=0x86dd"},
    {"arp", "", "ARP: eth_type=0x0806"},
    {"tcp", "", "TCP over IPv4: eth_type=0x0800,ip_proto=6"},
    {"udp", "", "UDP over IPv4: eth_type=0x0800,ip_proto=17"},
    {"icmp", "", "ICMP: eth_type=0x0800,ip_proto=1"},
    {"tcp6", "", "TCP over IPv6: eth_type=0x86dd,ip_proto=6"},
    {"udp6", "", "UDP over IPv6: eth_type=0x86dd,ip_proto=17"},
    {"icmp6", "", "ICMPv6: eth_type=0x86dd,ip_proto=58"},
    {"vlan", "", "an outer VLAN tag is present"},
    {"novlan", "", "no VLAN tag"},
};
static_assert(std::size(kKeywords) == kKwCount);
static_assert(kFieldCount + kKwCount <= 64, "MaskedKey::given has one bit per field and keyword");

struct KeywordEffect {
  uint16_t eth;  // 0 = none
  int proto;     // -1 = none
  int vlan;      // -1 = none, 1 = outer tag present, 0 = no outer tag
};
constexpr KeywordEffect kKeywordEffects[] = {
    {0, -1, -1},                  // eth
    {kEthTypeIpv4, -1, -1},           // ip
    {kEthTypeIpv6, -1, -1},           // ipv6
    {kEthTypeArp, -1, -1},            // arp
    {kEthTypeIpv4, kProtoTcp, -1},    // tcp
    {kEthTypeIpv4, kProtoUdp, -1},    // udp
    {kEthTypeIpv4, kProtoIcmp, -1},   // icmp
    {kEthTypeIpv6, kProtoTcp, -1},    // tcp6
    {kEthTypeIpv6, kProtoUdp, -1},    // udp6
    {kEthTypeIpv6, kProtoIcmpv6, -1}, // icmp6
    {0, -1, 1},                   // vlan
    {0, -1, 0},                   // novlan
};
static_assert(std::size(kKeywordEffects) == kKwCount);

constexpr uint64_t field_bit(FieldId id) { return uint64_t{1} << static_cast<unsigned>(id); }

int find_keyword(std::string_view name) {
  for (unsigned i = 0; i < kKwCount; ++i)
    if (kKeywords[i].name == name || (!kKeywords[i].alias.empty() && kKeywords[i].alias == name))
      return static_cast<int>(i);
  return -1;
}

// ---- FlowKey access -------------------------------------------------------------------------------------------

uint8_t* bytes_of(FlowKey& k) { return reinterpret_cast<uint8_t*>(&k); }
const uint8_t* bytes_of(const FlowKey& k) { return reinterpret_cast<const uint8_t*>(&k); }

// A place in the key holding an integer: the FlowKey bytes and the bits of interest (host order).
struct Loc {
  size_t offset;
  uint8_t width;
  bool big_endian;
  uint32_t bits;
};
constexpr Loc loc_of(const FieldDef& f) { return Loc{f.offset, f.width, f.big_endian, f.bits}; }

constexpr Loc kLocEthType{offsetof(FlowKey, eth_type), 2, true, 0xffff};
constexpr Loc kLocProto{offsetof(FlowKey, ip_proto), 1, false, 0xff};
constexpr Loc kLocIcmpType{offsetof(FlowKey, tp_src), 2, true, 0x00ff};
constexpr Loc kLocIcmpCode{offsetof(FlowKey, tp_dst), 2, true, 0x00ff};
constexpr Loc kLocTpDst{offsetof(FlowKey, tp_dst), 2, true, 0xffff};
constexpr Loc kLocOuterPresent{kOffTci0, 2, true, kTciPresent};
constexpr Loc kLocFrag{offsetof(FlowKey, ip_frag), 1, false, 0x03};

uint32_t load(const FlowKey& k, const Loc& l) {
  const uint8_t* p = bytes_of(k) + l.offset;
  uint32_t v = 0;
  if (l.big_endian) {
    for (unsigned i = 0; i < l.width; ++i) v = v << 8 | p[i];
  } else if (l.width == 1) {
    v = p[0];
  } else if (l.width == 2) {
    uint16_t t;
    std::memcpy(&t, p, 2);
    v = t;
  } else {
    std::memcpy(&v, p, 4);
  }
  return v & l.bits;
}

// Replaces the l.bits of the stored integer with v (already positioned in l.bits).
void store(FlowKey& k, const Loc& l, uint32_t v) {
  uint8_t* p = bytes_of(k) + l.offset;
  Loc all = l;
  all.bits = 0xffffffff;
  const uint32_t word = (load(k, all) & ~l.bits) | (v & l.bits);
  if (l.big_endian) {
    for (unsigned i = 0; i < l.width; ++i) p[i] = static_cast<uint8_t>(word >> (8 * (l.width - 1 - i)));
  } else if (l.width == 1) {
    p[0] = static_cast<uint8_t>(word);
  } else if (l.width == 2) {
    const uint16_t t = static_cast<uint16_t>(word);
    std::memcpy(p, &t, 2);
  } else {
    std::memcpy(p, &word, 4);
  }
}

bool is_bytes(const FieldDef& f) { return f.kind == K::kMac || f.kind == K::kIpv6; }
unsigned shift_of(const FieldDef& f) { return static_cast<unsigned>(std::countr_zero(f.bits)); }

// A field's value and mask in field units: integers in v/m (shifted down), MACs and IPv6 in bv/bm.
struct FieldVal {
  uint32_t v = 0;
  uint32_t m = 0;
  std::array<uint8_t, 16> bv{};
  std::array<uint8_t, 16> bm{};
};

FieldVal get_field(const FieldDef& f, const FlowKey& value, const FlowKey& mask) {
  FieldVal x;
  if (is_bytes(f)) {
    const uint8_t* v = bytes_of(value) + f.offset;
    const uint8_t* m = bytes_of(mask) + f.offset;
    for (unsigned i = 0; i < f.width; ++i) {
      x.bm[i] = m[i];
      x.bv[i] = v[i] & m[i];
    }
  } else {
    const Loc l = loc_of(f);
    x.m = load(mask, l) >> shift_of(f);
    x.v = (load(value, l) >> shift_of(f)) & x.m;
  }
  return x;
}

// ORs x (and the field's present bits if asked) into value/mask.
void or_field(const FieldDef& f, const FieldVal& x, FlowKey& value, FlowKey& mask, bool with_present) {
  if (is_bytes(f)) {
    uint8_t* v = bytes_of(value) + f.offset;
    uint8_t* m = bytes_of(mask) + f.offset;
    for (unsigned i = 0; i < f.width; ++i) {
      v[i] |= x.bv[i] & x.bm[i];
      m[i] |= x.bm[i];
    }
    return;
  }
  Loc l = loc_of(f);
  const unsigned sh = shift_of(f);
  uint32_t add_v = ((x.v & x.m) << sh) & f.bits;
  uint32_t add_m = (x.m << sh) & f.bits;
  if (with_present) {
    add_v |= f.present;
    add_m |= f.present;
  }
  l.bits = f.bits | f.present;
  store(value, l, load(value, l) | add_v);
  store(mask, l, load(mask, l) | add_m);
}

FieldVal full_value(const FieldDef& f) {
  FieldVal x;
  if (is_bytes(f)) {
    std::fill_n(x.bm.begin(), f.width, uint8_t{0xff});
  } else {
    x.m = f.max_value();
  }
  return x;
}

// The FlowKey bits a field covers (own bits, plus the present bits if asked).
FlowKey footprint(const FieldDef& f, bool with_present) {
  FlowKey v{}, m{};
  or_field(f, full_value(f), v, m, with_present);
  return m;
}

FlowKey loc_mask(const Loc& l) {
  FlowKey m{};
  store(m, l, l.bits);
  return m;
}

bool any_bits(const FlowKey& k) {
  const uint64_t* w = key_words(k);
  for (size_t i = 0; i < kFlowKeyWords; ++i)
    if (w[i] != 0) return true;
  return false;
}

FlowKey and_keys(const FlowKey& a, const FlowKey& b) {
  FlowKey r{};
  for (size_t i = 0; i < kFlowKeyWords; ++i) key_words(r)[i] = key_words(a)[i] & key_words(b)[i];
  return r;
}

FlowKey xor_keys(const FlowKey& a, const FlowKey& b) {
  FlowKey r{};
  for (size_t i = 0; i < kFlowKeyWords; ++i) key_words(r)[i] = key_words(a)[i] ^ key_words(b)[i];
  return r;
}

void or_into(FlowKey& a, const FlowKey& b) {
  for (size_t i = 0; i < kFlowKeyWords; ++i) key_words(a)[i] |= key_words(b)[i];
}

bool intersects(const FlowKey& a, const FlowKey& b) { return any_bits(and_keys(a, b)); }

// The bits a keyword sets.
void keyword_delta(unsigned kw, FlowKey& value, FlowKey& mask) {
  const KeywordEffect& e = kKeywordEffects[kw];
  if (e.eth != 0) {
    store(value, kLocEthType, e.eth);
    store(mask, kLocEthType, 0xffff);
  }
  if (e.proto >= 0) {
    store(value, kLocProto, static_cast<uint32_t>(e.proto));
    store(mask, kLocProto, 0xff);
  }
  if (e.vlan >= 0) {
    store(value, kLocOuterPresent, e.vlan ? kTciPresent : 0);
    store(mask, kLocOuterPresent, kTciPresent);
  }
}

FlowKey keyword_footprint(unsigned kw) {
  FlowKey v{}, m{};
  keyword_delta(kw, v, m);
  return m;
}

// Every field's footprint (own bits; own and present bits) and every keyword's, computed once: the formatter
// asks for one per field of every rule it prints, merge for one per given item.
struct Footprints {
  FlowKey own[kFieldCount];
  FlowKey with_present[kFieldCount];
  FlowKey keyword[kKwCount];
};
const Footprints& footprints() noexcept {
  static const Footprints fp = [] {
    Footprints f{};
    for (unsigned i = 0; i < kFieldCount; ++i) {
      f.own[i] = footprint(kFields[i], false);
      f.with_present[i] = footprint(kFields[i], true);
    }
    for (unsigned k = 0; k < kKwCount; ++k) f.keyword[k] = keyword_footprint(k);
    return f;
  }();
  return fp;
}
const FlowKey& own_footprint(const FieldDef& f) noexcept { return footprints().own[static_cast<unsigned>(f.id)]; }

// ---- small text helpers ---------------------------------------------------------------------------------------

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

template <typename... Args>
std::string sprintf_string(const char* f, Args... args) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

// Decimal or 0x hex, no sign, no spaces.
bool parse_number(std::string_view s, uint64_t& v) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  return ec == std::errc() && p == s.data() + s.size();
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Addresses in text: config/net_text.h, here with IPv4 as a host-order integer.
using cfg::ipv6_text;
using cfg::mac_text;
using cfg::parse_ipv6;
using cfg::parse_mac;

bool parse_ipv4(std::string_view s, uint32_t& host) {
  uint8_t b[4];
  if (!cfg::parse_ipv4(s, b)) return false;
  host = static_cast<uint32_t>(b[0]) << 24 | static_cast<uint32_t>(b[1]) << 16 | static_cast<uint32_t>(b[2]) << 8 |
         b[3];
  return true;
}

std::string ipv4_text(uint32_t host) {
  const uint8_t b[4] = {static_cast<uint8_t>(host >> 24), static_cast<uint8_t>(host >> 16),
                        static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)};
  return cfg::ipv4_text(b);
}

// Prefix length of a contiguous mask, or -1.
int prefix_len_bytes(const uint8_t* m, unsigned n) {
  int len = 0;
  unsigned i = 0;
  for (; i < n && m[i] == 0xff; ++i) len += 8;
  if (i < n) {
    const uint8_t b = m[i];
    const int ones = std::countl_one(b);
    if (static_cast<uint8_t>(b << ones) != 0) return -1;
    len += ones;
    for (++i; i < n; ++i)
      if (m[i] != 0) return -1;
  }
  return len;
}

constexpr std::string_view kTcpFlagNameList[9] = {"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"};

int tcp_flag_bit(std::string_view name) {
  for (int i = 0; i < 9; ++i)
    if (kTcpFlagNameList[i] == name) return 1 << i;
  return 0;
}

using cfg::edit_distance;

std::string suggestion(std::string_view name) {
  std::string_view best;
  size_t best_d = 3;
  auto consider = [&](std::string_view cand) {
    if (cand.empty()) return;
    const size_t d = edit_distance(name, cand);
    if (d < best_d) {
      best_d = d;
      best = cand;
    }
  };
  for (const FieldDef& f : kFields) {
    consider(f.name);
    for (std::string_view a : f.aliases) consider(a);
  }
  for (const KeywordDef& k : kKeywords) {
    consider(k.name);
    consider(k.alias);
  }
  if (best.empty()) return "";
  return " (did you mean " + quoted(best) + "?)";
}

// ---- values ---------------------------------------------------------------------------------------------------

std::string port_text(uint16_t port, const PortNames& ports) {
  if (ports.name_of) {
    const std::string name = ports.name_of(port);
    if (!name.empty() && name.find_first_of(",=/ \t") == std::string::npos && ports.index_of) {
      const std::optional<uint16_t> back = ports.index_of(name);
      if (back && *back == port) return name;
    }
  }
  return std::to_string(port);
}

bool parse_port(const FieldDef& f, std::string_view s, const PortNames& ports, FieldVal& out, std::string& error) {
  if (ports.index_of) {
    if (const std::optional<uint16_t> idx = ports.index_of(s)) {
      out.v = *idx;
      out.m = 0xffff;
      return true;
    }
  }
  uint64_t n;
  if (parse_number(s, n)) {
    if (n > 0xffff) {
      error = std::string(f.name) + ": port number " + std::string(s) + " is out of range (0..65535)";
      return false;
    }
    out.v = static_cast<uint32_t>(n);
    out.m = 0xffff;
    return true;
  }
  if (s.find('/') != std::string_view::npos) {
    error = std::string(f.name) + " does not take a mask";
    return false;
  }
  error = std::string(f.name) + ": unknown port " + quoted(s);
  return false;
}

std::string hex_text(uint32_t v, unsigned digits) {
  return sprintf_string("0x%0*x", static_cast<int>(digits), v);
}

unsigned hex_digits(const FieldDef& f) {
  const unsigned bits = 32 - static_cast<unsigned>(std::countl_zero(f.max_value()));
  return bits <= 16 ? (bits + 3) / 4 : 1;
}

bool parse_int(const FieldDef& f, std::string_view vs, std::string_view ms, bool has_mask, FieldVal& out,
               std::string& error) {
  const uint32_t max = f.max_value();
  uint64_t v;
  if (!parse_number(vs, v)) {
    error = std::string(f.name) + ": " + quoted(vs) + " is not a number";
    return false;
  }
  if (v > max) {
    error = std::string(f.name) + ": " + std::string(vs) + " is out of range (0.." + std::to_string(max) + ")";
    return false;
  }
  uint64_t m = max;
  if (has_mask) {
    if (!parse_number(ms, m)) {
      error = std::string(f.name) + ": mask " + quoted(ms) + " is not a number";
      return false;
    }
    if (m > max) {
      error = std::string(f.name) + ": mask " + std::string(ms) + " is out of range (0.." + hex_text(max, 1) + ")";
      return false;
    }
  }
  out.m = static_cast<uint32_t>(m);
  out.v = static_cast<uint32_t>(v) & out.m;
  return true;
}

constexpr uint8_t kFragStates[] = {0, kFragAny, kFragAny | kFragLater};  // what the parser produces

struct FragName {
  std::string_view name;
  uint8_t v, m;
};
constexpr FragName kFragNames[] = {
    {"no", 0, kFragAny},
    {"yes", kFragAny, kFragAny},
    {"first", kFragAny, kFragAny | kFragLater},
    {"later", kFragAny | kFragLater, kFragAny | kFragLater},
    {"not_later", 0, kFragLater},
};

bool parse_tcp_flags(const FieldDef& f, std::string_view vs, std::string_view ms, bool has_mask, FieldVal& out,
                     std::string& error) {
  if (vs.empty()) {
    error = std::string(f.name) + ": missing value";
    return false;
  }
  if (has_mask || (vs[0] >= '0' && vs[0] <= '9')) return parse_int(f, vs, ms, has_mask, out, error);
  if (vs[0] == '+' || vs[0] == '-') {
    // +flag-flag...: bits that must be set / clear
    uint32_t v = 0, m = 0;
    while (!vs.empty()) {
      const bool set = vs[0] == '+';
      if (!set && vs[0] != '-') {
        error = std::string(f.name) + ": expected '+' or '-' before " + quoted(vs);
        return false;
      }
      vs.remove_prefix(1);
      const size_t end = vs.find_first_of("+-");
      const std::string_view name = vs.substr(0, end);
      vs.remove_prefix(name.size());
      const int bit = tcp_flag_bit(name);
      if (bit == 0) {
        error = std::string(f.name) + ": unknown TCP flag " + quoted(name) +
                " (fin, syn, rst, psh, ack, urg, ece, cwr, ns)";
        return false;
      }
      if (m & static_cast<uint32_t>(bit)) {
        error = std::string(f.name) + ": TCP flag " + quoted(name) + " given twice";
        return false;
      }
      m |= static_cast<uint32_t>(bit);
      if (set) v |= static_cast<uint32_t>(bit);
    }
    out.v = v;
    out.m = m;
    return true;
  }
  // syn|ack: exactly these flags
  uint32_t v = 0;
  while (true) {
    const size_t bar = vs.find('|');
    const std::string_view name = vs.substr(0, bar);
    const int bit = tcp_flag_bit(name);
    if (bit == 0) {
      error = std::string(f.name) + ": unknown TCP flag " + quoted(name) +
              " (fin, syn, rst, psh, ack, urg, ece, cwr, ns; +syn-ack for some flags, syn|ack for exactly these)";
      return false;
    }
    v |= static_cast<uint32_t>(bit);
    if (bar == std::string_view::npos) break;
    vs.remove_prefix(bar + 1);
  }
  out.v = v;
  out.m = f.max_value();
  return true;
}

// Parses text (value[/mask]) for f into out. allow_mask=false: set_field values.
bool parse_value(const FieldDef& f, std::string_view text, const PortNames& ports, bool allow_mask, FieldVal& out,
                 std::string& error) {
  out = FieldVal{};
  text = trim(text);
  if (text.empty()) {
    error = "missing value for " + std::string(f.name);
    return false;
  }
  if (f.kind == K::kPort) return parse_port(f, text, ports, out, error);
  const size_t slash = text.find('/');
  const bool has_mask = slash != std::string_view::npos;
  const std::string_view vs = trim(text.substr(0, slash));
  const std::string_view ms = has_mask ? trim(text.substr(slash + 1)) : std::string_view{};
  if (has_mask && !f.maskable) {
    error = std::string(f.name) + " does not take a mask";
    return false;
  }
  if (has_mask && !allow_mask) {
    error = std::string(f.name) + ": set_field takes an exact value, not " + quoted(text);
    return false;
  }
  if (has_mask && ms.empty()) {
    error = std::string(f.name) + ": missing mask after '/'";
    return false;
  }
  switch (f.kind) {
    case K::kMac: {
      if (!parse_mac(vs, out.bv.data())) {
        error = std::string(f.name) + ": " + quoted(vs) + " is not a MAC address";
        return false;
      }
      std::fill_n(out.bm.begin(), 6, uint8_t{0xff});
      if (has_mask && !parse_mac(ms, out.bm.data())) {
        error = std::string(f.name) + ": " + quoted(ms) + " is not a MAC mask";
        return false;
      }
      for (int i = 0; i < 6; ++i) out.bv[i] &= out.bm[i];
      return true;
    }
    case K::kIpv4: {
      if (!parse_ipv4(vs, out.v)) {
        error = std::string(f.name) + ": " + quoted(vs) + " is not an IPv4 address";
        return false;
      }
      out.m = 0xffffffff;
      if (has_mask) {
        if (all_digits(ms)) {
          uint64_t len;
          if (!parse_number(ms, len) || len > 32) {
            error = std::string(f.name) + ": prefix length " + std::string(ms) + " is out of range (0..32)";
            return false;
          }
          out.m = len == 0 ? 0 : 0xffffffffu << (32 - len);
        } else if (!parse_ipv4(ms, out.m)) {
          error = std::string(f.name) + ": " + quoted(ms) + " is not a prefix length or an IPv4 mask";
          return false;
        }
      }
      out.v &= out.m;
      return true;
    }
    case K::kIpv6: {
      if (!parse_ipv6(vs, out.bv.data())) {
        error = std::string(f.name) + ": " + quoted(vs) + " is not an IPv6 address";
        return false;
      }
      out.bm.fill(0xff);
      if (has_mask) {
        if (all_digits(ms)) {
          uint64_t len;
          if (!parse_number(ms, len) || len > 128) {
            error = std::string(f.name) + ": prefix length " + std::string(ms) + " is out of range (0..128)";
            return false;
          }
          for (unsigned i = 0; i < 16; ++i) {
            const uint64_t bits = std::min<uint64_t>(8, len > 8 * i ? len - 8 * i : 0);
            out.bm[i] = static_cast<uint8_t>(0xff00u >> bits);
          }
        } else if (!parse_ipv6(ms, out.bm.data())) {
          error = std::string(f.name) + ": " + quoted(ms) + " is not a prefix length or an IPv6 mask";
          return false;
        }
      }
      for (int i = 0; i < 16; ++i) out.bv[i] &= out.bm[i];
      return true;
    }
    case K::kFrag: {
      if (!has_mask && !vs.empty() && !(vs[0] >= '0' && vs[0] <= '9')) {
        for (const FragName& n : kFragNames) {
          if (n.name == vs) {
            out.v = n.v;
            out.m = n.m;
            return true;
          }
        }
        error = std::string(f.name) + ": " + quoted(vs) + " is not one of no, yes, first, later, not_later";
        return false;
      }
      return parse_int(f, vs, ms, has_mask, out, error);
    }
    case K::kTcpFlags:
      return parse_tcp_flags(f, vs, ms, has_mask, out, error);
    case K::kDecimal:
    case K::kHex:
    case K::kPort:
      break;
  }
  return parse_int(f, vs, ms, has_mask, out, error);
}

std::string value_text(const FieldDef& f, const FieldVal& x, const PortNames& ports) {
  switch (f.kind) {
    case K::kPort:
      if (x.m == f.max_value()) return port_text(static_cast<uint16_t>(x.v), ports);
      return hex_text(x.v, 1) + "/" + hex_text(x.m, 1);  // not parseable: only from hand-built keys
    case K::kMac: {
      std::string s = mac_text(x.bv.data());
      if (!std::all_of(x.bm.begin(), x.bm.begin() + 6, [](uint8_t b) { return b == 0xff; }))
        s += "/" + mac_text(x.bm.data());
      return s;
    }
    case K::kIpv4: {
      std::string s = ipv4_text(x.v);
      if (x.m == 0xffffffff) return s;
      const int len = std::countl_one(x.m);
      if (len == 32 || (x.m << len) == 0) return s + "/" + std::to_string(len);
      return s + "/" + ipv4_text(x.m);
    }
    case K::kIpv6: {
      std::string s = ipv6_text(x.bv.data());
      const int len = prefix_len_bytes(x.bm.data(), 16);
      if (len == 128) return s;
      if (len >= 0) return s + "/" + std::to_string(len);
      return s + "/" + ipv6_text(x.bm.data());
    }
    case K::kFrag:
      for (const FragName& n : kFragNames)
        if (n.v == x.v && n.m == x.m) return std::string(n.name);
      return hex_text(x.v, 1) + "/" + hex_text(x.m, 1);
    case K::kTcpFlags: {
      if (x.m == f.max_value()) {
        if (x.v == 0 || (x.v & ~kTcpFlagNames) != 0) return hex_text(x.v, 3);
        std::string s;
        for (int i = 0; i < 9; ++i) {
          if (x.v & (1u << i)) {
            if (!s.empty()) s += '|';
            s += kTcpFlagNameList[i];
          }
        }
        return s;
      }
      if (x.m != 0 && (x.m & ~kTcpFlagNames) == 0) {
        std::string s;
        for (int i = 0; i < 9; ++i) {
          if (x.m & (1u << i)) {
            s += (x.v & (1u << i)) ? '+' : '-';
            s += kTcpFlagNameList[i];
          }
        }
        return s;
      }
      return hex_text(x.v, 3) + "/" + hex_text(x.m, 3);
    }
    case K::kDecimal:
      if (x.m == f.max_value()) return std::to_string(x.v);
      return hex_text(x.v, 1) + "/" + hex_text(x.m, 1);
    case K::kHex: {
      const unsigned d = hex_digits(f);
      if (x.m == f.max_value()) return hex_text(x.v, d);
      return hex_text(x.v, d) + "/" + hex_text(x.m, d);
    }
  }
  return "";
}

bool field_present(const FieldDef& f, const FlowKey& mask) { return intersects(mask, own_footprint(f)); }

std::string name_value(const FieldDef& f, const MaskedKey& m, const PortNames& ports) {
  return std::string(f.name) + "=" + value_text(f, get_field(f, m.value, m.mask), ports);
}

// ---- merging and ownership ------------------------------------------------------------------------------------

const PortNames& no_ports() {
  static const PortNames p;
  return p;
}

// How an item that owns some bits is named in a conflict: selector-like integer fields with their value.
std::string item_text(const MaskedKey& m, unsigned item) {
  if (item >= kFieldCount) return std::string(kKeywords[item - kFieldCount].name);
  const FieldDef& f = kFields[item];
  if (f.kind == K::kDecimal || f.kind == K::kHex || f.kind == K::kFrag) return name_value(f, m, no_ports());
  return std::string(f.name);
}

const FlowKey& item_footprint(unsigned item) {
  if (item >= kFieldCount) return footprints().keyword[item - kFieldCount];
  return footprints().with_present[item];
}

// The first given item (other than `except`) whose bits intersect `bits`, or -1.
int given_owner(const MaskedKey& m, const FlowKey& bits, int except) {
  for (unsigned i = 0; i < kFieldCount + kKwCount; ++i) {
    if (static_cast<int>(i) == except || !(m.given & (uint64_t{1} << i))) continue;
    if (intersects(item_footprint(i), bits)) return static_cast<int>(i);
  }
  return -1;
}

// Names what holds `bits` in m when no given item does: the first registry field covering them.
std::string describe_bits(const MaskedKey& m, const FlowKey& bits) {
  for (const FieldDef& f : kFields)
    if (intersects(own_footprint(f), bits)) return name_value(f, m, no_ports());
  return "the match";
}

std::string display_name(unsigned item) {
  return std::string(item >= kFieldCount ? kKeywords[item - kFieldCount].name : kFields[item].name);
}

// Adds delta (value/mask) for item to m, refusing overlaps that disagree, fields given twice and two fields
// sharing bits.
bool merge(MaskedKey& m, const FlowKey& dv, const FlowKey& dm, unsigned item, std::string& error) {
  const FlowKey overlap = and_keys(dm, m.mask);
  if (any_bits(overlap)) {
    const FlowKey differ = and_keys(xor_keys(dv, m.value), overlap);
    const bool is_field = item < kFieldCount;
    const FlowKey own = is_field ? own_footprint(kFields[item]) : FlowKey{};
    bool owned = false;
    for (unsigned i = 0; i < kFieldCount + kKwCount; ++i) {
      if (!(m.given & (uint64_t{1} << i))) continue;
      const FlowKey& fp = item_footprint(i);
      if (!intersects(fp, overlap)) continue;
      owned = true;
      if (i == item) {
        if (!is_field) continue;  // a keyword twice is harmless
        error = display_name(item) + " given twice";
        return false;
      }
      const bool shared_field_bits =
          is_field && i < kFieldCount && intersects(own, own_footprint(kFields[i]));
      if (shared_field_bits || intersects(differ, fp)) {
        error = display_name(item) + " conflicts with " + item_text(m, i);
        return false;
      }
    }
    if (!owned && any_bits(differ)) {
      error = display_name(item) + " conflicts with " + describe_bits(m, differ);
      return false;
    }
  }
  or_into(m.value, dv);
  or_into(m.mask, dm);
  m.given |= uint64_t{1} << item;
  return true;
}

// ---- prerequisites --------------------------------------------------------------------------------------------

enum Slot { kSlotEth, kSlotProto, kSlotIcmpType, kSlotIcmpCode, kSlotTpDst, kSlotOuterVlan, kSlotCount };
constexpr Loc kSlotLocs[kSlotCount] = {kLocEthType, kLocProto, kLocIcmpType, kLocIcmpCode, kLocTpDst,
                                       kLocOuterPresent};

struct Finisher {
  MaskedKey& m;
  std::string& error;
  int& blamed;
  int implied_by[kSlotCount] = {-1, -1, -1, -1, -1, -1};

  std::string owner_of(Slot s, int who) {
    const FlowKey bits = loc_mask(kSlotLocs[s]);
    const int g = given_owner(m, bits, who);
    if (g >= 0) return item_text(m, static_cast<unsigned>(g));
    if (implied_by[s] >= 0 && implied_by[s] != who) return display_name(static_cast<unsigned>(implied_by[s]));
    return describe_bits(m, bits);
  }

  bool conflict(int who, const std::string& with, std::string_view hint = {}) {
    blamed = who;
    error = display_name(static_cast<unsigned>(who)) + " conflicts with " + with + std::string(hint);
    return false;
  }

  // The slot must hold `want` (positioned in its bits): implied when free, a conflict when different.
  bool require(Slot s, uint32_t want, int who) {
    const Loc& l = kSlotLocs[s];
    const uint32_t v = load(m.value, l);
    const uint32_t mk = load(m.mask, l);
    if ((mk & (v ^ want)) != 0) {
      std::string_view hint;
      const auto is = [who](F a, F b) { return who == static_cast<int>(a) || who == static_cast<int>(b); };
      if (s == kSlotEth && v == kEthTypeArp && is(F::kIpv4Src, F::kIpv4Dst)) {
        hint = " (ARP addresses are arp_spa/arp_tpa)";
      }
      if (s == kSlotEth && v == kEthTypeIpv6 && is(F::kArpSha, F::kArpTha))
        hint = " (ND link-layer addresses are nd_sll/nd_tll)";
      return conflict(who, owner_of(s, who), hint);
    }
    if (mk != l.bits) {
      store(m.value, l, want);
      store(m.mask, l, l.bits);
      if (implied_by[s] < 0) implied_by[s] = who;
    }
    return true;
  }

  // The slot must already hold one of `allowed`.
  bool need(Slot s, std::initializer_list<uint32_t> allowed, int who, std::string_view missing) {
    const Loc& l = kSlotLocs[s];
    const uint32_t v = load(m.value, l);
    const uint32_t mk = load(m.mask, l);
    if (mk != l.bits) {
      blamed = who;
      error = display_name(static_cast<unsigned>(who)) + " needs " + std::string(missing);
      return false;
    }
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) return conflict(who, owner_of(s, who));
    return true;
  }

  // Pass 1: everything a field implies.
  bool imply(const FieldDef& f) {
    const int who = static_cast<int>(f.id);
    switch (f.prereq) {
      case P::kNone:
      case P::kIp:
      case P::kTcpOrUdp:
        return true;
      case P::kOuterVlan:
        return require(kSlotOuterVlan, kTciPresent, who);
      case P::kIpv4:
        return require(kSlotEth, kEthTypeIpv4, who);
      case P::kIpv6:
        return require(kSlotEth, kEthTypeIpv6, who);
      case P::kArp:
        return require(kSlotEth, kEthTypeArp, who);
      case P::kTcp:
        return require(kSlotProto, kProtoTcp, who);
      case P::kUdp:
        return require(kSlotProto, kProtoUdp, who);
      case P::kIcmp:
        return require(kSlotEth, kEthTypeIpv4, who) && require(kSlotProto, kProtoIcmp, who);
      case P::kIcmpv6:
        return require(kSlotEth, kEthTypeIpv6, who) && require(kSlotProto, kProtoIcmpv6, who);
      case P::kNd:
        return require(kSlotEth, kEthTypeIpv6, who) && require(kSlotProto, kProtoIcmpv6, who) &&
               require(kSlotIcmpCode, 0, who);
      case P::kNdNs:
      case P::kNdNa:
        return require(kSlotEth, kEthTypeIpv6, who) && require(kSlotProto, kProtoIcmpv6, who) &&
               require(kSlotIcmpType, f.prereq == P::kNdNs ? kNdNeighborSolicit : kNdNeighborAdvert, who) &&
               require(kSlotIcmpCode, 0, who);
      case P::kRoce:
        return require(kSlotProto, kProtoUdp, who) && require(kSlotTpDst, kPortRoce, who);
    }
    return true;
  }

  // Pass 2: what must be given.
  bool check(const FieldDef& f) {
    const int who = static_cast<int>(f.id);
    static constexpr std::string_view kVersion = "an IP version: add ipv4/ipv6 or eth_type";
    switch (f.prereq) {
      case P::kIp:
      case P::kTcp:
      case P::kUdp:
      case P::kRoce:
        return need(kSlotEth, {kEthTypeIpv4, kEthTypeIpv6}, who, kVersion);
      case P::kTcpOrUdp:
        return need(kSlotEth, {kEthTypeIpv4, kEthTypeIpv6}, who, kVersion) &&
               need(kSlotProto, {kProtoTcp, kProtoUdp}, who,
                    "a transport protocol: add tcp/udp/tcp6/udp6 or ip_proto=6/17");
      case P::kNd:
        return need(kSlotIcmpType, {kNdNeighborSolicit, kNdNeighborAdvert}, who, "icmpv6_type=135 or 136");
      default:
        return true;
    }
  }

  // Pass 3: transport fields against fragments.
  bool check_fragments(const FieldDef& f) {
    const uint32_t fv = load(m.value, kLocFrag);
    const uint32_t fm = load(m.mask, kLocFrag);
    const bool later = (fm & fv & kFragLater) != 0;
    const bool any = later || (fm & fv & kFragAny) != 0;
    const int who = static_cast<int>(f.id);
    // The ip_frag item as text, for the messages only (not per field of every rule).
    const auto frag = [&] { return name_value(kFields[static_cast<unsigned>(F::kIpFrag)], m, no_ports()); };
    switch (f.prereq) {
      case P::kTcp:
      case P::kUdp:
      case P::kTcpOrUdp:
      case P::kIcmp:
      case P::kIcmpv6:
        if (later) return conflict(who, frag(), " (a later fragment has no transport header)");
        return true;
      case P::kNd:
      case P::kNdNs:
      case P::kNdNa:
      case P::kRoce:
        if (any) return conflict(who, frag(), " (not recognised in fragments)");
        return true;
      default:
        return true;
    }
  }

  bool run() {
    for (const FieldDef& f : kFields)
      if ((m.given & field_bit(f.id)) && !imply(f)) return false;
    for (const FieldDef& f : kFields)
      if ((m.given & field_bit(f.id)) && !check(f)) return false;
    for (const FieldDef& f : kFields)
      if ((m.given & field_bit(f.id)) && !check_fragments(f)) return false;
    return true;
  }
};

bool finish_impl(MaskedKey& m, std::string& error, int& blamed) {
  blamed = -1;
  Finisher fin{m, error, blamed};
  return fin.run();
}

// Values no packet can have: the key forces the tag-present bit on, and a later fragment is a fragment.
bool check_possible(const FieldDef& f, const FieldVal& x, std::string_view text, std::string& error) {
  if ((f.id == F::kVlanTci || f.id == F::kInnerVlanTci) && (x.m & kTciPresent) && !(x.v & kTciPresent) &&
      x.v != 0) {
    error = std::string(f.name) + ": " + quoted(trim(text)) +
            " matches no packet (VID/PCP bits need the tag-present bit 0x1000; use vlan_vid/vlan_pcp)";
    return false;
  }
  if (f.id == F::kIpFrag) {
    const bool possible = std::any_of(std::begin(kFragStates), std::end(kFragStates),
                                      [&](uint8_t s) { return (s & x.m) == x.v; });
    if (!possible) {
      error = std::string(f.name) + ": " + quoted(trim(text)) + " matches no packet (a later fragment is a fragment)";
      return false;
    }
  }
  return true;
}

bool set_field_impl(MaskedKey& m, const FieldDef& f, std::string_view value, const PortNames& ports,
                    std::string& error) {
  FieldVal x;
  if (!parse_value(f, value, ports, true, x, error)) return false;
  if (!check_possible(f, x, value, error)) return false;
  FlowKey dv{}, dm{};
  or_field(f, x, dv, dm, true);
  return merge(m, dv, dm, static_cast<unsigned>(f.id), error);
}

bool set_keyword_impl(MaskedKey& m, unsigned kw, std::string& error) {
  FlowKey dv{}, dm{};
  keyword_delta(kw, dv, dm);
  return merge(m, dv, dm, kFieldCount + kw, error);
}

}  // namespace

// ---- public API -----------------------------------------------------------------------------------------------

bool operator==(const MaskedKey& a, const MaskedKey& b) noexcept {
  return std::memcmp(&a.value, &b.value, sizeof(FlowKey)) == 0 &&
         std::memcmp(&a.mask, &b.mask, sizeof(FlowKey)) == 0;
}

PortNames PortNames::from_list(std::vector<std::string> names) {
  PortNames p;
  auto shared = std::make_shared<const std::vector<std::string>>(std::move(names));
  p.index_of = [shared](std::string_view name) -> std::optional<uint16_t> {
    for (size_t i = 0; i < shared->size() && i <= 0xffff; ++i)
      if ((*shared)[i] == name) return static_cast<uint16_t>(i);
    return std::nullopt;
  };
  p.name_of = [shared](uint16_t idx) -> std::string { return idx < shared->size() ? (*shared)[idx] : ""; };
  return p;
}

uint32_t FieldDef::max_value() const noexcept {
  if (bits == 0) return 0;
  return bits >> std::countr_zero(bits);
}

std::span<const FieldDef> all_fields() noexcept { return kFields; }
std::span<const KeywordDef> all_keywords() noexcept { return kKeywords; }
const FieldDef& field_def(FieldId id) noexcept { return kFields[static_cast<unsigned>(id)]; }

const FieldDef* find_field(std::string_view name) noexcept {
  // Every name and alias with its field, sorted by (name, registry order) once: a lookup is a binary search,
  // and a name two fields had would find the first in registry order, as a scan of the registry does.
  struct Entry {
    std::string_view name;
    unsigned field;
  };
  static constexpr size_t kMaxNames = std::size(kFields) * 4;
  struct Table {
    std::array<Entry, kMaxNames> entries{};
    size_t size = 0;
  };
  static const Table table = [] {
    Table t;
    for (unsigned i = 0; i < kFieldCount; ++i) {
      t.entries[t.size++] = {kFields[i].name, i};
      for (std::string_view a : kFields[i].aliases)
        if (!a.empty()) t.entries[t.size++] = {a, i};
    }
    std::sort(t.entries.begin(), t.entries.begin() + static_cast<ptrdiff_t>(t.size),
              [](const Entry& a, const Entry& b) { return a.name != b.name ? a.name < b.name : a.field < b.field; });
    return t;
  }();
  const Entry* end = table.entries.data() + table.size;
  const Entry* it = std::lower_bound(table.entries.data(), end, name,
                                     [](const Entry& e, std::string_view n) { return e.name < n; });
  return it != end && it->name == name ? &kFields[it->field] : nullptr;
}

bool set_match_field(MaskedKey& m, std::string_view field, std::string_view value, const PortNames& ports,
                     std::string& error) {
  const FieldDef* f = find_field(trim(field));
  if (f == nullptr) {
    if (find_keyword(trim(field)) >= 0) {
      error = quoted(trim(field)) + " is a keyword and takes no value";
    } else {
      error = "unknown field " + quoted(trim(field)) + suggestion(trim(field));
    }
    return false;
  }
  return set_field_impl(m, *f, value, ports, error);
}

bool set_match_keyword(MaskedKey& m, std::string_view keyword, std::string& error) {
  const int kw = find_keyword(trim(keyword));
  if (kw < 0) {
    if (find_field(trim(keyword)) != nullptr) {
      error = std::string(trim(keyword)) + " needs a value (" + std::string(trim(keyword)) + "=...)";
    } else {
      error = "unknown field or keyword " + quoted(trim(keyword)) + suggestion(trim(keyword));
    }
    return false;
  }
  return set_keyword_impl(m, static_cast<unsigned>(kw), error);
}

bool finish_match(MaskedKey& m, std::string& error) {
  int blamed;
  return finish_impl(m, error, blamed);
}

bool parse_match(std::string_view text, const PortNames& ports, MaskedKey& out, std::string& error) {
  out = MaskedKey{};
  int item_of[64];
  std::fill(std::begin(item_of), std::end(item_of), 0);
  std::vector<std::string_view> items;
  if (!trim(text).empty()) {
    size_t start = 0;
    while (true) {
      const size_t comma = text.find(',', start);
      items.push_back(trim(text.substr(start, comma == std::string_view::npos ? comma : comma - start)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string_view item = items[i];
    const std::string where = "item " + std::to_string(i + 1) + " " + quoted(item) + ": ";
    if (item.empty()) {
      error = where + "empty item";
      return false;
    }
    const size_t eq = item.find('=');
    std::string e;
    if (eq == std::string_view::npos) {
      if (!set_match_keyword(out, item, e)) {
        error = where + e;
        return false;
      }
      item_of[kFieldCount + static_cast<unsigned>(find_keyword(item))] = static_cast<int>(i + 1);
    } else {
      const std::string_view name = trim(item.substr(0, eq));
      if (!set_match_field(out, name, item.substr(eq + 1), ports, e)) {
        error = where + e;
        return false;
      }
      item_of[static_cast<unsigned>(find_field(name)->id)] = static_cast<int>(i + 1);
    }
  }
  int blamed;
  std::string e;
  if (!finish_impl(out, e, blamed)) {
    if (blamed >= 0 && item_of[blamed] > 0) {
      const size_t i = static_cast<size_t>(item_of[blamed] - 1);
      error = "item " + std::to_string(i + 1) + " " + quoted(items[i]) + ": " + e;
    } else {
      error = e;
    }
    return false;
  }
  return true;
}

std::string format_field_value(const FieldDef& f, const FlowKey& value, const FlowKey& mask,
                               const PortNames& ports) {
  return value_text(f, get_field(f, value, mask), ports);
}

bool parse_field_value(const FieldDef& f, std::string_view text, const PortNames& ports, MaskedKey& out_exact,
                       std::string& error) {
  out_exact = MaskedKey{};
  if (!f.writable) {
    error = std::string(f.name) + " is read-only: set_field cannot change it";
    return false;
  }
  FieldVal x;
  if (!parse_value(f, text, ports, false, x, error)) return false;
  or_field(f, x, out_exact.value, out_exact.mask, false);
  out_exact.given = field_bit(f.id);
  return true;
}

std::string format_match(const MaskedKey& m, const PortNames& ports) {
  std::string out;
  out.reserve(96);  // one allocation for most matches, and room for a rule identity around it (ruleset.cc)
  auto add = [&](std::string_view s) {
    if (!out.empty()) out += ',';
    out += s;
  };
  // name_value(f, m, ports), appended in place.
  auto add_field = [&](const FieldDef& f) {
    if (!out.empty()) out += ',';
    out += f.name;
    out += '=';
    out += value_text(f, get_field(f, m.value, m.mask), ports);
  };
  auto emit = [&](F id) {
    const FieldDef& f = field_def(id);
    if (field_present(f, m.mask)) add_field(f);
  };
  // An integer field, printed under `id` if the mask stays within its bits, else under `fallback`.
  auto emit_as = [&](F id, F fallback) {
    const FieldDef& f = field_def(id);
    const FieldDef& g = field_def(fallback);
    if (!field_present(g, m.mask)) return;
    const uint32_t mk = load(m.mask, loc_of(g));
    add_field((mk & ~f.bits) == 0 ? f : g);
  };

  const bool eth_known = load(m.mask, kLocEthType) == 0xffff;
  const uint32_t eth = eth_known ? load(m.value, kLocEthType) : 0;
  const bool proto_known = load(m.mask, kLocProto) == 0xff;
  const uint32_t proto = proto_known ? load(m.value, kLocProto) : 0x100;
  const bool v4 = eth_known && eth == kEthTypeIpv4;
  const bool v6 = eth_known && eth == kEthTypeIpv6;
  const bool arp = eth_known && eth == kEthTypeArp;

  // Protocol shorthand.
  bool eth_done = false, proto_done = false;
  if (v4 || v6 || arp) {
    eth_done = true;
    std::string_view kw = v4 ? "ip" : v6 ? "ipv6" : "arp";
    if (v4 || v6) {
      if (proto == kProtoTcp) kw = v4 ? "tcp" : "tcp6";
      if (proto == kProtoUdp) kw = v4 ? "udp" : "udp6";
      if (proto == kProtoIcmp && v4) kw = "icmp";
      if (proto == kProtoIcmpv6 && v6) kw = "icmp6";
      proto_done = kw != "ip" && kw != "ipv6";
    }
    add(kw);
  }
  emit(F::kInPort);
  emit(F::kEthSrc);
  emit(F::kEthDst);
  if (!eth_done) emit(F::kEthType);

  // VLAN tags: keywords, vid/pcp when the present bit is matched on 1, the raw TCI otherwise.
  for (int t = 0; t < 2; ++t) {
    const Loc l{t == 0 ? kOffTci0 : kOffTci1, 2, true, 0xffff};
    const uint32_t mk = load(m.mask, l);
    const uint32_t v = load(m.value, l);
    if (mk == 0) continue;
    const F vid = t == 0 ? F::kVlanVid : F::kInnerVlanVid;
    const F pcp = t == 0 ? F::kVlanPcp : F::kInnerVlanPcp;
    const F tci = t == 0 ? F::kVlanTci : F::kInnerVlanTci;
    if ((mk & kTciPresent) && (v & kTciPresent) && mk != kTciPresent) {
      if (mk & 0x0fff) add_field(field_def(vid));
      if (mk & 0xe000) add_field(field_def(pcp));
    } else if (t == 0 && mk == kTciPresent) {
      add(v ? "vlan" : "novlan");
    } else {
      add_field(field_def(tci));
    }
  }

  if (arp) {
    emit(F::kArpOp);
    emit(F::kArpSpa);
    emit(F::kArpTpa);
    emit(F::kArpSha);
    emit(F::kArpTha);
  } else {
    emit(F::kIpv4Src);
    emit(F::kIpv4Dst);
  }
  emit(F::kIpv6Src);
  emit(F::kIpv6Dst);
  if (!proto_done && !arp) emit(F::kIpProto);
  emit(F::kDscp);
  emit(F::kEcn);
  emit(F::kTtl);
  emit(F::kIpFrag);

  if (proto == kProtoTcp) {
    emit(F::kTcpSrc);
    emit(F::kTcpDst);
  } else if (proto == kProtoUdp) {
    emit(F::kUdpSrc);
    emit(F::kUdpDst);
  } else if (proto == kProtoIcmp && v4) {
    emit_as(F::kIcmpType, F::kTpSrc);
    emit_as(F::kIcmpCode, F::kTpDst);
  } else if (proto == kProtoIcmpv6 && v6) {
    emit_as(F::kIcmpv6Type, F::kTpSrc);
    emit_as(F::kIcmpv6Code, F::kTpDst);
  } else {
    emit(F::kTpSrc);
    emit(F::kTpDst);
  }
  emit(F::kTcpFlags);
  emit(F::kSmcOption);
  emit(F::kNdTarget);
  if (!arp) {
    const bool nd = v6 && proto == kProtoIcmpv6;
    emit(nd ? F::kNdSll : F::kArpSha);
    emit(nd ? F::kNdTll : F::kArpTha);
  }
  emit(F::kTunId);
  emit(F::kRoceDqp);
  emit(F::kReg0);
  emit(F::kReg1);
  emit(F::kReg2);
  emit(F::kReg3);
  return out;
}

std::string format_key(const FlowKey& key, const PortNames& ports) {
  MaskedKey m;
  m.value = key;
  auto full = [&](F id) {
    const FieldDef& f = field_def(id);
    or_field(f, full_value(f), m.value, m.mask, false);  // value bits are already there
  };
  full(F::kInPort);
  full(F::kEthSrc);
  full(F::kEthDst);
  full(F::kEthType);
  if (key.vlan_tci[0] != 0) full(F::kVlanTci);
  if (key.vlan_tci[1] != 0) full(F::kInnerVlanTci);
  const uint32_t eth = load(key, kLocEthType);
  if (eth == kEthTypeArp) {
    full(F::kArpOp);
    full(F::kArpSpa);
    full(F::kArpTpa);
    full(F::kArpSha);
    full(F::kArpTha);
  } else if (eth == kEthTypeIpv4 || eth == kEthTypeIpv6) {
    const bool v4 = eth == kEthTypeIpv4;
    full(v4 ? F::kIpv4Src : F::kIpv6Src);
    full(v4 ? F::kIpv4Dst : F::kIpv6Dst);
    full(F::kIpProto);
    full(F::kDscp);
    full(F::kEcn);
    full(F::kTtl);
    const uint32_t frag = load(key, kLocFrag);
    store(m.mask, kLocFrag, frag ? (kFragAny | kFragLater) : kFragAny);
    if (!(frag & kFragLater)) {
      const uint8_t proto = key.ip_proto;
      if (proto == kProtoTcp) {
        full(F::kTpSrc);
        full(F::kTpDst);
        full(F::kTcpFlags);
        if (key.smc_option) full(F::kSmcOption);
      } else if (proto == kProtoUdp) {
        full(F::kTpSrc);
        full(F::kTpDst);
        if (key.flags & kFlagTunnel) full(F::kTunId);
        if (key.flags & kFlagRoce) full(F::kRoceDqp);
      } else if (proto == kProtoIcmp && v4) {
        full(F::kIcmpType);
        full(F::kIcmpCode);
      } else if (proto == kProtoIcmpv6 && !v4) {
        full(F::kIcmpv6Type);
        full(F::kIcmpv6Code);
        const uint32_t type = load(key, kLocIcmpType);
        const bool nd = (type == kNdNeighborSolicit || type == kNdNeighborAdvert) && load(key, kLocIcmpCode) == 0 &&
                        frag == 0;
        if (nd) {
          full(F::kNdTarget);
          static constexpr uint8_t kZeroMac[6] = {};
          if (type == kNdNeighborSolicit && std::memcmp(key.arp_sha, kZeroMac, 6) != 0) full(F::kNdSll);
          if (type == kNdNeighborAdvert && std::memcmp(key.arp_tha, kZeroMac, 6) != 0) full(F::kNdTll);
        }
      }
    }
  }
  for (unsigned r = 0; r < 4; ++r)
    if (key.regs[r] != 0) full(static_cast<F>(static_cast<unsigned>(F::kReg0) + r));
  for (size_t i = 0; i < kFlowKeyWords; ++i) key_words(m.value)[i] &= key_words(m.mask)[i];
  return format_match(m, ports);
}

}  // namespace esw::dp
