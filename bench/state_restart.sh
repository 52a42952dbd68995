#!/usr/bin/env bash
# Start-to-forwarding time of eswitchd restoring a saved state: a config of N rules (one-string form, applied with
# eswitchctl apply, so it is the saved config) plus M runtime rules, two kernel tenants on af_packet veths. Each
# run kills eswitchd with -9 and starts it again with no --config; reported per run and as the median:
#   ready_ms  exec -> "forwarding" (--ready-file written: every port forwards, the API listens)
#   ping_ms   exec -> the first ping reply vm1 -> vm2 through the switch (ping every 10 ms)
# and, for comparison, the same start from the file with --config (no saved state read).
# Times are reported, never asserted.
#
# usage: sudo bench/state_restart.sh PATH/TO/eswitchd PATH/TO/eswitchctl [N=10000] [M=100] [RUNS=3]
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl [rules] [runtime-rules] [runs]}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl [rules] [runtime-rules] [runs]}
N=${3:-10000}
M=${4:-100}
RUNS=${5:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../scripts/lib/netns.sh
source "$HERE/../scripts/lib/netns.sh"
esw_e2e_begin bst
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
esw_host_add "$P" t1 02:00:c6:12:00:01 198.18.0.1/24
esw_host_add "$P" t2 02:00:c6:12:00:02 198.18.0.2/24

/usr/bin/python3 - "$WORK/big.yaml" "$N" "$PREFIX" "$SOCK" "${P}t1p" "${P}t2p" <<'PY'
import sys
path, n, prefix, sock, if1, if2 = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
with open(path, "w") as f:
    f.write(f"""apiVersion: eswitch/v1
dataplane: {{ worker_cores: [1], memory_mb: 512, mbufs: 8192, idle_sleep_us: 20, file_prefix: {prefix}, api_socket: "{sock}" }}
vports:
  - {{ name: vm1, hw_addr: "02:00:c6:12:00:01", ipv4: [198.18.0.1], attach: {{ devargs: "net_af_packet0,iface={if1}" }} }}
  - {{ name: vm2, hw_addr: "02:00:c6:12:00:02", ipv4: [198.18.0.2], attach: {{ devargs: "net_af_packet1,iface={if2}" }} }}
representors: {{ kind: none }}
tables:
  - id: 0
    rules:
""")
    for i in range(n):
        f.write(f'      - "priority=10,in_port=vm1,ipv4,ipv4_dst=198.19.{i // 256 % 256}.{i % 256},tcp,tcp_dst={1 + i // 65536} '
                f'actions=count,output:vm2"\n')
PY

ctl() { "$ESWITCHCTL" --socket "$SOCK" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# start ARGS...: sets READY_MS and PING_MS
start() {
  rm -f "$WORK/ready"
  local t0 t1 t2
  t0=$(now_ms)
  "$ESWITCHD" --state-dir "$WORK/state" --ready-file "$WORK/ready" "$@" >>"$WORK/eswitchd.log" 2>&1 &
  SW_PID=$!
  esw_wait_file "$WORK/ready" "$SW_PID" 300 || fail "eswitchd did not start"
  t1=$(now_ms)
  for _ in $(seq 3000); do
    ip netns exec "$P-t1" ping -c 1 -W 1 -i 0.01 198.18.0.2 >/dev/null 2>&1 && break
  done
  t2=$(now_ms)
  ip netns exec "$P-t1" ping -c 1 -W 1 198.18.0.2 >/dev/null || fail "no ping through the switch"
  READY_MS=$((t1 - t0))
  PING_MS=$((t2 - t0))
}
kill9() { kill -9 "$SW_PID"; wait "$SW_PID" 2>/dev/null || true; SW_PID=""; }
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

# The saved state: the big config through the API (as an operator would) and M runtime rules.
start --config "$WORK/big.yaml"
ctl --no-progress apply "$WORK/big.yaml" >/dev/null || fail "apply"
for ((i = 0; i < M; i += 50)); do
  args=()
  for ((j = i; j < i + 50 && j < M; j++)); do
    args+=(--add "priority=100,name=rt$j,in_port=vm1,ipv4,ipv4_dst=198.19.255.$((j % 256)),udp,udp_dst=$((1000 + j)) actions=drop")
  done
  ctl rules "${args[@]}" >/dev/null || fail "rules --add"
done
total=$(ctl show rules --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
echo "saved state: $N config rules + $M runtime rules ($total installed), $(du -sh "$WORK/state" | cut -f1) in the state directory"

ready=() pingt=()
for ((r = 1; r <= RUNS; r++)); do
  kill9
  start
  a=$READY_MS b=$PING_MS
  got=$(ctl show rules --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
  [[ "$got" == "$total" ]] || fail "restored $got rules, expected $total"
  echo "restore run $r: ready ${a} ms, first ping ${b} ms; eswitchd: $(grep -o '([0-9]* ms after start.*)' "$WORK/eswitchd.log" | tail -1)"
  ready+=("$a")
  pingt+=("$b")
done
echo "restore from saved state: median ready $(echo "${ready[@]}" | median) ms, first ping $(echo "${pingt[@]}" | median) ms"
kill9
ready=() pingt=()
for ((r = 1; r <= RUNS; r++)); do
  start --config "$WORK/big.yaml"
  a=$READY_MS b=$PING_MS
  echo "--config run $r: ready ${a} ms, first ping ${b} ms; eswitchd: $(grep -o '([0-9]* ms after start.*)' "$WORK/eswitchd.log" | tail -1)"
  ready+=("$a")
  pingt+=("$b")
  kill9
done
echo "start from --config: median ready $(echo "${ready[@]}" | median) ms, first ping $(echo "${pingt[@]}" | median) ms"
