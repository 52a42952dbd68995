#!/usr/bin/env bash
# The eswitch demo: builds if needed, then runs eswitchd on the embedded default config (config/default.yaml)
# with two tenant network namespaces (vm1, vm2) and an uplink namespace wired to it through veth pairs and a
# virtio guest on the vhost-user vport vm3 (dpdk-testpmd's virtio_user), shows kernel ping and a TCP transfer
# crossing the switch, vm1 pinging the guest, forged frames dropped, and prints the per-port counters. Cleans up everything it
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
cleanup() {
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
ip netns exec esw-t1 ping -c 3 -i 0.3 -W 2 198.18.0.3 || { echo "demo: vm1 cannot ping the VM on vm3" >&2; exit 1; }
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

