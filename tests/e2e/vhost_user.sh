#!/usr/bin/env bash
# End-to-end vhost-user vports served by rte_vhost (vdpa/), with dpdk-testpmd's virtio_user as the guests:
#  (a) a guest (txonly) sends to a kernel tenant in a namespace (af_packet vport): the frames arrive there;
#  (b) guest to guest between two vhost-user vports, on split and on packed rings (guests restarted between the
#      two: the server sockets stay, the guests reconnect);
#  (c) a guest sending with a forged source IP, then a forged source MAC: dropped, counted as spoofed_ip /
#      spoofed_mac on its vport, nothing delivered.
# eswitchd must stop cleanly at the end (exit 0: every mbuf back in its pool).
#
# usage: vhost_user.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
command -v dpdk-testpmd >/dev/null || { echo "SKIP: dpdk-testpmd not installed (package dpdk)"; exit 77; }
esw_e2e_begin vhost
# The guests' DPDK runtime directories too (esw_e2e_cleanup removes eswitchd's).
trap 'esw_e2e_cleanup; rm -rf "/var/run/dpdk/$PREFIX-"*' EXIT
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }

MAC1=02:00:c6:12:00:01 MAC2=02:00:c6:12:00:02 MAC3=02:00:c6:12:00:03
esw_host_add "$P" t3 "$MAC3" 198.18.0.3/24

cat >"$WORK/esw.yaml" <<YAML
apiVersion: eswitch/v1
dataplane: { main_core: 0, worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 0, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: vm1, hw_addr: "$MAC1", ipv4: [198.18.0.1], attach: { vhost_user: { socket: "$WORK/vm1.sock", mode: server, queues: 1 } } }
  - { name: vm2, hw_addr: "$MAC2", ipv4: [198.18.0.2], attach: { vhost_user: { socket: "$WORK/vm2.sock", mode: server } } }
  - { name: vm3, hw_addr: "$MAC3", ipv4: [198.18.0.3], attach: { devargs: "net_af_packet0,iface=${P}t3p" } }
YAML
esw_start_eswitchd "$ESWITCHD" "$WORK/esw.yaml"
for _ in $(seq 50); do [[ -S "$SOCK" ]] && break; sleep 0.1; done
[[ -S "$WORK/vm1.sock" && -S "$WORK/vm2.sock" ]] || fail "eswitchd did not create the vhost-user sockets"

# port_stat PORT FIELD (esw_vport_drops VPORT REASON: netns.sh): eswitchd's counters through the management API.
port_stat() {
  ctl --json show ports | /usr/bin/python3 -c '
import json, sys
data = json.load(sys.stdin)
rows = data["ports"] if isinstance(data, dict) else data
print(next((p[sys.argv[2]] for p in rows if p["name"] == sys.argv[1]), 0))' "$1" "$2"
}
kernel_rx() { ip -n "$P-t3" -s -j link show "${P}t3" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["packets"])'; }

# guest NAME SOCKET MAC MODE [testpmd args...]: a testpmd virtio_user guest on core 0 in the background
# (GUEST_PID); its output in $WORK/NAME.log. Waits until eswitchd has seen its device come up.
guest() {
  local name=$1 sock=$2 mac=$3 vdev_extra=$4
  shift 4
  dpdk-testpmd --no-huge -m 1024 --single-file-segments --no-pci --file-prefix "$PREFIX-$name" \
    --lcores "0@0,1@0" --vdev "net_virtio_user0,path=$sock,mac=$mac,queues=1,queue_size=256$vdev_extra" -- \
    --total-num-mbufs=16384 --nb-cores=1 --rxq=1 --txq=1 --no-lsc-interrupt --stats-period 1 "$@" \
    >"$WORK/$name.log" 2>&1 </dev/null &
  GUEST_PID=$!
  ESW_EXTRA_PIDS+=("$GUEST_PID")
  local n=$(( $(grep -c "vhost-user guest connected on $sock" "$WORK/eswitchd.log" || true) + 0 ))
  for _ in $(seq 100); do
    grep -q "Checking link statuses" "$WORK/$name.log" 2>/dev/null && break
    kill -0 "$GUEST_PID" 2>/dev/null || { sed 's/^/  guest: /' "$WORK/$name.log" >&2; fail "testpmd guest $name died"; }
    sleep 0.1
  done
  for _ in $(seq 100); do
    (( $(grep -c "vhost-user guest connected on $sock" "$WORK/eswitchd.log" || true) > n - 1 )) && return 0
    sleep 0.1
  done
  sed 's/^/  guest: /' "$WORK/$name.log" >&2
  fail "eswitchd never saw guest $name connect on $sock"
}
# stop_guest PID NAME: SIGINT, wait; prints the port's final RX-packets and TX-packets ("rx tx").
stop_guest() {
  kill -INT "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  /usr/bin/python3 - "$WORK/$2.log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
# The last forward-statistics block of port 0 (printed at stop).
blocks = re.findall(r"Forward statistics for port 0.*?RX-packets:\s*(\d+).*?TX-packets:\s*(\d+)", text, re.S)
print(*(blocks[-1] if blocks else ("0", "0")))
PY
}

# (b) guest to guest, split then packed ring.
for ring in split packed; do
  extra=""
  [[ $ring == packed ]] && extra=",packed_vq=1"
  rx1=$(port_stat vm1 rx_packets) tx2=$(port_stat vm2 tx_packets) dr2=$(port_stat vm2 tx_dropped)
  guest "rx-$ring" "$WORK/vm2.sock" "$MAC2" "$extra" --forward-mode=rxonly
  rx_pid=$GUEST_PID
  guest "tx-$ring" "$WORK/vm1.sock" "$MAC1" "$extra" --forward-mode=txonly --eth-peer="0,$MAC2" \
    --tx-ip=198.18.0.1,198.18.0.2 --txpkts=128
  tx_pid=$GUEST_PID
  sleep 2
  read -r _ sent < <(stop_guest "$tx_pid" "tx-$ring")
  sleep 0.5
  read -r got _ < <(stop_guest "$rx_pid" "rx-$ring")
  rx1=$(( $(port_stat vm1 rx_packets) - rx1 )) tx2=$(( $(port_stat vm2 tx_packets) - tx2 ))
  dr2=$(( $(port_stat vm2 tx_dropped) - dr2 ))
  echo "  $ring ring: guest on vm1 sent $sent; eswitchd: vm1 rx $rx1, vm2 tx $tx2 + tx_dropped $dr2" \
    "(guest ring full: the receiving guest shares core 0 with the sender); guest on vm2 received $got"
  ((sent > 1000 && got > 1000)) || fail "$ring ring: too little traffic (sent $sent, received $got)"
  # Everything the sender's virtio ring accepted was dequeued (at most a ring's worth lost when it quit), every
  # frame dequeued left towards vm2 or was counted, and the receiving guest got what rte_vhost enqueued.
  ((rx1 >= sent - 512 && rx1 <= sent)) || fail "$ring ring: vm1 rx $rx1 but the guest sent $sent"
  # (+ a few multicast frames the kernel tenant floods, IPv6 ND/MLD)
  ((tx2 + dr2 >= rx1 && tx2 + dr2 <= rx1 + 50)) || fail "$ring ring: vm1 rx $rx1 != vm2 tx $tx2 + tx_dropped $dr2"
  ((got == tx2)) || fail "$ring ring: the guest on vm2 received $got but eswitchd enqueued $tx2"
  echo "ok: vm1 -> vm2 between two vhost-user guests on a $ring ring"
done
f=$(port_stat vm1 driver)
[[ $f == vhost_user ]] || fail "vm1 is served by '$f', not vhost_user"

# (a) guest to kernel tenant (af_packet vport).
before=$(kernel_rx)
guest tx-kernel "$WORK/vm1.sock" "$MAC1" "" --forward-mode=txonly --eth-peer="0,$MAC3" \
  --tx-ip=198.18.0.1,198.18.0.3 --txpkts=128
sleep 1
read -r _ sent < <(stop_guest "$GUEST_PID" tx-kernel)
after=$(kernel_rx)
echo "  guest on vm1 sent $sent, the kernel tenant's interface received $((after - before))"
((after - before > 1000)) || fail "the kernel tenant received $((after - before)) frames of $sent"
echo "ok: vm1 (vhost-user guest) -> vm3 (kernel tenant in $P-t3)"

# (c) spoofed frames from the guest: forged source IP, then forged source MAC.
before_ip=$(esw_vport_drops vm1 spoofed_ip) before_rx=$(kernel_rx)
guest spoof-ip "$WORK/vm1.sock" "$MAC1" "" --forward-mode=txonly --eth-peer="0,$MAC3" \
  --tx-ip=198.18.0.99,198.18.0.3 --txpkts=128
sleep 1
read -r _ sent < <(stop_guest "$GUEST_PID" spoof-ip)
after_ip=$(esw_vport_drops vm1 spoofed_ip) after_rx=$(kernel_rx)
echo "  forged IP: sent $sent, spoofed_ip $before_ip -> $after_ip, kernel received $((after_rx - before_rx))"
((after_ip - before_ip > 1000)) || fail "spoofed_ip did not count the forged frames ($before_ip -> $after_ip)"
((after_rx - before_rx < 10)) || fail "forged-IP frames reached the tenant ($((after_rx - before_rx)))"

before_mac=$(esw_vport_drops vm1 spoofed_mac) before_rx=$(kernel_rx)
guest spoof-mac "$WORK/vm1.sock" 02:00:c6:12:00:99 "" --forward-mode=txonly --eth-peer="0,$MAC3" \
  --tx-ip=198.18.0.1,198.18.0.3 --txpkts=128
sleep 1
read -r _ sent < <(stop_guest "$GUEST_PID" spoof-mac)
after_mac=$(esw_vport_drops vm1 spoofed_mac) after_rx=$(kernel_rx)
echo "  forged MAC: sent $sent, spoofed_mac $before_mac -> $after_mac, kernel received $((after_rx - before_rx))"
((after_mac - before_mac > 1000)) || fail "spoofed_mac did not count the forged frames ($before_mac -> $after_mac)"
((after_rx - before_rx < 10)) || fail "forged-MAC frames reached the tenant ($((after_rx - before_rx)))"
echo "ok: forged source IP and MAC from the vhost-user guest are dropped and counted"

esw_stop_eswitchd
[[ ! -e "$WORK/vm1.sock" ]] || fail "eswitchd left its vhost-user socket behind"
echo "PASS: vhost-user vports (rte_vhost) with testpmd virtio_user guests: guest<->kernel, guest<->guest (split, packed), anti-spoofing"
