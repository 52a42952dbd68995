#!/usr/bin/env bash
# SMC-D via eswitch vs TCP via eswitch vs TCP over a plain kernel veth pair, one run, the same tenant program
# (tests/tools/smc_ism_peer: TCP connection, SMC-Dv2 CLC handshake when both sides have an ISM endpoint, then a
# checked stream of N bytes and M ping-pong messages of 1..256 bytes). eswitchd runs two af_packet vports with
# ISM endpoints; the veth pair is two namespaces wired directly.
# Prints one line per transport (receiver's stream Gbit/s, sender's ping-pong p50 RTT) and the ratios against
# TCP over veth.
# usage: smc_ism_switch.sh ESWITCHD SMC_ISM_PEER [--bytes N] [--msgs M] [--spin S]   (root; 77 when not root)
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd smc_ism_peer [--bytes N] [--msgs M]}
PEER=${2:?usage: $0 eswitchd smc_ism_peer [--bytes N] [--msgs M]}
shift 2
BYTES=$((256 << 20))
MSGS=20000
SPIN=()
while (($#)); do
  case $1 in
    --bytes) BYTES=$2; shift 2 ;;
    --msgs) MSGS=$2; shift 2 ;;
    --spin) SPIN=(--spin "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../scripts/lib/netns.sh
source "$HERE/../scripts/lib/netns.sh"
esw_e2e_begin ismbench
P="esw$(($$ % 10000))"
M1=02:00:c6:14:00:01
M2=02:00:c6:14:00:02
esw_host_add "$P" a $M1 198.18.41.1/24
esw_host_add "$P" b $M2 198.18.41.2/24
# the plain veth pair: two more namespaces, wired to each other
VA="$P-va" VB="$P-vb"
ip netns add "$VA"; ESW_CREATED_NS+=("$VA")
ip netns add "$VB"; ESW_CREATED_NS+=("$VB")
ip link add "${P}va" netns "$VA" type veth peer name "${P}vb" netns "$VB"
ip -n "$VA" addr add 198.18.42.1/24 dev "${P}va"
ip -n "$VB" addr add 198.18.42.2/24 dev "${P}vb"
for n in "$VA" "$VB"; do ip -n "$n" link set lo up; done
ip -n "$VA" link set "${P}va" up
ip -n "$VB" link set "${P}vb" up
cat >"$WORK/esw.yaml" <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "" }
representors: { kind: none }
vports:
  - { name: vm1, hw_addr: "$M1", ipv4: [198.18.41.1], smc: { policy: allow, ism: { socket: "$WORK/a.ism" } },
      attach: { devargs: "net_af_packet0,iface=${P}ap" } }
  - { name: vm2, hw_addr: "$M2", ipv4: [198.18.41.2], smc: { policy: allow, ism: { socket: "$WORK/b.ism" } },
      attach: { devargs: "net_af_packet1,iface=${P}bp" } }
YAML
esw_start_eswitchd "$ESWITCHD" "$WORK/esw.yaml"

# run NAME SERVER_NS SERVER_EP ADDR CLIENT_NS CLIENT_EP PORT
run() {
  local name=$1 sns=$2 sep=$3 addr=$4 cns=$5 cep=$6 port=$7
  ip netns exec "$sns" "$PEER" server "$sep" "$addr" "$port" "${SPIN[@]}" >"$WORK/s.out" 2>&1 &
  local spid=$!
  ESW_EXTRA_PIDS+=("$spid")
  for _ in $(seq 100); do grep -q listening "$WORK/s.out" && break; sleep 0.1; done
  ip netns exec "$cns" "$PEER" client "$cep" "$addr" "$port" --bytes "$BYTES" --msgs "$MSGS" "${SPIN[@]}" >"$WORK/c.out" 2>&1 ||
    { echo "FAIL: $name: $(cat "$WORK/c.out") / $(cat "$WORK/s.out")"; exit 1; }
  wait "$spid" || { echo "FAIL: $name server: $(cat "$WORK/s.out")"; exit 1; }
  local gb rtt tr
  gb=$(sed -n 's/.*gbit_s=\([0-9.]*\).*/\1/p' "$WORK/s.out")
  rtt=$(sed -n 's/.*rtt_p50_us=\([0-9.]*\).*/\1/p' "$WORK/c.out")
  tr=$(sed -n 's/.*transport=\([a-z]*\).*/\1/p' "$WORK/c.out")
  printf '%-16s transport=%-4s stream_gbit_s=%8s pingpong_p50_us=%8s\n' "$name" "$tr" "$gb" "$rtt"
  eval "GB_$name=$gb RTT_$name=$rtt TR_$name=$tr"
}
echo "bytes=$BYTES msgs=$MSGS (1..256-byte ping-pong), load: $(cut -d' ' -f1-3 /proc/loadavg)"
run tcp_veth "$VB" - 198.18.42.2 "$VA" - 5301
run tcp_eswitch "$P-b" - 198.18.41.2 "$P-a" - 5302
run smcd_eswitch "$P-b" "$WORK/b.ism" 198.18.41.2 "$P-a" "$WORK/a.ism" 5303
[[ $TR_smcd_eswitch == smcd && $TR_tcp_eswitch == tcp && $TR_tcp_veth == tcp ]] || { echo "FAIL: transports"; exit 1; }
awk -v gv="$GB_tcp_veth" -v ge="$GB_tcp_eswitch" -v gs="$GB_smcd_eswitch" \
    -v rv="$RTT_tcp_veth" -v re="$RTT_tcp_eswitch" -v rs="$RTT_smcd_eswitch" 'BEGIN {
  printf "ratio vs tcp_veth: smcd_eswitch latency %.2fx throughput %.2fx; tcp_eswitch latency %.2fx throughput %.2fx\n",
         rs / rv, gs / gv, re / rv, ge / gv }'
esw_stop_eswitchd
