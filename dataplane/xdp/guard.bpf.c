// SPDX-License-Identifier: BSD-3-Clause
// eswitch's XDP program for af_xdp vports ("xdp: {program: builtin}"): the simple part of the vport binding
// (dataplane/fastpath/binding.h) enforced in the kernel, before a frame costs the poll loop anything.
//
//  - source MAC != the vport's hw_addr             -> XDP_DROP, counted as spoofed_mac
//  - untagged IPv4 whose source is not in a bound prefix (0.0.0.0 excepted: DHCP is the worker's call)
//                                                   -> XDP_DROP, counted as spoofed_ip
//  - untagged IPv6 whose source is not in a bound prefix (:: and the EUI-64 link-local excepted)
//                                                   -> XDP_DROP, counted as spoofed_ip
//  - everything else goes to the AF_XDP socket of the rx queue (xsks_map, the map the af_xdp PMD fills), where
//    the worker's binding stage checks the rest (ARP, ND, VLAN, DHCP, RA, RoCE, SMC). The checks above run in
//    the binding's order, so a frame gets the same reason here as it would there.
// eswitchd fills esw_cfg / esw_ipv4 / esw_ipv6 from the vport's binding on every apply (enabled = 0 while the
// vport is inactive or spoofchk is off: then everything goes to the worker) and reads esw_drops (per CPU).
//
// XDP offload tier (`offload: auto | required` on the vport, dataplane/offload/xdp_tier.h): after the binding
// checks, untagged frames are tried against esw_rules[0 .. esw_nrules[0]) — drop rules of table 0 that no
// higher-priority rule overlaps, so the first match is the software's answer too — on MACs, ethertype, IPv4 /
// IPv6 source and destination, IP protocol and L4 destination port, and a match is dropped and counted per CPU
// in esw_rule_hits[slot] / esw_rule_bytes[slot]. A steer rule (action ESW_ACT_REDIRECT) redirects the frames it
// may steer (see rule_check: UDP and ICMPv4 no stage of the worker but the tables acts on) to the devmap
// esw_tx[tx_slot], counted the same way; its other frames go to the worker. Which frames meet the rules follows the binding stage (esw_cfg.rule_frames): on a
// spoof-checked vport only IPv4/IPv6 (the binding decides ARP and drops other ethertypes before any table), on
// an inactive one none. Everything else goes on to the socket; the worker keeps the full rule set.
// ESW_XDP_MAX_RULES sizes the rule maps (tests build a small variant to see a full map).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u32);
} xsks_map SEC(".maps");

// rule_frames: which frames meet the offloaded rules (ESW_RULES_*).
#define ESW_RULES_NONE 0
#define ESW_RULES_IP 1
#define ESW_RULES_ALL 2
struct esw_guard_cfg {
  __u8 mac[6];
  __u8 enabled;
  __u8 rule_frames;
  __u8 link_local[16];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct esw_guard_cfg);
} esw_cfg SEC(".maps");

struct esw_lpm4 {
  __u32 prefixlen;
  __u8 addr[4];
};
struct esw_lpm6 {
  __u32 prefixlen;
  __u8 addr[16];
};

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 1024);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct esw_lpm4);
  __type(value, __u8);
} esw_ipv4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 1024);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct esw_lpm6);
  __type(value, __u8);
} esw_ipv6 SEC(".maps");

// Index 0: spoofed_mac, 1: spoofed_ip (dataplane/ports/xdp_guard.h).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} esw_drops SEC(".maps");

#ifndef ESW_XDP_MAX_RULES
#define ESW_XDP_MAX_RULES 64
#endif

// Layout shared with dataplane/offload/xdp_drop_rule.h (XdpDropRule). Values pre-masked, network order.
struct esw_rule {
  __u32 src, src_mask;
  __u32 dst, dst_mask;
  __u32 src6[4], src6_mask[4];
  __u32 dst6[4], dst6_mask[4];
  __u8 dmac[6], dmac_mask[6];
  __u8 smac[6], smac_mask[6];
  __u16 eth_type, eth_type_mask;
  __u16 dport, dport_mask;
  __u8 proto, proto_mask;
  __u8 action;   // ESW_ACT_*
  __u8 tx_slot;  // ESW_ACT_REDIRECT: key of esw_tx
  __u8 fields;   // ESW_FIELD_*: the wide compares this rule needs (masks of the others are all zero)
  __u8 pad[3];
};
#define ESW_FIELD_MACS 1
#define ESW_FIELD_IPV6 2
#define ESW_ACT_DROP 0
#define ESW_ACT_REDIRECT 1

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, ESW_XDP_MAX_RULES);
  __type(key, __u32);
  __type(value, struct esw_rule);
} esw_rules SEC(".maps");

// [0]: how many esw_rules slots are live (eswitchd sets 0 while it rewrites them: then all goes to the worker).
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} esw_nrules SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ESW_XDP_MAX_RULES);
  __type(key, __u32);
  __type(value, __u64);
} esw_rule_hits SEC(".maps");

// Steer rules' destinations: slot -> ifindex of the destination af_xdp port's interface (eswitchd checked that it
// takes XDP redirects, dataplane/ports/xdp_redirect.h).
struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u32);
} esw_tx SEC(".maps");

// Bytes of the frames each slot's rule took (per CPU; esw_rule_hits has the frames): steered bytes are folded into
// the destination's tx_bytes and the rule's count.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ESW_XDP_MAX_RULES);
  __type(key, __u32);
  __type(value, __u64);
} esw_rule_bytes SEC(".maps");

static __always_inline int drop(__u32 reason) {
  __u64* n = bpf_map_lookup_elem(&esw_drops, &reason);
  if (n) *n += 1;
  return XDP_DROP;
}

// The binding checks: -1 (pass on) or the drop reason.
static __always_inline int guard_check(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  struct esw_guard_cfg* cfg = bpf_map_lookup_elem(&esw_cfg, &zero);
  if (!cfg || !cfg->enabled) return -1;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return -1;  // the worker counts it as malformed
  __u8 diff = 0;
#pragma unroll
  for (int i = 0; i < 6; i++) diff |= eth->h_source[i] ^ cfg->mac[i];
  if (diff != 0) return 0;

  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end) return -1;
    if (ip->saddr == 0) return -1;
    struct esw_lpm4 k = {.prefixlen = 32};
    __builtin_memcpy(k.addr, &ip->saddr, 4);
    if (!bpf_map_lookup_elem(&esw_ipv4, &k)) return 1;
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > data_end) return -1;
    const __u8* s = ip6->saddr.in6_u.u6_addr8;
    __u8 any = 0, not_ll = 0;  // branch-free: the verifier walks one path
#pragma unroll
    for (int i = 0; i < 16; i++) {
      any |= s[i];
      not_ll |= s[i] ^ cfg->link_local[i];
    }
    if (any == 0 || not_ll == 0) return -1;
    struct esw_lpm6 k = {.prefixlen = 128};
    __builtin_memcpy(k.addr, s, 16);
    if (!bpf_map_lookup_elem(&esw_ipv6, &k)) return 1;
  }
  return -1;
}

// The offloaded drop rules: the slot of the first rule the frame matches, or -1. Fields are read as the worker's
// parser reads them (dataplane/fastpath/parser.cc); what cannot be read the same way is left to the worker.
// Returns the slot | 0x10000 for a steer rule (its devmap key in *tx_slot).
static __always_inline int rule_check(struct xdp_md* ctx, __u32* tx_slot) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  __u32* np = bpf_map_lookup_elem(&esw_nrules, &zero);
  if (!np || *np == 0) return -1;
  const __u32 n = *np;
  struct esw_guard_cfg* cfg = bpf_map_lookup_elem(&esw_cfg, &zero);
  if (!cfg || cfg->rule_frames == ESW_RULES_NONE) return -1;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return -1;
  const __u16 type = eth->h_proto;
  // VLAN-tagged frames: the worker decides (its key has the inner ethertype and the tags).
  if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD)) return -1;
  __u32 s4 = 0, d4 = 0;
  __u32 s6[4] = {0, 0, 0, 0}, d6[4] = {0, 0, 0, 0};
  int proto = -1;  // -1: not known here (not IP, or behind IPv6 extension headers)
  int have_port = 0;
  __u16 dport = 0;
  // May a steer rule take this frame? Only when no stage of the worker other than the tables could act on it
  // (dataplane/xdp/README.md, "Steer rules"): an unfragmented, well-formed UDP datagram or ICMPv4 message from
  // a non-zero source, UDP not to/from the DHCP / DHCPv6 ports (DHCP guard) nor to RoCEv2, VXLAN or Geneve.
  // TCP (the SMC stage follows segments by its own state), ICMPv6 (RA guard, ND checks), fragments, IPv6
  // extension headers: the worker's.
  int steerable = 0;
  __u16 sport = 0;
  if (type == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end) return -1;
    if (ip->version != 4 || ip->ihl < 5) return -1;  // the worker's parser calls it malformed
    s4 = ip->saddr;
    d4 = ip->daddr;
    proto = ip->protocol;
    // L4 destination port: only for an unfragmented TCP/UDP packet whose header is all there.
    if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) && (ip->frag_off & bpf_htons(0x3fff)) == 0) {
      __u8* l4 = (__u8*)ip + ((__u32)ip->ihl & 0xf) * 4;
      if ((void*)(l4 + 4) <= data_end) {
        sport = *(__u16*)l4;
        dport = *(__u16*)(l4 + 2);
        have_port = 1;
      }
    }
    // Steerable: the worker's parser would find it well-formed (total length within the frame, the UDP length
    // within it, at least 4 bytes of ICMP) and no stage before or after the tables acts on it.
    const __u32 ihl = ((__u32)ip->ihl & 0xf) * 4;
    const __u32 tot = bpf_ntohs(ip->tot_len);
    __u8* l4 = (__u8*)ip + ihl;
    if (s4 != 0 && (ip->frag_off & bpf_htons(0x3fff)) == 0 && tot >= ihl && (void*)((__u8*)ip + tot) <= data_end) {
      if (ip->protocol == IPPROTO_ICMP) {
        steerable = tot >= ihl + 4;
      } else if (ip->protocol == IPPROTO_UDP && (void*)(l4 + 8) <= data_end) {
        const __u32 ulen = bpf_ntohs(*(__u16*)(l4 + 4));
        steerable = ulen >= 8 && ulen <= tot - ihl;
      }
    }
  } else if (type == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > data_end) return -1;
    if (ip6->version != 6) return -1;
#pragma unroll
    for (int w = 0; w < 4; w++) {
      s6[w] = ip6->saddr.in6_u.u6_addr32[w];
      d6[w] = ip6->daddr.in6_u.u6_addr32[w];
    }
    const __u8 nh = ip6->nexthdr;
    // The worker's protocol is the one after the extension headers (hop-by-hop, routing, fragment, AH,
    // destination options): behind one, protocol and port rules are the worker's call.
    if (nh != 0 && nh != 43 && nh != 44 && nh != 51 && nh != 60) {
      proto = nh;
      if (nh == IPPROTO_TCP || nh == IPPROTO_UDP) {
        __u8* l4 = (__u8*)(ip6 + 1);
        if ((void*)(l4 + 4) <= data_end) {
          sport = *(__u16*)l4;
          dport = *(__u16*)(l4 + 2);
          have_port = 1;
          const __u32 plen = bpf_ntohs(ip6->payload_len);
          if (nh == IPPROTO_UDP && (void*)(l4 + 8) <= data_end && (void*)(l4 + plen) <= data_end) {
            const __u32 ulen = bpf_ntohs(*(__u16*)(l4 + 4));
            steerable = ulen >= 8 && ulen <= plen && (s6[0] | s6[1] | s6[2] | s6[3]) != 0;
          }
        }
      }
    }
  } else if (cfg->rule_frames != ESW_RULES_ALL) {
    return -1;  // ARP and other ethertypes on a spoof-checked vport: the binding stage's call
  }
  if (steerable && have_port) {
    const __u16 p67 = bpf_htons(67), p68 = bpf_htons(68), p546 = bpf_htons(546), p547 = bpf_htons(547);
    // DHCP/DHCPv6 (the binding's DHCP guard), RoCEv2 (RoCE off, roce_strict), VXLAN and Geneve (the parser
    // reads the inner headers and may call the frame malformed).
    if (sport == p67 || sport == p68 || sport == p546 || sport == p547 || dport == p67 || dport == p68 ||
        dport == p546 || dport == p547 || dport == bpf_htons(4791) || dport == bpf_htons(4789) ||
        dport == bpf_htons(6081)) {
      steerable = 0;
    }
  }
  for (__u32 i = 0; i < ESW_XDP_MAX_RULES; i++) {
    if (i >= n) break;
    __u32 slot = i;
    struct esw_rule* r = bpf_map_lookup_elem(&esw_rules, &slot);
    if (!r) break;
    if ((type & r->eth_type_mask) != r->eth_type) continue;
    if (r->fields & ESW_FIELD_MACS) {
      __u8 diff = 0;
#pragma unroll
      for (int b = 0; b < 6; b++) {
        diff |= (eth->h_dest[b] & r->dmac_mask[b]) ^ r->dmac[b];
        diff |= (eth->h_source[b] & r->smac_mask[b]) ^ r->smac[b];
      }
      if (diff != 0) continue;
    }
    if ((s4 & r->src_mask) != r->src) continue;
    if ((d4 & r->dst_mask) != r->dst) continue;
    if (r->fields & ESW_FIELD_IPV6) {
      __u32 diff6 = 0;
#pragma unroll
      for (int w = 0; w < 4; w++) {
        diff6 |= (s6[w] & r->src6_mask[w]) ^ r->src6[w];
        diff6 |= (d6[w] & r->dst6_mask[w]) ^ r->dst6[w];
      }
      if (diff6 != 0) continue;
    }
    if (r->proto_mask != 0 && (proto < 0 || ((__u8)proto & r->proto_mask) != r->proto)) continue;
    if (r->dport_mask != 0 && (!have_port || (dport & r->dport_mask) != r->dport)) continue;
    // No other offloaded rule can match a frame this one matches: a steer rule's frame the program may not
    // steer goes to the worker.
    if (r->action == ESW_ACT_REDIRECT) {
      if (!steerable) return -1;
      *tx_slot = r->tx_slot;
      return (int)i | 0x10000;
    }
    return (int)i;
  }
  return -1;
}

SEC("xdp")
int esw_guard(struct xdp_md* ctx) {
  const int reason = guard_check(ctx);
  if (reason >= 0) return drop((__u32)reason);
  __u32 tx_slot = 0;
  const int hit = rule_check(ctx, &tx_slot);
  if (hit >= 0) {
    __u32 k = (__u32)hit & 0xffff;
    if (hit & 0x10000) {
      // The destination's slot missing (eswitchd could not write it): the worker has the rule.
      if (bpf_redirect_map(&esw_tx, tx_slot, 0) != XDP_REDIRECT) return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
    }
    __u64* n = bpf_map_lookup_elem(&esw_rule_hits, &k);
    if (n) *n += 1;
    __u64* b = bpf_map_lookup_elem(&esw_rule_bytes, &k);
    if (b) *b += (__u64)(ctx->data_end - ctx->data);
    return (hit & 0x10000) ? XDP_REDIRECT : XDP_DROP;
  }
  return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
