#!/usr/bin/env bash
# End-to-end reconcile: a running eswitchd on config A; `eswitchctl diff B` shows exactly the B-A changes (a vport
# added, a rule removed, a rule added, a rule changed), applying B makes exactly those changes, and the count rule
# both configs share keeps its id and its counter (no reset, still counting) across the apply, as do the ports
# both configs share. Then back to A: the diff is the exact inverse.
#
# usage: control_reconcile.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=control_lib.sh
source "$HERE/control_lib.sh"
ctl_setup ctlrec

# cross_connect keeps the generated rules out of the diff: the only differences are the ones written here.
common_tables() {
  cat <<'YAML'
pipeline:
  mode: cross_connect
  cross_connect: [{ from: uplink0, to: vm2 }]
YAML
  ctl_fwd_table
}
{
  ctl_config_head
  common_tables
  cat <<'YAML'
      - name: only-a
        priority: 400
        match: { in_port: vm1, tcp: true, tcp_dst: 22 }
        actions: [count, drop]
      - name: changed
        priority: 300
        match: { in_port: vm1, udp: true, udp_dst: 53 }
        actions: [count, output: uplink0]
YAML
} >"$WORK/a.yaml"
{
  ctl_config_head
  cat <<YAML
  - name: vm3
    hw_addr: "02:00:c6:12:00:03"
    spoofchk: false
    attach: { devargs: "net_null2,no-rx=1" }
YAML
  common_tables
  cat <<'YAML'
      - name: changed
        priority: 300
        match: { in_port: vm1, udp: true, udp_dst: 53 }
        actions: [count, output: vm3]
      - name: only-b
        priority: 200
        match: { in_port: vm3, ipv4: true, ipv4_dst: 198.18.0.0/24 }
        actions: [count, output: uplink0]
YAML
} >"$WORK/b.yaml.tmp"
# vm3 belongs to the vports list: move its lines up, just before "representors:".
/usr/bin/python3 - "$WORK/b.yaml.tmp" "$WORK/b.yaml" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
rep = next(i for i, l in enumerate(lines) if l.startswith("representors:"))
vm3 = next(i for i, l in enumerate(lines) if l == "  - name: vm3")
block = lines[vm3:vm3 + 4]
del lines[vm3:vm3 + 4]
lines[rep:rep] = block
open(sys.argv[2], "w").write("\n".join(lines))
PY
ctl validate "$WORK/a.yaml" >/dev/null || fail "a.yaml does not validate"
ctl validate "$WORK/b.yaml" >/dev/null || fail "b.yaml does not validate: $(ctl validate "$WORK/b.yaml" 2>&1)"

ctl_start "$WORK/a.yaml"

# The diff as a set of (op, kind, rule name or port name).
cat >"$WORK/diff_set.py" <<'PY'
import json, re, sys
j = json.load(sys.stdin)
out = []
for d in j["diff"]:
    m = re.search(r"\(([^)]*)\)\s*$", d["name"])
    out.append(d["op"] + d["kind"] + ":" + (m.group(1) if m else d["name"]))
print(" ".join(sorted(out)))
PY
diff_set() { ctl diff --json "$1" | /usr/bin/python3 "$WORK/diff_set.py"; }
rule_field() {  # rule_field NAME FIELD: a field of the named rule from show rules --json
  ctl_json "[r[\"$2\"] for r in j[\"rules\"] if \"($1)\" in r[\"where\"]][0]" ctl show rules --json
}

[[ $(diff_set "$WORK/a.yaml") == "" ]] || fail "diff of the running config is not empty"
expected="+rule:changed +rule:only-b +vport:vm3 -rule:changed -rule:only-a"
got=$(diff_set "$WORK/b.yaml")
[[ "$got" == "$expected" ]] || fail "diff B: expected '$expected', got '$got'"
ctl diff "$WORK/b.yaml" | tail -1 | grep -q "^5 changes: 3 added, 2 removed, 0 changed" || fail "diff summary"
echo "ok: diff B shows exactly B-A: $got"

fwd_id=$(rule_field fwd id)
fwd_before=$(rule_field fwd packets)
vm2_before=$(ctl_vm2_tx)
(( fwd_before > 0 )) || fail "fwd counts nothing before the apply"
ctl apply "$WORK/b.yaml" | grep -q "applied .*: 3 added, 2 removed, 0 changed (generation 2)" || fail "apply B"
fwd_after=$(rule_field fwd packets)
[[ $(rule_field fwd id) == "$fwd_id" ]] || fail "the unchanged rule got a new id"
(( fwd_after >= fwd_before )) || fail "the unchanged rule's counter was reset ($fwd_before -> $fwd_after)"
(( $(ctl_vm2_tx) >= vm2_before )) || fail "vm2's port counters were reset"
sleep 0.3
fwd_later=$(rule_field fwd packets)
(( fwd_later > fwd_after )) || fail "the unchanged rule stopped counting ($fwd_after -> $fwd_later)"
echo "ok: fwd kept id $fwd_id and counted on across the apply: $fwd_before -> $fwd_after -> $fwd_later"

[[ $(diff_set "$WORK/b.yaml") == "" ]] || fail "diff B after applying B is not empty"
ctl config | cmp -s - "$WORK/b.yaml" || fail "running config is not B"
[[ $(ctl_json '",".join(p["name"] for p in j["ports"])' ctl show ports --json) == "uplink0,vm1,vm2,vm3" ]] ||
  fail "vm3 not added"
[[ $(rule_field changed actions) == "count,output:vm3" ]] || fail "the changed rule was not changed"
(( $(rule_field changed packets) == 0 )) || fail "a new rule started with a counter"
ctl show rules | grep -q "(only-a)" && fail "only-a still installed"

# Back to A: the exact inverse.
expected_back="+rule:changed +rule:only-a -rule:changed -rule:only-b -vport:vm3"
got=$(diff_set "$WORK/a.yaml")
[[ "$got" == "$expected_back" ]] || fail "diff A from B: expected '$expected_back', got '$got'"
fwd_before=$(rule_field fwd packets)
ctl apply "$WORK/a.yaml" >/dev/null || fail "apply A"
(( $(rule_field fwd packets) >= fwd_before )) || fail "fwd reset when going back to A"
[[ $(rule_field fwd id) == "$fwd_id" ]] || fail "fwd changed id going back to A"
ctl config | cmp -s - "$WORK/a.yaml" || fail "running config is not A"
[[ $(diff_set "$WORK/a.yaml") == "" ]] || fail "diff A after going back is not empty"
echo "ok: back to A, diff was the exact inverse: $got"

ctl_stop
echo "PASS: reconcile (diff = B-A exactly, unchanged rules and ports keep their counters)"
