#!/usr/bin/env bash
# End-to-end: eswitch's own XDP program on an af_xdp uplink (dataplane/xdp/uplink.bpf.c): one interface serves
# the host's own networking and the switch.
#   The uplink is the root-side veth ${P}up0p; its peer sits in namespace "wire" (the network behind the NIC). The
#   root side also carries a host address (198.18.9.1/24) the wire pings.
#   0. Control: with the PMD's own program (xdp: {program: none}) every frame goes to the AF_XDP socket, so the
#      host's address does not answer (this is what the program fixes; it shows the check below can fail).
#   1. With `xdp: {program: builtin}`: the host's address answers pings from the wire while vm1 and the wire
#      ping each other through the switch over the same uplink (IPv4, and IPv6 from the wire: its neighbour
#      solicitation reaches vm1 through the solicited-node MAC); the program's counters (show ports:
#      device_counters.xdp_to_switch / xdp_to_host) moved.
#   2. Frames for vm2's MAC go to the host (not the switch) while vm2 is not configured; after an apply that adds
#      vm2, the wire pings vm2 through the switch.
#   3. Other broadcasts go to the host by default and to the switch after an apply with `broadcast: switch`.
#
# usage: xdp_uplink.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
esw_e2e_begin xdpu
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
MAC1=02:00:c6:13:00:01 MAC2=02:00:c6:13:00:02 MACW=02:00:c6:13:00:fe
UP="${P}wirep"

esw_host_add "$P" t1 $MAC1 198.18.0.1/24 2001:db8::1/64
esw_host_add "$P" t2 $MAC2 198.18.0.2/24
esw_host_add "$P" wire $MACW 198.18.0.254/24 2001:db8::fe/64
# The host's own address on the uplink interface, and the wire's address in that subnet.
ip addr add 198.18.9.1/24 dev "$UP"
ip -n "$P-wire" addr add 198.18.9.2/24 dev "${P}wire"

# config PROGRAM WITH_VM2 [BROADCAST]
config() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 512, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
uplinks:
  - { name: uplink0, attach: { devargs: "net_af_xdp0,iface=$UP,start_queue=0,queue_count=1", xdp: { program: $1, broadcast: ${3:-host} } } }
vports:
  - { name: vm1, hw_addr: "$MAC1", ipv4: [198.18.0.1], ipv6: ["2001:db8::1"], attach: { devargs: "net_af_packet1,iface=${P}t1p" } }
YAML
  if [[ $2 == 1 ]]; then
    echo "  - { name: vm2, hw_addr: \"$MAC2\", ipv4: [198.18.0.2], attach: { devargs: \"net_af_packet2,iface=${P}t2p\" } }"
  fi
}

# ping_ok NS [ping args] ADDR: any reply within ~4 s (the machine is shared: a first ARP/ND can be slow).
ping_ok() {
  local ns=$1 i
  shift
  for i in 1 2; do ip netns exec "$ns" ping -c 3 -i 0.3 -W 2 "$@" >/dev/null 2>&1 && return 0; done
  return 1
}
# xdp_counters: "<to_switch> <to_host> <uplink worker rx>"
xdp_counters() {
  ctl show ports --json | /usr/bin/python3 -c '
import json, sys
p = next(x for x in json.load(sys.stdin)["ports"] if x["name"] == "uplink0")
d = p.get("device_counters") or {}
print(d.get("xdp_to_switch"), d.get("xdp_to_host"), p["rx_packets"])'
}
start() {
  esw_start_eswitchd "$ESWITCHD" "$1"
  for _ in $(seq 50); do [[ -S "$SOCK" ]] && break; sleep 0.1; done
  sleep 0.5
}

# Before eswitchd: the host's address answers (the setup itself works).
ping_ok "$P-wire" 198.18.9.1 || fail "the host address 198.18.9.1 does not answer even without eswitchd"

# 0. Control: the PMD's own program takes every frame.
config none 0 >"$WORK/none.yaml"
start "$WORK/none.yaml"
ip -n "$P-wire" neigh flush all
if ping_ok "$P-wire" 198.18.9.1; then
  fail "control: the host address answered although the PMD's program sends every frame to the switch"
fi
echo "ok: control: with the PMD's own program the host's address on the uplink is unreachable"
esw_stop_eswitchd

# 1. eswitch's uplink program.
config builtin 0 >"$WORK/builtin.yaml"
start "$WORK/builtin.yaml"
ip -d link show "$UP" | grep -q esw_uplink || fail "eswitch's program (esw_uplink) is not on $UP"
read -r sw0 host0 rx0 <<<"$(xdp_counters)"
[[ $sw0 != None && $host0 != None ]] || fail "show ports has no XDP counters for uplink0"
ip -n "$P-wire" neigh flush all
ping_ok "$P-wire" 198.18.9.1 || fail "the host's address on the uplink does not answer with the uplink program"
ping_ok "$P-t1" 198.18.0.254 || fail "vm1 -> wire through the switch"
ping_ok "$P-wire" 198.18.0.1 || fail "wire -> vm1 through the switch"
# IPv6: the wire's neighbour solicitation goes to vm1's solicited-node MAC (33:33:ff:00:00:01), in the map.
ping_ok "$P-wire" -6 2001:db8::1 || fail "wire -> vm1 over IPv6 (neighbour solicitation to the solicited-node MAC)"
ping_ok "$P-wire" 198.18.9.1 || fail "the host's address stopped answering while the switch forwards"
read -r sw1 host1 rx1 <<<"$(xdp_counters)"
echo "uplink program: to_switch +$((sw1 - sw0)), to_host +$((host1 - host0)), uplink worker rx +$((rx1 - rx0))"
((sw1 - sw0 >= 9)) || fail "the program gave the switch $((sw1 - sw0)) frames, expected >= 9 (pings to vm1, IPv4 and IPv6)"
((host1 - host0 >= 6)) || fail "the program passed $((host1 - host0)) frames to the host, expected >= 6"
((rx1 - rx0 == sw1 - sw0)) || fail "uplink worker rx +$((rx1 - rx0)) != frames the program redirected +$((sw1 - sw0))"
echo "ok: host address answers on the uplink while vm1 <-> wire crosses the switch over it"

# 2. vm2 is not configured yet: frames to its MAC go to the host, not the switch.
/usr/bin/python3 - "$WORK" "$MACW" "$MAC2" <<'PY'
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, wrpcap
wrpcap(sys.argv[1] + "/to_vm2.pcap", [Ether(src=sys.argv[2], dst=sys.argv[3]) / IP(src="198.18.0.254", dst="198.18.0.2") /
                                      UDP(sport=7000 + i, dport=9) for i in range(8)])
wrpcap(sys.argv[1] + "/bcast.pcap", [Ether(src=sys.argv[2], dst="ff:ff:ff:ff:ff:ff") / IP(src="198.18.0.254", dst="198.18.0.255") /
                                     UDP(sport=7100 + i, dport=9) for i in range(6)])
PY
read -r sw0 host0 rx0 <<<"$(xdp_counters)"
ip netns exec "$P-wire" /usr/bin/python3 "$HERE/frames.py" send "${P}wire" "$WORK/to_vm2.pcap"
sleep 0.5
read -r sw1 host1 rx1 <<<"$(xdp_counters)"
# (The wire's kernel may send a frame of its own meanwhile, e.g. an ARP probe to vm1: those go to the switch.)
((host1 - host0 >= 8 && sw1 - sw0 < 8 && rx1 - rx0 == sw1 - sw0)) ||
  fail "frames to the unconfigured vm2: to_host +$((host1 - host0)) (want >= 8), to_switch +$((sw1 - sw0)) (want < 8), uplink worker rx +$((rx1 - rx0))"
echo "ok: before vm2 exists, its frames go to the host (to_host +$((host1 - host0)), to_switch +$((sw1 - sw0)), worker rx +$((rx1 - rx0)))"
config builtin 1 >"$WORK/vm2.yaml"
ctl apply "$WORK/vm2.yaml" >/dev/null || fail "apply adding vm2"
read -r sw0 host0 rx0 <<<"$(xdp_counters)"
ip netns exec "$P-wire" /usr/bin/python3 "$HERE/frames.py" send "${P}wire" "$WORK/to_vm2.pcap"
sleep 0.5
read -r sw1 host1 rx1 <<<"$(xdp_counters)"
((sw1 - sw0 >= 8 && rx1 - rx0 >= 8)) ||
  fail "after apply, frames to vm2: to_switch +$((sw1 - sw0)), uplink worker rx +$((rx1 - rx0)) (want >= 8 each)"
ping_ok "$P-wire" 198.18.0.2 || fail "wire -> vm2 after the apply that added it"
ping_ok "$P-wire" 198.18.9.1 || fail "the host's address stopped answering after the apply"
echo "ok: after apply adding vm2 its frames are redirected (to_switch +$((sw1 - sw0))) and the wire pings vm2"

# 3. Other broadcasts: to the host by default, to the switch after an apply with `broadcast: switch`.
bcast() {
  read -r sw0 host0 rx0 <<<"$(xdp_counters)"
  ip netns exec "$P-wire" /usr/bin/python3 "$HERE/frames.py" send "${P}wire" "$WORK/bcast.pcap"
  sleep 0.5
  read -r sw1 host1 rx1 <<<"$(xdp_counters)"
}
bcast
((host1 - host0 >= 6 && sw1 - sw0 < 6)) ||
  fail "broadcast: host: to_host +$((host1 - host0)) (want >= 6), to_switch +$((sw1 - sw0)) (want < 6)"
config builtin 1 switch >"$WORK/bswitch.yaml"
ctl apply "$WORK/bswitch.yaml" >/dev/null || fail "apply with broadcast: switch"
bcast
((sw1 - sw0 >= 6 && rx1 - rx0 >= 6)) ||
  fail "broadcast: switch: to_switch +$((sw1 - sw0)), uplink worker rx +$((rx1 - rx0)) (want >= 6 each)"
ping_ok "$P-wire" 198.18.9.1 || fail "the host's address stopped answering with broadcast: switch (its ARP is by target)"
echo "ok: other broadcasts go to the host by default and to the switch after apply with broadcast: switch (+$((sw1 - sw0))); ARP for the host still reaches it"
esw_stop_eswitchd
grep -q "stopped cleanly; all .* mbufs back in the pool" "$WORK/eswitchd.log" || fail "no clean-stop report"
if ip -d link show "$UP" | grep -q esw_uplink; then fail "program left on $UP after stop"; fi

# Errors: broadcast/multicast on a vport's xdp.
sed "s|attach: { devargs: \"net_af_packet1,iface=${P}t1p\" }|attach: { devargs: \"net_af_xdp1,iface=${P}t1p\", xdp: { broadcast: switch } }|" \
  "$WORK/builtin.yaml" >"$WORK/bad.yaml"
out=$("$ESWITCHCTL" validate "$WORK/bad.yaml" 2>&1) && fail "xdp broadcast on a vport validated"
grep -q "apply to uplinks only" <<<"$out" || fail "unclear error for xdp broadcast on a vport: $out"
echo "ok: $(grep -m1 'uplinks only' <<<"$out")"
echo "PASS: af_xdp uplink with eswitch's program: host traffic and switch traffic share the interface; maps follow apply"
