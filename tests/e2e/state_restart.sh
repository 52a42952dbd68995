#!/usr/bin/env bash
# Durable state and exclusive ownership, with kernel peers in network namespaces (af_packet) and a real eswitchd:
#  1. kill -9 of eswitchd mid-traffic, restart without --config: the same config rules, runtime rules and ports
#     (`eswitchctl show rules/ports --json`), the same config text, the stale DPDK runtime directory removed, and
#     ping flows again;
#  2. a crash between a state file's write and its rename (ESWITCHD_TEST_CRASH_IN_STATE_WRITE), for a runtime-
#     rules change and for an apply: the restart comes back with the state before the change (old, not a mix);
#  3. a truncated newest rules file and a corrupted newest config file: detected, logged, the previous
#     generation used;
#  4. a second eswitchd on the same interface, DPDK file prefix, state directory or API socket: refused with exit
#     status 4 and one line naming the first one's pid, while the first keeps forwarding;
#  5. an explicit --config replaces the saved state; an apply cannot take another instance's interface;
#     readiness and stop are reported on $NOTIFY_SOCKET.
#
# usage: state_restart.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"

esw_e2e_begin st
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
STATE="$WORK/state"
SECOND_PID=""
PING_PID=""
FAKE_STALE=""
cleanup_extra() {
  [[ -n "$PING_PID" ]] && kill "$PING_PID" 2>/dev/null || true
  [[ -n "$SECOND_PID" ]] && kill -9 "$SECOND_PID" 2>/dev/null || true
  [[ -n "$FAKE_STALE" ]] && rm -rf "$FAKE_STALE" || true
  rm -rf "/var/run/dpdk/$PREFIX-b"
  esw_e2e_cleanup
}
trap cleanup_extra EXIT

esw_host_add "$P" t1 02:00:c6:12:00:01 198.18.0.1/24
esw_host_add "$P" t2 02:00:c6:12:00:02 198.18.0.2/24

write_config() {  # write_config FILE EXTRA-RULE...
  local file=$1
  shift
  {
    cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 256, mbufs: 4096, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
vports:
  - { name: vm1, hw_addr: "02:00:c6:12:00:01", ipv4: [198.18.0.1], attach: { devargs: "net_af_packet0,iface=${P}t1p" } }
  - { name: vm2, hw_addr: "02:00:c6:12:00:02", ipv4: [198.18.0.2], attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
representors: { kind: none }
tables:
  - id: 0
    rules:
      - "priority=100,name=cfg-icmp,in_port=vm1,ipv4,icmp actions=count,output:vm2"
YAML
    for r in "$@"; do echo "      - \"$r\""; done
  } >"$file"
}
write_config "$WORK/a.yaml"
write_config "$WORK/b.yaml" "priority=150,name=cfg-udp,in_port=vm1,ipv4,udp,udp_dst=9999 actions=count,drop"
write_config "$WORK/c.yaml" "priority=150,name=cfg-udp,in_port=vm1,ipv4,udp,udp_dst=9999 actions=count,drop" \
  "priority=160,name=cfg-c,in_port=vm1,ipv4,udp,udp_dst=7777 actions=drop"

ctl() { "$ESWITCHCTL" --socket "$SOCK" "$@"; }
# start_switch [ARGS...]: eswitchd on $STATE (no --config unless given), waits for forwarding and the API.
start_switch() {
  rm -f "$WORK/ready"
  "$ESWITCHD" --state-dir "$STATE" --ready-file "$WORK/ready" "$@" >>"$WORK/eswitchd.log" 2>&1 &
  SW_PID=$!
  esw_wait_file "$WORK/ready" "$SW_PID" 60 || fail "eswitchd did not start ($*)"
  ctl ping >/dev/null || fail "eswitchd does not answer on $SOCK"
}
# What must survive: every rule (where, table, priority, match, actions) and every port, without counters.
snapshot() {
  {
    ctl show rules --json | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin)
for r in sorted(j["rules"], key=lambda r: (r["table"], -r["priority"], r["where"], r["match"])):
    print(r["table"], r["priority"], r["where"], r["match"], "->", r["actions"])'
    ctl show ports --json | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin)
for p in sorted(j["ports"], key=lambda p: p["name"]): print("port", p["name"], p["role"], p["driver"])'
    ctl config --json | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print("config", j["config_hash"], j["generation"])'
  }
}
verdict() {
  ctl --json trace "$1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["verdict"])'
}
PKT="in_port=vm1,eth_src=02:00:c6:12:00:01,eth_dst=02:00:c6:12:00:02,ipv4,ipv4_src=198.18.0.1,ipv4_dst=198.18.0.2"
ping_ok() { ip netns exec "$P-t1" ping -c 3 -i 0.2 -W 2 198.18.0.2 >/dev/null; }

# ---- 1. kill -9 mid-traffic, restart -----------------------------------------------------------------------
start_switch --config "$WORK/a.yaml"
ping_ok || fail "ping vm1 -> vm2 before any change"
ctl --no-progress apply "$WORK/b.yaml" >/dev/null || fail "apply b.yaml"
ctl rules --add "priority=200,name=rt-ssh,in_port=vm1,ipv4,tcp,tcp_dst=22 actions=count,drop" >/dev/null ||
  fail "rules --add rt-ssh"
ctl rules --add "priority=210,name=rt-web,in_port=vm1,ipv4,tcp,tcp_dst=80 actions=drop" >/dev/null ||
  fail "rules --add rt-web"
ctl rules --delete rt-web >/dev/null || fail "rules --delete rt-web"
[[ $(verdict "$PKT,tcp,tcp_dst=22") == "drop (rule)" ]] || fail "runtime rule rt-ssh not in effect"
BEFORE=$(snapshot)
grep -q "rt-ssh" <<<"$BEFORE" || fail "rt-ssh missing from show rules: $BEFORE"
grep -q "udp_dst=9999" <<<"$BEFORE" || fail "cfg-udp missing from show rules: $BEFORE"

ip netns exec "$P-t1" ping -i 0.05 198.18.0.2 >/dev/null 2>&1 &
PING_PID=$!
sleep 1
kill -9 "$SW_PID"
wait "$SW_PID" 2>/dev/null || true
SW_PID=""
[[ -d "/var/run/dpdk/$PREFIX" ]] || fail "expected the killed eswitchd's runtime directory to be left"
# A stale directory in the form older builds left (esw-<pid of a dead process>), and another program's.
sleep 0 &
DEAD=$!
wait "$DEAD"
FAKE_STALE="/var/run/dpdk/esw-$DEAD"
mkdir -p "$FAKE_STALE" "/var/run/dpdk/$PREFIX-b"
touch "$FAKE_STALE/config" "/var/run/dpdk/$PREFIX-b/config"

T0=$(date +%s%N)
start_switch
for _ in $(seq 100); do ping_ok && break; sleep 0.1; done
T1=$(date +%s%N)
ping_ok || fail "ping vm1 -> vm2 after the restart"
kill "$PING_PID" 2>/dev/null || true
PING_PID=""
AFTER=$(snapshot)
if [[ "$BEFORE" != "$AFTER" ]]; then
  diff <(echo "$BEFORE") <(echo "$AFTER") >&2 || true
  fail "the restarted switch differs from the one killed"
fi
[[ $(verdict "$PKT,tcp,tcp_dst=22") == "drop (rule)" ]] || fail "rt-ssh not in effect after the restart"
[[ $(verdict "$PKT,tcp,tcp_dst=80") == "output:vm2" ]] || fail "rt-web (deleted before the kill) came back"
[[ $(verdict "$PKT,udp,udp_dst=9999") == "drop (rule)" ]] || fail "cfg-udp (applied config) not in effect"
[[ "$(ctl config --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["yaml"], end="")')" == \
   "$(cat "$WORK/b.yaml")" ]] || fail "the restored config text is not b.yaml"
grep -q "removed what a dead eswitchd left behind: /var/run/dpdk/esw-$DEAD" "$WORK/eswitchd.log" ||
  fail "the stale esw-$DEAD directory was not reported removed"
[[ ! -e "$FAKE_STALE" ]] || fail "stale $FAKE_STALE not removed"
[[ -d "/var/run/dpdk/$PREFIX-b" ]] || fail "a directory that is not eswitchd's was removed"
echo "ok: kill -9 mid-traffic -> restart: same rules, runtime rules, ports and config; ping after $(((T1 - T0) / 1000000)) ms"

# ---- 4. a second instance is refused; the first keeps forwarding -------------------------------------------
second() {  # second EXPECTED-WORDS CONFIG [ARGS...]: must exit 4 with one line naming $SW_PID
  local want=$1 cfg=$2 rc=0
  shift 2
  timeout 60 "$ESWITCHD" --config "$cfg" "$@" >"$WORK/second.log" 2>&1 || rc=$?
  [[ $rc -eq 4 ]] || { cat "$WORK/second.log" >&2; fail "second eswitchd ($want): exit $rc, expected 4"; }
  grep -q "$want.* is in use by eswitchd pid $SW_PID" "$WORK/second.log" ||
    { cat "$WORK/second.log" >&2; fail "second eswitchd: no one-line error naming '$want' and pid $SW_PID"; }
  [[ $(wc -l <"$WORK/second.log") -eq 1 ]] || { cat "$WORK/second.log" >&2; fail "more than one line"; }
  kill -0 "$SW_PID" || fail "the first eswitchd died"
  echo "ok: refused: $(cat "$WORK/second.log")"
}
sed -e "s|file_prefix: $PREFIX|file_prefix: $PREFIX-2|" -e "s|$SOCK|$WORK/api2.sock|" "$WORK/a.yaml" >"$WORK/same-iface.yaml"
second "interface ${P}t1p" "$WORK/same-iface.yaml" --state-dir "$WORK/state2"
sed -e "s|$SOCK|$WORK/api2.sock|" -e "s|net_af_packet0,iface=${P}t1p|net_null0|" \
  -e "s|net_af_packet1,iface=${P}t2p|net_null1|" "$WORK/a.yaml" >"$WORK/same-prefix.yaml"
second "DPDK file prefix '$PREFIX'" "$WORK/same-prefix.yaml" --state-dir "$WORK/state2"
sed -e "s|file_prefix: $PREFIX|file_prefix: $PREFIX-2|" -e "s|net_af_packet0,iface=${P}t1p|net_null0|" \
  -e "s|net_af_packet1,iface=${P}t2p|net_null1|" "$WORK/a.yaml" >"$WORK/same-socket.yaml"
second "API socket $SOCK" "$WORK/same-socket.yaml" --state-dir "$WORK/state2"
sed -e "s|$SOCK|$WORK/api2.sock|" "$WORK/same-prefix.yaml" | sed -e "s|file_prefix: $PREFIX|file_prefix: $PREFIX-2|" \
  >"$WORK/other.yaml"
second "state directory $STATE" "$WORK/other.yaml" --state-dir "$STATE"
ping_ok || fail "the first eswitchd stopped forwarding after the refused starts"
[[ "$(snapshot)" == "$AFTER" ]] || fail "the refused starts changed the first eswitchd"
echo "ok: the first eswitchd still forwards, unchanged"

# ---- 2. a crash between write and rename leaves the old state ----------------------------------------------
kill -INT "$SW_PID"; wait "$SW_PID" || fail "clean stop"; SW_PID=""
ESWITCHD_TEST_CRASH_IN_STATE_WRITE=rules start_switch
ctl rules --add "priority=220,name=rt-crash,in_port=vm1,ipv4,tcp,tcp_dst=443 actions=drop" >/dev/null 2>&1 &&
  fail "rules --add answered ok although eswitchd was to crash while saving"
for _ in $(seq 50); do kill -0 "$SW_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SW_PID" 2>/dev/null && fail "eswitchd did not crash in the rules write"
SW_PID=""
[[ -e "$STATE/.tmp.rules" ]] || fail "no half-done temporary file: the crash hook did not fire where expected"
start_switch
[[ "$(snapshot)" == "$AFTER" ]] || { diff <(echo "$AFTER") <(snapshot) >&2; fail "crash in a rules write: not the old state"; }
[[ ! -e "$STATE/.tmp.rules" ]] || fail "the temporary file was not cleared at start"
kill -INT "$SW_PID"; wait "$SW_PID" || fail "clean stop"; SW_PID=""
ESWITCHD_TEST_CRASH_IN_STATE_WRITE=config start_switch
ctl --no-progress apply "$WORK/c.yaml" >/dev/null 2>&1 && fail "apply answered ok although eswitchd was to crash"
for _ in $(seq 50); do kill -0 "$SW_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SW_PID" 2>/dev/null && fail "eswitchd did not crash in the config write"
SW_PID=""
start_switch
[[ "$(snapshot)" == "$AFTER" ]] || { diff <(echo "$AFTER") <(snapshot) >&2; fail "crash in a config write: not the old state"; }
echo "ok: a crash between write and rename (rules, config) leaves the old state"

# ---- 3. a damaged newest generation: the previous one is used ----------------------------------------------
ctl rules --add "priority=230,name=rt-new,in_port=vm1,ipv4,tcp,tcp_dst=8080 actions=drop" >/dev/null || fail "add rt-new"
ctl --no-progress apply "$WORK/c.yaml" >/dev/null || fail "apply c.yaml"
[[ $(verdict "$PKT,tcp,tcp_dst=8080") == "drop (rule)" ]] || fail "rt-new not in effect"
kill -INT "$SW_PID"; wait "$SW_PID" || fail "clean stop"; SW_PID=""
NEWEST_RULES=$(ls "$STATE"/rules.* | sort | tail -1)
NEWEST_CONFIG=$(ls "$STATE"/config.* | sort | tail -1)
truncate -s -7 "$NEWEST_RULES"
/usr/bin/python3 - "$NEWEST_CONFIG" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x20  # one flipped bit in the payload
open(p, "wb").write(bytes(b))
PY
: >"$WORK/eswitchd.log"
start_switch
grep -q "state: $NEWEST_RULES: .*torn or truncated.*using the previous generation" "$WORK/eswitchd.log" ||
  fail "the truncated rules file was not reported"
grep -q "state: $NEWEST_CONFIG: checksum mismatch.*using the previous generation" "$WORK/eswitchd.log" ||
  fail "the corrupted config file was not reported"
[[ "$(snapshot)" == "$AFTER" ]] || { diff <(echo "$AFTER") <(snapshot) >&2; fail "damaged newest files: not the previous state"; }
ping_ok || fail "ping after starting from the previous generation"
echo "ok: truncated/corrupt newest generation detected; the previous one used"

# An explicit --config wins: it replaces the saved state (runtime rules dropped) and is what a later start runs.
kill -INT "$SW_PID"; wait "$SW_PID" || fail "clean stop"; SW_PID=""
start_switch --config "$WORK/a.yaml"
[[ $(verdict "$PKT,tcp,tcp_dst=22") == "output:vm2" ]] || fail "--config: saved runtime rules were kept"
kill -INT "$SW_PID"; wait "$SW_PID" || fail "clean stop"; SW_PID=""
start_switch
[[ $(verdict "$PKT,udp,udp_dst=9999") == "output:vm2" ]] || fail "after --config a.yaml, b.yaml's rule came back"
[[ $(ctl config --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["source"])') == "$WORK/a.yaml" ]] ||
  fail "the saved source is not a.yaml"
echo "ok: --config replaces the saved state"

# Ports added by an apply are claimed too: a second switch cannot take the first one's interface by an apply,
# and gets it once the first one's apply released it.
"$ESWITCHD" --config "$WORK/other.yaml" --state-dir "$WORK/state2" --ready-file "$WORK/ready2" \
  >"$WORK/second.log" 2>&1 &
SECOND_PID=$!
esw_wait_file "$WORK/ready2" "$SECOND_PID" 60 || { cat "$WORK/second.log" >&2; fail "second eswitchd (other resources) did not start"; }
sed "/name: vm2/a\\  - { name: vm3, hw_addr: \"02:00:c6:12:00:03\", attach: { devargs: \"net_af_packet2,iface=${P}t2p\" } }" \
  "$WORK/other.yaml" >"$WORK/steal.yaml"
grep -q "iface=${P}t2p" "$WORK/steal.yaml" || fail "test bug: steal.yaml has no vm3"
out=$("$ESWITCHCTL" --socket "$WORK/api2.sock" --no-progress apply "$WORK/steal.yaml" 2>&1) &&
  fail "an apply took interface ${P}t2p from the running eswitchd: $out"
grep -q "interface ${P}t2p is in use by eswitchd pid $SW_PID" <<<"$out" || fail "apply refusal does not name the owner: $out"
ping_ok || fail "the first eswitchd stopped forwarding after the refused apply"
sed -e '/name: vm2/d' -e '/^tables:/,$d' "$WORK/a.yaml" >"$WORK/a-release.yaml"  # vm2 (and its rule) removed
out=$(ctl --no-progress apply "$WORK/a-release.yaml" 2>&1) || fail "apply a-release.yaml: $out"
"$ESWITCHCTL" --socket "$WORK/api2.sock" --no-progress apply "$WORK/steal.yaml" >/dev/null ||
  fail "interface ${P}t2p released by the first eswitchd's apply could not be taken"
kill -INT "$SECOND_PID"; wait "$SECOND_PID" || fail "second eswitchd did not stop cleanly"; SECOND_PID=""
echo "ok: an apply cannot take another instance's interface; an apply that drops one releases it"
kill -INT "$SW_PID"; wait "$SW_PID" || fail "clean stop"; SW_PID=""

# Readiness for systemd (Type=notify): READY=1 with MAINPID once forwarding, STOPPING=1 on stop.
/usr/bin/python3 - "$WORK/notify.sock" "$WORK/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "w") as out:
    for _ in range(2):
        out.write(s.recv(4096).decode().replace("\n", " ") + "\n")
        out.flush()
PY
NOTIFY_PID=$!
ESW_EXTRA_PIDS+=("$NOTIFY_PID")
for _ in $(seq 50); do [[ -S "$WORK/notify.sock" ]] && break; sleep 0.1; done
NOTIFY_SOCKET="$WORK/notify.sock" start_switch
for _ in $(seq 50); do grep -q READY=1 "$WORK/notify.log" 2>/dev/null && break; sleep 0.1; done
grep -q "READY=1 MAINPID=$SW_PID " "$WORK/notify.log" || fail "no READY=1/MAINPID on \$NOTIFY_SOCKET: $(cat "$WORK/notify.log")"
kill -INT "$SW_PID"; wait "$SW_PID" || fail "eswitchd did not stop cleanly"; SW_PID=""
wait "$NOTIFY_PID" || true
grep -q "^STOPPING=1" "$WORK/notify.log" || fail "no STOPPING=1 on \$NOTIFY_SOCKET: $(cat "$WORK/notify.log")"
echo "ok: sd_notify READY=1 (MAINPID) and STOPPING=1"
grep -q "stopped cleanly; all .* mbufs back in the pool" "$WORK/eswitchd.log" || fail "no clean-stop report"
echo "PASS"
