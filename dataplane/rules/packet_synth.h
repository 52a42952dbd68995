#pragma once
// Packet synthesis for trace: builds a real frame that a rule's match accepts, so `trace` can describe a
// match and run an actual packet through the parser and the pipeline.
//
// Guarantees
//  - parse_packet(frame) gives a well-formed key equal to m.value on every bit of m.mask, except in_port and
//    regs[] (metadata, not in the bytes: the caller sets them). This is checked before returning: a match no
//    packet can satisfy (ip_proto=43 on IPv6, tun_id=5 with tcp, eth_type=0x8100 ...) is an error
//    naming the field, never a wrong packet.
//  - Well-formed frames: lengths and IPv4 header / TCP / UDP / ICMP / ICMPv6 checksums are right (fragments
//    carry the checksum of their own part), RoCEv2 carries a valid ICRC, at least 64 bytes (without FCS),
//    the IP and L4 lengths cover the whole frame (no Ethernet trailer) except for ARP and non-IP frames.
//  - Defaults where the mask leaves a choice: MACs 02:00:00:00:00:01 -> :02, 198.18.0.1 -> 198.18.0.2,
//    2001:db8::1 -> 2001:db8::2, TTL 64 (255 for ND), TCP 1024 -> 80 with SYN, UDP 1024 -> 80 (4789 when a
//    VNI is asked, 4791 for a RoCE QP), ICMP echo request, ICMPv6 echo request (NS when an ND field is
//    asked, NA for nd_tll), ARP request. Without eth_type: IPv4 unless an IPv6 field is matched.
//  - Covers Ethernet, 802.1Q / QinQ (0x88a8 outer), ARP, IPv4 (first/later fragments), IPv6 (fragment
//    header), TCP (SYNs with MSS/SACK/window-scale options; the SMC option kind 254 len 6 ExID 0xE2D4C3D9),
//    UDP, ICMP, ICMPv6 incl. RS/RA/NS/NA with link-layer address options, VXLAN (4789) and Geneve (6081)
//    with an inner frame, RoCEv2 BTH (4791).
//
// Control path: allocates, no exceptions of its own.

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/rules/fields.h"

namespace esw::dp {

bool synthesize_packet(const MaskedKey& m, std::vector<uint8_t>& out, std::string& error);

}  // namespace esw::dp
