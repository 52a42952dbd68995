#!/usr/bin/env bash
# End-to-end: the stock DPDK tools against a running eswitchd.
#  1. dpdk-telemetry.py -f <file prefix>: every /eswitch/ command answers with live data that agrees with
#     eswitchctl's view (ports, vports, tables, rules, one rule, counters, classifier, info), and the stock
#     /ethdev/ commands work too.
#  2. dpdk-dumpcap captures packets on an eswitch port (rte_pdump); tshark decodes them as the UDP traffic sent.
#     dumpcap is a DPDK secondary process and needs the primary's memory in hugepages: the test reserves
#     hugepages and mounts a hugetlbfs in a private mount namespace (so no other DPDK process on the machine sees
#     it), and puts nr_hugepages back afterwards. Skipped (not failed) if hugepages cannot be reserved.
#
# usage: control_telemetry.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=control_lib.sh
source "$HERE/control_lib.sh"
ctl_setup ctltel

TELEMETRY=$(command -v dpdk-telemetry.py || true)
DUMPCAP=$(command -v dpdk-dumpcap || true)
[[ -n "$TELEMETRY" && -n "$DUMPCAP" ]] || { echo "SKIP: dpdk-telemetry.py or dpdk-dumpcap missing (dpdk-dev)"; exit 77; }

{ ctl_config_head; ctl_fwd_table; } >"$WORK/a.yaml"
ctl_start "$WORK/a.yaml"
sleep 0.5

# --- 1. dpdk-telemetry.py ---
fwd_id=$(ctl_json '[r["id"] for r in j["rules"] if "(fwd)" in r["where"]][0]' ctl show rules --json)
printf '%s\n' /eswitch/info /eswitch/ports /eswitch/ports,vm2 /eswitch/vports /eswitch/vports,vm1 /eswitch/tables \
  /eswitch/rules "/eswitch/rule,$fwd_id" /eswitch/counters /eswitch/classifier /eswitch/ports,nosuch /ethdev/list |
  timeout 30 "$TELEMETRY" -f "$PREFIX" >"$WORK/telemetry.out" || fail "dpdk-telemetry.py failed: $(cat "$WORK/telemetry.out")"
/usr/bin/python3 - "$WORK/telemetry.out" "$fwd_id" "$SOCK" <<'PY' || fail "telemetry replies"
import json, os, sys
fwd_id, sock = int(sys.argv[2]), sys.argv[3]
# One reply line per command, in order; a reply is keyed by the command without its parameter.
cmds = ["/eswitch/info", "/eswitch/ports", "/eswitch/ports,vm2", "/eswitch/vports", "/eswitch/vports,vm1",
        "/eswitch/tables", "/eswitch/rules", f"/eswitch/rule,{fwd_id}", "/eswitch/counters", "/eswitch/classifier",
        "/eswitch/ports,nosuch", "/ethdev/list"]
replies = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
assert len(replies) == len(cmds), replies
out = {c: r[c.split(",")[0]] for c, r in zip(cmds, replies)}
info = out["/eswitch/info"]
assert info["running"] == 1 and info["api_socket"] == sock and info["generation"] == 1, info
assert info["ports"] == 3 and info["vports"] == 2 and info["rules"] >= 1, info
ports = out["/eswitch/ports"]
assert set(ports) == {"uplink0", "vm1", "vm2"}, ports
assert ports["uplink0"]["rx_packets"] > 0 and ports["vm2"]["tx_packets"] > 0, ports
one = out["/eswitch/ports,vm2"]
assert one["name"] == "vm2" and one["driver"] == "net_null" and "dropped_no_route" in one, one
assert set(out["/eswitch/vports"]) == {"vm1", "vm2"}, out["/eswitch/vports"]
assert out["/eswitch/vports,vm1"]["name"] == "vm1", out["/eswitch/vports,vm1"]
tables = out["/eswitch/tables"]
assert tables["0"]["rules"] >= 1 and tables["0"]["packets"] > 0, tables
rules = out["/eswitch/rules"]
assert rules["total"] >= 1 and rules[str(fwd_id)]["packets"] > 0, rules
rule = out[f"/eswitch/rule,{fwd_id}"]
assert rule["id"] == fwd_id and rule["actions"] == "count,output:vm2" and rule["packets"] > 0, rule
counters = out["/eswitch/counters"]
assert counters["rx_packets"] > 0 and counters["rule_packets"] > 0 and "dropped_meter" in counters, counters
assert out["/eswitch/classifier"]["rules"] == info["rules"], out["/eswitch/classifier"]
assert out["/eswitch/ports,nosuch"] is None  # an unknown port: the stock "null" answer
assert len(out["/ethdev/list"]) == 3, out["/ethdev/list"]
print(f"ok: dpdk-telemetry.py: /eswitch/info|ports|vports|tables|rules|rule|counters|classifier; "
      f"vm2 tx {ports['vm2']['tx_packets']}, rule {fwd_id} {rule['packets']} packets")
PY
# The snapshot is live: counters move between two reads.
a=$(printf '/eswitch/ports,vm2\n' | "$TELEMETRY" -f "$PREFIX" | ctl_json 'j["/eswitch/ports"]["tx_packets"]' cat)
sleep 0.5
b=$(printf '/eswitch/ports,vm2\n' | "$TELEMETRY" -f "$PREFIX" | ctl_json 'j["/eswitch/ports"]["tx_packets"]' cat)
(( b > a )) || fail "telemetry counters do not move ($a -> $b)"
# After an apply the snapshot shows the new config at once.
{ ctl_config_head; ctl_fwd_table; printf '      - { name: extra, priority: 5, match: { in_port: vm1 }, actions: [drop] }\n'; } >"$WORK/b.yaml"
ctl apply "$WORK/b.yaml" >/dev/null || fail "apply b"
[[ $(printf '/eswitch/info\n' | "$TELEMETRY" -f "$PREFIX" | ctl_json 'j["/eswitch/info"]["generation"]' cat) == 2 ]] ||
  fail "telemetry does not show the new generation"
ctl_stop
echo "ok: telemetry counters are live and follow applies"

# --- 2. dpdk-dumpcap (needs hugepages, in a private mount namespace) ---
HP=/proc/sys/vm/nr_hugepages
old_pages=$(cat "$HP")
want=$((old_pages + 160))
if ! echo "$want" >"$HP" 2>/dev/null || (($(cat "$HP") < want)); then
  echo "$old_pages" >"$HP" 2>/dev/null || true
  echo "SKIP (dumpcap): cannot reserve hugepages"
  echo "PASS: telemetry (dumpcap skipped)"
  exit 0
fi
CTL_EXTRA_CLEANUP+=("echo $old_pages > $HP")
PREFIX="esw-ctltelh-$$"  # a second eswitchd: its own prefix (ctl_cleanup removes its runtime dir)
mkdir -p "$WORK/huge"
{ ctl_config_head; ctl_fwd_table; } | sed -e 's/hugepages: off/hugepages: on/' -e 's/memory_mb: 256/memory_mb: 160/' \
  >"$WORK/h.yaml"
cat >"$WORK/capture.sh" <<EOF
set -euo pipefail
mount -t hugetlbfs -o pagesize=2M nodev "$WORK/huge"
"$ESWITCHD" --config "$WORK/h.yaml" --state-dir "$WORK/state-h" --ready-file "$WORK/ready-h" >"$WORK/eswitchd.log" 2>&1 &
sw=\$!
trap 'kill -9 \$sw 2>/dev/null || true; umount -l "$WORK/huge" 2>/dev/null || true' EXIT
for _ in \$(seq 300); do [[ -e "$WORK/ready-h" ]] && break; kill -0 \$sw || exit 3; sleep 0.1; done
[[ -e "$WORK/ready-h" ]] || exit 3
grep -q "no hugepages" "$WORK/eswitchd.log" && exit 4
timeout 60 "$DUMPCAP" --file-prefix "$PREFIX" -i net_null1 -c 200 -w "$WORK/cap.pcapng" >"$WORK/dumpcap.log" 2>&1
kill -INT \$sw
wait \$sw
trap 'umount -l "$WORK/huge" 2>/dev/null || true' EXIT
EOF
rc=0
unshare -m --propagation private bash "$WORK/capture.sh" || rc=$?
case $rc in
  0) ;;
  3) fail "eswitchd with hugepages did not start" ;;
  4) fail "eswitchd ran without hugepages" ;;
  *) fail "dpdk-dumpcap failed ($rc): $(cat "$WORK/dumpcap.log" 2>/dev/null)" ;;
esac
grep -q "stopped cleanly" "$WORK/eswitchd.log" || fail "eswitchd (hugepages) did not stop cleanly"
n=$(tshark -r "$WORK/cap.pcapng" -Y 'udp && ip.src == 198.18.0.1 && ip.dst == 198.18.0.2 && udp.dstport == 2000' \
  2>/dev/null | wc -l)
total=$(tshark -r "$WORK/cap.pcapng" 2>/dev/null | wc -l)
((n >= 200 && n == total)) || fail "capture: $n of $total packets are the expected UDP frames"
echo "ok: dpdk-dumpcap captured $n packets on vm2 (net_null1); tshark decodes them as 198.18.0.1 -> 198.18.0.2 UDP"
echo "PASS: dpdk-telemetry.py and dpdk-dumpcap against eswitchd"
