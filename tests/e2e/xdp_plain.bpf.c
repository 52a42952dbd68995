// SPDX-License-Identifier: BSD-3-Clause
// A foreign XDP program for tests/e2e/xdp_offload.sh (tests/tools/xdp_swap.cc attaches it in place of eswitch's
// guard program, as another loader would): every frame goes to the AF_XDP socket of its rx queue. Its xsks_map
// is the replaced program's (same definition), so the af_xdp PMD's socket keeps receiving; it has none of
// eswitch's maps, so eswitchd must see that it is not its program.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u32);
} xsks_map SEC(".maps");

SEC("xdp")
int esw_test_plain(struct xdp_md* ctx) { return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS); }

char _license[] SEC("license") = "Dual BSD/GPL";
