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

static __always_inline int drop(__u32 reason) {
  __u64* n = bpf_map_lookup_elem(&esw_drops, &reason);
  if (n) *n += 1;
  return XDP_DROP;
}

SEC("xdp")
int esw_guard(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u32 zero = 0;
  struct esw_guard_cfg* cfg = bpf_map_lookup_elem(&esw_cfg, &zero);
  if (!cfg || !cfg->enabled) goto pass;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) goto pass;  // the worker counts it as malformed
  __u8 diff = 0;
#pragma unroll
  for (int i = 0; i < 6; i++) diff |= eth->h_source[i] ^ cfg->mac[i];
  if (diff != 0) return drop(0);

  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end) goto pass;
    if (ip->saddr == 0) goto pass;
    struct esw_lpm4 k = {.prefixlen = 32};
    __builtin_memcpy(k.addr, &ip->saddr, 4);
    if (!bpf_map_lookup_elem(&esw_ipv4, &k)) return drop(1);
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = (void*)(eth + 1);
    if ((void*)(ip6 + 1) > data_end) goto pass;
    const __u8* s = ip6->saddr.in6_u.u6_addr8;
    __u8 any = 0, not_ll = 0;  // branch-free: the verifier walks one path
#pragma unroll
    for (int i = 0; i < 16; i++) {
      any |= s[i];
      not_ll |= s[i] ^ cfg->link_local[i];
    }
    if (any == 0 || not_ll == 0) goto pass;
    struct esw_lpm6 k = {.prefixlen = 128};
    __builtin_memcpy(k.addr, s, 16);
    if (!bpf_map_lookup_elem(&esw_ipv6, &k)) return drop(1);
  }
pass:
  return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
