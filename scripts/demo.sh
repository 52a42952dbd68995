#!/usr/bin/env bash
# The eswitch demo: builds if needed, then runs eswitchd on the embedded default config (config/default.yaml)
# with two tenant network namespaces (vm1, vm2) and an uplink namespace wired to it through veth pairs and a
# virtio guest on the vhost-user vport vm3 (dpdk-testpmd's virtio_user), shows kernel ping and a TCP transfer
# crossing the switch, the same transfer over SMC-D through eswitchd's emulated ISM beside TCP (smc_ism_peer),
# vm1 pinging the guest, forged frames dropped, and prints the per-port counters. Cleans up everything it
# created, also when interrupted.
#
#   sudo scripts/demo.sh            run the demo and stop
#   sudo scripts/demo.sh --keep     leave the switch running until Ctrl-C (try: ip netns exec esw-t1 ping 198.18.0.2)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib/netns.sh
source scripts/lib/netns.sh

KEEP=0
[[ "${1:-}" == "--keep" ]] && KEEP=1
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (network namespaces and raw sockets): sudo $0" >&2
  exit 1
fi

bash scripts/setup.sh
bash scripts/build.sh "$ROOT/build"
ESWITCHD="$ROOT/build/dataplane/eswitchd"

WORK=$(mktemp -d /tmp/esw-demo.XXXXXX)
SW_PID=""
GUEST=""
PEER_PID=""
cleanup() {
  if [[ -n "$PEER_PID" ]]; then
    kill "$PEER_PID" 2>/dev/null || true
    wait "$PEER_PID" 2>/dev/null || true
  fi
  if [[ -n "$GUEST" ]]; then
    kill -9 "$GUEST" 2>/dev/null || true
    rm -rf "/var/run/dpdk/esw-demo-vm3-$$"
  fi
  if [[ -n "$SW_PID" ]] && kill -0 "$SW_PID" 2>/dev/null; then
    kill -INT "$SW_PID" 2>/dev/null || true
    wait "$SW_PID" 2>/dev/null || true
  fi
  esw_topo_down
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The names and MACs here are the ones config/default.yaml expects.
for ns in esw-t1 esw-t2 esw-up0; do
  if ip netns list | grep -qw "$ns"; then
    echo "demo: namespace $ns exists already (another demo running?); remove it with: ip netns del $ns" >&2
    exit 1
  fi
done
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Tenants: esw-t1 (vm1 198.18.0.1), esw-t2 (vm2 198.18.0.2), uplink namespace esw-up0 (198.18.0.254)"
esw_host_add esw t1 02:00:c6:12:00:01 198.18.0.1/24 2001:db8::1/64
esw_host_add esw t2 02:00:c6:12:00:02 198.18.0.2/24 2001:db8::2/64
esw_host_add esw up0 02:00:c6:12:00:fe 198.18.0.254/24 2001:db8::fe/64

step "Starting eswitchd on the embedded default config"
"$ESWITCHD" --state-dir "$WORK/state" --ready-file "$WORK/ready" > >(tee "$WORK/eswitchd.log") 2>&1 &
SW_PID=$!
if ! esw_wait_file "$WORK/ready" "$SW_PID" 30; then
  echo "demo: eswitchd did not start" >&2
  exit 1
fi

step "ping vm1 -> vm2, vm2 -> vm1, vm1 -> uplink, IPv6 vm1 -> vm2"
ip netns exec esw-t1 ping -c 3 -i 0.2 198.18.0.2
ip netns exec esw-t2 ping -c 2 -i 0.2 198.18.0.1 | tail -2
ip netns exec esw-t1 ping -c 2 -i 0.2 198.18.0.254 | tail -2
ip netns exec esw-t1 ping -6 -c 2 -i 0.2 2001:db8::2 | tail -2

step "TCP: 32 MiB from vm1 to vm2"
head -c $((32 << 20)) /dev/urandom >"$WORK/tx.bin"
ip netns exec esw-t2 timeout 60 nc -l -N 198.18.0.2 5201 >"$WORK/rx.bin" &
NC=$!
for _ in $(seq 50); do ip netns exec esw-t2 ss -ltn | grep -q ':5201' && break; sleep 0.1; done
start=$(date +%s.%N)
ip netns exec esw-t1 timeout 60 nc -N 198.18.0.2 5201 <"$WORK/tx.bin"
wait "$NC"
end=$(date +%s.%N)
if cmp -s "$WORK/tx.bin" "$WORK/rx.bin"; then
  /usr/bin/python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'transfer intact: 32 MiB in {s:.2f} s ({32*8/s:.0f} Mbit/s through af_packet veths)')" "$start" "$end"
else
  echo "demo: TCP transfer corrupted" >&2
  exit 1
fi

step "SMC-D beside TCP: the same 64 MiB stream + 2000 ping-pongs vm1 -> vm2, over TCP and over eswitch's ISM"
# tests/tools/smc_ism_peer on both ends: a TCP connection through the switch, then either the workload on it
# (endpoint '-': no SMC) or an SMC-Dv2 CLC handshake on it and the workload through DMBs of eswitchd's emulated
# ISM (the vports' endpoints /run/eswitch/vm1.ism, vm2.ism from config/default.yaml). The receiver checks every
# byte, the sender every echoed message.
PEER="$ROOT/build/tests/smc_ism_peer"
ctl() { "$ROOT/build/control/eswitchctl" --socket /run/eswitch/eswitchd.sock --no-progress "$@"; }
for ep in /run/eswitch/vm1.ism /run/eswitch/vm2.ism; do
  [[ -S $ep ]] || { echo "demo: eswitchd serves no ISM endpoint $ep (config/default.yaml smc.ism)" >&2; exit 1; }
done
# ism_counters: the ISM service's dmbs_registered, attaches, DMBs held now (eswitchctl --json show smc)
ism_counters() {
  ctl --json show smc >"$WORK/smc.json" || { echo "demo: eswitchctl show smc failed" >&2; exit 1; }
  /usr/bin/python3 -c "import json,sys; c=json.load(open(sys.argv[1]))['ism']['counters']
print(c['dmbs_registered'], c['attaches'], len(json.load(open(sys.argv[1]))['ism']['dmbs']))" "$WORK/smc.json"
}
SMC_BYTES=$((64 << 20))
SMC_MSGS=2000
smc_t0=$SECONDS
# smc_run LABEL SERVER_ENDPOINT CLIENT_ENDPOINT PORT: server in esw-t2, client in esw-t1; lines in $WORK/LABEL.*
smc_run() {
  local label=$1 sep=$2 cep=$3 port=$4
  ip netns exec esw-t2 timeout 60 "$PEER" server "$sep" 198.18.0.2 "$port" >"$WORK/$label.server" 2>&1 &
  PEER_PID=$!
  for _ in $(seq 100); do
    grep -q listening "$WORK/$label.server" && break
    kill -0 "$PEER_PID" 2>/dev/null || break
    sleep 0.1
  done
  grep -q listening "$WORK/$label.server" || { echo "demo: $label server: $(cat "$WORK/$label.server")" >&2; exit 1; }
  local t0
  t0=$(date +%s%N)
  if ! ip netns exec esw-t1 timeout 60 "$PEER" client "$cep" 198.18.0.2 "$port" --bytes "$SMC_BYTES" \
      --msgs "$SMC_MSGS" >"$WORK/$label.client" 2>&1; then
    echo "demo: $label client failed: $(cat "$WORK/$label.client") / server: $(cat "$WORK/$label.server")" >&2
    exit 1
  fi
  wait "$PEER_PID" || { echo "demo: $label server failed: $(cat "$WORK/$label.server")" >&2; exit 1; }
  PEER_PID=""
  echo "$((($(date +%s%N) - t0) / 1000000))" >"$WORK/$label.ms"
}
# smc_check LABEL TRANSPORT: both ends used TRANSPORT, no Decline, all bytes and messages arrived and verified
smc_check() {
  local f want="transport=$2 decline=0x00000000 bytes=$SMC_BYTES .*msgs=$SMC_MSGS .*result=ok"
  for f in "$WORK/$1.server" "$WORK/$1.client"; do
    grep -q "$want" "$f" || { echo "demo: $1 did not complete over $2 with data intact: $(cat "$f")" >&2; exit 1; }
  done
}
read -r reg0 att0 _ < <(ism_counters)
smc_run tcp - - 5301
smc_check tcp tcp
read -r reg1 att1 _ < <(ism_counters)
[[ $reg1 == "$reg0" && $att1 == "$att0" ]] || { echo "demo: the TCP run touched the ISM service" >&2; exit 1; }
smc_run smcd /run/eswitch/vm2.ism /run/eswitch/vm1.ism 5302
smc_check smcd smcd
for _ in $(seq 20); do  # the DMBs are freed once both ends have closed
  read -r reg2 att2 held < <(ism_counters)
  ((held == 0)) && break
  sleep 0.1
done
# One DMB per side registered with eswitchd and attached by the other side: the data went through its ISM.
if ((reg2 - reg1 < 2 || att2 - att1 < 2 || held != 0)); then
  echo "demo: the SMC-D run did not use eswitchd's ISM as it should (dmbs_registered +$((reg2 - reg1)), attaches" \
       "+$((att2 - att1)), DMBs still held $held): $(cat "$WORK/smcd.client")" >&2
  exit 1
fi
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2"; }
printf '  %-26s %26s %30s %12s\n' "vm1 -> vm2 (smc_ism_peer)" "64 MiB stream (receiver)" \
  "ping-pong p50 RTT (sender)" "whole run"
printf '  %-26s %19s Gbit/s %27s us %9s ms\n' "TCP through eswitch" "$(field gbit_s "$WORK/tcp.server")" \
  "$(field rtt_p50_us "$WORK/tcp.client")" "$(cat "$WORK/tcp.ms")"
printf '  %-26s %19s Gbit/s %27s us %9s ms\n' "SMC-D via eswitch's ISM" "$(field gbit_s "$WORK/smcd.server")" \
  "$(field rtt_p50_us "$WORK/smcd.client")" "$(cat "$WORK/smcd.ms")"
echo "  data verified on both runs; eswitchd's ISM: +$((reg2 - reg1)) DMBs registered, +$((att2 - att1))" \
     "attached, all freed after the close (the TCP run: none); both runs took $((SECONDS - smc_t0)) s"
ctl show smc | sed 's/^/  /'

step "A VM on a vhost-user vport: vm3 (198.18.0.3) is dpdk-testpmd's virtio_user guest on /run/eswitch/vm3.sock"
# The guest answers ARP and ping itself (testpmd icmpecho); eswitchd turns its virtio descriptors into packets
# of vm3's tunnel, with vm3's binding enforced like any vport's.
dpdk-testpmd --no-huge -m 1024 --single-file-segments --no-pci --file-prefix "esw-demo-vm3-$$" --lcores "0@0,1@0" \
  --vdev "net_virtio_user0,path=/run/eswitch/vm3.sock,mac=02:00:c6:12:00:03,queues=1,queue_size=256" -- \
  --total-num-mbufs=8192 --nb-cores=1 --rxq=1 --txq=1 --no-lsc-interrupt --forward-mode=icmpecho --stats-period 5 \
  >"$WORK/vm3.log" 2>&1 </dev/null &
GUEST=$!
for _ in $(seq 100); do  # connected to eswitchd, and forwarding
  grep -q "vhost-user guest connected on /run/eswitch/vm3.sock" "$WORK/eswitchd.log" &&
    grep -q "Checking link statuses" "$WORK/vm3.log" && break
  kill -0 "$GUEST" 2>/dev/null || { sed 's/^/  vm3: /' "$WORK/vm3.log" >&2; echo "demo: the vm3 guest died" >&2; exit 1; }
  sleep 0.1
done
grep -q "vhost-user guest connected" "$WORK/eswitchd.log" || { echo "demo: vm3's guest never connected" >&2; exit 1; }
# -w: three replies within 15 s (on a loaded machine the guest's forwarding lcore may start late)
if ! ip netns exec esw-t1 ping -c 3 -i 0.3 -w 15 198.18.0.3; then
  tail -20 "$WORK/vm3.log" | sed "s/^/  vm3: /" >&2
  echo "demo: vm1 cannot ping the VM on vm3" >&2
  exit 1
fi
kill -INT "$GUEST" 2>/dev/null || true
for _ in $(seq 50); do kill -0 "$GUEST" 2>/dev/null || break; sleep 0.1; done
kill -9 "$GUEST" 2>/dev/null || true
wait "$GUEST" 2>/dev/null || true
GUEST=""
rm -rf "/var/run/dpdk/esw-demo-vm3-$$"

step "Representors: the host end of each vport (misses go here; what the host sends here goes to the vport)"
ip -br link show rep-vm1
ip -br link show rep-vm2

step "Anti-spoofing: vm1 sends one frame with a forged source IP and one with a forged source MAC"
ip netns exec esw-t1 /usr/bin/python3 - <<'PY'
from scapy.all import Ether, IP, ICMP, sendp
sendp(Ether(src="02:00:c6:12:00:01", dst="02:00:c6:12:00:02") / IP(src="198.18.0.66", dst="198.18.0.2") / ICMP(),
      iface="eswt1", verbose=False)
sendp(Ether(src="02:00:c6:12:00:66", dst="02:00:c6:12:00:02") / IP(src="198.18.0.1", dst="198.18.0.2") / ICMP(),
      iface="eswt1", verbose=False)
print("sent: 198.18.0.66 (not bound to vm1) and MAC 02:00:c6:12:00:66 (not vm1's hw_addr)")
PY
sleep 0.5

if [[ $KEEP == 1 ]]; then
  step "eswitchd keeps running; Ctrl-C to stop (try: ip netns exec esw-t1 ping 198.18.0.2)"
  wait "$SW_PID" || true
fi

step "Stopping eswitchd (SIGINT): per-port counters, anti-spoofing drops, rule counters"
kill -INT "$SW_PID"
rc=0
wait "$SW_PID" || rc=$?
SW_PID=""
sleep 0.2  # let tee finish
# The demo checks itself, so the test suite can run it: clean stop, both forged frames dropped and counted.
[[ $rc -eq 0 ]] || { echo "demo: eswitchd exited with status $rc" >&2; exit 1; }
for want in "stopped cleanly" "spoofed_ip=1" "spoofed_mac=1"; do
  grep -q "$want" "$WORK/eswitchd.log" || { echo "demo: expected '$want' in eswitchd's report" >&2; exit 1; }
done
printf '\n\033[1mdemo: OK\033[0m (config: build/dataplane/eswitchd --print-default-config)\n'

