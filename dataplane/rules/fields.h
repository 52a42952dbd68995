#pragma once
// Match-field registry and the text forms of matches: the one place that knows field names (and their Open
// vSwitch aliases), where each field lives in the FlowKey, its width and bits, how its values are written and
// printed, whether it takes a mask, and what it requires (prerequisites). Used by the YAML rule compiler
// (set_match_field + finish_match), set_field actions (parse_field_value), trace (format_key, packet_synth.h)
// and `show` (format_match).
//
// Text form (after ovs-fields(7) / ovs-ofctl(8)): comma-separated items, each `field=value[/mask]` or a
// shorthand keyword:
//   in_port=vm1,eth_src=02:00:00:00:00:01,ipv4,ipv4_src=198.18.0.0/24,tcp,tcp_dst=80
// Values: ports by name or number; MACs aa:bb:cc:dd:ee:ff[/mask]; IPv4 a.b.c.d[/len|/a.b.c.d]; IPv6
// addr[/len|/addr]; integers decimal or 0x hex, [/mask]; ip_frag no|yes|first|later|not_later (or a number
// with a mask); tcp_flags +syn-ack (bits that must be set/clear), syn|ack (exactly these flags) or 0x012/0x017.
// A value is masked silently (198.18.0.1/24 is 198.18.0.0/24, as in OVS).
//
// Prerequisites, as OVS but convenient: a field implies its prerequisite when that is unambiguous (ipv4_src
// implies eth_type=0x0800, icmp_type implies ipv4 + ip_proto=1, tcp_dst implies ip_proto=6, nd_sll implies
// icmpv6_type=135, roce_dqp implies udp_dst=4791, inner VLAN fields imply an outer tag ...). What is
// ambiguous must be given: tcp_*/udp_*/ip_proto/dscp/ecn/ttl/ip_frag need the IP version from the rule
// (eth_type, an ipv4_/ipv6_ field, a shorthand), tp_src/tp_dst need tcp or udp, nd_target needs
// icmpv6_type=135 or 136. Contradictions are errors naming both sides ("ipv4_src conflicts with ipv6_dst").
// Like OVS, transport fields conflict with ip_frag=later (a later fragment has no L4 header), and ND
// fields / roce_dqp with any fragment (the parser does not look into fragments for them).
// tun_id has no prerequisite: it is 0 for packets without a recognised VXLAN/Geneve header (OVS semantics).
// regs are metadata (0 at ingress).
//
// Threading: all functions are reentrant; the registry is immutable. Control path only: allocates, never
// throws its own exceptions (bool + error text), but std::bad_alloc may escape.

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/fastpath/flow_key.h"

namespace esw::dp {

// A rule's match as the control plane builds it. value is always within mask (value & ~mask == 0).
// `given` is bookkeeping for set_match_field/finish_match (which fields and keywords the user wrote, so
// implications and error messages can name them); it is not part of the match: == compares value and mask
// only, and a MaskedKey built directly (given == 0) is still valid for every function here.
struct MaskedKey {
  FlowKey value{};
  FlowKey mask{};
  uint64_t given = 0;

  friend bool operator==(const MaskedKey& a, const MaskedKey& b) noexcept;
};

// Switch port names for in_port. Either member may be empty; numbers are always accepted (a name is tried
// first, so a port named "3" wins over port number 3). A name that does not map back to its index (or
// contains ',', '=', '/' or spaces) is printed as a number.
struct PortNames {
  std::function<std::optional<uint16_t>(std::string_view)> index_of;  // name -> port index
  std::function<std::string(uint16_t)> name_of;                        // port index -> name, "" if none

  // Port i is names[i].
  static PortNames from_list(std::vector<std::string> names);
};

enum class FieldId : uint8_t {
  kInPort,
  kEthSrc,
  kEthDst,
  kEthType,
  kVlanTci,
  kVlanVid,
  kVlanPcp,
  kInnerVlanTci,
  kInnerVlanVid,
  kInnerVlanPcp,
  kIpv4Src,
  kIpv4Dst,
  kIpv6Src,
  kIpv6Dst,
  kIpProto,
  kDscp,
  kEcn,
  kTtl,
  kIpFrag,
  kTcpSrc,
  kTcpDst,
  kUdpSrc,
  kUdpDst,
  kTpSrc,
  kTpDst,
  kTcpFlags,
  kSmcOption,
  kIcmpType,
  kIcmpCode,
  kIcmpv6Type,
  kIcmpv6Code,
  kArpOp,
  kArpSpa,
  kArpTpa,
  kArpSha,
  kArpTha,
  kNdTarget,
  kNdSll,
  kNdTll,
  kTunId,
  kRoceDqp,
  kReg0,
  kReg1,
  kReg2,
  kReg3,
  kCount
};
inline constexpr unsigned kFieldCount = static_cast<unsigned>(FieldId::kCount);

// How a value is written and printed.
enum class ValueKind : uint8_t {
  kPort,      // port name or number (in_port)
  kMac,       // aa:bb:cc:dd:ee:ff
  kIpv4,      // dotted quad; masks as /len or dotted
  kIpv6,      // RFC 4291 text; masks as /len or an address
  kDecimal,   // integer, printed in decimal (hex accepted)
  kHex,       // integer, printed in hex (decimal accepted)
  kFrag,      // ip_frag keywords
  kTcpFlags,  // +syn-ack, syn|ack or hex
};

// What a field requires of the rest of the match (see the header comment for what is implied).
enum class Prereq : uint8_t {
  kNone,
  kOuterVlan,  // an outer tag (implied)
  kIp,         // IPv4 or IPv6: must be given
  kIpv4,       // eth_type=0x0800 (implied)
  kIpv6,       // eth_type=0x86dd (implied)
  kArp,        // eth_type=0x0806 (implied)
  kTcp,        // IP version given + ip_proto=6 (implied)
  kUdp,        // IP version given + ip_proto=17 (implied)
  kTcpOrUdp,   // IP version given + ip_proto 6 or 17 given
  kIcmp,       // IPv4 + ip_proto=1 (implied)
  kIcmpv6,     // IPv6 + ip_proto=58 (implied)
  kNd,         // ICMPv6 + icmpv6_type 135 or 136 given, icmpv6_code=0 (implied)
  kNdNs,       // ICMPv6 + icmpv6_type=135 + icmpv6_code=0 (implied)
  kNdNa,       // ICMPv6 + icmpv6_type=136 + icmpv6_code=0 (implied)
  kRoce,       // UDP (IP version given) + udp_dst=4791 (implied)
};

struct FieldDef {
  FieldId id;
  std::string_view name;                    // canonical name
  std::array<std::string_view, 3> aliases;  // OVS and other names ("" = unused)
  uint8_t offset;                           // byte offset in FlowKey
  uint8_t width;                            // bytes in FlowKey: 1, 2, 4 (integers, IPv4), 6 (MAC), 16 (IPv6)
  bool big_endian;                          // stored in network order (integers only)
  // Integers and IPv4 (width <= 4): the bits of the stored integer (host order after byte swapping) that
  // this field covers; its value is (stored & bits) >> countr_zero(bits). 0 for MACs and IPv6 (all bytes).
  uint32_t bits;
  uint32_t present;  // host-order bits of the same stored integer forced to 1 by a match (VLAN tag present)
  ValueKind kind;
  bool maskable;
  bool writable;  // set_field may change it (read-only: eth_type, ip_proto, ip_frag, tcp_flags, ...)
  Prereq prereq;
  std::string_view help;

  // Largest value (integers): bits >> shift.
  uint32_t max_value() const noexcept;
};

// Shorthand keywords of the text form (ip, tcp6, vlan, ...).
struct KeywordDef {
  std::string_view name;
  std::string_view alias;  // "" = none
  std::string_view help;
};

// The registry, in canonical print order. find_field accepts canonical names and aliases.
std::span<const FieldDef> all_fields() noexcept;
std::span<const KeywordDef> all_keywords() noexcept;
const FieldDef* find_field(std::string_view name) noexcept;
const FieldDef& field_def(FieldId id) noexcept;

// Parses `field=value[/mask]` items and keywords separated by commas (spaces around items and '=' are
// ignored), then finish_match. Empty text = match everything. On error, out is unspecified and error is one
// line naming the item: "item 4 'ipv4_srcc=1.2.3.4': unknown field 'ipv4_srcc'".
bool parse_match(std::string_view text, const PortNames& ports, MaskedKey& out, std::string& error);

// Adds one field (by canonical name or alias) to m. Errors: unknown field, bad value or mask, mask on a
// field that takes none, field given twice, conflict with what m already holds (naming that field).
bool set_match_field(MaskedKey& m, std::string_view field, std::string_view value, const PortNames& ports,
                     std::string& error);
// Adds one shorthand keyword ("tcp6", "vlan", ...).
bool set_match_keyword(MaskedKey& m, std::string_view keyword, std::string& error);
// Applies implied prerequisites and checks the rest (missing IP version, conflicts). Idempotent.
bool finish_match(MaskedKey& m, std::string& error);

// Canonical text: a protocol shorthand first (tcp, udp6, arp, ip ...), then fields in registry order, named
// by context (arp_spa under arp, icmp_type under icmp, nd_sll under icmp6 ...). parse_match of the result
// gives the same value and mask for every match parse_match/finish_match produce. Empty match -> "".
std::string format_match(const MaskedKey& m, const PortNames& ports);

// A parsed packet's key, for trace: only the fields that are meaningful for its protocols (by eth_type,
// ip_proto, fragment and parser flags), exact values; parse_match of the result matches the key.
// Parser flags (malformed, QinQ) are not printed.
std::string format_key(const FlowKey& key, const PortNames& ports);

// One field's value (under mask) as text, as format_match prints it after "name=".
std::string format_field_value(const FieldDef& f, const FlowKey& value, const FlowKey& mask,
                               const PortNames& ports);

// For set_field actions: parses an exact value (no mask) of a writable field f. out_exact is reset and gets
// the value and a full mask over the field's own bits only (no VLAN present bit: set_field does not add tags).
bool parse_field_value(const FieldDef& f, std::string_view text, const PortNames& ports, MaskedKey& out_exact,
                       std::string& error);

}  // namespace esw::dp
