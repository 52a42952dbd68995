#pragma once
// Packet parser: turns the headers at the start of a frame into the FlowKey every later stage matches on,
// plus the header offsets actions need so they never re-parse.
//
// Guarantees
//  - Reads only data[0, len). Never allocates, throws or logs; safe on any byte sequence (fuzzed).
//  - key is fully overwritten (zeroed first, then filled), off is reset to HeaderOffsets{}.
//  - A layer's key fields and its offset are written only once that whole header (including its options)
//    has been validated. A truncated or inconsistent header sets kFlagMalformed and stops parsing there; the
//    outer layers already parsed stay filled.
//  - Lengths bound what follows: IPv4 total length / IPv6 payload length bound L4 (trailing Ethernet padding
//    is ignored), the UDP length bounds the tunnel / BTH header.
//
// Conventions (see flow_key.h for the field byte orders)
//  - VLAN: up to two tags, outer TPID 0x8100 or 0x88a8, inner TPID 0x8100; anything else is malformed.
//    kFlagQinQ is set for any double-tagged frame. eth_type is the innermost ethertype (raw value, also for
//    802.3 length fields, which are not parsed further).
//  - ARP: only Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4). ip_proto = low byte of the opcode.
//  - IPv4: ip_frag = kFragAny if MF or offset != 0, | kFragLater if offset != 0 (no L4 then). The header
//    checksum is not verified.
//  - IPv6: walks hop-by-hop, routing, destination options, fragment and AH headers (at most 8, else
//    malformed); ip_proto = the first other next header. A fragment header sets kFragAny (even an atomic
//    fragment); offset != 0 adds kFragLater, ip_proto is then the fragment header's next header and parsing
//    stops. Payload length 0 (jumbograms) is not supported: it bounds the packet to the fixed header.
//  - L4 is parsed for TCP, UDP, ICMP (IPv4 only) and ICMPv6 (IPv6 only); off.l4 stays kNone for other
//    protocols, which only set ip_proto.
//  - TCP: options are walked (length errors are malformed); smc_option = 1 for kind 254, length >= 6,
//    ExID E2 D4 C3 D9. Options after End-of-Option-List are ignored. kFlagSmc marks the segments the SMC stage
//    looks at: SYN (or SYN-ACK) with the SMC option, FIN or RST, or a payload (within the IP length) whose first
//    4 bytes are a CLC eyecatcher (E2D4C3D9 / E2D4C3C4).
//  - UDP: length must be in [8, bytes available]; for fragments it is not checked (it covers the whole
//    datagram) and no tunnel / RoCE header is looked at.
//  - UDP dst 4789 VXLAN: header with the I flag -> tun_id, kFlagTunnel, off.tun, off.inner_l2 (an inner
//    Ethernet header must be present); I flag clear -> plain UDP. UDP dst 6081 Geneve: version 0 (else
//    malformed), options skipped, tun_id, kFlagTunnel, off.tun; off.inner_l2 only for protocol 0x6558.
//    UDP dst 4791 RoCEv2: 12-byte BTH -> roce_dqp, kFlagRoce; an RDMA WRITE FIRST/ONLY(+imm) or READ request
//    (RC or UC) with its 16-byte RETH present also sets kFlagRoceReth (the rkey is then at l4 + 8 + 12 + 8).
//    The inner frame of a tunnel is not parsed.
//  - ICMP / ICMPv6: tp_src = type, tp_dst = code (16-bit big-endian). Neighbour Discovery (RS, RA, NS, NA
//    with code 0, not fragmented): NS/NA target into nd_target; options are walked (length 0 or past the end
//    is malformed); the first 8-byte source / target link-layer address option goes into arp_sha / arp_tha.
//
// Callers pass the contiguous bytes they have (the first mbuf segment): headers not in it look truncated.

#include <cstdint>

#include "dataplane/fastpath/flow_key.h"

namespace esw::dp {

// Parses data[0, len) into key and off. key.in_port = in_port. Returns false iff the packet is malformed
// (key.flags has kFlagMalformed).
bool parse_packet(const uint8_t* data, uint32_t len, uint16_t in_port, FlowKey& key,
                  HeaderOffsets& off) noexcept;

}  // namespace esw::dp
