// SPDX-License-Identifier: BSD-3-Clause
// eswitch's XDP program for an af_xdp uplink ("xdp: {program: builtin}" on an uplink): one NIC serves both the
// host's own networking and the switch. Only the frames the switch owns go to the AF_XDP socket; everything
// else is XDP_PASS'ed to the host kernel, untouched.
//
// A frame is the switch's when
//  - its destination MAC is in esw_macs: the vports' hw_addrs and the solicited-node multicast MACs
//    (33:33:ff:xx:xx:xx) of their IPv6 addresses, so neighbour solicitations for a vport reach it;
//  - it is an ARP frame whose target IPv4 address is within a vport's bound prefixes (esw_arp), whatever its
//    destination MAC (ARP requests are broadcast: the host keeps the ARP for its own addresses);
//  - it is any other broadcast and esw_ucfg.broadcast is set, or any other multicast and esw_ucfg.multicast is
//    set (`xdp: {broadcast: switch | host, multicast: switch | host}`, host by default).
// eswitchd fills the maps from the vports of the config on every apply and reads esw_ustats (per CPU):
// index 0 frames given to the switch, 1 frames passed to the host.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u32);
} xsks_map SEC(".maps");

struct esw_uplink_cfg {
  __u8 broadcast;  // 1: other broadcasts go to the switch
  __u8 multicast;  // 1: other multicasts go to the switch
  __u8 pad[2];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct esw_uplink_cfg);
} esw_ucfg SEC(".maps");

struct esw_mac {
  __u8 addr[6];
  __u8 pad[2];
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 8192);
  __type(key, struct esw_mac);
  __type(value, __u8);
} esw_macs SEC(".maps");

struct esw_lpm4 {
  __u32 prefixlen;
  __u8 addr[4];
};

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 8192);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct esw_lpm4);
  __type(value, __u8);
} esw_arp SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} esw_ustats SEC(".maps");

// ARP for IPv4 over Ethernet: the fixed part, then sender MAC/IP, target MAC/IP.
struct arp_eth4 {
  __be16 htype, ptype;
  __u8 hlen, plen;
  __be16 op;
  __u8 sha[6], spa[4], tha[6], tpa[4];
} __attribute__((packed));

static __always_inline void count(__u32 i) {
  __u64* n = bpf_map_lookup_elem(&esw_ustats, &i);
  if (n) *n += 1;
}

SEC("xdp")
int esw_uplink(struct xdp_md* ctx) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) goto host;

  struct esw_mac m = {};
  __builtin_memcpy(m.addr, eth->h_dest, 6);
  if (bpf_map_lookup_elem(&esw_macs, &m)) goto sw;

  if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
    struct arp_eth4* a = (void*)(eth + 1);
    if ((void*)(a + 1) > data_end) goto host;
    if (a->ptype != bpf_htons(ETH_P_IP) || a->plen != 4) goto host;
    struct esw_lpm4 k = {.prefixlen = 32};
    __builtin_memcpy(k.addr, a->tpa, 4);
    if (bpf_map_lookup_elem(&esw_arp, &k)) goto sw;
    goto host;  // ARP for an address that is not a vport's: the host's
  }
  if (eth->h_dest[0] & 1) {
    __u32 zero = 0;
    struct esw_uplink_cfg* cfg = bpf_map_lookup_elem(&esw_ucfg, &zero);
    if (!cfg) goto host;
    __u8 all = eth->h_dest[0] & eth->h_dest[1] & eth->h_dest[2] & eth->h_dest[3] & eth->h_dest[4] & eth->h_dest[5];
    if (all == 0xff ? cfg->broadcast : cfg->multicast) goto sw;
  }
host:
  count(1);
  return XDP_PASS;
sw:
  count(0);
  return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
