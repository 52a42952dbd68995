#!/usr/bin/env bash
# Runtime rules over the management API ("rules" method): named rules added and deleted one transaction at a
# time, beside the config's rules and kept across applies of the config. Trace shows what is installed. Also
# measures how many rule changes per second the method sustains (reported, not asserted).
#
# usage: runtime_rules.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
esw_e2e_begin rt
SOCK="$WORK/api.sock"

cat >"$WORK/a.yaml" <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 256, mbufs: 4096, idle_sleep_us: 50, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
pipeline: { mode: cross_connect, cross_connect: [{ from: vm2, to: vm1 }] }
vports:
  - { name: vm1, hw_addr: "02:00:c6:12:00:01", ipv4: [198.18.0.1], attach: { devargs: "net_null0,no-rx=1" } }
  - { name: vm2, hw_addr: "02:00:c6:12:00:02", ipv4: [198.18.0.2], attach: { devargs: "net_null1,no-rx=1" } }
tables:
  - id: 0
    rules:
      - "priority=10,name=cfg-fwd,in_port=vm1 actions=count,output:vm2"
YAML
"$ESWITCHD" --config "$WORK/a.yaml" --state-dir "$WORK/state" --ready-file "$WORK/ready" >"$WORK/eswitchd.log" 2>&1 &
SW_PID=$!
for _ in $(seq 300); do [[ -e "$WORK/ready" && -S "$SOCK" ]] && break; kill -0 "$SW_PID" 2>/dev/null || fail "eswitchd died"; sleep 0.1; done

api() {  # api JSON-PARAMS -> prints the reply line
  /usr/bin/python3 - "$SOCK" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(json.dumps({"api": 1, "id": 1, "method": "rules", "params": json.loads(sys.argv[2])}).encode() + b"\n")
buf = b""
while b"\n" not in buf:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
print(buf.split(b"\n")[0].decode())
PY
}
verdict() {
  "$ESWITCHCTL" --socket "$SOCK" --json trace "$1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["verdict"])'
}

[[ $(verdict "in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=22") == "output:vm2" ]] || fail "config rule not in effect"
r=$(api '{"add": ["table=0,priority=100,name=block-ssh,in_port=vm1,ipv4,tcp_dst=22 actions=count,drop"]}')
echo "$r" | grep -q '"ok":true' || fail "rules add: $r"
[[ $(verdict "in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=22") == "drop (rule)" ]] || fail "runtime rule not in effect"
[[ $(verdict "in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=80") == "output:vm2" ]] || fail "the config rule was lost by a runtime-rule change"
echo "ok: runtime rule added beside the config rule"

"$ESWITCHCTL" --socket "$SOCK" --no-progress apply "$WORK/a.yaml" >/dev/null || fail "re-apply"
[[ $(verdict "in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=22") == "drop (rule)" ]] || fail "runtime rule lost by an apply"
echo "ok: runtime rules survive an apply of the config"

for bad in '{"add": ["priority=5,in_port=vm1 actions=drop"]}' \
           '{"add": ["name=x,in_port=vm1,ipv4_srcc=198.18.0.9 actions=drop"]}' \
           '{"add": ["name=y,in_port=vm1 actions=output:nosuch"]}' \
           '{"delete": ["no-such-rule"]}'; do
  r=$(api "$bad")
  echo "$r" | grep -q '"ok":false' || fail "accepted a bad request: $bad -> $r"
done
[[ $(verdict "in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=22") == "drop (rule)" ]] || fail "a refused request changed something"
echo "ok: bad runtime-rule requests are refused whole and change nothing"

# One parser and one set of checks for the one-string form: the runtime method refuses exactly what a config
# file refuses, with the same message, located at the string (add[i] here, the YAML path and line there).
for prio in -1 70000 5abc " 7" 0x10; do
  rule="priority=$prio,name=p1,in_port=vm1 actions=drop"
  r=$(api "{\"add\": [\"$rule\"]}")
  msg=$(echo "$r" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); e=r["error"]["errors"][0]; assert r["error"]["code"]=="invalid_config" and e["path"]=="add[0]", r; print(e["message"])') \
    || fail "runtime rule with priority=$prio: expected a located invalid_config error, got $r"
  [[ "$msg" == *"priority="*"is not an integer in 0..65535"* ]] || fail "priority=$prio: the message does not name the field: $msg"
  sed "s|\"priority=10,name=cfg-fwd,in_port=vm1 actions=count,output:vm2\"|\"$rule\"|" "$WORK/a.yaml" >"$WORK/bad.yaml"
  out=$("$ESWITCHCTL" validate "$WORK/bad.yaml" 2>&1) && fail "the YAML accepted priority=$prio"
  [[ "$out" == *"$msg"* ]] || fail "priority=$prio: YAML and runtime messages differ: '$out' vs '$msg'"
done
r=$(api '{"add": ["table=255,name=t1,in_port=vm1 actions=drop"]}')
echo "$r" | grep -q 'table=\\"255\\" is not an integer in 0..254' || fail "table=255 accepted or unnamed: $r"
r=$(api '{"add": ["name=bad\u001b[2J,in_port=vm1 actions=drop"]}')
echo "$r" | grep -q '\\\\x1b' || fail "the control character in a rule name is not escaped: $r"
[[ $(verdict "in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=22") == "drop (rule)" ]] || fail "a refused rule changed something"
echo "ok: priority -1, 70000, 5abc, ' 7', 0x10 and table 255 refused at runtime as in the YAML, located and named"

r=$(api '{"delete": ["block-ssh"]}')
echo "$r" | grep -q '"ok":true' || fail "rules delete: $r"
[[ $(verdict "in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=22") == "output:vm2" ]] || fail "deleted rule still in effect"
echo "ok: runtime rule deleted"

# The same through eswitchctl.
"$ESWITCHCTL" --socket "$SOCK" --no-progress rules --add "priority=90,name=cli-block,in_port=vm1,ipv4,tcp_dst=80 actions=drop" \
  >/dev/null || fail "eswitchctl rules --add"
[[ $(verdict "in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=80") == "drop (rule)" ]] \
  || fail "eswitchctl rules --add not in effect"
"$ESWITCHCTL" --socket "$SOCK" --no-progress rules --delete cli-block >/dev/null || fail "eswitchctl rules --delete"
"$ESWITCHCTL" --socket "$SOCK" --no-progress rules --delete cli-block >/dev/null 2>&1 && fail "deleting twice succeeded"
echo "ok: eswitchctl rules --add / --delete"

# Churn: 100 calls, each adding 10 rules and deleting the 10 of the previous call (2,000 changes).
/usr/bin/python3 - "$SOCK" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
buf = b""
def call(params, i):
    global buf
    s.sendall(json.dumps({"api": 1, "id": i, "method": "rules", "params": params}).encode() + b"\n")
    while b"\n" not in buf:
        buf += s.recv(65536)
    line, buf = buf.split(b"\n", 1)
    r = json.loads(line)
    assert r["ok"], r
prev = []
t0 = time.monotonic()
for i in range(100):
    names = [f"churn-{i}-{k}" for k in range(10)]
    adds = [f"priority=50,name={n},in_port=vm1,ipv4,ipv4_dst=198.19.{i}.{k},udp_dst=9 actions=drop"
            for n, k in zip(names, range(10))]
    call({"add": adds, "delete": prev}, i)
    prev = names
dt = time.monotonic() - t0
print(f"churn: {2000 - 10} rule changes in {dt:.2f} s = {(2000 - 10) / dt:.0f} changes/s through the rules method")
PY

# Rule changes per second with durable replies (every change is saved before its reply; saves are coalesced on the
# state writer thread, dataplane/daemon/state_writer.h): one change per request from a sequential client, and
# from a client that pipelines requests (sends them all, then reads the replies). Then kill -9 right after the
# last reply: every change acknowledged must come back on restart (an acknowledged change is durable).
/usr/bin/python3 - "$SOCK" "$WORK/acked" "$SW_PID" <<'PY'
import json, os, signal, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
buf = b""
def reply():
    global buf
    while b"\n" not in buf:
        chunk = s.recv(1 << 16)
        assert chunk, "eswitchd closed the API connection"
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    r = json.loads(line)
    assert r["ok"], r
    return r
def req(i, params):
    return json.dumps({"api": 1, "id": i, "method": "rules", "params": params}).encode() + b"\n"
def rule(name, k):
    return f"priority=40,name={name},in_port=vm1,ipv4,ipv4_dst=198.19.{200 + k // 250}.{k % 250},udp_dst=7 actions=drop"
n = 200
t0 = time.monotonic()
for k in range(n):
    s.sendall(req(k, {"add": [rule(f"seq-{k}", k)]}))
    reply()
seq = n / (time.monotonic() - t0)
n = 2000
t0 = time.monotonic()
s.sendall(b"".join(req(k, {"add": [rule(f"pipe-{k}", k)], "delete": [f"seq-{k}"] if k < 200 else []}) for k in range(n)))
last = None
for k in range(n):
    last = reply()
t_last = time.monotonic()
# The kill follows the last reply at once (no process exit or shell in between): had eswitchd replied before the
# change was on disk, the newest changes would be missing after the restart.
os.kill(int(sys.argv[3]), signal.SIGKILL)
pipe = (n + 200) / (t_last - t0)
print(f"rule changes/s with durable replies: {seq:.0f} sequential (one change per request), "
      f"{pipe:.0f} pipelined (2000 requests in flight)")
assert last["result"]["runtime_rules"] == 2010, last  # + the 10 left by the churn above
open(sys.argv[2], "w").write("2000\n")
PY
wait "$SW_PID" 2>/dev/null || true
SW_PID=""
rm -f "$WORK/ready"
"$ESWITCHD" --state-dir "$WORK/state" --ready-file "$WORK/ready" >"$WORK/eswitchd2.log" 2>&1 &
SW_PID=$!
for _ in $(seq 300); do [[ -e "$WORK/ready" && -S "$SOCK" ]] && break; kill -0 "$SW_PID" 2>/dev/null || fail "eswitchd did not restart: $(tail -3 "$WORK/eswitchd2.log")"; sleep 0.1; done
[[ -e "$WORK/ready" ]] || fail "eswitchd did not restart in 30 s"
restored=$("$ESWITCHCTL" --socket "$SOCK" --json show rules | /usr/bin/python3 -c '
import json, sys
w = [r["where"] for r in json.load(sys.stdin)["rules"]]
print(sum(x.startswith("pipe-") for x in w), sum(x.startswith("seq-") for x in w))')
[[ "$restored" == "2000 0" ]] || fail "after kill -9 right after the last acknowledged change: restored (pipe-*, seq-*) = $restored, acknowledged 2000 and 0"
echo "ok: every acknowledged runtime-rule change survived kill -9 (2000 rules restored)"

esw_stop_eswitchd
echo "PASS: runtime rules"
