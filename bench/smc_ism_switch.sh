#!/usr/bin/env bash
# SMC-D via eswitch vs TCP via eswitch vs TCP over a plain kernel veth pair, one run, the same tenant program
# (tests/tools/smc_ism_peer: TCP connection, SMC-Dv2 CLC handshake when both sides have an ISM endpoint, then a
# checked stream of N bytes and M ping-pong messages of 1..256 bytes). eswitchd runs two af_packet vports with
# ISM endpoints; the veth pair is two namespaces wired directly.
# Prints one line per transport (receiver's stream Gbit/s, sender's ping-pong p50 RTT) and the ratios against
# TCP over veth.
# With --apps ESW_SMC_RUN, the same three transports also run unmodified Debian programs (smcd_eswitch: both ends
# under esw-smc-run): sockperf ping-pong (64-byte messages, p50 latency) and throughput (1400-byte messages, the
# receiver's MBps), iperf3 (receiver Gbit/s) and redis-benchmark -t set,get (requests/s), --secs S seconds each,
# and prints the ratios against TCP over the veth pair (goal of issue 12: latency <= 0.5x, throughput >= 1.7x).
# usage: smc_ism_switch.sh ESWITCHD SMC_ISM_PEER [--bytes N] [--msgs M] [--spin S] [--apps ESW_SMC_RUN] [--secs S]
#        [--poll-spin US]
#        (root; 77 when not root)
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd smc_ism_peer [--bytes N] [--msgs M]}
PEER=${2:?usage: $0 eswitchd smc_ism_peer [--bytes N] [--msgs M]}
shift 2
BYTES=$((256 << 20))
MSGS=20000
SPIN=()
APPS=""
SECS=3
POLLSPIN=0  # esw-smc-run -p: polling of the cursors before poll/select/epoll_wait sleep, microseconds
while (($#)); do
  case $1 in
    --bytes) BYTES=$2; shift 2 ;;
    --msgs) MSGS=$2; shift 2 ;;
    --spin) SPIN=(--spin "$2"); shift 2 ;;
    --apps) APPS=$2; shift 2 ;;
    --poll-spin) POLLSPIN=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
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

# ---- unmodified programs (sockperf, iperf3, redis-benchmark) ----
# app NAME SERVER_NS CLIENT_NS ADDR PORT_BASE WRAP_S... -- WRAP_C...: sets LAT_/SPB_/IPB_/SET_/GET_NAME
app() {
  local name=$1 sns=$2 cns=$3 addr=$4 port=$5
  shift 5
  local ws=() wc=()
  while [[ $1 != -- ]]; do ws+=("$1"); shift; done
  shift
  wc=("$@")
  local spid out=$WORK/app.$name
  ip netns exec "$sns" "${ws[@]}" sockperf server --tcp -i "$addr" -p "$port" >"$out.sps" 2>&1 &
  spid=$!
  ESW_EXTRA_PIDS+=("$spid")
  sleep 1
  ip netns exec "$cns" "${wc[@]}" sockperf ping-pong --tcp -i "$addr" -p "$port" -t "$SECS" -m 64 >"$out.pp" 2>&1 ||
    { echo "FAIL: $name sockperf ping-pong: $(tail -5 "$out.pp")"; exit 1; }
  ip netns exec "$cns" "${wc[@]}" sockperf throughput --tcp -i "$addr" -p "$port" -t "$SECS" -m 1400 >"$out.tp" 2>&1 ||
    { echo "FAIL: $name sockperf throughput: $(tail -5 "$out.tp")"; exit 1; }
  kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true
  local lat spb
  lat=$(grep -oE "percentile 50.000 = +[0-9.]+" "$out.pp" | grep -oE "[0-9.]+$")
  spb=$(grep -oE "BandWidth is [0-9.]+ MBps" "$out.tp" | grep -oE "[0-9.]+")
  ip netns exec "$sns" "${ws[@]}" iperf3 -s -1 -B "$addr" -p $((port + 1)) >"$out.ips" 2>&1 &
  spid=$!
  ESW_EXTRA_PIDS+=("$spid")
  sleep 1
  ip netns exec "$cns" "${wc[@]}" iperf3 -c "$addr" -p $((port + 1)) -t "$SECS" -J >"$out.ip" 2>"$out.ipe" ||
    { echo "FAIL: $name iperf3: $(tail -5 "$out.ipe")"; exit 1; }
  wait "$spid" 2>/dev/null || true
  local ipb
  ipb=$(/usr/bin/python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$out.ip")
  ip netns exec "$sns" "${ws[@]}" redis-server --bind "$addr" --port $((port + 2)) --save "" --appendonly no \
    --protected-mode no --daemonize no >"$out.rds" 2>&1 &
  spid=$!
  ESW_EXTRA_PIDS+=("$spid")
  sleep 1
  ip netns exec "$cns" "${wc[@]}" redis-benchmark -h "$addr" -p $((port + 2)) -t set,get -n $((SECS * 20000)) -c 8 -q \
    >"$out.rb" 2>"$out.rbe" || { echo "FAIL: $name redis-benchmark: $(tail -5 "$out.rbe")"; exit 1; }
  kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true
  local set get
  set=$(tr '\r' '\n' <"$out.rb" | grep -oE "^SET: [0-9.]+" | grep -oE "[0-9.]+$")
  get=$(tr '\r' '\n' <"$out.rb" | grep -oE "^GET: [0-9.]+" | grep -oE "[0-9.]+$")
  printf '%-17s sockperf p50_us=%8s sockperf_MBps=%9s iperf3_gbit_s=%7s redis_set_rps=%9s redis_get_rps=%9s\n' \
    "$name" "$lat" "$spb" "$ipb" "$set" "$get"
  eval "LAT_$name=$lat SPB_$name=$spb IPB_$name=$ipb SET_$name=$set GET_$name=$get"
}
if [[ -n $APPS ]]; then
  echo "programs: sockperf (ping-pong 64 B, throughput 1400 B), iperf3, redis-benchmark -t set,get -c 8; ${SECS}s each; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  app tcp_veth "$VB" "$VA" 198.18.42.2 5310 env -- env
  app tcp_eswitch "$P-b" "$P-a" 198.18.41.2 5320 env -- env
  # SMC-D as esw-smc-run does it by default (sleep on the eventfd at once), and with --poll-spin US also with
  # esw-smc-run -p US (poll the cursors for up to US microseconds before poll/select/epoll_wait sleep) in the
  # same run.
  variants=(smcd_eswitch)
  ((POLLSPIN > 0)) && variants+=(smcd_eswitch_poll)
  port=5330
  for n in "${variants[@]}"; do
    ps=0
    [[ $n == smcd_eswitch_poll ]] && ps=$POLLSPIN
    app "$n" "$P-b" "$P-a" 198.18.41.2 "$port" "$APPS" -d -p "$ps" -e "$WORK/b.ism" -- \
      "$APPS" -d -p "$ps" -e "$WORK/a.ism"
    port=$((port + 10))
    grep -q "connected over SMC-D" "$WORK/app.$n.pp" || { echo "FAIL: $n: sockperf did not use SMC-D"; exit 1; }
    grep -q "connected over SMC-D" "$WORK/app.$n.ipe" || { echo "FAIL: $n: iperf3 did not use SMC-D"; exit 1; }
    grep -q "connected over SMC-D" "$WORK/app.$n.rbe" || { echo "FAIL: $n: redis-benchmark did not use SMC-D"; exit 1; }
  done
  ((POLLSPIN > 0)) && echo "smcd_eswitch_poll: esw-smc-run -p $POLLSPIN (polls the cursors up to $POLLSPIN us before sleeping)"
  for n in tcp_eswitch "${variants[@]}"; do
    eval "l=\$LAT_$n s=\$SPB_$n i=\$IPB_$n a=\$SET_$n g=\$GET_$n"
    awk -v n="$n" -v l="$l" -v s="$s" -v i="$i" -v a="$a" -v g="$g" -v L="$LAT_tcp_veth" -v S="$SPB_tcp_veth" \
        -v I="$IPB_tcp_veth" -v A="$SET_tcp_veth" -v G="$GET_tcp_veth" 'BEGIN {
      printf "ratio vs tcp_veth: %-17s sockperf latency %.2fx (goal <= 0.5x) throughput %.2fx, iperf3 %.2fx (goal >= 1.7x), redis SET %.2fx GET %.2fx\n",
             n, l / L, s / S, i / I, a / A, g / G }'
  done
fi
esw_stop_eswitchd
