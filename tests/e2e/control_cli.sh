#!/usr/bin/env bash
# End-to-end: eswitchctl against a running eswitchd that forwards traffic (net_pcap infinite_rx -> net_null).
# validate (offline), ping, show ports|vports|tables|rules|representors, stats, trace (description and raw
# frame), diff, apply, apply --dry-run, config, --json on each, watch mode (applies valid edits, keeps the running
# config on an invalid one), an unreachable socket, and a clean eswitchd stop that removes the socket.
#
# usage: control_cli.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=control_lib.sh
source "$HERE/control_lib.sh"
ctl_setup ctlcli

{ ctl_config_head; ctl_fwd_table; } >"$WORK/a.yaml"
{
  ctl_config_head
  ctl_fwd_table
  cat <<'YAML'
      - name: ssh-block
        priority: 500
        match: { in_port: vm1, tcp: true, tcp_dst: 22 }
        actions: [count, drop]
YAML
} >"$WORK/b.yaml"
sed 's/tcp_dst: 22 }/tcp_dst: 22, bogus_field: 1 }/' "$WORK/b.yaml" >"$WORK/bad.yaml"

# --- validate: offline, located errors, exit status ---
ctl validate "$WORK/a.yaml" | grep -q "valid (1 uplinks, 2 vports, 1 tables, 1 rules" || fail "validate a.yaml"
rc=0
ctl validate "$WORK/bad.yaml" 2>"$WORK/v.err" || rc=$?
[[ $rc -eq 1 ]] || fail "validate of an invalid file exited $rc"
line=$(grep -n "bogus_field" "$WORK/bad.yaml" | cut -d: -f1)
grep -Eq "^$WORK/bad.yaml:$line:[0-9]+: tables\[0\]\.rules\[1\]( \(ssh-block\))?\.match\.bogus_field: " "$WORK/v.err" ||
  fail "validate error not in FILE:LINE:COL: path: message form: $(cat "$WORK/v.err")"
[[ $(ctl_json 'j["valid"], len(j["errors"]), j["errors"][0]["line"]' ctl validate --json "$WORK/bad.yaml" || true) == "False 1 $line" ]] ||
  fail "validate --json"
echo "ok: validate (offline, FILE:LINE:COL errors, --json, exit status)"

ctl_start "$WORK/a.yaml"

# --- show, with counters, human and JSON ---
ctl ping | grep -q "config generation 1" || fail "ping"
ctl show ports | head -1 | grep -q "^PORT  *ROLE  *DRIVER  *DEVICE  *LINK  *RX_PKTS" || fail "show ports header"
ctl show ports | grep -q "^vm2 " || fail "show ports rows"
[[ $(ctl_json '",".join(p["name"] for p in j["ports"])' ctl show ports --json) == "uplink0,vm1,vm2" ]] ||
  fail "show ports --json"
(( $(ctl_vm2_tx) > 0 )) || fail "no traffic forwarded to vm2"
# The port seam: each port says its backend kind; an ethdev has a DPDK port id and the device's own counters
# (read at another instant than the switch's, so only their presence and direction are checked).
[[ $(ctl_json '",".join(p["kind"] for p in j["ports"])' ctl show ports --json) == "ethdev,ethdev,ethdev" ]] ||
  fail "show ports --json: kind"
ports_dev='{p["name"]: (p["port_id"], p["device_counters"]) for p in j["ports"]}'
[[ $(ctl_json "all(isinstance(v[0], int) for v in ($ports_dev).values()) and ($ports_dev)['uplink0'][1]['ipackets'] > 0 and ($ports_dev)['vm2'][1]['opackets'] > 0" ctl show ports --json) == True ]] ||
  fail "show ports --json: device counters: $(ctl_json "$ports_dev" ctl show ports --json)"
ctl show vports | grep -q "^vm1 .*02:00:c6:12:00:01" || fail "show vports"
[[ $(ctl_json 'len(j["vports"])' ctl show vports --json) == 2 ]] || fail "show vports --json"
ctl show representors | grep -q "^vm1 .*none" || fail "show representors"
ctl show tables | grep -q "^classifier: " || fail "show tables"
[[ $(ctl_json 'j["tables"][0]["id"]' ctl show tables --json) == 0 ]] || fail "show tables --json"
ctl show rules | grep -q "(fwd) .*udp,in_port=uplink0 .*count,output:vm2" || fail "show rules"
fwd=$(ctl_json '[r["packets"] for r in j["rules"] if "(fwd)" in r["where"]][0]' ctl show rules --json --table 0)
(( fwd > 0 )) || fail "the fwd rule counts nothing"
[[ $(ctl_json 'len(j["rules"]), j["total"] > 1' ctl show rules --json --limit 1) == "1 True" ]] || fail "show rules --limit"
echo "ok: show ports|vports|representors|tables|rules (human and --json, counters)"

# --- stats: rates over an interval ---
rate=$(ctl_json '[p["tx_pps"] for p in j["ports"] if p["name"] == "vm2"][0]' ctl stats --json --interval 0.5)
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$rate') > 1000 else 1)" || fail "stats: vm2 tx rate $rate"
ctl stats --interval 0.3 | grep -q "^total " || fail "stats table"
echo "ok: stats (vm2 forwards $(printf '%.0f' "$rate") pps)"

# --- trace: a description and a raw frame ---
ctl trace "in_port=uplink0,eth_dst=02:00:c6:12:00:02,ipv4,udp,udp_dst=53" | grep -q "^verdict: output:vm2" ||
  fail "trace description"
[[ $(ctl_json 'j["verdict"]' ctl trace --json "in_port=uplink0,eth_dst=02:00:c6:12:00:02,ipv4,udp,udp_dst=53") == \
  "output:vm2" ]] || fail "trace --json"
hex=$(/usr/bin/python3 -c "
d = open('$WORK/traffic.pcap', 'rb').read()[24 + 16:24 + 16 + 60]
print(d.hex())")
ctl trace --hex "$hex" --in-port uplink0 | grep -q "^verdict: output:vm2" || fail "trace --hex"
rc=0
ctl trace "in_port=nowhere" 2>/dev/null || rc=$?
[[ $rc -eq 1 ]] || fail "trace of an unknown port exited $rc"
echo "ok: trace (description, raw frame, --json, errors)"

# --- diff / apply / config ---
ctl diff "$WORK/a.yaml" | grep -q "^no changes" || fail "diff of the running config"
ctl diff "$WORK/b.yaml" >"$WORK/diff.out"
grep -q "^+ rule .*(ssh-block)" "$WORK/diff.out" || fail "diff b.yaml: $(cat "$WORK/diff.out")"
grep -q "^1 change: 1 added, 0 removed, 0 changed" "$WORK/diff.out" || fail "diff summary: $(cat "$WORK/diff.out")"
[[ $(ctl_json 'j["diff_total"], j["dry_run"]' ctl diff --json "$WORK/b.yaml") == "1 True" ]] || fail "diff --json"
ctl apply --dry-run "$WORK/b.yaml" | grep -q "^would apply" || fail "apply --dry-run"
ctl config | cmp -s - "$WORK/a.yaml" || fail "dry run changed the running config"
ctl apply "$WORK/b.yaml" | grep -q "^applied $WORK/b.yaml: 1 added, 0 removed, 0 changed (generation 2)" || fail "apply b"
ctl config | cmp -s - "$WORK/b.yaml" || fail "config is not b.yaml after apply"
ctl apply "$WORK/b.yaml" | grep -q "no changes" || fail "re-apply is not a no-op"
[[ $(ctl_json 'j["generation"], j["config_hash"] != ""' ctl config --json) == "2 True" ]] || fail "config --json"
rc=0
ctl apply "$WORK/bad.yaml" 2>"$WORK/apply.err" || rc=$?
[[ $rc -eq 1 ]] || fail "apply of an invalid file exited $rc"
grep -Eq "^$WORK/bad.yaml:$line:[0-9]+: tables\[0\]\.rules\[1\]( \(ssh-block\))?\.match\.bogus_field" "$WORK/apply.err" ||
  fail "apply error not located: $(cat "$WORK/apply.err")"
grep -q "nothing was applied; the switch keeps its running config" "$WORK/apply.err" || fail "apply error message"
ctl config | cmp -s - "$WORK/b.yaml" || fail "a failed apply changed the running config"
echo "ok: diff, apply, apply --dry-run, config (all or nothing, located errors)"

# --- watch: applies valid edits, keeps the running config when the file turns invalid ---
cp "$WORK/a.yaml" "$WORK/w.yaml"
"$ESWITCHCTL" --socket "$SOCK" watch "$WORK/w.yaml" --debounce 0.1 --resync 1 >"$WORK/watch.out" 2>&1 &
WATCH_PID=$!
CTL_EXTRA_CLEANUP+=("kill -9 $WATCH_PID 2>/dev/null")
wait_watch() {
  local pattern=$1 what=$2
  for _ in $(seq 100); do
    grep -q -- "$pattern" "$WORK/watch.out" && return 0
    sleep 0.1
  done
  fail "watch: $what: $(cat "$WORK/watch.out")"
}
wait_watch "applied $WORK/w.yaml: 0 added, 1 removed" "initial apply"
ctl config | cmp -s - "$WORK/w.yaml" || fail "watch: initial apply"
# Editors write a temp file and rename it over the original.
cp "$WORK/bad.yaml" "$WORK/w.yaml.tmp" && mv "$WORK/w.yaml.tmp" "$WORK/w.yaml"
wait_watch "keeping the running config" "invalid file"
grep -Eq "w.yaml:$line:[0-9]+: tables\[0\]\.rules\[1\]( \(ssh-block\))?\.match\.bogus_field" "$WORK/watch.out" || fail "watch: error not located"
ctl config | cmp -s - "$WORK/a.yaml" || fail "watch: an invalid file changed the running config"
cp "$WORK/b.yaml" "$WORK/w.yaml.tmp" && mv "$WORK/w.yaml.tmp" "$WORK/w.yaml"
wait_watch "applied $WORK/w.yaml: 1 added, 0 removed" "valid edit"
ctl config | cmp -s - "$WORK/b.yaml" || fail "watch: valid edit not applied"
# Someone else changes the switch: watch puts its file back.
ctl apply "$WORK/a.yaml" >/dev/null
wait_watch "re-applying" "drift"
for _ in $(seq 50); do ctl config | cmp -s - "$WORK/b.yaml" && break; sleep 0.1; done
ctl config | cmp -s - "$WORK/b.yaml" || fail "watch: drift not repaired"
kill -INT "$WATCH_PID"
wait "$WATCH_PID" || fail "watch exited non-zero after SIGINT"
echo "ok: watch (applies edits, keeps the running config on an invalid file, repairs drift)"

# --- unreachable eswitchd ---
rc=0
"$ESWITCHCTL" --socket "$WORK/nothing.sock" ping 2>"$WORK/ping.err" || rc=$?
[[ $rc -eq 2 ]] || fail "ping of a missing socket exited $rc"
grep -q "is eswitchd running" "$WORK/ping.err" || fail "unreachable message: $(cat "$WORK/ping.err")"

(( $(ctl_vm2_tx) > fwd )) || fail "forwarding stalled"
ctl_stop
echo "PASS: eswitchctl validate/show/stats/trace/diff/apply/config/watch against eswitchd"
