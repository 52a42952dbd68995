#!/usr/bin/env bash
# Live migration of a vhost-user vport from one eswitchd (A) to another (B), with live traffic:
#  - the guest is dpdk-testpmd with net_virtio_user in server mode (server=1, fwd icmpecho): it stays put while
#    the switch side moves; both eswitchds serve its socket in client mode. B connects early: its connection
#    waits in the guest's listen backlog until A lets go.
#  - a kernel tenant pings the guest every 10 ms through a Linux bridge that reaches both eswitchds (one
#    af_packet vport each): the bridge only learns the guest's new place from B's RARP announce.
#  - A: RUNNING -> PRE_COPY -> PRE_COPY_P2P -> STOP_COPY (writes the stream); B (already STOP): RESUMING (reads
#    it) -> STOP -> RUNNING_P2P -> RUNNING; A's vport removed (apply): the guest reconnects to B.
# Checked: no duplicate replies, the loss window measured and printed, B's counters continue from A's, the bridge
# learned the guest on B's side, an illegal arc refused with both state names, corrupted / truncated / foreign
# streams refused with the byte and field at fault, both eswitchds stop cleanly.
#
# RING=packed (third argument): the guest's rings are packed (virtio_user packed_vq=1); the stream carries each
# vring's avail/used index with its wrap counters and B reports what it did with them (virtio_user restarts
# packed rings when it reconnects, so B keeps the guest's restarted positions).
# The migration state is also read from B's DPDK telemetry (/eswitch/vports,NAME: migration_state, session).
#
# usage: vhost_migrate.sh PATH/TO/eswitchd PATH/TO/eswitchctl [split|packed]
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl [split|packed]}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl [split|packed]}
RING=${3:-split}
[[ $RING == split || $RING == packed ]] || { echo "usage: $0 eswitchd eswitchctl [split|packed]" >&2; exit 2; }
GUEST_RING_OPT=""
[[ $RING == packed ]] && GUEST_RING_OPT=",packed_vq=1"
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
command -v dpdk-testpmd >/dev/null || { echo "SKIP: dpdk-testpmd not installed (package dpdk)"; exit 77; }
TELEMETRY=$(command -v dpdk-telemetry.py || true)
[[ -n "$TELEMETRY" ]] || { echo "SKIP: dpdk-telemetry.py missing (dpdk-dev)"; exit 77; }
esw_e2e_begin vmig
B_PID=""
cleanup() {
  [[ -n "$B_PID" ]] && kill -9 "$B_PID" 2>/dev/null
  esw_e2e_cleanup
  rm -rf "/var/run/dpdk/$PREFIX-"*
}
trap cleanup EXIT
P="esw$(($$ % 10000))"
NS="$P-t"
MAC1=02:00:c6:12:00:01 MAC3=02:00:c6:12:00:03 MAC9=02:00:c6:12:00:09
ctl_a() { "$ESWITCHCTL" --socket "$WORK/a.sock" --no-progress "$@"; }
ctl_b() { "$ESWITCHCTL" --socket "$WORK/b.sock" --no-progress "$@"; }
failb() { [[ -f "$WORK/b.log" ]] && sed 's/^/  eswitchd B: /' "$WORK/b.log" >&2; fail "$@"; }

# The tenant: a namespace with a bridge (its address on the bridge), one veth leg to each eswitchd.
ip netns add "$NS"
ESW_CREATED_NS+=("$NS")
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" link set br0 address "$MAC3"
for side in a b; do
  ip link add "${P}${side}p" type veth peer name "${P}${side}"
  ESW_CREATED_LINKS+=("${P}${side}p")
  ip link set "${P}${side}" netns "$NS"
  sysctl -qw "net.ipv6.conf.${P}${side}p.disable_ipv6=1" >/dev/null 2>&1 || true
  ethtool -K "${P}${side}p" gro off tso off gso off tx off rx off >/dev/null 2>&1 || true
  ip link set "${P}${side}p" up
  ip -n "$NS" link set "${P}${side}" master br0
  ip -n "$NS" link set "${P}${side}" up
done
ip -n "$NS" addr add 198.18.0.3/24 dev br0
ip -n "$NS" link set br0 up

GUEST_SOCK="$WORK/vm.sock"
config() {  # config NAME WITH_VM
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { main_core: 0, worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX-$1, api_socket: "$WORK/$1.sock" }
representors: { kind: none }
vports:
  - { name: t3, hw_addr: "$MAC3", ipv4: [198.18.0.3], attach: { devargs: "net_af_packet0,iface=${P}$1p" } }
YAML
  if [[ $2 == yes ]]; then
    echo "  - { name: vm, hw_addr: \"$MAC1\", ipv4: [198.18.0.1], attach: { vhost_user: { socket: \"$GUEST_SOCK\", mode: client, queues: 1 } } }"
  fi
  if [[ $1 == b ]]; then
    echo "  - { name: vm9, hw_addr: \"$MAC9\", ipv4: [198.18.0.9], attach: { vhost_user: { socket: \"$WORK/vm9.sock\", mode: server } } }"
  fi
}
config a yes >"$WORK/a.yaml"
config a no >"$WORK/a-novm.yaml"
config b yes >"$WORK/b.yaml"

# The guest listens first; A connects to it.
dpdk-testpmd --no-huge -m 1024 --single-file-segments --no-pci --file-prefix "$PREFIX-guest" \
  --lcores "0@0,1@0" --vdev "net_virtio_user0,path=$GUEST_SOCK,server=1,mac=$MAC1,queues=1,queue_size=256$GUEST_RING_OPT" -- \
  --total-num-mbufs=8192 --nb-cores=1 --rxq=1 --txq=1 --forward-mode=icmpecho --stats-period 1 \
  >"$WORK/guest.log" 2>&1 </dev/null &
GUEST_PID=$!
ESW_EXTRA_PIDS+=("$GUEST_PID")
for _ in $(seq 100); do [[ -S "$GUEST_SOCK" ]] && break; sleep 0.1; done
[[ -S "$GUEST_SOCK" ]] || { cat "$WORK/guest.log" >&2; fail "the guest did not listen on $GUEST_SOCK"; }
esw_start_eswitchd "$ESWITCHD" "$WORK/a.yaml"
for _ in $(seq 200); do grep -q "vhost-user guest connected" "$WORK/eswitchd.log" && break; sleep 0.1; done
grep -q "vhost-user guest connected" "$WORK/eswitchd.log" || { cat "$WORK/guest.log" >&2; fail "A never saw the guest"; }
for _ in $(seq 100); do grep -q "Checking link statuses" "$WORK/guest.log" && break; sleep 0.1; done

# B: its own state dir and ready file; its vm vport connects into the guest's backlog and is stopped at once.
"$ESWITCHD" --config "$WORK/b.yaml" --state-dir "$WORK/state-b" --ready-file "$WORK/b.ready" >"$WORK/b.log" 2>&1 &
B_PID=$!
esw_wait_file "$WORK/b.ready" "$B_PID" 60 || failb "eswitchd B did not start"

stat_of() {  # stat_of ctl_a|ctl_b PORT FIELD
  "$1" --json show ports | /usr/bin/python3 -c '
import json, sys
rows = json.load(sys.stdin)["ports"]
print(next((p[sys.argv[2]] for p in rows if p["name"] == sys.argv[1]), 0))' "$2" "$3"
}
rule_total() { "$1" --json show rules | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])'; }
b_rules_before=$(rule_total ctl_b)
ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 198.18.0.1 >/dev/null || fail "the tenant cannot ping the guest through A"
echo "ok: tenant -> guest through eswitchd A"
# A runtime rule naming the vport travels with it.
ctl_a rules --add "priority=100,name=esw-mig-ssh,in_port=vm,ipv4,tcp_dst=22 actions=drop" >/dev/null

# An illegal arc, refused with both state names (and nothing changed).
if out=$(ctl_b vport migrate vm --to-state STOP_COPY --stream "$WORK/x.mig" 2>&1); then
  failb "B accepted RUNNING -> STOP_COPY: $out"
fi
grep -q "RUNNING -> STOP_COPY" <<<"$out" || failb "the refusal does not name both states: $out"
[[ ! -e "$WORK/x.mig" ]] || failb "a refused arc wrote a stream"
echo "ok: illegal arc refused: $out"
ctl_b vport migrate vm --to-state RUNNING_P2P >/dev/null
ctl_b vport migrate vm --to-state STOP >/dev/null

# B's DPDK telemetry shows the vport's migration state (published every 200 ms): poll until it reads WANT.
tel_b_vport() {  # tel_b_vport VPORT WANT_STATE -> prints the /eswitch/vports,VPORT reply (JSON)
  local out="" i
  for ((i = 0; i < 20; i++)); do
    out=$(printf '/eswitch/vports,%s\n' "$1" | timeout 20 "$TELEMETRY" -f "$PREFIX-b" 2>/dev/null | grep '^{' | tail -1) || true
    if /usr/bin/python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1])["/eswitch/vports"]["migration_state"] != sys.argv[2])' \
      "$out" "$2" 2>/dev/null; then
      echo "$out"
      return 0
    fi
    sleep 0.2
  done
  echo "$out"
  return 1
}
tel=$(tel_b_vport vm STOP) || failb "B's telemetry does not show vm in STOP: $tel"
echo "ok: B's telemetry: vm migration_state STOP"

# Live traffic: 10 ms pings for the whole migration.
NPING=700
ip netns exec "$NS" ping -D -i 0.01 -c "$NPING" -W 1 198.18.0.1 >"$WORK/ping.log" 2>&1 &
PING_PID=$!
ESW_EXTRA_PIDS+=("$PING_PID")
sleep 2
t0=$(date +%s%N)
ctl_a vport migrate vm --to-state PRE_COPY
ctl_a vport migrate vm --to-state PRE_COPY_P2P
ctl_a --json vport migrate vm --to-state STOP_COPY --stream "$WORK/vm.mig" >"$WORK/save.json"
t1=$(date +%s%N)
# The source lets the guest go (its vport removed) while B loads the stream: B's vport does not poll before
# RUNNING, whenever the guest's session reaches it.
# (its runtime rule naming the vport first: it went with the stream.)
{ ctl_a rules --delete esw-mig-ssh && ctl_a apply "$WORK/a-novm.yaml"; } >"$WORK/release.log" 2>&1 &
REL_PID=$!
ctl_b --json vport migrate vm --to-state RESUMING --stream "$WORK/vm.mig" >"$WORK/load.json"
ctl_b --json vport migrate vm --to-state STOP >"$WORK/install.json"
ctl_b vport migrate vm --to-state RUNNING_P2P >/dev/null
ctl_b vport migrate vm --to-state RUNNING >/dev/null
t2=$(date +%s%N)
wait "$REL_PID" || { sed "s/^/  release: /" "$WORK/release.log" >&2; fail "A could not remove the vport"; }
t3=$(date +%s%N)
for _ in $(seq 300); do grep -q "vhost-user guest connected" "$WORK/b.log" && break; sleep 0.01; done
t4=$(date +%s%N)
grep -q "vhost-user guest connected" "$WORK/b.log" || failb "the guest never connected to B"
wait "$PING_PID" || true

cat "$WORK/save.json" "$WORK/install.json" | sed 's/^/  /'
read -r sent recv dups < <(/usr/bin/python3 - "$WORK/ping.log" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?", t)
print(m.group(1), m.group(2), m.group(3) or 0)
PY
)
seqs=$(grep -o 'icmp_seq=[0-9]*' "$WORK/ping.log" | cut -d= -f2 | sort -n | uniq | tr '\n' ' ')
gap=$(/usr/bin/python3 -c '
import sys
s = sorted(int(x) for x in sys.argv[1].split())
print(max((b - a - 1 for a, b in zip(s, s[1:])), default=0))' "$seqs")
lost=$((sent - recv))
ms() { echo $(( ($2 - $1) / 1000000 )); }
echo "  pings: sent $sent, answered $recv, duplicates $dups; lost $lost (longest gap $gap x 10 ms = $((gap * 10)) ms)"
# The loss window as the tenant saw it: the longest time between two answered pings.
window=$(/usr/bin/python3 - "$WORK/ping.log" <<'PY'
import re, sys
t = [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\].*icmp_seq=", open(sys.argv[1]).read(), re.M)]
print(int(max((b - a for a, b in zip(t, t[1:])), default=0) * 1000))
PY
)
echo "  timeline: A PRE_COPY..STOP_COPY $(ms "$t0" "$t1") ms (3 eswitchctl calls), B RESUMING..RUNNING $(ms "$t1" "$t2") ms" \
  "(4 calls; A's apply removing the vport meanwhile), A's apply done +$(ms "$t2" "$t3") ms, B's guest seen +$(ms "$t3" "$t4") ms"
grep -E "vport vm: (vhost-user|migration|resumed|packed rings)" "$WORK/b.log" | sed 's/^/  B: /'

api_ms=$(/usr/bin/python3 -c '
import json, sys
print(round(sum(json.load(open(f))["ms"] for f in sys.argv[1:]), 1))' "$WORK/save.json" "$WORK/load.json" "$WORK/install.json")
echo "  switch time inside the migrate calls (stop, save, load, install): $api_ms ms"
echo "MEASURED: migration loss window $window ms between two answered pings ($lost of $sent pings at 10 ms lost)"
((dups == 0)) || failb "$dups duplicate replies"
tail_ok=$(/usr/bin/python3 -c '
import sys
s = set(int(x) for x in sys.argv[1].split()); n = int(sys.argv[2])
print(sum(1 for i in range(n - 100, n + 1) if i in s))' "$seqs" "$NPING")
((tail_ok >= 90)) || failb "pings did not resume through B ($tail_ok of the last 100 answered)"
grep -q "resumed from a migration stream ($RING ring)" "$WORK/b.log" || failb "B did not log the resume of a $RING ring"
# The stream's ring layout: what the guest negotiated (RING_PACKED, bit 34).
saved_packed=$(/usr/bin/python3 -c 'import json,sys; print((json.load(open(sys.argv[1]))["features"] >> 34) & 1)' "$WORK/save.json")
[[ $saved_packed == $([[ $RING == packed ]] && echo 1 || echo 0) ]] || failb "the stream's features have RING_PACKED=$saved_packed for a $RING ring"
if [[ $RING == packed ]]; then
  # virtio_user re-initialises packed rings when it reconnects: B keeps the guest's restarted positions.
  grep -Eq "packed rings from the stream: .* [1-9][0-9]* restarted by the guest \(kept\)" "$WORK/b.log" ||
    failb "B did not report what it did with the stream's packed ring positions"
fi

b_rules_after=$(rule_total ctl_b)
installed=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rules"])' "$WORK/install.json")
((installed == 1 && b_rules_after == b_rules_before + 1)) ||
  failb "the runtime rule naming vm did not come with the stream (installed $installed, B's rules $b_rules_before -> $b_rules_after)"
ctl_b --json show rules | grep -q 'tcp_dst' || failb "B's rules lack the migrated tcp_dst=22 rule"
echo "ok: the vport's runtime rule moved with it"

# The bridge learned the guest's MAC on B's leg (RARP, then replies).
fdb=$(bridge -n "$NS" fdb show br br0 | grep -i "$MAC1" || true)
grep -q "dev ${P}b " <<<"$fdb" || failb "the bridge has the guest on '$fdb', not on B's leg"
echo "ok: the network learned the guest's new place (fdb: $fdb)"

# B's session view: the vport RUNNING, one announce sent.
peer_of() {  # peer_of PORT KEY (state, or a key of counters)
  ctl_b --json show ports | /usr/bin/python3 -c '
import json, sys
p = next(p for p in json.load(sys.stdin)["ports"] if p["name"] == sys.argv[1])["peer"]
print(p["state"] if sys.argv[2] == "state" else p["counters"][sys.argv[2]])' "$1" "$2"
}
[[ $(peer_of vm state) == RUNNING ]] || failb "B shows vm in state $(peer_of vm state), not RUNNING"
(( $(peer_of vm announces) == 1 )) || failb "B sent $(peer_of vm announces) announces, not 1"
echo "ok: show ports on B: vm RUNNING, 1 RARP announce"
# The same in B's telemetry: RUNNING, the guest connected, traffic on queue pair 0, the announce.
tel=$(tel_b_vport vm RUNNING) || failb "B's telemetry does not show vm RUNNING: $tel"
/usr/bin/python3 - "$tel" "$RING" <<'PY' || failb "B's telemetry session view of vm is wrong: $tel"
import json, sys
v = json.loads(sys.argv[1])["/eswitch/vports"]
packed = (v["vhost_features"] >> 34) & 1
ok = v["vhost_connected"] == 1 and v["q0_rx_packets"] > 0 and v["q0_tx_packets"] > 0 and v["vhost_announces"] == 1
ok = ok and packed == (sys.argv[2] == "packed")
print(f"  B telemetry vm: {v['migration_state']}, connected {v['vhost_connected']}, features 0x{v['vhost_features']:x}, "
      f"q0 rx {v['q0_rx_packets']} tx {v['q0_tx_packets']}, announces {v['vhost_announces']}")
sys.exit(0 if ok else 1)
PY
echo "ok: B's telemetry: vm RUNNING with its session (features, queue pair 0 traffic, announce)"

# Counters continue: B's vm counts start at A's (from the stream) and grew.
saved_rx=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rx_packets"])' "$WORK/save.json")
saved_tx=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tx_packets"])' "$WORK/save.json")
b_rx=$(stat_of ctl_b vm rx_packets) b_tx=$(stat_of ctl_b vm tx_packets)
echo "  vm counters: A at STOP_COPY rx $saved_rx tx $saved_tx; B now rx $b_rx tx $b_tx"
((saved_rx > 50 && b_rx > saved_rx + 50 && b_tx > saved_tx + 50)) || failb "counters did not continue from the stream"
((b_rx < saved_rx + NPING)) || failb "B's rx $b_rx is more than the stream's $saved_rx plus what was sent since"
echo "ok: counters continue (rx $saved_rx -> $b_rx)"

# Hostile streams, on B's spare vport vm9 (STOP first): each refused naming where, vm9 stays STOP.
ctl_b vport migrate vm9 --to-state RUNNING_P2P >/dev/null
ctl_b vport migrate vm9 --to-state STOP >/dev/null
size=$(stat -c %s "$WORK/vm.mig")
cp "$WORK/vm.mig" "$WORK/bad.mig"
printf '\x7f' | dd of="$WORK/bad.mig" bs=1 seek=$((size / 2)) conv=notrunc status=none
head -c $((size - 9)) "$WORK/vm.mig" >"$WORK/short.mig"
cp "$WORK/vm.mig" "$WORK/ver.mig"
printf '\x09' | dd of="$WORK/ver.mig" bs=1 seek=8 conv=notrunc status=none
mkfifo "$WORK/fifo.mig"                # open() on it would block eswitchd's main loop
ln -s "$WORK/vm.mig" "$WORK/link.mig"  # a symlink is not followed
for f in bad short ver vm fifo link; do
  if out=$(timeout 10 "$ESWITCHCTL" --socket "$WORK/b.sock" --no-progress vport migrate vm9 --to-state RESUMING \
    --stream "$WORK/$f.mig" 2>&1); then
    failb "B accepted stream $f.mig for vm9: $out"
  fi
  echo "  $f.mig refused: $out"
  case $f in
    bad | short) grep -qE "byte [0-9]+: (checksum|body length)" <<<"$out" || failb "no located error: $out" ;;
    ver) grep -q "byte 8: version: 9" <<<"$out" || failb "the version is not named: $out" ;;
    vm) grep -q "it is vport 'vm', not 'vm9'" <<<"$out" || failb "a foreign stream not named: $out" ;;
    fifo) grep -q "is not a regular file" <<<"$out" || failb "a FIFO stream not refused at once: $out" ;;
    link) grep -q "cannot open stream .*link.mig" <<<"$out" || failb "a symlinked stream not refused: $out" ;;
  esac
done
[[ $(peer_of vm9 state) == STOP ]] || failb "vm9 is $(peer_of vm9 state) after the refused streams, not STOP"
tel=$(tel_b_vport vm9 STOP) || failb "B's telemetry does not show vm9 STOP: $tel"
out=$(ctl_b vport migrate vm9 --to-state RUNNING_P2P 2>&1) || failb "vm9 did not stay in STOP: $out"
echo "ok: corrupted, truncated, wrong-version and foreign streams refused; the vport stayed STOP"

kill -INT "$GUEST_PID" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$GUEST_PID" 2>/dev/null || break; sleep 0.1; done
rc=0
kill -INT "$B_PID"
wait "$B_PID" || rc=$?
B_PID=""
[[ $rc -eq 0 ]] || failb "eswitchd B exited with $rc"
esw_stop_eswitchd
echo "PASS ($RING ring): vhost-user vport migrated between eswitchds under 10 ms pings: loss window $window ms, no duplicates, counters continue, RARP moved the guest, illegal arc and bad streams refused"
