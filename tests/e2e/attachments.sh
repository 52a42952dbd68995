#!/usr/bin/env bash
# End-to-end: every attachment kind the README lists, as a vport and as an uplink, with real peers.
#
# Each case runs its own eswitchd and reports on its own line ("CASE <name>: PASS" or "CASE <name>: FAIL ...");
# the script fails when any case fails. In every case vm2 is a kernel tenant on an af_packet veth (namespace t2),
# and the kind under test is vm1 (and uplink0 where the case has one):
#   af_packet  vm1 and uplink0 on veths (kernel tenants t1, up0)
#   af_xdp     the same through net_af_xdp (the XDP mode the kernel picked is reported)
#   tap        net_tap netdevs created by eswitchd, moved into the tenant namespaces t1 and up0
#   memif      vm1 and uplink0 are memif servers; dpdk-testpmd is the memif client and bridges each to a tap
#              netdev in t1 / up0 (io forwarding), so kernel tenants talk through the memif rings
#   pcap       vm1 replays a pcap (rx_pcap) and records what the switch sends it (tx_pcap); uplink0 the same:
#              frame-exact in both directions
#   ring       net_ring has no peer outside the process: as a vport it is a loopback, so what the switch sends it
#              comes straight back as the vport's input and must die in the binding (spoofed_mac), counted
#   errors     attachments that cannot open: one line naming the port and the cause
# Kernel-facing kinds: ping (IPv4, IPv6), a TCP stream, and the fragment corpus of frames.py (IPv4 fragments in
# and out of order, IPv6 fragments, whole datagrams) sent with scapy in both directions and captured on the other
# side, where every frame must arrive byte for byte as sent; the ports' counters must show the frames passed
# through the switch (rx on the ingress port, tx on the egress port).
#
# usage: attachments.sh PATH/TO/eswitchd PATH/TO/eswitchctl [CASE...]
set -uo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl [case...]}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl [case...]}
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root"; exit 77; }
FRAMES="/usr/bin/python3 $HERE/frames.py"
ALL_CASES=(af_packet afp_loss af_xdp tap memif pcap ring errors)
CASES=("$@")
((${#CASES[@]})) || CASES=("${ALL_CASES[@]}")

MAC1=02:00:c6:12:00:01 MAC2=02:00:c6:12:00:02 MACU=02:00:c6:12:00:fe

# ---- per-case scaffolding (each case runs in a subshell with its own EXIT trap) ----------------------------
# case_begin NAME LETTER: WORK, PREFIX, SOCK, P (interface prefix, unique per run and case).
case_begin() {
  WORK=$(mktemp -d "/tmp/esw-att-$1.XXXXXX")
  PREFIX="esw-att-$1-$$"
  SOCK="$WORK/api.sock"
  SW_PID=""
  ESW_EXTRA_PIDS=()
  P="esw$(($$ % 10000))$2"
  trap 'esw_e2e_cleanup; rm -rf "/var/run/dpdk/$PREFIX-"*' EXIT
  trap 'exit 130' INT TERM
}

ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }

# config VM1_ATTACH [UPLINK_ATTACH]: vm1 with the kind under test, vm2 on af_packet (namespace t2).
config() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 512, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
YAML
  if [[ -n "${2:-}" ]]; then
    printf 'uplinks:\n  - { name: uplink0, attach: %s }\n' "$2"
  fi
  cat <<YAML
vports:
  - { name: vm1, hw_addr: "$MAC1", ipv4: [198.18.0.1], ipv6: ["2001:db8::1"], attach: $1 }
  - { name: vm2, hw_addr: "$MAC2", ipv4: [198.18.0.2], ipv6: ["2001:db8::2"], attach: { devargs: "net_af_packet9,iface=${P}t2p" } }
YAML
}

start() {
  esw_start_eswitchd "$ESWITCHD" "$1"
  for _ in $(seq 50); do [[ -S "$SOCK" ]] && break; sleep 0.1; done
}

# port_counter PORT FIELD: a counter from `show ports --json`.
port_counter() {
  ctl show ports --json | /usr/bin/python3 -c '
import json, sys
port, field = sys.argv[1], sys.argv[2]
for p in json.load(sys.stdin)["ports"]:
    if p["name"] == port:
        print(p[field]); break
else:
    sys.exit("no port " + port)' "$1" "$2"
}

# ns_tenant NS IFACE MAC IPV4/LEN [IPV6/LEN]: addresses an interface that was moved into namespace NS.
ns_tenant() {
  local ns=$1 ifc=$2
  ip -n "$ns" link set "$ifc" address "$3"
  ip netns exec "$ns" ethtool -K "$ifc" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
  ip -n "$ns" addr add "$4" dev "$ifc"
  [[ -z "${5:-}" ]] || ip -n "$ns" addr add "$5" dev "$ifc" nodad
  ip -n "$ns" link set "$ifc" up
  ip -n "$ns" link set lo up
}

# ns_add NAME: a namespace recorded for cleanup (its interface comes later).
ns_add() {
  ip netns add "$P-$1"
  ESW_CREATED_NS+=("$P-$1")
}

# wait_link IFACE: until the root-namespace interface exists (created by a DPDK process).
wait_link() {
  for _ in $(seq 100); do ip link show "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "interface $1 never appeared"
}

ping_ok() {  # ping_ok NS [-6] DST
  local ns=$1
  shift
  ip netns exec "$ns" ping -c 3 -i 0.2 -W 2 "$@" >/dev/null 2>&1 ||
    ip netns exec "$ns" ping -c 3 -i 0.2 -W 2 "$@" >/dev/null 2>&1
}

# tcp_ok FROM_NS TO_NS DST_IP: 2 MiB from FROM to TO, compared.
tcp_ok() {
  ip netns exec "$2" timeout 30 nc -l -N "$3" 5201 >"$WORK/tcp.rx" &
  local nc=$!
  for _ in $(seq 50); do ip netns exec "$2" ss -ltn | grep -q ':5201' && break; sleep 0.1; done
  head -c $((2 << 20)) /dev/urandom >"$WORK/tcp.tx"
  ip netns exec "$1" timeout 30 nc -N "$3" 5201 <"$WORK/tcp.tx" && wait "$nc" && cmp -s "$WORK/tcp.tx" "$WORK/tcp.rx"
}

# frags_cross NAME FROM_NS FROM_IF TO_NS TO_IF SMAC DMAC S4 D4 S6 D6 IN_PORT OUT_PORT: sends the fragment corpus
# from FROM_NS, captures it in TO_NS; every frame must arrive as sent, and IN_PORT's rx / OUT_PORT's tx must have
# counted at least as many frames.
frags_cross() {
  local name=$1 from_ns=$2 from_if=$3 to_ns=$4 to_if=$5 in_port=${12} out_port=${13}
  local sent="$WORK/$name.sent.pcap" got="$WORK/$name.got.pcap"
  $FRAMES make "$sent" "$6" "$7" "$8" "$9" "${10}" "${11}" "$((RANDOM % 1000))"
  local n
  n=$($FRAMES count "$sent")
  ip netns exec "$to_ns" tcpdump -i "$to_if" -U -n -w "$got" "ether src $6 and (ip or ip6)" >"$WORK/$name.tcpdump" 2>&1 &
  local td=$!
  ESW_EXTRA_PIDS+=("$td")
  for _ in $(seq 50); do grep -q "listening on" "$WORK/$name.tcpdump" 2>/dev/null && break; sleep 0.1; done
  local rx0 tx0
  rx0=$(port_counter "$in_port" rx_packets)
  tx0=$(port_counter "$out_port" tx_packets)
  ip netns exec "$from_ns" $FRAMES send "$from_if" "$sent" || fail "$name: scapy could not send"
  sleep 1
  kill -INT "$td" 2>/dev/null
  wait "$td" 2>/dev/null
  local rx1 tx1 cmp_out
  rx1=$(port_counter "$in_port" rx_packets)
  tx1=$(port_counter "$out_port" tx_packets)
  cmp_out=$($FRAMES compare "$sent" "$got") || fail "$name: $cmp_out (counters: $in_port rx +$((rx1 - rx0)), $out_port tx +$((tx1 - tx0)))"
  ((rx1 - rx0 >= n)) || fail "$name: $in_port rx counted $((rx1 - rx0)) of $n frames"
  ((tx1 - tx0 >= n)) || fail "$name: $out_port tx counted $((tx1 - tx0)) of $n frames"
  echo "  ok: fragments $name: $cmp_out; $in_port rx +$((rx1 - rx0)), $out_port tx +$((tx1 - tx0))"
}

# kernel_checks: the checks for a kind whose vm1 is reached from namespace t1 (interface $T1_IF) and, when
# HAVE_UPLINK=1, uplink0 from namespace up0 (interface $UP_IF).
kernel_checks() {
  local t2if="${P}t2"
  ping_ok "$P-t1" 198.18.0.2 || fail "ping vm1 -> vm2"
  ping_ok "$P-t2" 198.18.0.1 || fail "ping vm2 -> vm1"
  ping_ok "$P-t1" -6 2001:db8::2 || fail "ping6 vm1 -> vm2"
  tcp_ok "$P-t1" "$P-t2" 198.18.0.2 || { ctl show ports >&2; fail "TCP vm1 -> vm2"; }
  tcp_ok "$P-t2" "$P-t1" 198.18.0.1 || { ctl show ports >&2; fail "TCP vm2 -> vm1"; }
  echo "  ok: ping (IPv4 both ways, IPv6), TCP 2 MiB both ways (vm1 <-> vm2)"
  frags_cross v1-to-v2 "$P-t1" "$T1_IF" "$P-t2" "$t2if" $MAC1 $MAC2 198.18.0.1 198.18.0.2 2001:db8::1 2001:db8::2 vm1 vm2
  frags_cross v2-to-v1 "$P-t2" "$t2if" "$P-t1" "$T1_IF" $MAC2 $MAC1 198.18.0.2 198.18.0.1 2001:db8::2 2001:db8::1 vm2 vm1
  if [[ ${HAVE_UPLINK:-0} == 1 ]]; then
    ping_ok "$P-t2" 198.18.0.254 || fail "ping vm2 -> uplink"
    ping_ok "$P-up0" 198.18.0.2 || fail "ping uplink -> vm2"
    tcp_ok "$P-up0" "$P-t2" 198.18.0.2 || fail "TCP uplink -> vm2"
    echo "  ok: ping vm2 <-> uplink, TCP uplink -> vm2"
    frags_cross up-to-v2 "$P-up0" "$UP_IF" "$P-t2" "$t2if" $MACU $MAC2 198.18.0.254 198.18.0.2 2001:db8::fe 2001:db8::2 uplink0 vm2
    frags_cross v2-to-up "$P-t2" "$t2if" "$P-up0" "$UP_IF" $MAC2 $MACU 198.18.0.2 198.18.0.254 2001:db8::2 2001:db8::fe vm2 uplink0
  fi
}

# Driver counters the kind reports in `show ports` (loss below the switch): printed, and must be present.
device_counters() {
  ctl show ports --json | /usr/bin/python3 -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    if p["name"] in sys.argv[1:]:
        d = p.get("device_counters")
        assert d is not None, "port %s reports no device counters" % p["name"]
        print("  ok: %s (%s) device counters: %s" % (p["name"], p.get("kind"), d))' "$@" || fail "device counters"
}

stop_clean() {
  esw_stop_eswitchd
  grep -q "stopped cleanly; all .* mbufs back in the pool" "$WORK/eswitchd.log" || fail "no clean-stop report"
}

# ---- cases --------------------------------------------------------------------------------------------------
case_af_packet() {
  case_begin afp a
  esw_host_add "$P" t1 $MAC1 198.18.0.1/24 2001:db8::1/64
  esw_host_add "$P" t2 $MAC2 198.18.0.2/24 2001:db8::2/64
  esw_host_add "$P" up0 $MACU 198.18.0.254/24 2001:db8::fe/64
  config "{ devargs: \"net_af_packet0,iface=${P}t1p\" }" "{ devargs: \"net_af_packet1,iface=${P}up0p\" }" >"$WORK/esw.yaml"
  start "$WORK/esw.yaml"
  T1_IF="${P}t1" UP_IF="${P}up0" HAVE_UPLINK=1 kernel_checks
  device_counters vm1 uplink0
  stop_clean
}

case_af_xdp() {
  case_begin axdp x
  esw_host_add "$P" t1 $MAC1 198.18.0.1/24 2001:db8::1/64
  esw_host_add "$P" t2 $MAC2 198.18.0.2/24 2001:db8::2/64
  esw_host_add "$P" up0 $MACU 198.18.0.254/24 2001:db8::fe/64
  config "{ devargs: \"net_af_xdp0,iface=${P}t1p,start_queue=0,queue_count=1\" }" \
    "{ devargs: \"net_af_xdp1,iface=${P}up0p,start_queue=0,queue_count=1\" }" >"$WORK/esw.yaml"
  start "$WORK/esw.yaml"
  local mode
  mode=$(ip -d link show "${P}t1p" | grep -oE '\b(xdpgeneric|xdpdrv|xdpoffload|xdp)\b' | head -1)
  [[ -n "$mode" ]] || fail "no XDP program on ${P}t1p"
  echo "  ok: af_xdp socket bound, XDP program attached in mode '$mode'"
  T1_IF="${P}t1" UP_IF="${P}up0" HAVE_UPLINK=1 kernel_checks
  device_counters vm1 uplink0
  stop_clean
  ip -d link show "${P}t1p" | grep -qE '\bxdp(generic|drv)?\b' && fail "XDP program left on ${P}t1p after stop"
  echo "  ok: XDP program removed at stop"
}

case_tap() {
  case_begin tap t
  esw_host_add "$P" t2 $MAC2 198.18.0.2/24 2001:db8::2/64
  ns_add t1
  ns_add up0
  config "{ devargs: \"net_tap0,iface=${P}tp1\" }" "{ devargs: \"net_tap1,iface=${P}tpu\" }" >"$WORK/esw.yaml"
  start "$WORK/esw.yaml"
  # The tap netdevs are the kernel side of the ports: move them into the tenants' namespaces.
  ip link set "${P}tp1" netns "$P-t1" || fail "cannot move ${P}tp1"
  ip link set "${P}tpu" netns "$P-up0" || fail "cannot move ${P}tpu"
  ns_tenant "$P-t1" "${P}tp1" $MAC1 198.18.0.1/24 2001:db8::1/64
  ns_tenant "$P-up0" "${P}tpu" $MACU 198.18.0.254/24 2001:db8::fe/64
  T1_IF="${P}tp1" UP_IF="${P}tpu" HAVE_UPLINK=1 kernel_checks
  device_counters vm1 uplink0
  stop_clean
}

case_memif() {
  command -v dpdk-testpmd >/dev/null || { echo "  SKIP: dpdk-testpmd not installed (package dpdk)"; return 0; }
  case_begin memif m
  esw_host_add "$P" t2 $MAC2 198.18.0.2/24 2001:db8::2/64
  ns_add t1
  ns_add up0
  config "{ devargs: \"net_memif0,role=server,id=0,socket=$WORK/vm1.memif\" }" \
    "{ devargs: \"net_memif1,role=server,id=0,socket=$WORK/up.memif\" }" >"$WORK/esw.yaml"
  start "$WORK/esw.yaml"
  # testpmd: ports 0/1 = memif client to vm1 / tap into t1, ports 2/3 = memif client to uplink0 / tap into up0;
  # io forwarding, paired topology (0<->1, 2<->3). Both lcores on CPU 0.
  dpdk-testpmd --no-huge -m 512 --single-file-segments --no-pci --file-prefix "$PREFIX-peer" --lcores "0@0,1@0" \
    --vdev "net_memif0,role=client,id=0,socket=$WORK/vm1.memif" --vdev "net_tap0,iface=${P}mt1" \
    --vdev "net_memif1,role=client,id=0,socket=$WORK/up.memif" --vdev "net_tap1,iface=${P}mtu" -- \
    --nb-cores=1 --forward-mode=io --port-topology=paired --no-lsc-interrupt --stats-period 5 \
    --total-num-mbufs=16384 </dev/null >"$WORK/testpmd.log" 2>&1 &
  local tp=$!
  ESW_EXTRA_PIDS+=("$tp")
  wait_link "${P}mt1"
  wait_link "${P}mtu"
  for _ in $(seq 100); do
    grep -q "packet forwarding - ports=4" "$WORK/testpmd.log" && break
    kill -0 "$tp" 2>/dev/null || { sed 's/^/  testpmd: /' "$WORK/testpmd.log" >&2; fail "testpmd died"; }
    sleep 0.1
  done
  ip link set "${P}mt1" netns "$P-t1" || fail "cannot move ${P}mt1"
  ip link set "${P}mtu" netns "$P-up0" || fail "cannot move ${P}mtu"
  ns_tenant "$P-t1" "${P}mt1" $MAC1 198.18.0.1/24 2001:db8::1/64
  ns_tenant "$P-up0" "${P}mtu" $MACU 198.18.0.254/24 2001:db8::fe/64
  for _ in $(seq 100); do
    [[ $(ctl show ports --json | /usr/bin/python3 -c 'import json,sys; print(sum(1 for p in json.load(sys.stdin)["ports"] if p["name"] in ("vm1","uplink0") and p.get("link_up")))') == 2 ]] && break
    sleep 0.1
  done
  T1_IF="${P}mt1" UP_IF="${P}mtu" HAVE_UPLINK=1 kernel_checks
  device_counters vm1 uplink0
  stop_clean
  # testpmd (the memif peer) may exit non-zero on SIGINT once its memif peer is gone: not what is tested here.
  kill -INT "$tp" 2>/dev/null || true
  wait "$tp" 2>/dev/null || true
}

case_pcap() {
  case_begin pcap p
  esw_host_add "$P" t2 $MAC2 198.18.0.2/24 2001:db8::2/64
  # What vm1 and uplink0 "send": the fragment corpus to vm2, replayed once from the pcap at start-up.
  $FRAMES make "$WORK/vm1.in.pcap" $MAC1 $MAC2 198.18.0.1 198.18.0.2 2001:db8::1 2001:db8::2 1
  $FRAMES make "$WORK/up.in.pcap" $MACU $MAC2 198.18.0.254 198.18.0.2 2001:db8::fe 2001:db8::2 2
  local n
  n=$($FRAMES count "$WORK/vm1.in.pcap")
  ip netns exec "$P-t2" tcpdump -i "${P}t2" -U -n -w "$WORK/t2.got.pcap" "ip or ip6" >"$WORK/t2.tcpdump" 2>&1 &
  local td=$!
  ESW_EXTRA_PIDS+=("$td")
  for _ in $(seq 50); do grep -q "listening on" "$WORK/t2.tcpdump" 2>/dev/null && break; sleep 0.1; done
  config "{ devargs: \"net_pcap0,rx_pcap=$WORK/vm1.in.pcap,tx_pcap=$WORK/vm1.out.pcap\" }" \
    "{ devargs: \"net_pcap1,rx_pcap=$WORK/up.in.pcap,tx_pcap=$WORK/up.out.pcap\" }" >"$WORK/esw.yaml"
  start "$WORK/esw.yaml"
  # And the other way: vm2 sends the corpus to vm1's MAC and to an unknown MAC (to the uplink).
  $FRAMES make "$WORK/to-vm1.pcap" $MAC2 $MAC1 198.18.0.2 198.18.0.1 2001:db8::2 2001:db8::1 3
  $FRAMES make "$WORK/to-up.pcap" $MAC2 $MACU 198.18.0.2 198.18.0.254 2001:db8::2 2001:db8::fe 4
  ip netns exec "$P-t2" $FRAMES send "${P}t2" "$WORK/to-vm1.pcap" || fail "scapy send to vm1"
  ip netns exec "$P-t2" $FRAMES send "${P}t2" "$WORK/to-up.pcap" || fail "scapy send to the uplink"
  sleep 1
  local rx1 rxu
  rx1=$(port_counter vm1 rx_packets)
  rxu=$(port_counter uplink0 rx_packets)
  ((rx1 == n && rxu == n)) || fail "pcap rx: vm1 read $rx1, uplink0 $rxu of $n frames each"
  device_counters vm1 uplink0
  stop_clean
  kill -INT "$td" 2>/dev/null
  wait "$td" 2>/dev/null
  local out
  out=$($FRAMES compare "$WORK/vm1.in.pcap" "$WORK/t2.got.pcap") || fail "vm1 (rx_pcap) -> vm2: $out"
  echo "  ok: vm1 rx_pcap -> vm2: $out"
  out=$($FRAMES compare "$WORK/up.in.pcap" "$WORK/t2.got.pcap") || fail "uplink0 (rx_pcap) -> vm2: $out"
  echo "  ok: uplink0 rx_pcap -> vm2: $out"
  out=$($FRAMES compare "$WORK/to-vm1.pcap" "$WORK/vm1.out.pcap") || fail "vm2 -> vm1 (tx_pcap): $out"
  echo "  ok: vm2 -> vm1 tx_pcap: $out"
  out=$($FRAMES compare "$WORK/to-up.pcap" "$WORK/up.out.pcap") || fail "vm2 -> uplink0 (tx_pcap): $out"
  echo "  ok: vm2 -> uplink0 tx_pcap: $out"
}

case_ring() {
  case_begin ring r
  esw_host_add "$P" t2 $MAC2 198.18.0.2/24 2001:db8::2/64
  config "{ devargs: net_ring0 }" "{ devargs: net_ring1 }" >"$WORK/esw.yaml"
  start "$WORK/esw.yaml"
  $FRAMES make "$WORK/to-vm1.pcap" $MAC2 $MAC1 198.18.0.2 198.18.0.1 2001:db8::2 2001:db8::1 5
  local n
  n=$($FRAMES count "$WORK/to-vm1.pcap")
  local d0
  d0=$(ctl show vports --json | /usr/bin/python3 -c 'import json,sys; print([v for v in json.load(sys.stdin)["vports"] if v["name"]=="vm1"][0]["drops"].get("spoofed_mac", 0))')
  ip netns exec "$P-t2" $FRAMES send "${P}t2" "$WORK/to-vm1.pcap" || fail "scapy send"
  sleep 1
  local tx rx d1
  tx=$(port_counter vm1 tx_packets)
  rx=$(port_counter vm1 rx_packets)
  d1=$(ctl show vports --json | /usr/bin/python3 -c 'import json,sys; print([v for v in json.load(sys.stdin)["vports"] if v["name"]=="vm1"][0]["drops"].get("spoofed_mac", 0))')
  ((tx >= n && rx >= n)) || fail "ring loopback: vm1 tx $tx rx $rx, expected >= $n each"
  # At least the corpus (flooded frames from t2, IPv6 ND/MLD, loop back too and die the same way).
  ((d1 - d0 >= n)) || fail "ring loopback: spoofed_mac on vm1 counted $((d1 - d0)), expected >= $n"
  echo "  ok: net_ring vport loops back: vm1 tx $tx, rx $rx, spoofed_mac +$((d1 - d0)) (no peer outside the process)"
  device_counters vm1 uplink0
  stop_clean
}

# Loss below the switch is visible: an af_packet ring of 16 frames and a worker that sleeps 200 ms when idle; a
# burst of 400 frames overflows the kernel ring, and `show ports` must count the overflow as the device's imissed
# (read from the kernel's PACKET_STATISTICS; DPDK 22.11's af_packet does not report it) with every frame
# accounted for: rx_packets + imissed = frames sent.
case_afp_loss() {
  case_begin afpl l
  esw_host_add "$P" t1 $MAC1 198.18.0.1/24
  esw_host_add "$P" t2 $MAC2 198.18.0.2/24
  config "{ devargs: \"net_af_packet0,iface=${P}t1p,blocksz=4096,framesz=2048,framecnt=16\" }" |
    sed 's/idle_sleep_us: 20/idle_sleep_us: 200000/' >"$WORK/esw.yaml"
  ip netns exec "$P-t1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true
  start "$WORK/esw.yaml"
  /usr/bin/python3 - "$WORK/burst.pcap" <<'PY'
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw, wrpcap
wrpcap(sys.argv[1], [Ether(src="02:00:c6:12:00:01", dst="02:00:c6:12:00:02") / IP(src="198.18.0.1", dst="198.18.0.2") /
                     UDP(sport=5000 + i, dport=9) / Raw(bytes(64)) for i in range(400)])
PY
  local rx0 m0
  rx0=$(port_counter vm1 rx_packets)
  m0=$(ctl show ports --json | /usr/bin/python3 -c 'import json,sys; print([p for p in json.load(sys.stdin)["ports"] if p["name"]=="vm1"][0]["device_counters"]["imissed"])')
  sleep 1
  ip netns exec "$P-t1" $FRAMES send "${P}t1" "$WORK/burst.pcap" || fail "scapy send"
  sleep 1
  local rx1 m1
  rx1=$(port_counter vm1 rx_packets)
  m1=$(ctl show ports --json | /usr/bin/python3 -c 'import json,sys; print([p for p in json.load(sys.stdin)["ports"] if p["name"]=="vm1"][0]["device_counters"]["imissed"])')
  local rx=$((rx1 - rx0)) missed=$((m1 - m0))
  ((missed > 0)) || fail "no imissed counted for a burst of 400 into a 16-frame ring (rx +$rx)"
  ((rx + missed >= 400)) || fail "frames unaccounted for: rx +$rx, imissed +$missed of 400"
  echo "  ok: af_packet ring overflow visible: rx +$rx, imissed +$missed (400 sent)"
  stop_clean
}

# Attachments that cannot open fail start-up with one line naming the port and the cause.
case_errors() {
  case_begin err e
  local devargs expect
  while IFS=';' read -r devargs expect; do
    config "{ devargs: \"$devargs\" }" >"$WORK/bad.yaml"
    local rc=0
    timeout 60 "$ESWITCHD" --config "$WORK/bad.yaml" >"$WORK/bad.log" 2>&1 || rc=$?
    ((rc != 0)) || fail "eswitchd started with vm1 on $devargs"
    local line
    line=$(grep -m1 "port vm1" "$WORK/bad.log") || { sed 's/^/  eswitchd: /' "$WORK/bad.log" >&2; fail "no error naming port vm1 for $devargs"; }
    grep -qiE "$expect" <<<"$line" || fail "error for $devargs does not name the cause ($expect): $line"
    echo "  ok: $devargs -> $line"
  done <<EOF
net_af_packet0,iface=${P}none;${P}none
net_af_xdp0,iface=${P}none;${P}none
net_pcap0,rx_pcap=$WORK/missing.pcap;missing.pcap
net_tap0,iface=${P}waytoolongname;${P}waytoolongname|name|long
EOF
  # A kind that cannot serve a role: vhost-user is a vport attachment only.
  printf 'apiVersion: eswitch/v1\nuplinks:\n  - { name: up0, attach: { vhost_user: { socket: %s } } }\n' "$WORK/u.sock" >"$WORK/vu.yaml"
  local out
  out=$("$ESWITCHCTL" validate "$WORK/vu.yaml" 2>&1) && fail "an uplink on vhost_user validated"
  grep -q 'uplinks\[0\].attach.vhost_user: unknown key' <<<"$out" || fail "vhost_user uplink: unclear error: $out"
  echo "  ok: vhost_user as uplink -> $(grep -m1 'vhost_user' <<<"$out")"
  rm -rf "/var/run/dpdk/$PREFIX"
}

# ---- run ----------------------------------------------------------------------------------------------------
failed=()
for c in "${CASES[@]}"; do
  declare -F "case_$c" >/dev/null || { echo "unknown case $c (cases: ${ALL_CASES[*]})" >&2; exit 2; }
  echo "CASE $c"
  t0=$SECONDS
  rc=0
  (set -e; "case_$c") || rc=$?
  if ((rc == 0)); then
    echo "CASE $c: PASS ($((SECONDS - t0)) s)"
  else
    echo "CASE $c: FAIL ($((SECONDS - t0)) s)"
    failed+=("$c")
  fi
done
if ((${#failed[@]})); then
  echo "FAIL: attachment cases failed: ${failed[*]}"
  exit 1
fi
echo "PASS: every attachment kind (${CASES[*]})"
