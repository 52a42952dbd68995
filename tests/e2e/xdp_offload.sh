#!/usr/bin/env bash
# End-to-end: the XDP offload tier (dataplane/offload/xdp_tier.h) on an af_xdp vport with eswitch's program.
# The same random set of ~25 table-0 rules (drops on IPv4 and IPv6 prefixes / protocol / destination port,
# destination and source MACs exact or masked, ethertypes; some higher-priority outputs overlapping them; a
# lowest-priority output of everything to vm2's MAC) and 200 tagged frames from vm1 (IPv4 and IPv6 TCP/UDP to
# vm2's and other MACs, ARP, a non-IP ethertype) is run three times:
#   off    offload: off (every rule in the worker)
#   auto   offload: auto after a live apply: drop rules no higher rule overlaps run in XDP
#   small  offload: auto with a guard program built with room for 2 rules (the rest stay in software)
# Per frame (tag "esw-offload-NNN" in the payload) delivered or not must be identical in all three runs; in auto
# the rules in XDP must have dropped frames (show rules --json: runs xdp, xdp_drops) - some by rules on IPv4
# addresses, some on IPv6 addresses, some on MACs - that the worker never saw (vm1's rx counter grew by exactly
# the frames XDP let through), and the rules must both drop and deliver frames of the seed.
#
# Then the program is changed from outside while eswitchd runs (tests/tools/xdp_swap holds the original):
#   swapped  another program that feeds the same AF_XDP socket replaces it: the next apply warns naming the
#            port, every rule runs in software (show rules: runs software), same delivered set, every frame
#            reaches the worker; once the original is back, an apply offloads again (XDP drops, same set)
#   xdp off  `ip link set dev X xdp off`: the next apply falls back with the warning; back: offloaded again
#
# usage: xdp_offload.sh PATH/TO/eswitchd PATH/TO/eswitchctl PATH/TO/guard.bpf.c PATH/TO/xdp_swap
set -euo pipefail
USAGE="usage: $0 eswitchd eswitchctl guard.bpf.c xdp_swap"
ESWITCHD=${1:?$USAGE}
ESWITCHCTL=${2:?$USAGE}
GUARD_SRC=${3:?$USAGE}
XDP_SWAP=${4:?$USAGE}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
esw_e2e_begin xdpo
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
MAC1=02:00:c6:12:00:01 MAC2=02:00:c6:12:00:02
SEED=${ESW_SEED:-$RANDOM}
echo "seed $SEED (ESW_SEED=$SEED reproduces)"

esw_host_add "$P" t1 $MAC1 198.18.0.1/24
esw_host_add "$P" t2 $MAC2 198.18.0.200/24
for ns in t1 t2; do
  ip netns exec "$P-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$P-$ns" sysctl -qw "net.ipv6.conf.${P}$ns.disable_ipv6=1"
done

# Rules and frames (same seed, same set for every run). Rules match IPv4 prefixes / protocol / destination port,
# IPv6 prefixes / protocol / port, destination and source MACs (exact or masked) and ethertypes; frames are IPv4
# and IPv6 TCP/UDP to several MACs, ARP replies and a non-IP ethertype, each tagged "esw-offload-NNN".
/usr/bin/python3 - "$WORK" "$SEED" <<'PY'
import sys, random, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPv6, UDP, TCP, ARP, Raw, wrpcap
w, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
m1, m2 = "02:00:c6:12:00:01", "02:00:c6:12:00:02"
other = ["02:00:c6:12:00:0c", "02:00:c6:12:00:0d"]  # the egress filter keeps these from vm2 anyway
rules = []
# Drop rules nothing else overlaps (disjoint destinations or ethertypes, the highest priorities): always offloadable.
for k in range(4):
    rules.append(f"{{priority: {900 + k}, match: {{ip: true, ipv4_dst: 198.18.9.{k + 1}}}, actions: [drop]}}")
for k in range(2):
    rules.append(f"{{priority: {910 + k}, match: {{ipv6: true, ipv6_dst: \"2001:db8:9::{k + 1}\"}}, actions: [drop]}}")
rules.append('{priority: 920, match: {ip: true, eth_dst: "02:00:c6:12:00:0d", ipv4_dst: 198.18.8.0/24}, actions: [drop]}')
rules.append('{priority: 921, match: {eth_type: 0x86dd, eth_dst: "02:00:c6:12:00:0c/ff:ff:ff:ff:ff:fe", ipv6_dst: "2001:db8:8::/48"}, actions: [drop]}')
n_disjoint = len(rules)
prios = rnd.sample(range(200, 800), 16)
for p in prios:
    m = []
    kind = rnd.choices(["ip4", "ip6", "l2"], [0.45, 0.4, 0.15])[0]
    if kind == "ip4":
        if rnd.random() < 0.6: m.append(f"ipv4_src: 198.18.0.{rnd.choice([0, 64, 128])}/{rnd.choice([26, 25, 24])}")
        if rnd.random() < 0.5: m.append(f"ipv4_dst: 198.18.{rnd.randint(1, 2)}.0/{rnd.choice([24, 25])}")
        proto = rnd.choice(["udp", "tcp", None])
        m.append(f"{proto}: true" if proto else "ip: true")
        if proto and rnd.random() < 0.6: m.append(f"{proto}_dst: {rnd.randint(1, 6)}")
        if not any(x.startswith("ipv4_") for x in m): m.append("ipv4_dst: 198.18.2.0/24")  # keep some frames alive
    elif kind == "ip6":
        if rnd.random() < 0.6: m.append(f"ipv6_src: \"2001:db8:1::{rnd.choice(['0', '40', '80'])}/{rnd.choice([122, 121, 120])}\"")
        if rnd.random() < 0.5: m.append(f"ipv6_dst: \"2001:db8:2::{rnd.choice(['0', '80'])}/{rnd.choice([120, 121])}\"")
        proto = rnd.choice(["udp", "tcp", None])
        m.append(f"{proto}6: true" if proto else rnd.choice(["ipv6: true", "eth_type: 0x86dd"]))
        if proto and rnd.random() < 0.6: m.append(f"{proto}_dst: {rnd.randint(1, 6)}")
        if not any(x.startswith("ipv6_") for x in m): m.append("ipv6_dst: \"2001:db8:2::/120\"")
    else:
        m.append(rnd.choice([f"eth_dst: \"{other[0]}\"", f"eth_dst: \"{other[1]}/ff:ff:ff:ff:ff:ff\"",
                             f"eth_dst: \"{m2}\", eth_type: 0x0806", f"eth_src: \"{m1}\", eth_type: 0x88b5"]))
    if rnd.random() < 0.15 and kind != "l2": m.append(f"eth_dst: \"{rnd.choice([m2] + other)}\"")
    act = "[drop]" if rnd.random() < 0.7 else "[output: vm2]"
    rules.append(f"{{priority: {p}, match: {{{', '.join(m)}}}, actions: {act}}}")
# Below everything: whatever IP frame to vm2's MAC no rule above took is delivered (so drops show as missing tags).
rules.append(f'{{priority: 100, match: {{eth_dst: "{m2}"}}, actions: [output: vm2]}}')
open(w + "/rules.yaml", "w").write("tables:\n  - id: 0\n    rules:\n" + "".join(f"      - {r}\n" for r in rules))
open(w + "/n_disjoint", "w").write(f"{n_disjoint}\n")
frames = []
for i in range(200):
    tag = Raw(b"esw-offload-%03d" % i)
    dmac = m2 if rnd.random() < 0.8 else rnd.choice(other)
    l4 = (UDP if rnd.random() < 0.5 else TCP)(sport=20000 + i, dport=rnd.randint(1, 7))
    kind = rnd.random()
    if kind < 0.45:
        src = f"198.18.0.{rnd.randint(1, 126)}"
        dst = rnd.choice([f"198.18.{rnd.randint(1, 2)}.{rnd.randint(1, 254)}", f"198.18.9.{rnd.randint(1, 5)}",
                          f"198.18.8.{rnd.randint(1, 5)}"])
        frames.append(Ether(src=m1, dst=dmac) / IP(src=src, dst=dst) / l4 / tag)
    elif kind < 0.9:
        src = f"2001:db8:1::{rnd.randint(1, 0xfe):x}"
        dst = rnd.choice([f"2001:db8:2::{rnd.randint(1, 0xfe):x}", f"2001:db8:9::{rnd.randint(1, 3)}",
                          f"2001:db8:8::{rnd.randint(1, 3)}"])
        frames.append(Ether(src=m1, dst=dmac) / IPv6(src=src, dst=dst) / l4 / tag)
    elif kind < 0.95:
        frames.append(Ether(src=m1, dst=m2) / ARP(op=2, hwsrc=m1, psrc=f"198.18.0.{rnd.randint(1, 126)}",
                                                 hwdst=m2, pdst="198.18.0.200") / tag)
    else:
        frames.append(Ether(src=m1, dst=m2, type=0x88b5) / tag)
wrpcap(w + "/frames.pcap", frames)
PY

# config OFFLOAD
config() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 512, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - name: vm1
    hw_addr: "$MAC1"
    ipv4: [198.18.0.0/25]
    ipv6: ["2001:db8:1::/64"]
    attach: { devargs: "net_af_xdp0,iface=${P}t1p,start_queue=0,queue_count=1", xdp: { program: builtin }, offload: $1 }
  - { name: vm2, hw_addr: "$MAC2", ipv4: [198.18.0.200], attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
YAML
  cat "$WORK/rules.yaml"
}

vm1_rx() { ctl show vports --json | /usr/bin/python3 -c 'import json,sys; print({x["name"]: x for x in json.load(sys.stdin)["vports"]}["vm1"]["rx_packets"])'; }
# xdp_sum: "<rules running in xdp> <xdp drops summed>"
xdp_sum() {
  ctl show rules --json | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["rules"]
print(sum(1 for x in r if x["runs"] == "xdp"), sum(x["xdp_drops"] for x in r))'
}

# send NAME: sends the frames, captures at vm2; $WORK/NAME.got = delivered tags; $WORK/NAME.rx = vm1 rx delta.
send() {
  local before after cap=$WORK/$1.pcap
  before=$(vm1_rx)
  ip netns exec "$P-t2" tcpdump -q -n -U -i "${P}t2" -w "$cap" 2>/dev/null &
  local tpid=$!
  sleep 1
  ip netns exec "$P-t1" /usr/bin/python3 "$HERE/frames.py" send "${P}t1" "$WORK/frames.pcap"
  sleep 1.5
  kill -INT "$tpid"; wait "$tpid" || true
  after=$(vm1_rx)
  echo $((after - before)) >"$WORK/$1.rx"
  /usr/bin/python3 - "$cap" >"$WORK/$1.got" <<'PY'
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
import re
from scapy.all import rdpcap
tags = set()
for f in rdpcap(sys.argv[1]):
    for t in re.findall(rb"esw-offload-(\d{3})", bytes(f)): tags.add(int(t))
print("\n".join(str(t) for t in sorted(tags)))
PY
  echo "$1: delivered $(grep -c . "$WORK/$1.got" || true) of 200, vm1 worker rx +$(cat "$WORK/$1.rx")"
}

# 1. off, then auto by a live apply.
config off >"$WORK/off.yaml"
esw_start_eswitchd "$ESWITCHD" "$WORK/off.yaml"
read -r n_xdp drops <<<"$(xdp_sum)"
((n_xdp == 0)) || fail "offload off, yet $n_xdp rules run in XDP"
send off
# The comparison below only means something when the rules both pass and drop frames of this seed.
n_off=$(grep -c . "$WORK/off.got" || true)
((n_off > 0 && n_off < 200)) || fail "seed $SEED: offload off delivered $n_off of 200 frames; the differential needs both outcomes"
config auto >"$WORK/auto.yaml"
ctl apply "$WORK/auto.yaml" >/dev/null || fail "apply with offload: auto"
read -r n_xdp d0 <<<"$(xdp_sum)"
N_DISJOINT=$(cat "$WORK/n_disjoint")
((n_xdp >= N_DISJOINT)) || fail "offload auto: only $n_xdp rules run in XDP, expected at least the $N_DISJOINT disjoint drops"
send auto
read -r n_xdp d1 <<<"$(xdp_sum)"
xdrops=$((d1 - d0)) rx_auto=$(cat "$WORK/auto.rx")
echo "auto: $n_xdp rules in XDP dropped $xdrops frames"
((xdrops > 0)) || fail "the rules in XDP dropped nothing"
# Every kind of match did some of the dropping in XDP (IPv4, IPv6 prefixes, MACs).
ctl show rules --json | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["rules"]
for f in ("ipv4_dst", "ipv6_dst", "eth_dst"):
    n = sum(x["xdp_drops"] for x in r if x["runs"] == "xdp" and f in x["match"])
    print(f"auto: XDP drops by rules matching {f}: {n}")
    if n == 0: sys.exit(f"no frame was dropped in XDP by a rule matching {f}")' || fail "a kind of match dropped nothing in XDP"
((rx_auto == 200 - xdrops)) || fail "vm1's worker rx grew by $rx_auto, expected 200 - $xdrops (XDP drops must never reach the worker)"
cmp -s "$WORK/off.got" "$WORK/auto.got" || fail "offload auto delivered other frames than offload off: $(diff "$WORK/off.got" "$WORK/auto.got" | head -5 | tr '\n' ' ')"
ctl show rules | grep -q "xdp" || fail "show rules (text) does not say where rules run"
echo "ok: offload off and auto deliver the same $(grep -c . "$WORK/off.got" || true) frames; $xdrops died in XDP, unseen by the worker"

# 1b. The program replaced from outside by one that feeds the same AF_XDP socket but is not eswitch's.
clang -O2 -g -target bpf -I"/usr/include/$(gcc -print-multiarch)" -c "$HERE/xdp_plain.bpf.c" \
  -o "$WORK/plain.bpf.o" || fail "clang xdp_plain.bpf.c"
# swap_start OBJ|hold: xdp_swap in the background (it puts eswitch's program back on SIGTERM).
swap_start() {
  rm -f "$WORK/swap.ready"
  "$XDP_SWAP" "${P}t1p" "$1" "$WORK/swap.ready" &
  SWAP_PID=$!
  ESW_EXTRA_PIDS+=("$SWAP_PID")
  esw_wait_file "$WORK/swap.ready" "$SWAP_PID" 20 || fail "xdp_swap $1 did not start"
}
swap_end() {
  kill -TERM "$SWAP_PID"
  wait "$SWAP_PID" || fail "xdp_swap could not put eswitch's program back"
}
# fallback_apply WHAT: an apply of the same config must succeed, warn naming vm1 and leave every rule in software.
fallback_apply() {
  local warned
  warned=$(grep -c "port vm1: offload: eswitch's XDP program is not on its interface" "$WORK/eswitchd.log" || true)
  ctl apply "$WORK/auto.yaml" >/dev/null || fail "$1: the apply failed instead of falling back to software"
  (($(grep -c "port vm1: offload: eswitch's XDP program is not on its interface" "$WORK/eswitchd.log" || true) > warned)) ||
    fail "$1: no warning naming the port after the apply"
  read -r n_xdp d0 <<<"$(xdp_sum)"
  ((n_xdp == 0)) || fail "$1: $n_xdp rules still said to run in XDP"
  ctl show rules --json | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["rules"]; sys.exit(0 if r and all(x["runs"] == "software" and not x["xdp_ports"] for x in r) else 1)' ||
    fail "$1: show rules does not say runs: software for every rule"
}
# offload_again WHAT: eswitch's program is back; an apply must offload the rules again.
offload_again() {
  ctl apply "$WORK/auto.yaml" >/dev/null || fail "$1: apply with the program back"
  read -r n_xdp d0 <<<"$(xdp_sum)"
  ((n_xdp >= N_DISJOINT)) || fail "$1: the program is back, yet only $n_xdp rules run in XDP after an apply"
}
swap_start "$WORK/plain.bpf.o"
read -r n_xdp _ <<<"$(xdp_sum)"
((n_xdp == 0)) || fail "eswitch's program was replaced, yet show rules says $n_xdp rules run in XDP"
fallback_apply swapped
send swapped
read -r n_xdp d1 <<<"$(xdp_sum)"
((d1 == d0)) || fail "swapped: XDP drops grew by $((d1 - d0)) with a foreign program"
(($(cat "$WORK/swapped.rx") == 200)) || fail "swapped: the worker saw $(cat "$WORK/swapped.rx") of 200 frames (the foreign program feeds it all)"
cmp -s "$WORK/off.got" "$WORK/swapped.got" || fail "program replaced: the results differ from software: $(diff "$WORK/off.got" "$WORK/swapped.got" | head -5 | tr '\n' ' ')"
swap_end
offload_again back
grep -q "port vm1: XDP: eswitch's program (id [0-9]*) is on ${P}t1p again" "$WORK/eswitchd.log" || fail "no note that the program is back"
send back
read -r n_xdp d1 <<<"$(xdp_sum)"
((d1 > d0)) || fail "back: the rules in XDP dropped nothing"
(($(cat "$WORK/back.rx") == 200 - (d1 - d0))) || fail "back: worker rx +$(cat "$WORK/back.rx"), XDP drops $((d1 - d0))"
cmp -s "$WORK/off.got" "$WORK/back.got" || fail "program back: the results differ from software"
echo "ok: program replaced from outside: warned, all in software, same frames; back: $((d1 - d0)) XDP drops again"

# 1c. `ip link set dev X xdp off`: nothing reaches the switch then (no program feeds the socket), but the apply
# must fall back and say so; with the program back, an apply offloads again.
swap_start hold
ip link set dev "${P}t1p" xdp off
ip link set dev "${P}t1p" xdpgeneric off 2>/dev/null || true
! ip -d link show dev "${P}t1p" | grep -q "prog/xdp" || fail "ip link set dev ${P}t1p xdp off left a program attached"
fallback_apply "xdp off"
swap_end
offload_again "xdp off, back"
esw_stop_eswitchd
echo "ok: program detached with ip link: warned, all in software; back: $n_xdp rules in XDP again"

# 2. A program with room for 2 rules: the rest stay in software, same results.
clang -O2 -g -target bpf -DESW_XDP_MAX_RULES=2 -I"/usr/include/$(gcc -print-multiarch)" -c "$GUARD_SRC" \
  -o "$WORK/guard2.bpf.o" || fail "clang guard.bpf.c"
ESWITCH_XDP_OBJ="$WORK/guard2.bpf.o" esw_start_eswitchd "$ESWITCHD" "$WORK/auto.yaml"
read -r n_xdp d0 <<<"$(xdp_sum)"
((n_xdp == 2)) || fail "with room for 2 rules, $n_xdp run in XDP"
grep -q "run in XDP, the other .* in software only" "$WORK/eswitchd.log" || fail "the full map was not logged"
send small
read -r n_xdp d1 <<<"$(xdp_sum)"
rx_small=$(cat "$WORK/small.rx")
((rx_small == 200 - (d1 - d0))) || fail "small map: worker rx +$rx_small, XDP drops $((d1 - d0))"
cmp -s "$WORK/off.got" "$WORK/small.got" || fail "with a full map the results differ from software: $(diff "$WORK/off.got" "$WORK/small.got" | head -5 | tr '\n' ' ')"
esw_stop_eswitchd
echo "ok: map full: 2 rules in XDP ($((d1 - d0)) drops), the rest in software, the same frames delivered"

# 3. offload: required on an attachment that cannot, and with a rule the program cannot take.
sed 's/xdp: { program: builtin }, offload: auto/offload: required/' "$WORK/auto.yaml" >"$WORK/bad1.yaml"
out=$("$ESWITCHCTL" validate "$WORK/bad1.yaml" 2>&1) && fail "offload: required without xdp validated"
grep -q "offload: required needs" <<<"$out" || fail "unclear error: $out"
echo "ok: $(grep -m1 'offload: required' <<<"$out")"
sed 's/offload: auto/offload: required/' "$WORK/auto.yaml" >"$WORK/req.yaml"
printf '      - {name: by-sport, priority: 950, match: {tcp: true, tcp_src: 99}, actions: [drop]}\n' >>"$WORK/req.yaml"
rc=0
timeout 60 "$ESWITCHD" --config "$WORK/req.yaml" --state-dir "$WORK/state2" >"$WORK/req.log" 2>&1 || rc=$?
((rc != 0)) || fail "eswitchd started with offload: required and a rule XDP cannot take"
grep -q "offload: required, but rule .*by-sport.* cannot run in vport vm1's XDP program: matches the L4 source port" "$WORK/req.log" ||
  fail "no located error naming the rule: $(grep -m2 -i offload "$WORK/req.log")"
echo "ok: $(grep -m1 'offload: required, but' "$WORK/req.log")"
rm -rf "/var/run/dpdk/$PREFIX"
echo "PASS: XDP offload tier: drops in XDP never reach the worker; off, auto, a full map and a replaced program give the same result per frame"
