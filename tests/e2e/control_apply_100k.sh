#!/usr/bin/env bash
# End-to-end: a 100k-rule apply to an eswitchd that forwards traffic (net_pcap infinite_rx -> net_null).
#  1. Measures it: the apply's time (eswitchctl wall clock and eswitchd's parse/commit split) and the forwarding
#     rate before and during it, sampled every 200 ms through DPDK telemetry (/ethdev/stats of the sink port, which
#     the telemetry thread reads while eswitchd's main thread is busy). Forwarding must never stop.
#  2. kill -9 of eswitchctl at random points of a 100k-rule apply (while sending, while eswitchd parses, while it
#     commits): afterwards eswitchd's running config is exactly the old or exactly the new file, its rule count is
#     that config's, and it still forwards.
# Prints the figures; ESW_KILL_ROUNDS (default 3) sets the number of kill rounds, ESW_RULES the rule count,
# ESW_RULE_FORM the rules' form (compact, the default: one string per rule; mapping).
#
# usage: control_apply_100k.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ESW_KILL_ROUNDS:-3}
RULES=${ESW_RULES:-100000}
FORM=${ESW_RULE_FORM:-compact}  # compact: one string per rule (the form for big rule sets) | mapping
# shellcheck source=control_lib.sh
source "$HERE/control_lib.sh"
ctl_setup ctl100k

{
  ctl_config_head "  max_rules: 262144"
  ctl_fwd_table
} >"$WORK/a.yaml"
# b0..bN: A plus $RULES rules no traffic matches, plus one rule that tells the variants apart.
/usr/bin/python3 - "$WORK" "$RULES" "$ROUNDS" "$FORM" <<'PY'
import sys
work, rules, rounds, form = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base = open(f"{work}/a.yaml").read()
body = []
for i in range(rules):
    if form == "mapping":
        body.append(f"      - {{priority: 10, match: {{in_port: vm1, udp: true, ipv4_dst: 198.19.{(i >> 8) & 255}.{i & 255}, "
                    f"udp_dst: {1000 + (i >> 16)}}}, actions: [count, output: uplink0]}}")
    else:
        body.append(f"      - \"priority=10,in_port=vm1,udp,ipv4_dst=198.19.{(i >> 8) & 255}.{i & 255},"
                    f"udp_dst={1000 + (i >> 16)} actions=count,output:uplink0\"")
body = "\n".join(body) + "\n"
for k in range(rounds + 1):
    with open(f"{work}/b{k}.yaml", "w") as f:
        f.write(base)
        f.write(f"      - {{name: variant-{k}, priority: 20, match: {{in_port: vm1, tcp: true, tcp_dst: {k + 1}}}, "
                "actions: [drop]}\n")
        f.write(body)
PY
echo "config with $RULES rules ($FORM form): $(stat -c %s "$WORK/b0.yaml") bytes"

ctl_start "$WORK/a.yaml"
vm2_id=$(ctl_json '[p["port_id"] for p in j["ports"] if p["name"] == "vm2"][0]' ctl show ports --json)

# Samples vm2's transmitted packets from DPDK's own telemetry (independent of eswitchd's main thread).
cat >"$WORK/sampler.py" <<'PY'
import json, os, socket, sys, time
path, port, out, stop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
info = json.loads(s.recv(4096))
with open(out, "w") as f:
    while not os.path.exists(stop):
        s.send(f"/ethdev/stats,{port}".encode())
        r = json.loads(s.recv(info["max_output_len"]))
        f.write(f"{time.monotonic()} {r['/ethdev/stats']['opackets']}\n")
        f.flush()
        time.sleep(0.2)
PY
/usr/bin/python3 "$WORK/sampler.py" "/var/run/dpdk/$PREFIX/dpdk_telemetry.v2" "$vm2_id" "$WORK/samples" \
  "$WORK/stop-sampler" &
SAMPLER=$!
CTL_EXTRA_CLEANUP+=("touch $WORK/stop-sampler; kill $SAMPLER 2>/dev/null")
sleep 1.2

# Another client's small requests while the apply runs: a fresh connection and a ping or `show ports` every 10 ms,
# the latency of each (eswitchd's main loop must keep answering: the YAML parse and the plan run on a helper
# thread, the loop only executes the plan). Bound: p99 < ESW_APPLY_P99_MS (default 100 ms: this 2-core machine runs
# at load 10-20; the classifier batch still stalls the loop once per big apply, reported as max).
cat >"$WORK/prober.py" <<'PY'
import json, os, socket, sys, time
path, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
with open(out, "w") as f:
    n = 0
    while not os.path.exists(stop):
        n += 1
        method = {"method": "ping"} if n % 2 else {"method": "show", "params": {"what": "ports"}}
        t = time.monotonic()
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(30)
            s.connect(path)
            s.sendall(json.dumps({"api": 1, "id": n, **method}).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                buf += chunk
            s.close()
            r = json.loads(buf.split(b"\n")[0])
            ok = r.get("ok") is True and r.get("id") == n
            f.write(f"{t} {(time.monotonic() - t) * 1000:.3f} {method['method']} {'ok' if ok else 'bad:' + json.dumps(r)[:200]}\n")
        except Exception as e:
            f.write(f"{t} 0 {method['method']} bad:{type(e).__name__}:{e}\n")
        f.flush()
        time.sleep(0.01)
PY
/usr/bin/python3 "$WORK/prober.py" "$SOCK" "$WORK/probes" "$WORK/stop-prober" &
PROBER=$!
CTL_EXTRA_CLEANUP+=("touch $WORK/stop-prober; kill $PROBER 2>/dev/null")

# --- 1. the measured apply ---
t0=$(date +%s.%N)
ctl apply --json --diff-limit 1 --timing "$WORK/b0.yaml" >"$WORK/apply.json" 2>"$WORK/apply.timing" ||
  fail "apply of $RULES rules: $(head -c 2000 "$WORK/apply.json") $(cat "$WORK/apply.timing")"
t1=$(date +%s.%N)
touch "$WORK/stop-prober"
wait "$PROBER" || fail "API prober failed"
# Where the time went: eswitchctl's phases (--timing), eswitchd's (its log line for a big apply, printed once the
# state save made it durable, and the state writer's).
cat "$WORK/apply.timing"
for _ in $(seq 50); do grep -q "^eswitchd: api: apply of $WORK/b0.yaml" "$WORK/eswitchd.log" && break; sleep 0.1; done
grep "^eswitchd: api: apply of $WORK/b0.yaml" "$WORK/eswitchd.log" || fail "eswitchd printed no timing line for the apply"
grep "^eswitchd: state: config saved" "$WORK/eswitchd.log" | head -1 || true
/usr/bin/python3 - "$WORK/probes" "$(date +%s.%N)" "$t0" "$t1" "${ESW_APPLY_P99_MS:-100}" <<'PY' || fail "small requests during the apply"
import sys, time
rows = [l.split(" ", 3) for l in open(sys.argv[1])]
bound = float(sys.argv[5])
# Probe times are monotonic; the apply's wall-clock window [t0, t1] maps onto it backwards from now.
now_w, t0w, t1w = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
mono_now = time.monotonic()
start, end = mono_now - (now_w - t0w), mono_now - (now_w - t1w)
during = [r for r in rows if start <= float(r[0]) <= end]
bad = [r for r in during if r[3].strip() != "ok"]
lat = sorted(float(r[1]) for r in during if r[3].strip() == "ok")
assert not bad, f"{len(bad)} small request(s) not answered during the apply: {bad[:3]}"
assert len(lat) >= 20, f"only {len(lat)} small requests during the apply"
p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
print(f"small requests during the apply (ping / show ports, fresh connection each): n={len(lat)} p50={p50:.1f} ms "
      f"p99={p99:.1f} ms max={lat[-1]:.1f} ms (bound p99 < {bound:.0f} ms)")
slow = [f"{float(r[0]) - start:.2f}s:{float(r[1]):.0f}ms" for r in during if float(r[1]) >= bound]
if slow:
    print(f"  slow ones (time into the apply: latency): {' '.join(slow[:20])}")
assert p99 < bound, f"p99 {p99:.1f} ms over the bound {bound:.0f} ms"
PY
sleep 1.2
touch "$WORK/stop-sampler"
wait "$SAMPLER" || fail "telemetry sampler failed"
expected_rules=$(ctl_json 'j["rules"]' ctl show tables --json 2>/dev/null || true)
/usr/bin/python3 - "$WORK/apply.json" "$WORK/samples" "$t0" "$t1" "$RULES" <<'PY' || fail "apply measurement"
import json, sys, time
reply = json.load(open(sys.argv[1]))
samples = [tuple(map(float, l.split())) for l in open(sys.argv[2])]
t0w, t1w, rules = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
assert reply["counts"]["added"] == rules + 1, reply["counts"]
t = reply["timing"]
wall = t1w - t0w
# Samples use the monotonic clock; the apply's wall-clock window maps onto it by its length, ending at the sample
# closest to (last sample - 1.2 s of the post-apply pause).
end = samples[-1][0] - 1.2
start = end - wall
rate = lambda a, b: (b[1] - a[1]) / (b[0] - a[0])
before = [rate(a, b) for a, b in zip(samples, samples[1:]) if b[0] <= start]
during = [rate(a, b) for a, b in zip(samples, samples[1:]) if a[0] >= start and b[0] <= end]
commit_start = end - t["apply_ms"] / 1000
commit = [rate(a, b) for a, b in zip(samples, samples[1:]) if a[0] >= commit_start - 0.2 and b[0] <= end + 0.2]
avg = lambda v: sum(v) / len(v) if v else float("nan")
print(f"{rules}-rule apply: {wall:.2f} s end to end (eswitchctl), eswitchd: receive {t['receive_ms']:.0f} ms, "
      f"parse {t['parse_ms'] / 1000:.2f} s + plan {t.get('plan_ms', 0) / 1000:.2f} s (helper thread), "
      f"commit {t['apply_ms'] / 1000:.2f} s (main thread)")
print(f"forwarding vm2 before: {avg(before) / 1e6:.2f} Mpps; during the apply: avg {avg(during) / 1e6:.2f} Mpps, "
      f"min {min(during) / 1e6 if during else float('nan'):.2f} Mpps over 200 ms windows ({len(during)} windows); "
      f"during the commit: avg {avg(commit) / 1e6:.2f} Mpps")
assert during, "no telemetry samples during the apply"
assert min(during) > 0, "forwarding stopped during the apply"
PY
[[ $(ctl_json 'j["classifier"]["rules"] >= '"$RULES" ctl show tables --json) == True ]] || fail "rules not installed"
# The heap the apply freed goes back to the kernel a few main-loop ticks later (Switch::maintain: malloc_trim).
sleep 0.5
echo "eswitchd resident memory with $RULES rules, after the apply: $(awk '/^VmRSS/ {printf "%d MB", $2 / 1024}' "/proc/$SW_PID/status")"

# --- 2. kill -9 at random points ---
round_seed=${ESW_SEED:-$RANDOM}
RANDOM=$round_seed
parse_ms=$(ctl_json 'j["timing"]["parse_ms"]' cat "$WORK/apply.json")
echo "kill rounds: seed $round_seed"
prev="$WORK/b0.yaml"
for k in $(seq 1 "$ROUNDS"); do
  # Round 1 kills while sending or just after, the middle rounds at a random point while eswitchd parses, the
  # last one at its commit: as soon as eswitchd stops answering pings (its main thread is in Switch::apply) or
  # reports the apply done.
  "$ESWITCHCTL" --socket "$SOCK" --no-progress apply "$WORK/b$k.yaml" >/dev/null 2>&1 &
  pid=$!
  start_ns=$(date +%s%N)
  if ((k == ROUNDS)); then
    busy() {
      "$ESWITCHCTL" --socket "$SOCK" --timeout 0.3 ping --json 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["apply_in_progress"])' 2>/dev/null ||
        echo commit
    }
    # First until eswitchd has the request, then until it is past parsing.
    for _ in $(seq 200); do [[ $(busy) == True ]] && break; sleep 0.05; done
    while kill -0 "$pid" 2>/dev/null && [[ $(busy) == True ]]; do sleep 0.05; done
  else
    if ((k == 1)); then
      delay_ms=$((RANDOM % 150))
    else
      delay_ms=$(/usr/bin/python3 -c "import random; random.seed($RANDOM); print(int(random.uniform(0.2, 0.9) * $parse_ms))")
    fi
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  fi
  how="killed"
  kill -0 "$pid" 2>/dev/null || how="(already done)"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  delay_ms=$((($(date +%s%N) - start_ns) / 1000000))
  # eswitchd finishes (or drops) what it received; wait until it is idle.
  for _ in $(seq 1200); do
    [[ $(ctl_json 'j["apply_in_progress"]' ctl ping --json) == False ]] && break
    sleep 0.1
  done
  ctl config >"$WORK/running.yaml"
  if cmp -s "$WORK/running.yaml" "$prev"; then
    state=old
  elif cmp -s "$WORK/running.yaml" "$WORK/b$k.yaml"; then
    state=new
    prev="$WORK/b$k.yaml"
  else
    fail "round $k (kill after ${delay_ms} ms): the running config is neither the old nor the new file"
  fi
  # The switch's own state agrees with the config it reports: the variant rule of that file, and no other.
  variants=$(ctl show rules --json --table 0 | /usr/bin/python3 -c '
import json, sys
print(",".join(sorted(r["where"].split("(")[-1].rstrip(")") for r in json.load(sys.stdin)["rules"] if "(variant-" in r["where"])))')
want=$(basename "$prev" .yaml | sed 's/^b/variant-/')
[[ "$variants" == "$want" ]] || fail "round $k: installed variant rules '$variants', expected '$want'"
before=$(ctl_vm2_tx)
sleep 0.2
(( $(ctl_vm2_tx) > before )) || fail "round $k: forwarding stopped"
echo "ok: round $k: eswitchctl $how ${delay_ms} ms into the apply -> $state config ($(basename "$prev"))"
done

ctl_stop
echo "PASS: $RULES-rule apply measured; kill -9 of eswitchctl left the old or the new config every time"
