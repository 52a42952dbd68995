#!/usr/bin/env bash
# 64 vhost-user vports in one eswitchd, each with its own guest, traffic on every one of them.
# The guests: two dpdk-testpmd processes with 32 net_virtio_user ports each (Debian's DPDK allows 32 ethdevs per
# process; eswitchd's vhost-user vports are no ethdevs at all), forwarding mode icmpecho, so every guest port
# answers ARP and ping for its own MAC and address. A kernel tenant (af_packet vport) pings all 64 guests through
# the switch; every vport must answer, and eswitchd's per-port counters must show traffic both ways on each.
# eswitchd stops cleanly at the end (exit 0: every mbuf back).
#
# usage: vhost_many.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
command -v dpdk-testpmd >/dev/null || { echo "SKIP: dpdk-testpmd not installed (package dpdk)"; exit 77; }
esw_e2e_begin vmany
trap 'esw_e2e_cleanup; rm -rf "/var/run/dpdk/$PREFIX-"*' EXIT
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
N=64
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
mac() { printf '02:00:c6:12:01:%02x' "$1"; }

esw_host_add "$P" t0 02:00:c6:12:00:01 198.18.0.1/16
{
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { main_core: 0, worker_cores: [1], memory_mb: 512, mbufs: 16384, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: tenant, hw_addr: "02:00:c6:12:00:01", ipv4: [198.18.0.1], attach: { devargs: "net_af_packet0,iface=${P}t0p" } }
YAML
  for ((i = 1; i <= N; i++)); do
    printf '  - { name: vm%02d, hw_addr: "%s", ipv4: [198.18.1.%d], attach: { vhost_user: { socket: "%s/vm%02d.sock", mode: server } } }\n' \
      "$i" "$(mac "$i")" "$i" "$WORK" "$i"
  done
} >"$WORK/esw.yaml"
esw_start_eswitchd "$ESWITCHD" "$WORK/esw.yaml"
for ((i = 1; i <= N; i++)); do [[ -S $(printf '%s/vm%02d.sock' "$WORK" "$i") ]] || fail "no socket for vm$i"; done

# guests FIRST LAST NAME: one testpmd with a virtio_user port per vport FIRST..LAST, icmpecho, on core 0.
guests() {
  local first=$1 last=$2 name=$3 i args=()
  for ((i = first; i <= last; i++)); do
    args+=(--vdev "$(printf 'net_virtio_user%d,path=%s/vm%02d.sock,mac=%s,queues=1,queue_size=256' \
      "$((i - first))" "$WORK" "$i" "$(mac "$i")")")
  done
  dpdk-testpmd --no-huge -m 1024 --single-file-segments --no-pci --file-prefix "$PREFIX-$name" \
    --lcores "0@0,1@0" "${args[@]}" -- --total-num-mbufs=32768 --nb-cores=1 --rxq=1 --txq=1 \
    --no-lsc-interrupt --port-topology=loop --forward-mode=icmpecho --stats-period 5 >"$WORK/$name.log" 2>&1 </dev/null &
  ESW_EXTRA_PIDS+=("$!")
}
guests 1 32 g1
guests 33 64 g2
for _ in $(seq 600); do
  (( $(grep -c "vhost-user guest connected" "$WORK/eswitchd.log" || true) >= N )) && break
  sleep 0.1
done
up=$(grep -c "vhost-user guest connected" "$WORK/eswitchd.log" || true)
((up >= N)) || { tail -5 "$WORK/g1.log" "$WORK/g2.log" >&2; fail "only $up of $N guests connected"; }
echo "  $N guests connected"
# testpmd starts forwarding once all its 32 ports are up (its stdout is buffered: ask the guests, not the log).
for g in 1 33; do
  for ((t = 0; t < 90; t++)); do
    ip netns exec "$P-t0" ping -c 1 -W 1 "198.18.1.$g" >/dev/null 2>&1 && break
  done
  ((t < 90)) || fail "the testpmd guest with vm$g never started answering"
done

# Every guest, pinged from the tenant through the switch (all at once, 3 each).
for ((i = 1; i <= N; i++)); do
  ip netns exec "$P-t0" ping -c 3 -i 0.3 -W 3 "198.18.1.$i" >"$WORK/ping$i.log" 2>&1 &
done
wait_pings_rc=0
for job in $(jobs -p); do
  # only the pings: eswitchd and the guests are tracked separately
  if ! printf '%s\n' "${ESW_EXTRA_PIDS[@]}" "$SW_PID" | grep -qx "$job"; then wait "$job" || wait_pings_rc=1; fi
done
answered=0 silent=()
for ((i = 1; i <= N; i++)); do
  if grep -q ' 0% packet loss\| 3 received' "$WORK/ping$i.log"; then answered=$((answered + 1)); else silent+=("vm$i"); fi
done
echo "  $answered of $N guests answered every ping${silent:+ (not: ${silent[*]})}"
((answered == N)) || { cat "$WORK/ping1.log" >&2; grep -v "^ *$" "$WORK/g1.log" | grep -iv "statistics\|RX-\|TX-\|Throughput\|pps\|####" | head -60 >&2; ctl show ports | head -8 >&2; fail "guests that did not answer all pings: ${silent[*]}"; }

ctl --json show ports >"$WORK/ports.json"
/usr/bin/python3 - "$WORK/ports.json" "$N" <<'PY' || fail "eswitchd's counters do not show traffic on every vhost-user vport"
import json, sys
ports = {p["name"]: p for p in json.load(open(sys.argv[1]))["ports"]}
n, bad = int(sys.argv[2]), []
for i in range(1, n + 1):
    p = ports[f"vm{i:02d}"]
    if p["kind"] != "vhost_user" or p["port_id"] is not None: bad.append(f"vm{i:02d}: kind {p['kind']} port_id {p['port_id']}")
    if p["rx_packets"] < 3 or p["tx_packets"] < 3: bad.append(f"vm{i:02d}: rx {p['rx_packets']} tx {p['tx_packets']}")
    if not p["peer"]["connected"]: bad.append(f"vm{i:02d}: not connected")
for b in bad: print("  ", b)
print(f"  eswitchd: {n} vhost-user vports, none an ethdev, each with rx and tx >= 3")
sys.exit(1 if bad else 0)
PY

for p in "${ESW_EXTRA_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
for p in "${ESW_EXTRA_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
ESW_EXTRA_PIDS=()
esw_stop_eswitchd
echo "PASS: $N vhost-user vports with $N guests in one eswitchd, every guest answered through the switch"
