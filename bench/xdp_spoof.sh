#!/usr/bin/env bash
# A spoof flood on an af_xdp vport with and without eswitch's XDP guard (dataplane/xdp/guard.bpf.c), the
# legitimate vport's rate beside it, in one run.
#   vm1 (af_xdp, the attacker): floods frames with a forged source IPv4 (198.18.0.99) at full speed.
#   vm2 (af_packet): sends legitimate frames to vm3 at full speed at the same time.
#   vm3 (af_packet): receives.
# Two runs of WINDOW seconds each: xdp program none (the worker's binding stage drops the flood) and builtin (the
# kernel drops it before the poll loop). Per run: frames each sender sent per second, the worker's rx on vm1,
# vm1's spoofed_ip drops, and what reached vm3 (tx_packets) per second. Speeds are reported, never asserted (the
# machine is shared); the script fails only if a run did not happen (nothing sent / nothing counted).
#
# usage: xdp_spoof.sh ESWITCHD ESWITCHCTL FRAME_FLOOD [--short] [--window S]
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl frame_flood [--short]}
ESWITCHCTL=${2:?}
FLOOD=${3:?}
shift 3
WINDOW=10
while (($#)); do
  case $1 in
    --short) WINDOW=2 ;;
    --window) WINDOW=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../scripts/lib/netns.sh
source "$HERE/../scripts/lib/netns.sh"
esw_e2e_begin xdpsp
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
MAC1=02:00:c6:14:00:01 MAC2=02:00:c6:14:00:02 MAC3=02:00:c6:14:00:03

esw_host_add "$P" t1 $MAC1 198.18.0.1/24
esw_host_add "$P" t2 $MAC2 198.18.0.2/24
esw_host_add "$P" t3 $MAC3 198.18.0.3/24
for t in t1 t2 t3; do ip netns exec "$P-$t" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done

config() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 512, mbufs: 8192, idle_sleep_us: 0, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: vm1, hw_addr: "$MAC1", ipv4: [198.18.0.1], attach: { devargs: "net_af_xdp0,iface=${P}t1p,start_queue=0,queue_count=1", xdp: { program: $1 } } }
  - { name: vm2, hw_addr: "$MAC2", ipv4: [198.18.0.2], attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
  - { name: vm3, hw_addr: "$MAC3", ipv4: [198.18.0.3], attach: { devargs: "net_af_packet2,iface=${P}t3p" } }
YAML
}
# "<vm1 rx> <vm1 spoofed_ip> <vm3 tx> <vm1 imissed (XSK rx ring full)>"
counters() {
  local ports
  ports=$(ctl show ports --json)
  ctl show vports --json | /usr/bin/python3 -c '
import json, sys
v = {x["name"]: x for x in json.load(sys.stdin)["vports"]}
p = {x["name"]: x for x in json.loads(sys.argv[1])["ports"]}
print(v["vm1"]["rx_packets"], v["vm1"]["drops"].get("spoofed_ip", 0), v["vm3"]["tx_packets"],
      (p["vm1"].get("device_counters") or {}).get("imissed", 0))' "$ports"
}

run() {
  config "$1" >"$WORK/$1.yaml"
  esw_start_eswitchd "$ESWITCHD" "$WORK/$1.yaml"
  for _ in $(seq 50); do [[ -S "$SOCK" ]] && break; sleep 0.1; done
  sleep 0.5
  local a b
  read -r -a a <<<"$(counters)"
  ip netns exec "$P-t1" "$FLOOD" "${P}t1" $MAC3 $MAC1 198.18.0.99 198.18.0.3 "$WINDOW" >"$WORK/spoof.out" &
  local f1=$!
  ip netns exec "$P-t2" "$FLOOD" "${P}t2" $MAC3 $MAC2 198.18.0.2 198.18.0.3 "$WINDOW" >"$WORK/legit.out" &
  local f2=$!
  wait $f1 $f2
  sleep 0.5
  read -r -a b <<<"$(counters)"
  esw_stop_eswitchd
  local spoof_sent legit_sent took
  read -r spoof_sent took <"$WORK/spoof.out"
  read -r legit_sent _ <"$WORK/legit.out"
  ((spoof_sent > 0 && legit_sent > 0)) || fail "a sender sent nothing"
  ((b[1] - a[1] > 0)) || fail "program $1: no spoofed_ip drop counted"
  /usr/bin/python3 - "$1" "$took" "$spoof_sent" "$legit_sent" "$((b[0] - a[0]))" "$((b[1] - a[1]))" "$((b[2] - a[2]))" "$((b[3] - a[3]))" <<'PY' | tee -a "$WORK/report"
import sys
prog, took = sys.argv[1], float(sys.argv[2])
spoof, legit, rx1, drop, got, missed = (int(x) for x in sys.argv[3:])
k = lambda n: "%8.0f kpps" % (n / took / 1000)
print("xdp %-8s spoof sent %s | legit sent %s | vm1: worker rx %s, XSK ring full (imissed) %s, spoofed_ip %s | "
      "legit delivered to vm3 %s (%.1f%% of sent)"
      % (prog, k(spoof), k(legit), k(rx1), k(missed), k(drop), k(got), 100.0 * got / max(legit, 1)))
PY
}

echo "window ${WINDOW}s per run, one worker core, 60-byte frames; machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
run none
run builtin
rm -rf "/var/run/dpdk/$PREFIX"
echo "done: spoof flood on an af_xdp vport with and without the XDP program (figures above; not asserted)"
