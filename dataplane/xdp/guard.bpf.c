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
// checks, untagged IPv4 frames are tried against esw_rules[0 .. esw_nrules[0]) — drop rules of table 0 that no
// higher-priority rule overlaps, so the first match is the software's answer too — and a match is dropped and
// counted per CPU in esw_rule_hits[slot]. Everything else goes on to the socket; the worker keeps the full rule
// set. ESW_XDP_MAX_RULES sizes the rule maps (tests build a small variant to see a full map).
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

struct esw_guard_cfg {
  __u8 mac[6];
  __u8 enabled;
  __u8 pad;
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

// Layout shared with dataplane/ports/xdp_guard.cc (XdpDropRule). Addresses and port in network order.
struct esw_rule {
  __u32 src, src_mask;
  __u32 dst, dst_mask;
  __u16 dport, dport_mask;
  __u8 proto, proto_mask;
  __u8 pad[2];
};

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

// The offloaded drop rules: the slot of the first rule the frame matches, or -1.
static __always_inline int rule_check(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  __u32* np = bpf_map_lookup_elem(&esw_nrules, &zero);
  if (!np || *np == 0) return -1;
  const __u32 n = *np;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return -1;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return -1;  // VLAN-tagged frames too: the worker decides
  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > data_end) return -1;
  if (ip->version != 4 || ip->ihl < 5) return -1;  // the worker's parser calls it malformed
  // L4 destination port: only for an unfragmented TCP/UDP packet whose header is all there.
  int have_port = 0;
  __u16 dport = 0;
  if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) && (ip->frag_off & bpf_htons(0x3fff)) == 0) {
    __u8* l4 = (__u8*)ip + ((__u32)ip->ihl & 0xf) * 4;
    if ((void*)(l4 + 4) <= data_end) {
      dport = *(__u16*)(l4 + 2);
      have_port = 1;
    }
  }
  for (__u32 i = 0; i < ESW_XDP_MAX_RULES; i++) {
    if (i >= n) break;
    __u32 slot = i;
    struct esw_rule* r = bpf_map_lookup_elem(&esw_rules, &slot);
    if (!r) break;
    if ((ip->saddr & r->src_mask) != r->src) continue;
    if ((ip->daddr & r->dst_mask) != r->dst) continue;
    if ((ip->protocol & r->proto_mask) != r->proto) continue;
    if (r->dport_mask != 0 && (!have_port || (dport & r->dport_mask) != r->dport)) continue;
    return (int)i;
  }
  return -1;
}

SEC("xdp")
int esw_guard(struct xdp_md* ctx) {
  const int reason = guard_check(ctx);
  if (reason >= 0) return drop((__u32)reason);
  const int slot = rule_check(ctx);
  if (slot >= 0) {
    __u32 k = (__u32)slot;
    __u64* n = bpf_map_lookup_elem(&esw_rule_hits, &k);
    if (n) *n += 1;
    return XDP_DROP;
  }
  return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
