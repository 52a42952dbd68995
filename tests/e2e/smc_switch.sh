#!/usr/bin/env bash
# End-to-end SMC awareness through the real switch: scapy peers (tests/e2e/smc_peer.py) in two network namespaces
# send crafted SYNs, CLC messages and RoCEv2 frames through eswitchd (af_packet vports on veths) and capture what
# arrives on the other side.
#  - smc: allow: SYN / SYN-ACK with the SMC option pass unchanged, a session appears in `show smc`.
#  - roce_strict on vm1: RoCEv2 vm1 -> vm2 is dropped (roce_qp_not_granted) until a CLC Accept/Confirm exchange
#    between the two grants the QP and rkey; then granted QP/rkey pass, another rkey is dropped
#    (roce_rkey_not_granted), trace names the reason; FIN ends the session and its grants.
#  - identity enforcement: Proposals/Accepts claiming another vport's RoCE MAC, GID or IP prefix are dropped
#    (also when split across two segments: the completing segment is dropped), counted per reason, the session
#    shows it as refused and the connection's data is dropped both ways.
#  - sessions age out (--smc-idle-timeout).
#  - smc: deny on vm1 (eswitchctl apply): the option is gone from vm1's SYN and from the SYN-ACK towards vm1, with
#    valid TCP/IP checksums (IPv4 and IPv6), counted as smc_option_stripped.
# The namespaces' kernels carry other addresses than the ones in the frames, so they answer nothing.
#
# usage: smc_switch.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
/usr/bin/python3 -c 'import scapy' 2>/dev/null || { echo "SKIP: scapy (python3-scapy) is not installed"; exit 77; }
esw_e2e_begin smc
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
M1=02:00:c6:12:00:01
M2=02:00:c6:12:00:02
esw_host_add "$P" t1 $M1 198.19.0.1/32
esw_host_add "$P" t2 $M2 198.19.0.2/32
for h in t1 t2; do  # quiet tenants: no IPv6 chatter of their own
  ip netns exec "$P-$h" sysctl -qw "net.ipv6.conf.${P}${h}.disable_ipv6=1" >/dev/null 2>&1 || true
done

# config SMC_POLICY_VM1
config() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: vm1, hw_addr: "$M1", ipv4: [198.18.0.1], ipv6: ["2001:db8::1"], roce: true, roce_strict: true, smc: $1,
      attach: { devargs: "net_af_packet0,iface=${P}t1p" } }
  - { name: vm2, hw_addr: "$M2", ipv4: [198.18.0.2], ipv6: ["2001:db8::2"], roce: true,
      attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
YAML
}
config allow >"$WORK/allow.yaml"
config deny >"$WORK/deny.yaml"
esw_start_eswitchd "$ESWITCHD" "$WORK/allow.yaml" --smc-idle-timeout 40
for _ in $(seq 50); do [[ -S "$SOCK" ]] && break; sleep 0.1; done

A12=(smac=$M1 dmac=$M2 src=198.18.0.1 dst=198.18.0.2)
A21=(smac=$M2 dmac=$M1 src=198.18.0.2 dst=198.18.0.1)
# The peers: one scapy process with a socket in each namespace, driven line by line.
coproc PEER { /usr/bin/python3 "$HERE/smc_peer.py" "$P-t1" "${P}t1" "$P-t2" "${P}t2" 2>"$WORK/peer.log"; }
ESW_EXTRA_PIDS+=("$PEER_PID")
read -r -t 60 ready <&"${PEER[0]}" || fail "the scapy peer did not start: $(cat "$WORK/peer.log")"
# send 1to2|2to1 KIND ARGS... -> JSON {sent, received[]} in $WORK/last.json
send() {
  local dir=$1 kind=$2 line
  shift 2
  if [[ $dir == 1to2 ]]; then
    echo "$dir $kind ${A12[*]} $*" >&"${PEER[1]}"
  else
    echo "$dir $kind ${A21[*]} $*" >&"${PEER[1]}"
  fi
  read -r -t 30 line <&"${PEER[0]}" || fail "the scapy peer did not answer: $(cat "$WORK/peer.log")"
  echo "$line" >"$WORK/last.json"
}
# q PYTHON_EXPR: evaluates against r = the last send's JSON
q() { /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($1)" "$WORK/last.json"; }
received() { q 'len(r["received"])'; }
# smc PYTHON_EXPR: evaluates against s = eswitchctl --json show smc
smc() { ctl --json show smc >"$WORK/smc.json"; /usr/bin/python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($1)" "$WORK/smc.json"; }
vport() { smc "[v for v in s['vports'] if v['name']=='$1'][0]['$2']"; }
# wait_smc PYTHON_CONDITION: the main lcore drains events every 50 ms
wait_smc() {
  for _ in $(seq 40); do [[ $(smc "$1") == True ]] && return 0; sleep 0.2; done
  return 1
}
# cached PYTHON_EXPR: like smc, on the last fetched answer (eswitchctl is slow on a loaded machine, and sessions age)
cached() { /usr/bin/python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($1)" "$WORK/smc.json"; }
session() { cached "[x for x in s['sessions'] if x['client']['port']==$1][0]$2"; }

# ---- smc: allow: the option passes, sessions follow the handshake and the CLC exchange ----
send 1to2 syn smc=1 sport=40000 dport=5000
[[ $(received) == 1 ]] || fail "SYN with the SMC option did not arrive"
[[ $(q 'r["received"][0]["smc_option"]') == True ]] || fail "allow: the SMC option was removed"
[[ $(q 'r["received"][0]["hex"] == r["sent"]["hex"]') == True ]] || fail "allow: the SYN was changed"
wait_smc "any(x['client']['port']==40000 and x['state']=='syn' and x['client']['vport']=='vm1' for x in s['sessions'])" ||
  fail "no SMC session after the SYN: $(cat "$WORK/smc.json")"
[[ $(vport vm1 smc_syn) == 1 ]] || fail "vm1 smc_syn is $(vport vm1 smc_syn), want 1"
echo "ok: SYN with the SMC option passes unchanged under allow; session in state syn"

send 1to2 syn smc=0 sport=40100 dport=5000
[[ $(received) == 1 && $(q 'r["received"][0]["smc_option"]') == False ]] || fail "plain SYN did not arrive as sent"
sleep 0.2
[[ $(smc "len([x for x in s['sessions'] if x['client']['port']==40100])") == 0 ]] || fail "a plain SYN made a session"
[[ $(vport vm1 smc_syn) == 1 ]] || fail "a plain SYN counted as smc_syn"
echo "ok: SYN without the option: no session, not counted"
# An SMC session nobody talks on again: it must age out (40 s idle timeout), checked near the end of the test.
send 1to2 syn smc=1 sport=40300 dport=5002
wait_smc "any(x['client']['port']==40300 for x in s['sessions'])" || fail "no session for 40300"
expired=$(cached "s['table']['aged']")
AGE_T0=$SECONDS

send 2to1 synack smc=1 sport=5000 dport=40000
[[ $(received) == 1 && $(q 'r["received"][0]["smc_option"]') == True ]] || fail "SYN-ACK with the option did not pass"
wait_smc "[x for x in s['sessions'] if x['client']['port']==40000][0]['state']=='synack'" || fail "session not syn_ack: $(cat "$WORK/smc.json")"
[[ $(session 40000 "['server']['vport']") == vm2 ]] || fail "server vport is not vm2"
echo "ok: SYN-ACK with the option: session synack, server vm2"

# ---- roce_strict on vm1: nothing granted yet ----
before=$(vport vm1 roce_qp_not_granted)
send 1to2 roce dqp=0x000111
[[ $(received) == 0 ]] || fail "strict: RoCEv2 to a QP no CLC exchange granted passed"
[[ $(vport vm1 roce_qp_not_granted) == $((before + 1)) ]] || fail "roce_qp_not_granted did not count"
send 2to1 roce dqp=0x000222
[[ $(received) == 1 ]] || fail "vm2 (not strict) RoCEv2 was dropped"
echo "ok: roce_strict: an ungranted QP is dropped and counted; a non-strict vport is not narrowed"

# ---- the CLC exchange grants vm1 -> vm2 QP 0x111 / rkey 0xaabbccdd and vm2 -> vm1 QP 0x222 / rkey 0x11223344 ----
send 1to2 proposal sport=40000 dport=5000
[[ $(received) == 1 ]] || fail "CLC Proposal did not pass"
send 2to1 accept sport=5000 dport=40000 qpn=0x000111 rkey=0xaabbccdd
[[ $(received) == 1 ]] || fail "CLC Accept did not pass"
send 1to2 confirm sport=40000 dport=5000 seq=1093 qpn=0x000222 rkey=0x11223344  # after the 92-byte Proposal
[[ $(received) == 1 ]] || fail "CLC Confirm did not pass"
wait_smc "[x for x in s['sessions'] if x['client']['port']==40000][0]['granted']" ||
  fail "no grant after Accept/Confirm: $(cat "$WORK/smc.json")"
[[ $(session 40000 "['state']") == confirm && $(session 40000 "['path']") == R && $(session 40000 "['version']") == 1 ]] ||
  fail "session fields: $(cat "$WORK/smc.json")"
[[ $(session 40000 "['server']['qpn']") == 273 && $(session 40000 "['server']['rkey']") == 0xaabbccdd ]] ||
  fail "server QPN/rkey wrong: $(cat "$WORK/smc.json")"
[[ $(session 40000 "['client']['qpn']") == 546 && $(session 40000 "['client']['rkey']") == 0x11223344 ]] ||
  fail "client QPN/rkey wrong: $(cat "$WORK/smc.json")"
[[ $(session 40000 "['server']['mac']") == "$M2" && $(session 40000 "['client']['mac']") == "$M1" ]] ||
  fail "RoCE MACs wrong: $(cat "$WORK/smc.json")"
[[ $(cached "s['grants']['qp']") == 2 && $(cached "s['grants']['rkey']") == 2 ]] || fail "grant counts: $(cat "$WORK/smc.json")"
ctl show smc
echo "ok: Proposal/Accept/Confirm through the switch: session confirm, SMC-R v1, QPNs/rkeys/MACs as sent"

send 1to2 roce dqp=0x000111
[[ $(received) == 1 && $(q 'r["received"][0]["roce_dqp"]') == 273 ]] || fail "strict: granted QP did not pass"
send 1to2 roce dqp=0x000111 opcode=0x0a rkey=0xaabbccdd
[[ $(received) == 1 ]] || fail "strict: RDMA WRITE with the granted rkey did not pass"
before=$(vport vm1 roce_rkey_not_granted)
send 1to2 roce dqp=0x000111 opcode=0x0a rkey=0xdeadbeef
[[ $(received) == 0 ]] || fail "strict: RDMA WRITE with another rkey passed"
[[ $(vport vm1 roce_rkey_not_granted) == $((before + 1)) ]] || fail "roce_rkey_not_granted did not count"
send 1to2 roce dqp=0x000112
[[ $(received) == 0 ]] || fail "strict: a neighbouring QP passed"
# vm2's QP as a destination from vm1 is not a grant either (grants are per direction)
send 1to2 roce dqp=0x000222
[[ $(received) == 0 ]] || fail "strict: the client's own QP as destination passed"
bad=$(q 'r["sent"]["hex"]')
ctl trace --in-port vm1 --hex "$bad" >"$WORK/trace.txt" || fail "trace failed"
grep -q "roce_qp_not_granted" "$WORK/trace.txt" || fail "trace does not name roce_qp_not_granted: $(cat "$WORK/trace.txt")"
# RoCEv2 with a spoofed source (an unbound IPv4, another vport's MAC) is dropped by the binding, also for the
# granted QP, and counted.
drops() { ctl --json show vports >"$WORK/vports.json" && /usr/bin/python3 -c "import json,sys; print([x for x in json.load(open(sys.argv[1]))['vports'] if x['name']=='vm1'][0]['drops'].get(sys.argv[2], 0))" "$WORK/vports.json" "$1"; }
sip=$(drops spoofed_ip)
smac=$(drops spoofed_mac)
send 1to2 roce dqp=0x000111 src=198.18.9.9
[[ $(received) == 0 ]] || fail "RoCEv2 from a spoofed source IPv4 passed"
send 1to2 roce dqp=0x000111 smac=$M2
[[ $(received) == 0 ]] || fail "RoCEv2 with another vport's MAC passed"
[[ $(drops spoofed_ip) == $((sip + 1)) && $(drops spoofed_mac) == $((smac + 1)) ]] ||
  fail "spoofed RoCEv2 not counted: $(cat "$WORK/vports.json")"
echo "ok: granted QP and rkey pass; another rkey/QP and a spoofed source are dropped and counted; trace: $(grep -m1 roce_strict "$WORK/trace.txt")"

# ---- FIN from both ends ends the session and its grants ----
send 1to2 fin sport=40000 dport=5000
[[ $(received) == 1 ]] || fail "FIN did not pass"
send 1to2 roce dqp=0x000111
[[ $(received) == 1 ]] || fail "strict: half-closed, the grant should still hold"
send 2to1 fin sport=5000 dport=40000
[[ $(received) == 1 ]] || fail "FIN back did not pass"
wait_smc "not any(x['client']['port']==40000 for x in s['sessions'])" || fail "FIN both ways did not end the session"
wait_smc "s['grants']['qp']==0" || fail "grants outlived the session"
[[ $(cached "s['table']['ended_fin']") -ge 1 ]] || fail "ended_fin did not count"
send 1to2 roce dqp=0x000111
[[ $(received) == 0 ]] || fail "strict: a QP of an ended session still passes"
echo "ok: FIN from both ends ends the session; its grants end"

# ---- identity enforcement: what vm1 claims in its CLC messages must be its own (MAC, GID, IP prefix) ----
# open CLIENT_PORT: SYN and SYN-ACK with the option, so the session waits for the client's Proposal
open_smc() {
  send 1to2 syn smc=1 sport="$1" dport=5003
  send 2to1 synack smc=1 sport=5003 dport="$1"
}
# foreign PORT REASON SEND-ARGS...: a Proposal with a foreign identity is dropped, counted under REASON, the
# session shows it; with split=N the first part passes (harmless, incomplete) and the completing part is dropped.
foreign() {
  local port=$1 reason=$2 split=""
  shift 2
  [[ "$*" == *split=* ]] && split=1
  open_smc "$port"
  local before
  before=$(vport vm1 "smc_$reason")
  send 1to2 proposal sport="$port" dport=5003 "$@"
  if [[ -n $split ]]; then
    [[ $(received) == 1 && $(q 'r["received"][0]["seq"] == r["segments"][0]["seq"]') == True ]] ||
      fail "$reason (split): want only the first part forwarded: $(cat "$WORK/last.json")"
  else
    [[ $(received) == 0 ]] || fail "$reason: a Proposal claiming a foreign identity passed: $(cat "$WORK/last.json")"
  fi
  [[ $(vport vm1 "smc_$reason") == $((before + 1)) ]] || fail "smc_$reason did not count: $(cat "$WORK/smc.json")"
  wait_smc "[x for x in s['sessions'] if x['client']['port']==$port][0]['state']=='refused'" ||
    fail "$reason: session not refused: $(cat "$WORK/smc.json")"
  [[ $(session "$port" "['refused']") == "$reason" && $(session "$port" "['refused_by']") == client ]] ||
    fail "$reason: session does not name the reason: $(cat "$WORK/smc.json")"
}
open_smc 42000
send 1to2 proposal sport=42000 dport=5003
[[ $(received) == 1 ]] || fail "a Proposal with vm1's own MAC, GID (::ffff:198.18.0.1) and prefix was dropped"
open_smc 42050
send 1to2 proposal sport=42050 dport=5003 split=45 subnet=198.18.0.0/16
[[ $(received) == 2 ]] || fail "a legitimate Proposal split over two segments did not pass whole: $(cat "$WORK/last.json")"
wait_smc "[x for x in s['sessions'] if x['client']['port']==42050][0]['state']=='proposal'" ||
  fail "the split Proposal was not reassembled by the session table: $(cat "$WORK/smc.json")"
foreign 42100 foreign_mac mac=02:00:c6:12:00:99
foreign 42200 foreign_gid gid=00000000000000000000ffffc6120002     # vm2's address, IPv4-mapped
foreign 42300 foreign_prefix subnet=198.19.7.0/24
foreign 42400 foreign_mac mac=02:00:c6:12:00:99 split=20      # cut before the MAC field (offset 32)
foreign 42500 foreign_gid gid=20010db8000000000000000000000099 split=2   # the eyecatcher itself is cut
foreign 42600 foreign_prefix subnet=198.19.7.0/24 split=82    # cut inside the IPv4 subnet (offset 80)
echo "ok: foreign MAC / GID / prefix Proposals dropped and counted, in one segment and split across two; legitimate ones pass"
# After the refusal the connection carries no data either way; its retransmissions are dropped too.
send 1to2 proposal sport=42400 dport=5003 mac=02:00:c6:12:00:99
[[ $(received) == 0 ]] || fail "the refused Proposal's retransmission passed"
before=$(vport vm2 smc_flow_refused)
send 2to1 data sport=5003 dport=42400 len=64
[[ $(received) == 0 ]] || fail "data towards the refusing client passed"
[[ $(vport vm2 smc_flow_refused) == $((before + 1)) ]] || fail "smc_flow_refused did not count on vm2"
send 2to1 fin sport=5003 dport=42400
[[ $(received) == 1 ]] || fail "a FIN (no payload) of a refused connection must still pass"
# A server's Accept claiming vm1's GID is refused the same way (vm2 is spoof-checked too).
open_smc 42700
send 1to2 proposal sport=42700 dport=5003
send 2to1 accept sport=5003 dport=42700 qpn=0x000333 rkey=0x55667788 gid=00000000000000000000ffffc6120001
[[ $(received) == 0 ]] || fail "an Accept claiming vm1's GID passed"
wait_smc "[x for x in s['sessions'] if x['client']['port']==42700][0]['refused_by']=='server'" ||
  fail "server refusal not shown: $(cat "$WORK/smc.json")"
[[ $(cached "s['grants']['qp']") == 0 ]] || fail "a refused Accept granted a QP: $(cat "$WORK/smc.json")"
# trace names the reason
send 1to2 proposal sport=42800 dport=5003 mac=02:00:c6:12:00:99 wait=0.2
ctl trace --in-port vm1 --hex "$(q 'r["sent"]["hex"]')" >"$WORK/trace.txt" || fail "trace failed"
grep -q "smc_foreign_mac" "$WORK/trace.txt" || fail "trace does not name smc_foreign_mac: $(cat "$WORK/trace.txt")"
ctl show smc | tee "$WORK/show_smc.txt" | grep -q "foreign_mac (client)" || fail "show smc text: $(cat "$WORK/show_smc.txt")"
ctl --json show vports >"$WORK/vports.json" || fail "show vports"
/usr/bin/python3 -c "import json,sys; v=[x for x in json.load(open(sys.argv[1]))['vports'] if x['name']=='vm1'][0]['drops']; assert v['smc_foreign_mac']>=2 and v['smc_foreign_gid']>=2 and v['smc_foreign_prefix']>=2, v" "$WORK/vports.json" ||
  fail "show vports drops do not list the SMC reasons: $(cat "$WORK/vports.json")"
echo "ok: refused connections carry no data (FIN passes); a foreign Accept grants nothing; trace and show smc name the reason"

# ---- a Decline ends a session too; idle sessions age out ----
send 1to2 syn smc=1 sport=40200 dport=5001
send 2to1 decline sport=5001 dport=40200
wait_smc "[x for x in s['sessions'] if x['client']['port']==40200][0]['state']=='declined'" || fail "Decline not seen"
[[ $(session 40200 "['decline_code']") == 0x03030000 ]] || fail "decline code: $(cat "$WORK/smc.json")"
left=$((AGE_T0 + 45 - SECONDS))
((left > 0)) && sleep "$left"
wait_smc "not any(x['client']['port']==40300 for x in s['sessions'])" || fail "idle session did not age out"
[[ $(cached "s['table']['aged']") -gt $expired ]] || fail "aged did not count"
echo "ok: Decline recorded (0x03030000); an idle session ages out after the 40 s timeout"

# ---- smc: deny on vm1, applied through reconcile ----
ctl apply "$WORK/deny.yaml" >/dev/null || fail "apply smc: deny"
[[ $(vport vm1 smc) == deny ]] || fail "smc: deny not applied"
stripped=$(vport vm1 smc_option_stripped)
send 1to2 syn smc=1 sport=41000 dport=5000
[[ $(received) == 1 ]] || fail "deny: the SYN did not arrive"
[[ $(q 'r["received"][0]["smc_option"]') == False ]] || fail "deny: the SMC option is still there"
[[ $(q 'r["received"][0]["tcp_checksum_ok"] and r["received"][0]["ip_checksum_ok"]') == True ]] ||
  fail "deny: bad checksum after the strip: $(cat "$WORK/last.json")"
[[ $(q 'r["received"][0]["tcp_options_hex"]') == $(q 'r["sent"]["tcp_options_hex"].replace("fe06e2d4c3d9", "010101010101")') ]] ||
  fail "deny: options other than SMC changed: $(cat "$WORK/last.json")"
[[ $(vport vm1 smc_option_stripped) == $((stripped + 1)) ]] || fail "smc_option_stripped did not count"
send 2to1 synack smc=1 sport=5000 dport=41000
[[ $(received) == 1 && $(q 'r["received"][0]["smc_option"]') == False ]] || fail "deny: SYN-ACK towards vm1 kept the option"
[[ $(q 'r["received"][0]["tcp_checksum_ok"]') == True ]] || fail "deny: SYN-ACK checksum"
[[ $(vport vm1 smc_option_stripped) == $((stripped + 2)) ]] || fail "the egress strip did not count on vm1"
A12=(smac=$M1 dmac=$M2 src=2001:db8::1 dst=2001:db8::2)
send 1to2 syn smc=1 sport=41100 dport=5000
[[ $(received) == 1 && $(q 'r["received"][0]["smc_option"]') == False ]] || fail "deny: IPv6 SYN kept the option"
[[ $(q 'r["received"][0]["tcp_checksum_ok"]') == True ]] || fail "deny: IPv6 TCP checksum after the strip"
sleep 0.2
[[ $(smc "len([x for x in s['sessions'] if x['client']['port'] in (41000, 41100)])") == 0 ]] ||
  fail "deny: a stripped SYN made a session"
# tshark agrees the stripped segment is a valid TCP SYN without the option (a second, independent decoder).
if command -v tshark >/dev/null; then
  /usr/bin/python3 -c "
import json,sys
from scapy.all import Ether, wrpcap
r=json.load(open(sys.argv[1])); wrpcap(sys.argv[2], [Ether(bytes.fromhex(r['received'][0]['hex']))])" "$WORK/last.json" "$WORK/strip.pcap"
  out=$(tshark -r "$WORK/strip.pcap" -o tcp.check_checksum:TRUE -T fields -e tcp.checksum.status -e tcp.option_kind 2>/dev/null)
  [[ $(cut -f1 <<<"$out") == 1 ]] || fail "tshark: checksum status '$out' (1 = good)"
  grep -q "254" <<<"$out" && fail "tshark still sees option kind 254: $out"
  echo "ok: tshark: checksum good, option kinds $(cut -f2 <<<"$out")"
fi
ctl show smc
echo "ok: smc: deny strips the option from vm1's SYN and the SYN-ACK to vm1 (IPv4, IPv6), checksums valid"

# ---- telemetry /eswitch/smc agrees with show smc (its snapshot is refreshed once a second) ----
TELEMETRY=$(command -v dpdk-telemetry.py || true)
if [[ -n "$TELEMETRY" ]]; then
  ok=0
  for _ in $(seq 10); do
    echo /eswitch/smc | timeout 30 "$TELEMETRY" -f "$PREFIX" >"$WORK/telemetry.out" 2>&1 || true
    if /usr/bin/python3 - "$WORK/telemetry.out" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")][0]["/eswitch/smc"]
assert r["smc_option_stripped"] >= 3 and r["roce_qp_not_granted"] >= 4 and r["roce_rkey_not_granted"] >= 1, r
assert r["clc_parsed"] >= 4 and r["sessions_aged"] >= 1 and r["events_lost"] == 0, r
PY
    then ok=1; break; fi
    sleep 1
  done
  ((ok)) || fail "telemetry /eswitch/smc: $(cat "$WORK/telemetry.out")"
  echo "ok: telemetry /eswitch/smc: $(grep -o '"smc_option_stripped": [0-9]*' "$WORK/telemetry.out")"
fi

esw_stop_eswitchd
echo "PASS: SMC option policy, sessions, RoCEv2 strict grants through eswitchd"
