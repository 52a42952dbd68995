#!/usr/bin/env bash
# End-to-end: eswitchd's per-worker cycle accounting (issue 15, item 7), read three ways while real traffic flows
# (net_pcap replaying forever into uplink0 -> rule -> net_null vm2) and while nothing arrives:
#  1. eswitchctl stats --json: the worker is busy (> 50%), cycles/packet > 0, packets per busy loop iteration
#     between 1 and the burst size (only uplink0 receives, at most one burst per iteration); with no traffic it is
#     idle (busy < 5%), counts no packets and no busy iterations, and reports no cycles/packet nor packets/loop.
#  2. Over the worker's life: busy + idle cycles at exit, at the TSC rate the API reports, lie between the time
#     from "ready" to SIGINT and the time from launch to exit (the worker runs inside both). Per-interval
#     figures are not held to this: the counters move once per loop iteration, and on a machine with many more
#     busy-polling threads than cores one iteration can last a large part of a second (the worker is
#     descheduled inside it; the TSC runs on).
#  3. At exit (workers stopped, counters final) the worker's packets equal the sum of the ports' rx_pkts
#     exactly: both are counted by the same worker for the same bursts; its busy iterations are at least
#     packets / burst and at most packets.
#  4. dpdk-telemetry.py /eswitch/workers moves between two reads (packets and busy iterations).
#
# usage: worker_cycles.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=control_lib.sh
source "$HERE/control_lib.sh"
ctl_setup cyc
BURST=32  # dataplane.burst's default (ctl_config_head sets none)

check_stats() {  # $1: busy|idle, $2: stats json file
  /usr/bin/python3 - "$1" "$2" "$BURST" <<'PY'
import json, sys
mode, j, burst = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3])
ws = j["workers"]
assert len(ws) == 1, ws
w = ws[0]
hz_cycles = w["busy_cycles"] + w["idle_cycles"]
secs = j["interval_s"]
# busy + idle covers the whole interval (one rdtsc per loop iteration; the two API samples are not taken at the
# same instant as the worker's counters, hence the slack).
pps = j["totals"]["rx_pps"]
if mode == "busy":
    assert w["busy_pct"] > 50, w
    cpp = w["cycles_per_packet"]
    assert cpp is not None and cpp > 0 and w["packets"] > 0, w
    ppl = w["packets_per_busy_loop"]
    assert 0 < w["busy_loops"] <= w["packets"] and ppl is not None and 1 <= ppl <= burst, w
else:
    assert w["busy_pct"] < 5, w
    assert w["packets"] == 0 and w["cycles_per_packet"] is None, w
    assert w["busy_loops"] == 0 and w["packets_per_busy_loop"] is None, w
print(f"ok ({mode}): busy {w['busy_pct']:.1f}%, cycles/packet {w['cycles_per_packet']}, "
      f"packets/busy loop {w['packets_per_busy_loop']}, "
      f"worker {w['pps']:.0f} pps, ports {pps:.0f} pps, cycles {hz_cycles} over {secs:.2f} s")
PY
}

# --- traffic: uplink0 replays the pcap forever ---
{ ctl_config_head; ctl_fwd_table; } >"$WORK/a.yaml"
t_launch=$(date +%s.%N)
ctl_start "$WORK/a.yaml"
t_ready=$(date +%s.%N)
sleep 0.5
ctl --json stats --interval 1 --count 1 >"$WORK/busy.json" || fail "eswitchctl stats"
check_stats busy "$WORK/busy.json" || fail "cycle accounting under load: $(cat "$WORK/busy.json")"
"$ESWITCHCTL" --socket "$SOCK" --json stats --interval 0.2 --count 1 | grep -q cycles_per_packet || fail "no workers in stats"
ctl stats --interval 0.3 --count 1 | grep -q "CYCLES/PKT.*PKTS/LOOP" || fail "no worker table in eswitchctl stats"
tsc_hz=$(ctl --json stats --interval 0.1 --count 1 >/dev/null && /usr/bin/python3 - "$SOCK" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
s.sendall((json.dumps({"api": 1, "id": 1, "method": "stats", "params": {}}) + "\n").encode())
buf = b""
while not buf.endswith(b"\n"): buf += s.recv(65536)
print(json.loads(buf)["result"]["tsc_hz"])
PY
) || fail "raw API stats"
TELEMETRY=$(command -v dpdk-telemetry.py || true)
if [[ -n "$TELEMETRY" ]]; then
  t1=$(printf '/eswitch/workers\n' | timeout 30 "$TELEMETRY" -f "$PREFIX" | ctl_json 'j["/eswitch/workers"]["0"]["packets"]' cat)
  sleep 0.5
  t2=$(printf '/eswitch/workers\n' | timeout 30 "$TELEMETRY" -f "$PREFIX" |
       ctl_json '(lambda w: w["packets"] if w["cycles_per_packet"] > 0 and 0 < w["busy_loops"] <= w["packets"] else -1)(j["/eswitch/workers"]["0"])' cat)
  (( t2 > t1 && t1 > 0 )) || fail "telemetry /eswitch/workers does not move ($t1 -> $t2)"
  echo "ok: telemetry /eswitch/workers packets $t1 -> $t2"
else
  echo "SKIP (telemetry part): dpdk-telemetry.py missing"
fi
t_stop=$(date +%s.%N)
ctl_stop
t_exit=$(date +%s.%N)
/usr/bin/python3 - "$WORK/eswitchd.log" "$tsc_hz" "$t_launch" "$t_ready" "$t_stop" "$t_exit" "$BURST" <<'PY' || fail "exit summary"
import re, sys
hz, t_launch, t_ready, t_stop, t_exit, burst = (float(x) for x in sys.argv[2:8])
lines = open(sys.argv[1]).read().splitlines()
start = max(i for i, l in enumerate(lines) if l.startswith("port ") and "rx_pkts" in l)
rx, worker = 0, None
for l in lines[start + 1:]:
    m = re.match(r"worker 0 lcore 1: busy_cycles=(\d+) idle_cycles=(\d+) packets=(\d+) busy_loops=(\d+)$", l)
    if m:
        worker = [int(x) for x in m.groups()]
        break
    parts = l.split()
    assert len(parts) == 9, l
    rx += int(parts[3])
assert worker is not None, "no worker line after the last port table"
assert worker[0] > 0 and worker[2] > 0 and worker[2] == rx, (worker, rx)
assert worker[2] / burst <= worker[3] <= worker[2], ("busy loops", worker)
life = (worker[0] + worker[1]) / hz
assert t_stop - t_ready <= life <= t_exit - t_launch, (life, t_stop - t_ready, t_exit - t_launch)
print(f"ok: exit summary: worker packets {worker[2]} == ports rx {rx}; busy+idle {life:.2f} s within "
      f"[{t_stop - t_ready:.2f}, {t_exit - t_launch:.2f}] s; cycles/packet over the life {worker[0] / worker[2]:.0f}, "
      f"packets/busy loop {worker[2] / worker[3]:.1f}")
PY

# --- no traffic: uplink0 is a net_null that receives nothing ---
{ ctl_config_head; ctl_fwd_table; } | sed "s|net_pcap0,rx_pcap=$WORK/traffic.pcap,infinite_rx=1|net_null2,no-rx=1|" >"$WORK/b.yaml"
grep -q "net_null2" "$WORK/b.yaml" || fail "idle config not generated"
ctl_start "$WORK/b.yaml"
sleep 0.3
ctl --json stats --interval 1 --count 1 >"$WORK/idle.json" || fail "eswitchctl stats (idle)"
check_stats idle "$WORK/idle.json" || fail "cycle accounting when idle: $(cat "$WORK/idle.json")"
ctl_stop
echo "PASS: worker cycle accounting"
