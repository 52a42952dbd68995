#!/usr/bin/env bash
# End-to-end: the XDP offload tier (dataplane/offload/xdp_tier.h) on an af_xdp vport with eswitch's program.
# The same random set of ~25 table-0 rules (drops on IPv4 and IPv6 prefixes / protocol / destination port,
# destination and source MACs exact or masked, ethertypes; some higher-priority outputs overlapping them; a
# lowest-priority output of everything to vm2's MAC) and 200 tagged frames from vm1 (IPv4 and IPv6 TCP/UDP to
# vm2's and other MACs, ARP, a non-IP ethertype) is run three times:
#   off    offload: off (every rule in the worker)
#   auto   offload: auto after a live apply: drop rules no higher rule overlaps run in XDP
#   small  offload: auto with a guard program built with room for 2 rules (the rest stay in software)
# Per frame (tag "esw-offload-NNN" in the payload) where it was delivered (vm2, vm3 or nowhere) must be identical
# in all three runs; in auto the rules in XDP must have dropped frames (show rules --json: runs xdp, xdp_drops) -
# some by rules on IPv4 addresses, some on IPv6 addresses, some on MACs - and steered frames to vm3 (an af_xdp
# vport with eswitch's program whose tenant-side veth has GRO on: xdp_steered) that the worker never saw (vm1's
# rx counter grew by exactly the frames XDP let through); vm3's tx counters (show ports) and the counting steer
# rules' packets grow by as much as in software; steer rules XDP must not take (TCP, not pinned to vm3's MAC)
# say why in show rules; DHCP/RoCE/VXLAN-port UDP and TCP matched by an offloaded steer rule reach the worker
# (the binding's DHCP guard and RoCE check drop some: same as software). With GRO off on vm3's tenant veth an
# apply refuses the steer offload ("does not take XDP redirects") and the results stay the same.
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
MAC1=02:00:c6:12:00:01 MAC2=02:00:c6:12:00:02 MAC3=02:00:c6:12:00:03
SEED=${ESW_SEED:-$RANDOM}
echo "seed $SEED (ESW_SEED=$SEED reproduces)"

esw_host_add "$P" t1 $MAC1 198.18.0.1/24
esw_host_add "$P" t2 $MAC2 198.18.0.200/24
esw_host_add "$P" t3 $MAC3 198.18.0.130/24
# An XDP redirect into a veth is delivered only while its peer has NAPI (XDP or GRO): vm3's tenant side has GRO.
ip netns exec "$P-t3" ethtool -K "${P}t3" gro on >/dev/null
for ns in t1 t2 t3; do
  ip netns exec "$P-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip netns exec "$P-$ns" sysctl -qw "net.ipv6.conf.${P}$ns.disable_ipv6=1"
done

# Rules and frames (same seed, same set for every run). Rules match IPv4 prefixes / protocol / destination port,
# IPv6 prefixes / protocol / port, destination and source MACs (exact or masked) and ethertypes; frames are IPv4
# and IPv6 TCP/UDP to several MACs, ARP replies and a non-IP ethertype, each tagged "esw-offload-NNN".
/usr/bin/python3 - "$WORK" "$SEED" <<'PY'
import sys, random, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPv6, UDP, TCP, ICMP, ARP, Raw, wrpcap
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
# Steer rules to vm3 (an af_xdp vport with eswitch's program): the highest ones are always offloadable (UDP or
# any IP pinned to vm3's MAC and 198.18.3.0/24 / 2001:db8:3::/64; some count); a TCP one and one not pinned to
# vm3's MAC stay in software with their reason; lower random ones may be overlapped.
m3 = "02:00:c6:12:00:03"
rules.append(f'{{priority: 930, match: {{udp: true, eth_dst: "{m3}", ipv4_dst: 198.18.3.0/25}}, actions: [output: vm3, count]}}')
rules.append(f'{{priority: 931, match: {{udp6: true, eth_dst: "{m3}", ipv6_dst: "2001:db8:3::/120"}}, actions: [output: vm3]}}')
rules.append(f'{{priority: 932, match: {{ip: true, eth_dst: "{m3}", ipv4_dst: 198.18.3.128/26}}, actions: [output: vm3, count]}}')
rules.append(f'{{priority: 933, match: {{tcp: true, eth_dst: "{m3}", ipv4_dst: 198.18.3.192/26}}, actions: [output: vm3]}}')
rules.append(f'{{priority: 934, match: {{udp: true, ipv4_dst: 198.18.4.0/24}}, actions: [output: vm3]}}')
n_steer = 3
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
    act = rnd.choices(["[drop]", "[output: vm2]", "[output: vm3, count]"], [0.6, 0.25, 0.15])[0]
    rules.append(f"{{priority: {p}, match: {{{', '.join(m)}}}, actions: {act}}}")
# Below everything: whatever IP frame to vm2's MAC no rule above took is delivered (so drops show as missing tags).
rules.append(f'{{priority: 100, match: {{eth_dst: "{m2}"}}, actions: [output: vm2]}}')
rules.append(f'{{priority: 101, match: {{eth_dst: "{m3}"}}, actions: [output: vm3, count]}}')
open(w + "/rules.yaml", "w").write("tables:\n  - id: 0\n    rules:\n" + "".join(f"      - {r}\n" for r in rules))
open(w + "/n_disjoint", "w").write(f"{n_disjoint}\n")
open(w + "/n_steer", "w").write(f"{n_steer}\n")
frames = []
for i in range(200):
    tag = Raw(b"esw-offload-%03d" % i)
    dmac = m2 if rnd.random() < 0.8 else rnd.choice(other)
    l4 = (UDP if rnd.random() < 0.5 else TCP)(sport=20000 + i, dport=rnd.randint(1, 7))
    kind = rnd.random()
    if rnd.random() < 0.3:
        # To vm3: UDP / TCP / ICMP over IPv4, UDP / TCP over IPv6; some UDP on ports the worker must judge
        # (DHCP server 67 from vm1: DHCP guard; RoCEv2 4791: roce off; VXLAN 4789).
        sp, dp = 20000 + i, rnd.randint(1, 7)
        r = rnd.random()
        if r < 0.15: sp, dp = rnd.choice([(67, 68), (20000 + i, 4791), (20000 + i, 4789), (546, 547)])
        l4 = rnd.choice([UDP(sport=sp, dport=dp), UDP(sport=sp, dport=dp), TCP(sport=sp, dport=dp)])
        if rnd.random() < 0.6:
            dst = f"198.18.{rnd.choice([3, 3, 4])}.{rnd.randint(1, 254)}"
            if rnd.random() < 0.15: l4 = ICMP(id=i)
            frames.append(Ether(src=m1, dst=m3) / IP(src=f"198.18.0.{rnd.randint(1, 126)}", dst=dst) / l4 / tag)
        else:
            dst = f"2001:db8:3::{rnd.randint(1, 0x1fe):x}"
            frames.append(Ether(src=m1, dst=m3) / IPv6(src=f"2001:db8:1::{rnd.randint(1, 0xfe):x}", dst=dst) / l4 / tag)
    elif kind < 0.45:
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
  - name: vm3
    hw_addr: "$MAC3"
    ipv4: [198.18.0.130]
    attach: { devargs: "net_af_xdp2,iface=${P}t3p,start_queue=0,queue_count=1", xdp: { program: builtin } }
YAML
  cat "$WORK/rules.yaml"
}

vm1_rx() { ctl show vports --json | /usr/bin/python3 -c 'import json,sys; print({x["name"]: x for x in json.load(sys.stdin)["vports"]}["vm1"]["rx_packets"])'; }
# counters: "<vm3 tx_packets> <vm3 tx_bytes> <packets of the rules outputting to vm3 with count, summed>"
counters() {
  { ctl show ports --json; ctl show rules --json; } | /usr/bin/python3 -c '
import json, sys
dec = json.JSONDecoder(); text = sys.stdin.read().strip()
ports, end = dec.raw_decode(text); rules = json.loads(text[end:])["rules"]
p = {x["name"]: x for x in ports["ports"]}["vm3"]
print(p["tx_packets"], p["tx_bytes"], sum(x["packets"] for x in rules if "vm3" in x["actions"] and "output" in x["actions"]))'
}
# xdp_sum: "<rules running in xdp> <xdp drops summed> <frames steered in xdp summed> <steer rules running in xdp>"
xdp_sum() {
  ctl show rules --json | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["rules"]
print(sum(1 for x in r if x["runs"] == "xdp"), sum(x["xdp_drops"] for x in r), sum(x["xdp_steered"] for x in r),
      sum(1 for x in r if x["runs"] == "xdp" and "output" in x["actions"]))'
}

# send NAME: sends the frames, captures at vm2 and vm3; $WORK/NAME.got = "tag vmN" per delivered frame;
# $WORK/NAME.rx = vm1 rx delta; $WORK/NAME.cnt = deltas of "vm3 tx_packets, tx_bytes, vm3 rules' packets".
send() {
  local before after c0 c1 cap=$WORK/$1
  before=$(vm1_rx)
  c0=$(counters)
  ip netns exec "$P-t2" tcpdump -q -n -U -i "${P}t2" -w "$cap.vm2.pcap" 2>/dev/null &
  local tpid=$!
  ip netns exec "$P-t3" tcpdump -q -n -U -i "${P}t3" -w "$cap.vm3.pcap" 2>/dev/null &
  local tpid3=$!
  sleep 1
  ip netns exec "$P-t1" /usr/bin/python3 "$HERE/frames.py" send "${P}t1" "$WORK/frames.pcap"
  sleep 1.5
  kill -INT "$tpid" "$tpid3"; wait "$tpid" || true; wait "$tpid3" || true
  after=$(vm1_rx)
  c1=$(counters)
  echo $((after - before)) >"$WORK/$1.rx"
  /usr/bin/python3 -c 'import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); print(*(int(y) - int(x) for x, y in zip(a, b)))' \
    "$c0" "$c1" >"$WORK/$1.cnt"
  /usr/bin/python3 - "$cap" >"$WORK/$1.got" <<'PY'
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
import re
from scapy.all import rdpcap
got = []
for vm in ("vm2", "vm3"):
    for f in rdpcap(f"{sys.argv[1]}.{vm}.pcap"):
        for t in re.findall(rb"esw-offload-(\d{3})", bytes(f)): got.append(f"{int(t):03d} {vm}")
print("\n".join(sorted(got)))
PY
  echo "$1: delivered $(grep -c vm2 "$WORK/$1.got" || true) to vm2, $(grep -c vm3 "$WORK/$1.got" || true) to vm3 of 200;" \
    "vm1 worker rx +$(cat "$WORK/$1.rx"); vm3 tx packets/bytes, vm3 rules' packets +$(cat "$WORK/$1.cnt")"
}

# 1. off, then auto by a live apply.
config off >"$WORK/off.yaml"
esw_start_eswitchd "$ESWITCHD" "$WORK/off.yaml"
read -r n_xdp drops _ _ <<<"$(xdp_sum)"
((n_xdp == 0)) || fail "offload off, yet $n_xdp rules run in XDP"
send off
# The comparison below only means something when the rules both pass and drop frames of this seed.
n_off=$(grep -c . "$WORK/off.got" || true)
(($(grep -c vm3 "$WORK/off.got" || true) > 0)) || fail "seed $SEED: nothing reached vm3 in software"
((n_off > 0 && n_off < 200)) || fail "seed $SEED: offload off delivered $n_off of 200 frames; the differential needs both outcomes"
config auto >"$WORK/auto.yaml"
ctl apply "$WORK/auto.yaml" >/dev/null || fail "apply with offload: auto"
read -r n_xdp d0 s0 n_steer <<<"$(xdp_sum)"
N_DISJOINT=$(cat "$WORK/n_disjoint") N_STEER=$(cat "$WORK/n_steer")
((n_xdp >= N_DISJOINT + N_STEER)) || fail "offload auto: only $n_xdp rules run in XDP, expected at least the $N_DISJOINT disjoint drops and $N_STEER steer rules"
((n_steer >= N_STEER)) || fail "offload auto: $n_steer steer rules run in XDP, expected at least $N_STEER"
# Steer rules XDP must not take say why (show rules --json xdp_refused; text: runs software (steer: ...)).
ctl show rules --json | /usr/bin/python3 -c '
import json, sys
r = {x["priority"]: x for x in json.load(sys.stdin)["rules"]}
want = {933: "steer: matches TCP", 934: "steer: the rule does not pin eth_dst to vm3"}
for p, why in want.items():
    if r[p]["runs"] != "software" or not r[p].get("xdp_refused", "").startswith(why):
        sys.exit("rule %d: runs %s, reason %r, expected %r" % (p, r[p]["runs"], r[p].get("xdp_refused"), why))' ||
  fail "steer refusals not shown"
grep -q "software (steer: matches TCP" <<<"$(ctl show rules)" || fail "show rules (text) does not say why a steer rule stays in software"
send auto
read -r n_xdp d1 s1 _ <<<"$(xdp_sum)"
xdrops=$((d1 - d0)) xsteered=$((s1 - s0)) rx_auto=$(cat "$WORK/auto.rx")
echo "auto: $n_xdp rules in XDP ($n_steer steer) dropped $xdrops frames and steered $xsteered to vm3"
((xdrops > 0)) || fail "the rules in XDP dropped nothing"
((xsteered > 0)) || fail "the steer rules in XDP steered nothing"
cmp -s "$WORK/off.cnt" "$WORK/auto.cnt" ||
  fail "vm3's tx packets/bytes and its rules' packets grew by $(cat "$WORK/auto.cnt") with offload, $(cat "$WORK/off.cnt") in software"
# Every kind of match did some of the dropping in XDP (IPv4, IPv6 prefixes, MACs).
ctl show rules --json | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["rules"]
for f in ("ipv4_dst", "ipv6_dst", "eth_dst"):
    n = sum(x["xdp_drops"] for x in r if x["runs"] == "xdp" and f in x["match"])
    print(f"auto: XDP drops by rules matching {f}: {n}")
    if n == 0: sys.exit(f"no frame was dropped in XDP by a rule matching {f}")' || fail "a kind of match dropped nothing in XDP"
((rx_auto == 200 - xdrops - xsteered)) || fail "vm1's worker rx grew by $rx_auto, expected 200 - $xdrops - $xsteered (XDP drops and steers must never reach the worker)"
cmp -s "$WORK/off.got" "$WORK/auto.got" || fail "offload auto delivered other frames than offload off: $(diff "$WORK/off.got" "$WORK/auto.got" | head -5 | tr '\n' ' ')"
grep -q "xdp" <<<"$(ctl show rules)" || fail "show rules (text) does not say where rules run"
echo "ok: offload off and auto deliver the same $(grep -c . "$WORK/off.got" || true) frames to the same vports; $xdrops died and $xsteered were steered in XDP, unseen by the worker; vm3's tx and its rules' counts as in software"

# 1a. GRO off on vm3's tenant veth: a redirect into it would be lost, so an apply keeps the steer rules in
# software, saying why; the same frames are delivered; GRO back on: offloaded again.
ip netns exec "$P-t3" ethtool -K "${P}t3" gro off >/dev/null
ctl apply "$WORK/auto.yaml" >/dev/null || fail "apply with GRO off on vm3's peer"
read -r n_xdp d0 s0 n_steer <<<"$(xdp_sum)"
((n_steer == 0)) || fail "GRO off on ${P}t3: $n_steer steer rules still run in XDP"
ctl show rules --json | /usr/bin/python3 -c '
import json, sys
r = {x["priority"]: x for x in json.load(sys.stdin)["rules"]}
why = r[930].get("xdp_refused", "")
print("refused:", why)
sys.exit(0 if r[930]["runs"] == "software" and "does not take XDP redirects" in why else 1)' ||
  fail "GRO off: the steer rule's refusal does not say the interface takes no redirects"
send nogro
read -r _ _ s1 _ <<<"$(xdp_sum)"
((s1 == s0)) || fail "GRO off: $((s1 - s0)) frames steered in XDP"
cmp -s "$WORK/off.got" "$WORK/nogro.got" || fail "GRO off: delivered other frames than software: $(diff "$WORK/off.got" "$WORK/nogro.got" | head -5 | tr '\n' ' ')"
cmp -s "$WORK/off.cnt" "$WORK/nogro.cnt" || fail "GRO off: vm3 counters +$(cat "$WORK/nogro.cnt"), software +$(cat "$WORK/off.cnt")"
ip netns exec "$P-t3" ethtool -K "${P}t3" gro on >/dev/null
ctl apply "$WORK/auto.yaml" >/dev/null || fail "apply with GRO back on"
read -r _ _ _ n_steer <<<"$(xdp_sum)"
((n_steer >= N_STEER)) || fail "GRO back on: only $n_steer steer rules in XDP after an apply"
echo "ok: GRO off on vm3's peer: steer rules in software with the reason, same frames; GRO on: $n_steer in XDP again"

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
  read -r n_xdp d0 s0 _ <<<"$(xdp_sum)"
  ((n_xdp == 0)) || fail "$1: $n_xdp rules still said to run in XDP"
  ctl show rules --json | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["rules"]; sys.exit(0 if r and all(x["runs"] == "software" and not x["xdp_ports"] for x in r) else 1)' ||
    fail "$1: show rules does not say runs: software for every rule"
}
# offload_again WHAT: eswitch's program is back; an apply must offload the rules again.
offload_again() {
  ctl apply "$WORK/auto.yaml" >/dev/null || fail "$1: apply with the program back"
  read -r n_xdp d0 s0 _ <<<"$(xdp_sum)"
  ((n_xdp >= N_DISJOINT)) || fail "$1: the program is back, yet only $n_xdp rules run in XDP after an apply"
}
swap_start "$WORK/plain.bpf.o"
read -r n_xdp _ _ _ <<<"$(xdp_sum)"
((n_xdp == 0)) || fail "eswitch's program was replaced, yet show rules says $n_xdp rules run in XDP"
fallback_apply swapped
send swapped
read -r n_xdp d1 s1 _ <<<"$(xdp_sum)"
((d1 == d0 && s1 == s0)) || fail "swapped: XDP drops grew by $((d1 - d0)), steers by $((s1 - s0)) with a foreign program"
(($(cat "$WORK/swapped.rx") == 200)) || fail "swapped: the worker saw $(cat "$WORK/swapped.rx") of 200 frames (the foreign program feeds it all)"
cmp -s "$WORK/off.got" "$WORK/swapped.got" || fail "program replaced: the results differ from software: $(diff "$WORK/off.got" "$WORK/swapped.got" | head -5 | tr '\n' ' ')"
swap_end
offload_again back
grep -q "port vm1: XDP: eswitch's program (id [0-9]*) is on ${P}t1p again" "$WORK/eswitchd.log" || fail "no note that the program is back"
send back
read -r n_xdp d1 s1 _ <<<"$(xdp_sum)"
((d1 > d0 && s1 > s0)) || fail "back: the rules in XDP dropped $((d1 - d0)), steered $((s1 - s0))"
(($(cat "$WORK/back.rx") == 200 - (d1 - d0) - (s1 - s0))) || fail "back: worker rx +$(cat "$WORK/back.rx"), XDP drops $((d1 - d0)), steers $((s1 - s0))"
cmp -s "$WORK/off.cnt" "$WORK/back.cnt" || fail "program back: vm3 counters +$(cat "$WORK/back.cnt"), software +$(cat "$WORK/off.cnt")"
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
read -r n_xdp d0 s0 _ <<<"$(xdp_sum)"
((n_xdp == 2)) || fail "with room for 2 rules, $n_xdp run in XDP"
grep -q "run in XDP, the other .* in software only" "$WORK/eswitchd.log" || fail "the full map was not logged"
send small
read -r n_xdp d1 s1 _ <<<"$(xdp_sum)"
rx_small=$(cat "$WORK/small.rx")
((rx_small == 200 - (d1 - d0) - (s1 - s0))) || fail "small map: worker rx +$rx_small, XDP drops $((d1 - d0)), steers $((s1 - s0))"
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
