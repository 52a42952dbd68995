#!/usr/bin/env bash
# End-to-end: eswitch's own XDP program (dataplane/xdp/guard.bpf.c) on an af_xdp vport.
#  1. The same spoof corpus (forged source MAC, forged IPv4 source, forged IPv6 source, plus legitimate frames)
#     is sent from the tenant namespace twice: with `xdp: {program: none}` (the PMD's own program: the worker's
#     binding stage drops them) and with `xdp: {program: builtin}` (dropped in the kernel). Both runs must count
#     the same drops per reason on the vport, the legitimate frames must reach vm2 in both, and with the program
#     the worker's rx counter must have seen only the legitimate frames.
#  2. The program's maps follow the config: after `eswitchctl apply` binds vm1 to another address, frames from
#     the new address pass and frames from the old one die in XDP.
#  3. Errors name the cause: xdp on a non-af_xdp attachment (validate), a mode the kernel did not use, a program
#     the verifier refuses (start-up: one line with the verifier's last words).
#
# usage: xdp_guard.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
esw_e2e_begin xdpg
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
MAC1=02:00:c6:12:00:01 MAC2=02:00:c6:12:00:02

esw_host_add "$P" t1 $MAC1 198.18.0.1/24
esw_host_add "$P" t2 $MAC2 198.18.0.2/24
# The tenant's kernel stays quiet (no IPv6 ND/MLD): the only frames from t1 are the ones the test sends.
ip netns exec "$P-t1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec "$P-t1" sysctl -qw "net.ipv6.conf.${P}t1.disable_ipv6=1"

# config PROGRAM [MODE] [VM1_IPV4]
config() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 512, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - name: vm1
    hw_addr: "$MAC1"
    ipv4: [${3:-198.18.0.1}]
    ipv6: ["2001:db8::1"]
    attach: { devargs: "net_af_xdp0,iface=${P}t1p,start_queue=0,queue_count=1", xdp: { program: $1, mode: ${2:-auto} } }
  - { name: vm2, hw_addr: "$MAC2", ipv4: [198.18.0.2], ipv6: ["2001:db8::2"], attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
YAML
}

# The corpus: 20 forged-MAC, 15 forged-IPv4, 10 forged-IPv6 frames, 5 legitimate UDP frames to vm2.
/usr/bin/python3 - "$WORK" <<'PY'
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPv6, UDP, Raw, wrpcap
w = sys.argv[1]
m1, m2 = "02:00:c6:12:00:01", "02:00:c6:12:00:02"
spoof = ([Ether(src="02:00:c6:12:00:99", dst=m2) / IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=1000 + i, dport=9)
          for i in range(20)] +
         [Ether(src=m1, dst=m2) / IP(src="198.18.0.99", dst="198.18.0.2") / UDP(sport=2000 + i, dport=9) for i in range(15)] +
         [Ether(src=m1, dst=m2) / IPv6(src="2001:db8::99", dst="2001:db8::2") / UDP(sport=3000 + i, dport=9) for i in range(10)])
legit = [Ether(src=m1, dst=m2) / IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=4000 + i, dport=9) / Raw(b"legit")
         for i in range(5)]
wrpcap(w + "/corpus.pcap", spoof + legit)
# For the apply check: 7 frames from 198.18.0.11, 4 from 198.18.0.1.
wrpcap(w + "/new_ip.pcap", [Ether(src=m1, dst=m2) / IP(src="198.18.0.11", dst="198.18.0.2") / UDP(sport=5000 + i, dport=9)
                            for i in range(7)])
wrpcap(w + "/old_ip.pcap", [Ether(src=m1, dst=m2) / IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=6000 + i, dport=9)
                            for i in range(4)])
PY

# counters: "<vm1 worker rx> <spoofed_mac> <spoofed_ip> <vm2 tx>"
counters() {
  ctl show vports --json | /usr/bin/python3 -c '
import json, sys
v = {x["name"]: x for x in json.load(sys.stdin)["vports"]}
d = v["vm1"]["drops"]
print(v["vm1"]["rx_packets"], d.get("spoofed_mac", 0), d.get("spoofed_ip", 0), v["vm2"]["tx_packets"])'
}

# run PROGRAM: starts eswitchd, sends the corpus; "rx mac ip vm2tx" deltas in $WORK/PROGRAM.deltas.
run() {
  config "$1" >"$WORK/$1.yaml"
  esw_start_eswitchd "$ESWITCHD" "$WORK/$1.yaml"
  for _ in $(seq 50); do [[ -S "$SOCK" ]] && break; sleep 0.1; done
  sleep 0.5
  local a b
  read -r -a a <<<"$(counters)"
  ip netns exec "$P-t1" /usr/bin/python3 "$HERE/frames.py" send "${P}t1" "$WORK/corpus.pcap"
  sleep 1
  read -r -a b <<<"$(counters)"
  echo "$((b[0] - a[0])) $((b[1] - a[1])) $((b[2] - a[2])) $((b[3] - a[3]))" >"$WORK/$1.deltas"
}

run none
read -r rx_sw mac_sw ip_sw fwd_sw <"$WORK/none.deltas"
esw_stop_eswitchd
echo "program none:    worker rx +$rx_sw, spoofed_mac +$mac_sw, spoofed_ip +$ip_sw, vm2 tx +$fwd_sw"
((mac_sw == 20 && ip_sw == 25)) || fail "binding stage counted spoofed_mac +$mac_sw spoofed_ip +$ip_sw, expected 20 and 25"
# (Anything else the tenant's kernel sends passes and is forwarded: rx - forwarded = what the worker dropped.)
((fwd_sw >= 5)) || fail "vm2 got $fwd_sw legitimate frames, expected 5"
((rx_sw - fwd_sw == 45)) || fail "worker rx +$rx_sw, forwarded +$fwd_sw: it should have seen and dropped the 45 spoofed frames"

run builtin
read -r rx_x mac_x ip_x fwd_x <"$WORK/builtin.deltas"
mode=$(ip -d link show "${P}t1p" | grep -oE '\bxdp(generic|drv|offload)?\b' | head -1)
grep -q "esw_guard" < <(ip -d link show "${P}t1p") || fail "eswitch's program (esw_guard) is not on ${P}t1p"
echo "program builtin: worker rx +$rx_x, spoofed_mac +$mac_x, spoofed_ip +$ip_x, vm2 tx +$fwd_x (XDP '$mode')"
((mac_x == mac_sw && ip_x == ip_sw)) || fail "XDP counted spoofed_mac +$mac_x spoofed_ip +$ip_x, software +$mac_sw +$ip_sw"
((fwd_x >= 5)) || fail "vm2 got $fwd_x legitimate frames with the program, expected 5"
((rx_x == fwd_x)) || fail "the worker saw $rx_x frames and forwarded $fwd_x with the program: it saw spoofed frames"
echo "ok: the spoof corpus died in XDP with the binding's per-reason counts; the worker saw only legitimate frames ($rx_x, all forwarded)"

# 2. The maps follow the config.
config builtin auto 198.18.0.11 >"$WORK/rebind.yaml"
ctl apply "$WORK/rebind.yaml" >/dev/null || fail "apply of the new binding"
read -r -a a <<<"$(counters)"
ip netns exec "$P-t1" /usr/bin/python3 "$HERE/frames.py" send "${P}t1" "$WORK/new_ip.pcap"
ip netns exec "$P-t1" /usr/bin/python3 "$HERE/frames.py" send "${P}t1" "$WORK/old_ip.pcap"
sleep 1
read -r -a b <<<"$(counters)"
rx=$((b[0] - a[0])) ipd=$((b[2] - a[2])) fwd=$((b[3] - a[3]))
((rx >= 7 && fwd == rx && ipd == 4)) ||
  fail "after rebinding to 198.18.0.11: worker rx +$rx (want 7), vm2 tx +$fwd (want 7), spoofed_ip +$ipd (want 4)"
echo "ok: after apply (ipv4 198.18.0.11) the new address passes, the old one dies in XDP (spoofed_ip +4, worker rx +7)"
esw_stop_eswitchd
grep -q "stopped cleanly; all .* mbufs back in the pool" "$WORK/eswitchd.log" || fail "no clean-stop report"
if ip -d link show "${P}t1p" | grep -q esw_guard; then fail "program left on ${P}t1p after stop"; fi

# 3. Errors.
sed 's/net_af_xdp0,iface=[^"]*"/net_af_packet0,iface='"${P}"'t1p"/' "$WORK/none.yaml" >"$WORK/bad1.yaml"
out=$("$ESWITCHCTL" validate "$WORK/bad1.yaml" 2>&1) && fail "xdp on af_packet validated"
grep -q "xdp applies to net_af_xdp attachments only" <<<"$out" || fail "unclear error for xdp on af_packet: $out"
echo "ok: $(grep -m1 'xdp applies' <<<"$out")"
other=generic
[[ "$mode" == xdpgeneric ]] && other=native
config builtin $other >"$WORK/bad2.yaml"
rc=0
timeout 60 "$ESWITCHD" --config "$WORK/bad2.yaml" >"$WORK/bad2.log" 2>&1 || rc=$?
((rc != 0)) || fail "eswitchd started with xdp mode $other although the kernel attached in $mode"
line=$(grep -m1 "port vm1" "$WORK/bad2.log") || fail "no error line naming vm1 for mode $other"
grep -q "mode $other was asked" <<<"$line" || fail "the mode error does not name the cause: $line"
echo "ok: $line"
# A program the verifier refuses (an unchecked packet read): the error line carries the verifier's words.
if command -v clang >/dev/null; then
  cat >"$WORK/bad.bpf.c" <<'EOF2'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp")
int bad(struct xdp_md* ctx) {
  unsigned char* p = (void*)(long)ctx->data;
  return p[100] ? XDP_PASS : XDP_DROP;
}
char _license[] SEC("license") = "GPL";
EOF2
  clang -O2 -target bpf -I"/usr/include/$(gcc -print-multiarch)" -c "$WORK/bad.bpf.c" -o "$WORK/bad.bpf.o" || fail "clang"
  rc=0
  ESWITCH_XDP_OBJ="$WORK/bad.bpf.o" timeout 60 "$ESWITCHD" --config "$WORK/builtin.yaml" >"$WORK/bad3.log" 2>&1 || rc=$?
  ((rc != 0)) || fail "eswitchd started with a program the verifier refuses"
  line=$(grep -m1 "port vm1" "$WORK/bad3.log") || fail "no error line naming vm1 for the refused program"
  grep -q "the kernel refused XDP program .*bad.bpf.o: .*packet" <<<"$line" || fail "no verifier excerpt: $line"
  echo "ok: $line"
fi
rm -rf "/var/run/dpdk/$PREFIX"
echo "PASS: eswitch's XDP program on an af_xdp vport: same drops per reason as the binding stage, never seen by the worker, maps follow apply"
