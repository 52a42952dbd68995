#!/usr/bin/env bash
# End-to-end: representors. A frame from a vport that matches no rule must show up on the vport's representor
# netdev (rep-<vport>) in the host, seen by tcpdump; a frame the host writes to rep-<vport> must arrive at the
# vport (its kernel, in a namespace). An inactive vport keeps its representor, with the carrier down.
#
# usage: representor.sh PATH/TO/eswitchd
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
esw_e2e_begin rep
P="esw$(($$ % 10000))"
V1="r${P#esw}a"   # vport names: <= 11 characters, so rep-<name> fits in IFNAMSIZ
V2="r${P#esw}b"

esw_host_add "$P" t1 02:00:c6:12:00:01 198.18.0.1/24
esw_host_add "$P" t2 02:00:c6:12:00:02 198.18.0.2/24

# No uplink: unicast to an unknown MAC from vm1 matches no rule and misses to vm1's representor.
cat >"$WORK/esw.yaml" <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "" }
vports:
  - { name: $V1, hw_addr: "02:00:c6:12:00:01", ipv4: [198.18.0.1], attach: { devargs: "net_af_packet0,iface=${P}t1p" } }
  - { name: $V2, hw_addr: "02:00:c6:12:00:02", ipv4: [198.18.0.2], state: inactive,
      attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
representors: { kind: tap }
YAML

esw_start_eswitchd "$ESWITCHD" "$WORK/esw.yaml"

for v in "$V1" "$V2"; do
  ip link show "rep-$v" >/dev/null 2>&1 || fail "representor rep-$v does not exist"
done
# The inactive vport's representor exists with its carrier down; the active one's is up.
ip -o link show "rep-$V2" | grep -q "LOWER_UP" && fail "rep-$V2 should have no carrier: $(ip -o link show "rep-$V2")"
ip -o link show "rep-$V1" | grep -q "LOWER_UP" || fail "rep-$V1 should be up: $(ip -o link show "rep-$V1")"
echo "ok: representors exist; carrier follows the vport state"

# 1. vport -> miss -> representor: tcpdump on rep-<vm1> sees the ping to an unknown neighbour.
tcpdump -n -i "rep-$V1" -c 1 -w "$WORK/rep.pcap" icmp >/dev/null 2>&1 &
ESW_EXTRA_PIDS+=($!)
TD=$!
sleep 1
ip netns exec "$P-t1" ip neigh replace 198.18.0.77 lladdr 02:00:c6:12:00:77 dev "${P}t1"
ip netns exec "$P-t1" ping -c 3 -i 0.3 -W 1 198.18.0.77 >/dev/null 2>&1 || true
for _ in $(seq 30); do kill -0 "$TD" 2>/dev/null || break; sleep 0.1; done
kill -0 "$TD" 2>/dev/null && fail "tcpdump on rep-$V1 saw nothing"
tcpdump -n -r "$WORK/rep.pcap" 2>/dev/null | grep -q "198.18.0.1 > 198.18.0.77: ICMP echo request" \
  || fail "unexpected capture: $(tcpdump -n -r "$WORK/rep.pcap" 2>/dev/null)"
echo "ok: a miss from $V1 is seen by tcpdump on rep-$V1"

# 2. representor -> vport: a frame the host writes to rep-<vm1> arrives in vm1's namespace.
ip netns exec "$P-t1" tcpdump -n -i "${P}t1" -c 1 -w "$WORK/vm.pcap" udp port 4242 >/dev/null 2>&1 &
ESW_EXTRA_PIDS+=($!)
TD=$!
sleep 1
/usr/bin/python3 - "rep-$V1" <<'PY'
import sys
from scapy.all import Ether, IP, UDP, Raw, sendp
sendp(Ether(src="02:00:c6:12:00:aa", dst="02:00:c6:12:00:01") / IP(src="198.18.0.100", dst="198.18.0.1") /
      UDP(sport=4242, dport=4242) / Raw(b"from-the-host"), iface=sys.argv[1], count=3, verbose=False)
PY
for _ in $(seq 30); do kill -0 "$TD" 2>/dev/null || break; sleep 0.1; done
kill -0 "$TD" 2>/dev/null && fail "nothing written to rep-$V1 reached $V1"
tcpdump -n -r "$WORK/vm.pcap" -A 2>/dev/null | grep -q "from-the-host" || fail "payload not delivered"
echo "ok: a frame written to rep-$V1 arrives at $V1"

esw_stop_eswitchd
ip link show "rep-$V1" >/dev/null 2>&1 && fail "rep-$V1 left behind after shutdown"
echo "PASS: representors"
