#!/usr/bin/env bash
# End-to-end SMC-D between two tenant namespaces through eswitchd's emulated ISM service (issue 12).
# Three tenants on af_packet vports: vm1 and vm2 with ISM endpoints from the YAML (`smc: {policy: allow, ism: ...}`,
# vm2's endpoint owned by uid 65534 with mode 0660), vm3 with `smc: deny` (no endpoint). The tenants are
# tests/tools/smc_ism_peer: a TCP connection through the switch, an SMC-Dv2 CLC exchange on it (Proposal with the
# emulated-ISM GID pair, Accept/Confirm with DMB tokens, or a Decline), then the workload over SMC-D or TCP.
#  - endpoints: paths, modes, owners as configured; CHID from --smc-ism-chid; uid 65534 cannot open vm1's 0600
#    endpoint but can open vm2's (its owner).
#  - 1 GiB (pattern checked byte by byte) + 20000 ping-pong messages of 1..256 bytes over SMC-D vm1 -> vm2.
#  - tshark on vm2's veth sees the CLC Proposal, Accept and Confirm (decoded as SMC) crossing the switch.
#  - show smc: endpoints, and during a transfer the two DMBs (owner/writer vports) with bytes.
#  - fallback to TCP: vm3 (smc: deny, no endpoint) answers the Proposal with a Decline NOSMCDDEV (0x03030001);
#    a client without an endpoint sends no Proposal: plain TCP. Data checked in both.
#  - tenant SIGKILLed mid-transfer: the other side sees a clean reset (ECONNRESET), not a hang.
#  - the vport's ISM endpoint removed by apply mid-transfer: both ends reset, its DMBs revoked (show smc empty),
#    the socket file gone; time from the apply to the sender's reset is printed.
# usage: smc_ism_switch.sh ESWITCHD ESWITCHCTL SMC_ISM_PEER
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl smc_ism_peer}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl smc_ism_peer}
PEER=${3:?usage: $0 eswitchd eswitchctl smc_ism_peer}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
esw_e2e_begin smcism
chmod 755 "$WORK"
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
M1=02:00:c6:13:00:01
M2=02:00:c6:13:00:02
M3=02:00:c6:13:00:03
esw_host_add "$P" t1 $M1 198.18.40.1/24
esw_host_add "$P" t2 $M2 198.18.40.2/24
esw_host_add "$P" t3 $M3 198.18.40.3/24
for h in t1 t2 t3; do
  ip netns exec "$P-$h" sysctl -qw "net.ipv6.conf.${P}${h}.disable_ipv6=1" >/dev/null 2>&1 || true
done
ESW_ISM_BYTES=${ESW_ISM_BYTES:-$((1 << 30))}
EP1="$WORK/vm1.ism"
EP2="$WORK/vm2.ism"

# config VM2_SMC: the YAML of vm2's smc key
config() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: vm1, hw_addr: "$M1", ipv4: [198.18.40.1],
      smc: { policy: allow, ism: { socket: "$EP1", mode: "0600", max_dmbs: 8, max_bytes: 8388608 } },
      attach: { devargs: "net_af_packet0,iface=${P}t1p" } }
  - { name: vm2, hw_addr: "$M2", ipv4: [198.18.40.2], smc: $1,
      attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
  - { name: vm3, hw_addr: "$M3", ipv4: [198.18.40.3], smc: deny,
      attach: { devargs: "net_af_packet2,iface=${P}t3p" } }
YAML
}
config "{ policy: allow, ism: { socket: \"$EP2\", owner: 65534, group: 65534, mode: \"0660\" } }" >"$WORK/on.yaml"
config allow >"$WORK/off.yaml"

# ---- config validation: located errors ----
cat >"$WORK/bad.yaml" <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], file_prefix: $PREFIX-bad }
representors: { kind: none }
vports:
  - { name: vm1, attach: { devargs: "net_null0" }, smc: { policy: deny, ism: { socket: "$WORK/x.ism" } } }
  - { name: vm2, attach: { devargs: "net_null1" }, smc: { ism: { socket: "$WORK/x.ism", mode: "0999", max_dmbs: 0 } } }
YAML
"$ESWITCHCTL" validate "$WORK/bad.yaml" >"$WORK/bad.log" 2>&1 && fail "a bad smc.ism config was accepted"
for want in "vports\[0\].smc.ism.*needs policy allow" "vports\[1\].smc.ism.mode.*octal" \
            "vports\[1\].smc.ism.max_dmbs" ; do
  grep -Eq "$want" "$WORK/bad.log" || fail "no located error matching '$want': $(cat "$WORK/bad.log")"
done
grep -q ':5:' "$WORK/bad.log" || fail "errors carry no line: $(cat "$WORK/bad.log")"
echo "ok: bad smc.ism values are refused with located errors"

esw_start_eswitchd "$ESWITCHD" "$WORK/on.yaml" --smc-ism-chid 0xFF07
for _ in $(seq 50); do [[ -S "$SOCK" ]] && break; sleep 0.1; done

# ---- endpoints ----
[[ -S $EP1 && -S $EP2 ]] || fail "ISM endpoints missing: $(ls -l "$WORK")"
[[ $(stat -c '%a %u' "$EP1") == "600 0" ]] || fail "vm1 endpoint: $(stat -c '%a %u' "$EP1"), want 600 0"
[[ $(stat -c '%a %u %g' "$EP2") == "660 65534 65534" ]] || fail "vm2 endpoint: $(stat -c '%a %u %g' "$EP2")"
h1=$(ip netns exec "$P-t1" "$PEER" hello "$EP1")
h2=$(ip netns exec "$P-t2" "$PEER" hello "$EP2")
[[ $h1 == *chid=0xff07* && $h2 == *chid=0xff07* && $h1 != "$h2" ]] || fail "hello: '$h1' / '$h2'"
if setpriv --reuid=65534 --regid=65534 --clear-groups "$PEER" hello "$EP1" >"$WORK/nobody1" 2>&1; then
  fail "uid 65534 opened vm1's 0600 endpoint"
fi
grep -q "result=ERR" "$WORK/nobody1" || fail "no error for uid 65534: $(cat "$WORK/nobody1")"
setpriv --reuid=65534 --regid=65534 --clear-groups "$PEER" hello "$EP2" | grep -q chid=0xff07 ||
  fail "uid 65534 (the owner) cannot open vm2's endpoint"
echo "ok: endpoints with their own mode/owner, CHID 0xff07, distinct GIDs; uid 65534 refused on vm1, admitted on vm2"

# show J PYTHON_EXPR: evaluated against s = eswitchctl --json show smc
show() { ctl --json show smc >"$WORK/smc.json"; /usr/bin/python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($1)" "$WORK/smc.json"; }
[[ $(show "sorted(e['vport'] for e in s['ism']['endpoints'])") == "['vm1', 'vm2']" ]] || fail "show smc endpoints: $(cat "$WORK/smc.json")"
ctl show smc | grep -q "SMC-D (emulated ISM, CHID 0xFF07)" || fail "eswitchctl show smc has no SMC-D table"

# run_pair SERVER_NS SERVER_EP SERVER_ADDR CLIENT_NS CLIENT_EP PORT CLIENT_ARGS...: prints both result lines
run_pair() {
  local sns=$1 sep=$2 saddr=$3 cns=$4 cep=$5 port=$6
  shift 6
  ip netns exec "$P-$sns" "$PEER" server "$sep" "$saddr" "$port" >"$WORK/server.out" 2>&1 &
  local spid=$!
  ESW_EXTRA_PIDS+=("$spid")
  esw_wait_for_line "$WORK/server.out" listening "$spid"
  local rc=0
  ip netns exec "$P-$cns" "$PEER" client "$cep" "$saddr" "$port" "$@" >"$WORK/client.out" 2>&1 || rc=$?
  wait "$spid" || true
  [[ $rc -eq 0 ]] || fail "client exited $rc: $(cat "$WORK/client.out") / server: $(cat "$WORK/server.out")"
}
# wait_exit PID SECONDS: until the process has exited (a zombie counts: it is our child, reaped later)
wait_exit() {
  local st i
  for ((i = 0; i < $2 * 50; i++)); do
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)
    [[ -z $st || $st == Z ]] && return 0
    sleep 0.02
  done
  return 1
}
esw_wait_for_line() {
  local f=$1 want=$2 pid=$3
  for _ in $(seq 100); do
    grep -q "$want" "$f" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "no '$want' in $f: $(cat "$f")"
}

# ---- 1 GiB + 20000 messages over SMC-D, with tshark on vm2's interface (what crossed the switch) ----
TSHARK=""
if command -v tshark >/dev/null 2>&1; then
  ip netns exec "$P-t2" tshark -i "${P}t2" -f "tcp port 5001" -w "$WORK/clc.pcap" >"$WORK/tshark.log" 2>&1 &
  TSHARK=$!
  ESW_EXTRA_PIDS+=("$TSHARK")
  # tshark's first start on a fresh machine can take seconds (it loads every dissector): the handshake must not
  # start before it captures (CI saw an empty capture after the old 5 s wait).
  for _ in $(seq 300); do grep -q Capturing "$WORK/tshark.log" && break; sleep 0.1; done
  grep -q Capturing "$WORK/tshark.log" || fail "tshark did not start capturing within 30 s: $(cat "$WORK/tshark.log")"
fi
run_pair t2 "$EP2" 198.18.40.2 t1 "$EP1" 5001 --bytes $((ESW_ISM_BYTES)) --msgs 20000
grep -q "transport=smcd decline=0x00000000 bytes=$ESW_ISM_BYTES .*msgs=20000 .*result=ok" "$WORK/server.out" ||
  fail "server: $(cat "$WORK/server.out")"
grep -q "transport=smcd .*result=ok" "$WORK/client.out" || fail "client: $(cat "$WORK/client.out")"
echo "ok: SMC-D $ESW_ISM_BYTES bytes checked + 20000 messages: $(cat "$WORK/client.out")"
if [[ -n $TSHARK ]]; then
  sleep 1
  kill -INT "$TSHARK"; wait "$TSHARK" || true
  tshark -r "$WORK/clc.pcap" -o tcp.desegment_tcp_streams:TRUE -o tcp.try_heuristic_first:TRUE -Y smc -T fields \
    -e smc.clc_msg -e ip.src -e smc.proposal.ism.gid -e smc.accept.dmb.token -e smc.confirm.dmb.token \
    >"$WORK/clc.txt" 2>"$WORK/tshark.err" || fail "tshark: $(cat "$WORK/tshark.err")"
  types=$(awk '{print $1}' "$WORK/clc.txt" | tr '\n' ' ')
  [[ $types == "1 2 3 " ]] || fail "tshark saw CLC types '$types' (want Proposal 1, Accept 2, Confirm 3): $(cat "$WORK/clc.txt")"
  if tshark -r "$WORK/clc.pcap" -o tcp.try_heuristic_first:TRUE -Y '_ws.malformed' 2>/dev/null | grep -q .; then
    fail "tshark reports malformed CLC frames"
  fi
  echo "ok: tshark decodes the CLC exchange on the wire: $(tr '\n\t' '; ' <"$WORK/clc.txt")"
else
  echo "note: tshark not installed, the on-the-wire CLC check was skipped"
fi

# ---- fallback: vm3 has no SMC-D (smc: deny) -> Decline NOSMCDDEV, TCP; a client without endpoint -> TCP ----
run_pair t3 - 198.18.40.3 t1 "$EP1" 5002 --bytes 1000000 --msgs 200
grep -q "transport=tcp decline=0x03030001 bytes=1000000 .*result=ok" "$WORK/server.out" || fail "fallback server: $(cat "$WORK/server.out")"
grep -q "transport=tcp decline=0x03030001 .*result=ok" "$WORK/client.out" || fail "fallback client: $(cat "$WORK/client.out")"
run_pair t2 "$EP2" 198.18.40.2 t3 - 5003 --bytes 1000000 --msgs 200
grep -q "transport=tcp decline=0x00000000 bytes=1000000 .*result=ok" "$WORK/server.out" || fail "no-proposal server: $(cat "$WORK/server.out")"
echo "ok: fallback to TCP with Decline 0x03030001 (peer vport smc: deny); plain TCP without a Proposal"
# the client claims an address not bound to vm1 for its DMB's flow: eswitchd refuses the bind (the switch would
# drop that flow), the client declines with CNFERR (0x03000000), both use TCP
run_pair t2 "$EP2" 198.18.40.2 t1 "$EP1" 5008 --bytes 1000000 --msgs 200 --fake-local 198.18.40.9
grep -q "transport=tcp decline=0x03000000 bytes=1000000 .*result=ok" "$WORK/server.out" || fail "fake flow server: $(cat "$WORK/server.out")"
grep -q "transport=tcp decline=0x03000000 .*result=ok" "$WORK/client.out" || fail "fake flow client: $(cat "$WORK/client.out")"
grep -q "does not forward this TCP flow" "$WORK/client.out" || fail "no reason from the service: $(cat "$WORK/client.out")"
[[ $(show "len(s['ism']['dmbs'])") == 0 ]] || fail "DMBs left after the refused bind: $(cat "$WORK/smc.json")"
echo "ok: a DMB bound to a flow with an address not vm1's is refused by eswitchd; Decline CNFERR, TCP fallback"

# ---- a transfer held open: show smc lists its DMBs; the server tenant is SIGKILLed -> the client resets ----
hold_start() {  # PORT SECONDS
  ip netns exec "$P-t2" "$PEER" server "$EP2" 198.18.40.2 "$1" >"$WORK/server.out" 2>&1 &
  SPID=$!
  ESW_EXTRA_PIDS+=("$SPID")
  esw_wait_for_line "$WORK/server.out" listening "$SPID"
  ip netns exec "$P-t1" "$PEER" client "$EP1" 198.18.40.2 "$1" --hold "$2" >"$WORK/client.out" 2>&1 &
  CPID=$!
  ESW_EXTRA_PIDS+=("$CPID")
  for _ in $(seq 100); do
    [[ $(show "len(s['ism']['dmbs'])") == 2 ]] && return 0
    sleep 0.1
  done
  fail "the held transfer has no DMBs: $(cat "$WORK/smc.json") $(cat "$WORK/client.out")"
}
hold_start 5004 60
sleep 0.5
show "1" >/dev/null
[[ $(show "sorted((d['owner'], d['writer']) for d in s['ism']['dmbs'])") == "[('vm1', 'vm2'), ('vm2', 'vm1')]" ]] ||
  fail "show smc DMBs: $(cat "$WORK/smc.json")"
[[ $(show "max(d['bytes'] for d in s['ism']['dmbs']) > 0") == True ]] || fail "no bytes in show smc: $(cat "$WORK/smc.json")"
echo "ok: show smc lists the connection's two DMBs (vm1<->vm2) with bytes moved"
TELEMETRY=$(command -v dpdk-telemetry.py || true)
if [[ -n $TELEMETRY ]]; then
  sleep 0.7  # the snapshot is refreshed every 500 ms
  echo /eswitch/smc_ism | timeout 30 "$TELEMETRY" -f "$PREFIX" >"$WORK/tele.out" 2>&1 || fail "dpdk-telemetry.py: $(cat "$WORK/tele.out")"
  /usr/bin/python3 - "$WORK/tele.out" <<'PY' || fail "telemetry /eswitch/smc_ism: $(cat "$WORK/tele.out")"
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{") and "/eswitch/smc_ism" in line:
        t = json.loads(line)["/eswitch/smc_ism"]
        assert t["running"] == 1 and t["chid"] == 0xFF07 and t["endpoints"] == 2 and t["dmbs"] == 2, t
        assert t["clients"] == 2 and t["bytes_produced"] > 0 and t["dmb_bytes"] == 2 << 20, t
        sys.exit(0)
sys.exit(1)
PY
  echo "ok: telemetry /eswitch/smc_ism: 2 endpoints, 2 clients, 2 DMBs, bytes moving"
fi
t0=$(date +%s%N)
kill -9 "$SPID"
rc=0
wait_exit "$CPID" 20 || fail "the client hangs after its peer was killed"
wait "$CPID" || rc=$?
t1=$(date +%s%N)
grep -q "result=Connection reset by peer" "$WORK/client.out" || fail "client after peer kill: rc=$rc $(cat "$WORK/client.out")"
for _ in $(seq 50); do [[ $(show "len(s['ism']['dmbs'])") == 0 ]] && break; sleep 0.1; done
[[ $(show "len(s['ism']['dmbs'])") == 0 ]] || fail "DMBs left after the tenants ended: $(cat "$WORK/smc.json")"
echo "ok: tenant SIGKILL mid-transfer -> peer ECONNRESET in $(((t1 - t0) / 1000000)) ms (incl. process reaping); DMBs freed"

# ---- a runtime rule that drops the connection's TCP flow tears its SMC-D connection down ----
hold_start 5007 60
show "[d['flow'] for d in s['ism']['dmbs']]" | grep -q "198.18.40.2:5007 -> 198.18.40.1:" || fail "DMBs not bound to the TCP flow: $(cat "$WORK/smc.json")"
# Another port's rule changes nothing
ctl rules --add 'priority=1000,name=esw-other,in_port=vm1,ipv4,tcp_dst=5999 actions=drop' >/dev/null || fail "rules --add other"
sleep 1
kill -0 "$CPID" 2>/dev/null || fail "a rule for another flow tore the connection down: $(cat "$WORK/client.out")"
[[ $(show "len(s['ism']['dmbs'])") == 2 ]] || fail "DMBs gone after an unrelated rule"
t0=$(date +%s%N)
ctl rules --add 'priority=1000,name=esw-block,in_port=vm1,ipv4,tcp_dst=5007 actions=drop' >/dev/null || fail "rules --add"
wait_exit "$CPID" 20 ||
  fail "the client still runs after the rule dropped its flow: $(show "s['ism']"); $(ctl trace "in_port=vm1,eth_src=$M1,eth_dst=$M2,ipv4,ipv4_src=198.18.40.1,ipv4_dst=198.18.40.2,tcp,tcp_src=40000,tcp_dst=5007")"
t1=$(date +%s%N)
wait "$CPID" || true
wait_exit "$SPID" 20 || fail "the server hangs after the rule"
wait "$SPID" || true
grep -q "result=Connection reset by peer" "$WORK/client.out" || fail "client after the rule: $(cat "$WORK/client.out")"
grep -q "result=Connection reset by peer" "$WORK/server.out" || fail "server after the rule: $(cat "$WORK/server.out")"
[[ $(show "len(s['ism']['dmbs'])") == 0 && $(show "s['ism']['counters']['flows_torn_down']") -ge 1 ]] ||
  fail "after the rule: $(cat "$WORK/smc.json")"
echo "ok: a runtime rule dropping the TCP flow tears SMC-D down: both ends ECONNRESET, $(((t1 - t0) / 1000000)) ms from 'eswitchctl rules --add' to the sender's exit"
ctl rules --delete esw-block --delete esw-other >/dev/null || fail "rules --delete"

# ---- vm2's endpoint removed by apply mid-transfer: both ends reset, its DMBs revoked, the socket gone ----
hold_start 5005 60
t0=$(date +%s%N)
ctl apply "$WORK/off.yaml" >"$WORK/apply.out" || fail "apply: $(cat "$WORK/apply.out")"
wait_exit "$CPID" 20 || fail "the client hangs after the endpoint removal"
t1=$(date +%s%N)
wait "$CPID" || true
wait_exit "$SPID" 20 || fail "the server hangs after the endpoint removal"
wait "$SPID" || true
grep -q "result=Connection reset by peer" "$WORK/client.out" || fail "client after removal: $(cat "$WORK/client.out")"
grep -q "result=Connection reset by peer" "$WORK/server.out" || fail "server after removal: $(cat "$WORK/server.out")"
[[ ! -e $EP2 ]] || fail "vm2's endpoint still exists after apply"
[[ $(show "len(s['ism']['dmbs'])") == 0 ]] || fail "DMBs left after removal: $(cat "$WORK/smc.json")"
[[ $(show "[e['vport'] for e in s['ism']['endpoints']]") == "['vm1']" ]] || fail "endpoints after removal: $(cat "$WORK/smc.json")"
[[ $(show "s['ism']['counters']['dmbs_revoked'] >= 1") == True ]] || fail "nothing counted as revoked: $(cat "$WORK/smc.json")"
echo "ok: endpoint removed by apply mid-transfer: both ends ECONNRESET ($(((t1 - t0) / 1000000)) ms from apply start to the sender's exit, incl. eswitchctl), DMBs revoked, socket gone"

# ---- and back: apply re-creates it ----
ctl apply "$WORK/on.yaml" >"$WORK/apply.out" || fail "apply back: $(cat "$WORK/apply.out")"
[[ -S $EP2 ]] || fail "vm2's endpoint not re-created"
run_pair t2 "$EP2" 198.18.40.2 t1 "$EP1" 5006 --bytes 10000000 --msgs 100
grep -q "transport=smcd .*result=ok" "$WORK/server.out" || fail "after re-create: $(cat "$WORK/server.out")"
echo "ok: apply re-creates the endpoint; SMC-D works again"

esw_stop_eswitchd
[[ ! -e $EP1 ]] || fail "vm1's endpoint left after eswitchd stopped"
echo "PASS"
