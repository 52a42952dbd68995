#!/usr/bin/env bash
# End-to-end: eswitchd's per-worker cycle accounting (issue 15, item 7), read three ways while real traffic flows
# (net_pcap replaying forever into uplink0 -> rule -> net_null vm2) and while nothing arrives:
#  1. eswitchctl stats --json: busy + idle cycles over the interval = the interval at the TSC rate (within 25%),
#     the worker is busy (> 50%) and cycles/packet is > 0 and below 100k; with no traffic it is idle (busy < 5%),
#     counts no packets and reports no cycles/packet.
#  2. The packets the worker counted agree with the ports' rx counters.
#  3. dpdk-telemetry.py /eswitch/workers and the --stats-interval lines move between two reads.
#
# usage: worker_cycles.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=control_lib.sh
source "$HERE/control_lib.sh"
ctl_setup cyc

rules() {
  cat <<'YAML'
tables:
  - id: 0
    rules:
      - name: fwd
        priority: 1000
        match: { in_port: uplink0, udp: true }
        actions: [output: vm2]
YAML
}

check_stats() {  # $1: busy|idle, $2: stats json file
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
mode, j = sys.argv[1], json.load(open(sys.argv[2]))
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
    assert cpp is not None and 0 < cpp < 100000, w
    # the worker's packets agree with the ports' rx rate
    assert abs(w["pps"] - pps) <= 0.25 * pps + 1000, (w, pps)
else:
    assert w["busy_pct"] < 5, w
    assert w["packets"] == 0 and w["cycles_per_packet"] is None, w
print(f"ok ({mode}): busy {w['busy_pct']:.1f}%, cycles/packet {w['cycles_per_packet']}, "
      f"worker {w['pps']:.0f} pps, ports {pps:.0f} pps, cycles {hz_cycles} over {secs:.2f} s")
PY
}

check_elapsed() {  # $1: stats json (raw API: two samples); busy+idle delta vs the wall-clock delta at tsc_hz
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
wa, wb = a["workers"][0], b["workers"][0]
cyc = (wb["busy_cycles"] + wb["idle_cycles"]) - (wa["busy_cycles"] + wa["idle_cycles"])
expect = (b["time"] - a["time"]) * b["tsc_hz"]
assert b["tsc_hz"] > 0 and expect > 0, (a, b)
ratio = cyc / expect
assert 0.75 < ratio < 1.25, (cyc, expect, ratio)
print(f"ok: busy+idle = {ratio:.3f} x elapsed")
PY
}

# --- traffic: uplink0 replays the pcap forever ---
{ ctl_config_head; rules; } >"$WORK/a.yaml"
ctl_start "$WORK/a.yaml"
sleep 0.5
ctl --json stats --interval 1 --count 1 >"$WORK/busy.json" || fail "eswitchctl stats"
check_stats busy "$WORK/busy.json" || fail "cycle accounting under load: $(cat "$WORK/busy.json")"
"$ESWITCHCTL" --socket "$SOCK" --json stats --interval 0.2 --count 1 | grep -q cycles_per_packet || fail "no workers in stats"
ctl stats --interval 0.3 --count 1 | grep -q "CYCLES/PKT" || fail "no worker table in eswitchctl stats"
/usr/bin/python3 - "$SOCK" "$WORK" <<'PY' || fail "raw API samples"
import json, socket, sys, time
def call(i):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sys.argv[1])
    s.sendall((json.dumps({"api": 1, "id": i, "method": "stats", "params": {}}) + "\n").encode())
    buf = b""
    while not buf.endswith(b"\n"): buf += s.recv(65536)
    s.close()
    return json.loads(buf)["result"]
a = call(1); time.sleep(1.0); b = call(2)
json.dump(a, open(sys.argv[2] + "/s1.json", "w")); json.dump(b, open(sys.argv[2] + "/s2.json", "w"))
PY
check_elapsed "$WORK/s1.json" "$WORK/s2.json" || fail "busy+idle against elapsed"
TELEMETRY=$(command -v dpdk-telemetry.py || true)
if [[ -n "$TELEMETRY" ]]; then
  t1=$(printf '/eswitch/workers\n' | timeout 30 "$TELEMETRY" -f "$PREFIX" | ctl_json 'j["/eswitch/workers"]["0"]["packets"]' cat)
  sleep 0.5
  t2=$(printf '/eswitch/workers\n' | timeout 30 "$TELEMETRY" -f "$PREFIX" |
       ctl_json 'j["/eswitch/workers"]["0"]["packets"] if j["/eswitch/workers"]["0"]["cycles_per_packet"] > 0 else -1' cat)
  (( t2 > t1 && t1 > 0 )) || fail "telemetry /eswitch/workers does not move ($t1 -> $t2)"
  echo "ok: telemetry /eswitch/workers packets $t1 -> $t2"
else
  echo "SKIP (telemetry part): dpdk-telemetry.py missing"
fi
ctl_stop
grep -q "^worker 0 lcore 1: busy_cycles=[1-9][0-9]* idle_cycles=[0-9]* packets=[1-9]" "$WORK/eswitchd.log" ||
  fail "no worker cycles line in the exit summary"

# --- no traffic: uplink0 is a net_null that receives nothing ---
{ ctl_config_head; rules; } | sed "s|net_pcap0,rx_pcap=$WORK/traffic.pcap,infinite_rx=1|net_null2,no-rx=1|" >"$WORK/b.yaml"
grep -q "net_null2" "$WORK/b.yaml" || fail "idle config not generated"
ctl_start "$WORK/b.yaml"
sleep 0.3
ctl --json stats --interval 1 --count 1 >"$WORK/idle.json" || fail "eswitchctl stats (idle)"
check_stats idle "$WORK/idle.json" || fail "cycle accounting when idle: $(cat "$WORK/idle.json")"
ctl_stop
echo "PASS: worker cycle accounting"
