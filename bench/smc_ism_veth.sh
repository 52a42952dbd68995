#!/usr/bin/env bash
# SMC-D over the emulated ISM (tenant library) vs TCP over a kernel veth pair between two namespaces, same
# ping-pong and stream loops (bench/smc_ism_perf.cc), one run; prints both and the ratios.
# usage: smc_ism_veth.sh SMC_ISM_PERF [--iters N] [--mib M]     (root; exit 77 when not root)
set -euo pipefail
PERF=${1:?usage: $0 path/to/smc_ism_perf [options]}
shift
[[ $(id -u) -eq 0 ]] || { echo "skip: needs root for network namespaces"; exit 77; }
NA=esw-ia-$$ NB=esw-ib-$$ VA=eswia$$ VB=eswib$$
cleanup() {
  [[ -n ${SRV:-} ]] && kill "$SRV" 2>/dev/null || true
  ip netns del "$NA" 2>/dev/null || true
  ip netns del "$NB" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NA"
ip netns add "$NB"
ip link add "$VA" netns "$NA" type veth peer name "$VB" netns "$NB"
ip -n "$NA" addr add 198.18.77.1/24 dev "$VA"
ip -n "$NB" addr add 198.18.77.2/24 dev "$VB"
ip -n "$NA" link set "$VA" up
ip -n "$NB" link set "$VB" up
ip netns exec "$NB" "$PERF" tcp-server 198.18.77.2 5201 "$@" &
SRV=$!
TCP=$(ip netns exec "$NA" "$PERF" tcp-client 198.18.77.2 5201 "$@")
wait "$SRV"
SRV=
SMC=$("$PERF" smc "$@")
echo "$TCP"
echo "$SMC"
get() { sed -n "s/.*$1 $2.*$3=\([0-9.]*\).*/\1/p" <<<"$4"; }
tl=$(get tcp pingpong p50 "$TCP"); sl=$(get smc pingpong p50 "$SMC")
tt=$(get tcp stream gbit_s "$TCP"); st=$(get smc stream gbit_s "$SMC")
[[ -n $tl && -n $sl && -n $tt && -n $st ]] || { echo "FAIL: missing figures"; exit 1; }
awk -v tl="$tl" -v sl="$sl" -v tt="$tt" -v st="$st" 'BEGIN {
  printf "ratio smc/tcp-veth: latency p50 %.2fx, throughput %.2fx\n", sl / tl, st / tt }'
