#!/usr/bin/env bash
# A real Linux guest on a vhost-user vport: Debian's stock kernel and its virtio_net driver under QEMU (TCG, no
# KVM), interrupt-driven (INTx: vectors=0), attached to eswitchd's rte_vhost engine (server mode). Two boots:
#   split ring, 1 queue pair; packed ring, 2 queue pairs (2 vCPUs, the guest enables both pairs).
# In each boot the guest itself, through the switch to a kernel tenant in a namespace (af_packet vport):
#   resolves the tenant with ARP and IPv6 ND, pings it (IPv4, IPv6), sends it 8 MiB over TCP (with CSUM and
#   HOST_TSO4/6 negotiated: eswitchd completes checksums and segments TSO frames; the tenant's kernel counts no
#   checksum error and gets every byte) and receives 8 MiB
#   back (byte counts checked on both ends); then the binding, whatever the guest does:
#   - it changes its MAC while the link is up: virtio_net sends VIRTIO_NET_CTRL_MAC_ADDR_SET on the control queue
#     (CTRL_VQ and CTRL_MAC_ADDR negotiated, read from the guest's /sys/bus/virtio features; QEMU processes the
#     control queue of a vhost-user device itself: the bits are not among those eswitchd negotiates, checked),
#     which is acked (the live change succeeds); its frames are cut off (no reply, spoofed_mac counted) and
#     reach the tenant not at all (a packet socket in the tenant's namespace counts frames from the foreign MAC);
#     it changes back: answered again;
#   - it moves to a foreign IPv4 address: cut off the same way (spoofed_ip / arp_spoof counted, nothing from the
#     foreign address reaches the tenant); it moves back: answered again.
# MTU: the vport has `mtu: 1400` (the tenant too, so TCP's MSS fits). Boot 1 gives the device host_mtu=1400
# (VIRTIO_NET_F_MTU): QEMU sends VHOST_USER_NET_SET_MTU, eswitchd accepts it (logged, peer frontend_mtu) and the
# guest's driver caps its MTU at 1400 (raising it fails; a 1500-byte ping is fragmented and answered; nothing
# dropped for size). Boot 2 has no host_mtu: the guest keeps MTU 1500, its 1500-byte pings are dropped by
# eswitchd and counted (peer mtu_dropped) while 1400-byte ones are answered. (A front-end MTU above the vport's
# is refused: tests/integration/vhost_port_test.cc VhostPortMtu, a hand-written front-end, no third boot.)
# eswitchd stops cleanly at the end (exit 0: every mbuf back).
#
# usage: vhost_linux_guest.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
# shellcheck source=../../scripts/lib/guest.sh
source "$HERE/../../scripts/lib/guest.sh"
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed (scripts/setup.sh)"; exit 77; }
[[ -x /bin/busybox ]] || { echo "SKIP: busybox-static not installed (scripts/setup.sh)"; exit 77; }
esw_e2e_begin vguest
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
esw_guest_kernel || fail "no guest kernel"

MAC1=02:00:c6:12:00:01 MAC3=02:00:c6:12:00:03
esw_host_add "$P" t1 "$MAC1" 198.18.0.1/24 2001:db8::1/64
ip -n "$P-t1" link set "${P}t1" mtu 1400  # the vport's MTU: TCP's MSS from the tenant fits it
cat >"$WORK/esw.yaml" <<YAML
apiVersion: eswitch/v1
dataplane: { main_core: 0, worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 50, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: vm1, hw_addr: "$MAC1", ipv4: [198.18.0.1], ipv6: ["2001:db8::1"], attach: { devargs: "net_af_packet0,iface=${P}t1p" } }
  - { name: vm3, hw_addr: "$MAC3", ipv4: [198.18.0.3], ipv6: ["2001:db8::3"], attach: { vhost_user: { socket: "$WORK/vm3.sock", mode: server, queues: 2, mtu: 1400 } } }
YAML
esw_start_eswitchd "$ESWITCHD" "$WORK/esw.yaml"
for _ in $(seq 50); do [[ -S "$WORK/vm3.sock" ]] && break; sleep 0.1; done
[[ -S "$WORK/vm3.sock" ]] || fail "eswitchd did not create the vhost-user socket"


# The guest's part: everything it prints with "GUEST:" is read back from the serial console.
cat >"$WORK/test.sh" <<'GUEST'
ip link set lo up
ip link set eth0 up
ip addr add 198.18.0.3/24 dev eth0
echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
ip -6 addr add 2001:db8::3/64 dev eth0
echo "GUEST: queues $(ls -d /sys/class/net/eth0/queues/rx-* | wc -l)"
ok=0
for i in 1 2 3 4 5 6 7 8 9 10; do ping -c 1 -W 1 198.18.0.1 >/dev/null 2>&1 && { ok=1; break; }; done
[ $ok = 1 ] && ping -c 3 -W 2 198.18.0.1 >/dev/null && echo "GUEST: ping4 ok"
ping -6 -c 3 -W 2 2001:db8::1 >/dev/null && echo "GUEST: ping6 ok"
# Linux picks the tx queue by CPU (XPS): a ping from each vCPU uses each queue pair.
for c in 0 1; do [ -d /sys/class/net/eth0/queues/tx-$c ] && taskset $((1 << c)) ping -c 3 -W 2 198.18.0.1 >/dev/null && echo "GUEST: ping from cpu$c ok"; done
echo "GUEST: neigh $(ip neigh show 198.18.0.1 | cut -d' ' -f5) $(ip -6 neigh show 2001:db8::1 | cut -d' ' -f5)"
dd if=/dev/zero bs=65536 count=128 2>/dev/null | nc -w 10 198.18.0.1 5001 && echo "GUEST: tcp sent"
n=$(nc -w 10 198.18.0.1 5002 </dev/null | wc -c); echo "GUEST: tcp received $n"
# MTU: 1400 when the device offered it (host_mtu=1400, VIRTIO_NET_F_MTU: the driver's maximum), else 1500.
mtu=$(cat /sys/class/net/eth0/mtu); echo "GUEST: mtu $mtu"
if [ "$mtu" = 1400 ]; then ip link set eth0 mtu 1500 2>/dev/null && echo "GUEST: mtu raised" || echo "GUEST: mtu capped"; fi
ping -c 3 -W 2 -s 1372 198.18.0.1 >/dev/null 2>&1 && echo "GUEST: ping 1400 ok"
ping -c 3 -W 1 -s 1472 198.18.0.1 >/dev/null 2>&1 && echo "GUEST: ping 1500 answered" || echo "GUEST: ping 1500 cut off"
# The negotiated feature bits as the guest's virtio core sees them ('0'/'1' per bit, bit 0 first).
echo "GUEST: features $(cat /sys/bus/virtio/devices/*/features | head -1)"
# A foreign MAC set while the link is up: virtio_net sends VIRTIO_NET_CTRL_MAC_ADDR_SET on the control queue
# (IFF_LIVE_ADDR_CHANGE); the change fails unless the device acks the command.
ip link set dev eth0 address 02:00:c6:12:00:99 && echo "GUEST: live mac change ok $(cat /sys/class/net/eth0/address) up=$(( $(cat /sys/class/net/eth0/flags) & 1 ))"
ip neigh flush dev eth0
ping -c 3 -W 1 198.18.0.1 >/dev/null 2>&1 && echo "GUEST: foreign mac answered" || echo "GUEST: foreign mac cut off"
ip link set dev eth0 address 02:00:c6:12:00:03
ip neigh flush dev eth0
ok=0
for i in 1 2 3 4 5; do ping -c 1 -W 1 198.18.0.1 >/dev/null 2>&1 && { ok=1; break; }; done
[ $ok = 1 ] && echo "GUEST: own mac answered again"
ip addr del 198.18.0.3/24 dev eth0; ip addr add 198.18.0.99/24 dev eth0
ping -c 3 -W 1 198.18.0.1 >/dev/null 2>&1 && echo "GUEST: foreign ip answered" || echo "GUEST: foreign ip cut off"
ip addr del 198.18.0.99/24 dev eth0; ip addr add 198.18.0.3/24 dev eth0
ip neigh flush dev eth0
ok=0
for i in 1 2 3 4 5; do ping -c 1 -W 1 198.18.0.1 >/dev/null 2>&1 && { ok=1; break; }; done
[ $ok = 1 ] && echo "GUEST: own ip answered again"
GUEST
esw_guest_initramfs "$WORK/initrd.gz" "$WORK/test.sh"

# The tenant's TCP ends: 5001 counts what the guest sends, 5002 sends the guest 8 MiB; and a packet socket on
# the tenant's interface counting every frame that comes from the guest's foreign MAC or foreign IPv4 address
# (Ethernet source, IPv4 source, ARP sender), written to foreign.count as it goes.
tenant_servers() {
  echo 0 >"$WORK/foreign.count"
  echo 0 >"$WORK/own.count"
  ip netns exec "$P-t1" /usr/bin/python3 - "$WORK" "${P}t1" <<'PY' &
import socket, sys, threading
work, iface = sys.argv[1], sys.argv[2]
FOREIGN_MAC, FOREIGN_IP = bytes.fromhex("0200c6120099"), socket.inet_aton("198.18.0.99")
OWN_MAC = bytes.fromhex("0200c6120003")
def sniff():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.bind((iface, 0))
    n = own = 0
    while True:
        f, addr = s.recvfrom(65536)
        if addr[2] == socket.PACKET_OUTGOING: continue
        t = f[12:14]
        if f[6:12] == FOREIGN_MAC or (t == b"\x08\x00" and f[26:30] == FOREIGN_IP) or (t == b"\x08\x06" and f[28:32] == FOREIGN_IP):
            n += 1
            open(work + "/foreign.count", "w").write(str(n))
        elif f[6:12] == OWN_MAC and own < 10:  # the sniffer sees the guest at all (its own frames): a few suffice
            own += 1
            open(work + "/own.count", "w").write(str(own))
threading.Thread(target=sniff, daemon=True).start()
def sink():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("198.18.0.1", 5001)); s.listen(1)
    c, _ = s.accept(); n = 0
    while True:
        b = c.recv(65536)
        if not b: break
        n += len(b)
    open(work + "/sink.count", "w").write(str(n))
def source():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("198.18.0.1", 5002)); s.listen(1)
    c, _ = s.accept(); c.sendall(bytes(8 << 20)); c.close()
t = [threading.Thread(target=sink), threading.Thread(target=source)]
for x in t: x.start()
for x in t: x.join()
threading.Event().wait()  # the sniffer goes on until the test kills this process
PY
  TENANT_PID=$!
  ESW_EXTRA_PIDS+=("$TENANT_PID")
}

# The tenant kernel's count of received TCP/UDP segments with a bad checksum (/proc/net/snmp, per namespace).
csum_errors() {
  ip netns exec "$P-t1" /usr/bin/python3 -c '
rows = [l.split() for l in open("/proc/net/snmp") if l.startswith(("Tcp:", "Udp:"))]
print(sum(int(v) for h, v in zip(rows[0::2], rows[1::2]) for k, v in zip(h, v) if k == "InCsumErrors"))'
}

# A counter of the vport's vhost-user session (show ports: peer.counters).
peer_counter() {
  ctl --json show ports | /usr/bin/python3 -c '
import json, sys
p = next(p for p in json.load(sys.stdin)["ports"] if p["name"] == sys.argv[1])
print(p["peer"]["counters"][sys.argv[2]])' "$1" "$2"
}

boot() {
  local name=$1 queues=$2 ring=$3 mtu=$4 extra=${5:-}
  local csum0
  csum0=$(csum_errors)
  local log="$WORK/$name.console"
  rm -f "$WORK/sink.count"
  tenant_servers
  local ip0 mac0 mtud0 t0=$SECONDS
  ip0=$(( $(esw_vport_drops vm3 spoofed_ip) + $(esw_vport_drops vm3 arp_spoof) )) mac0=$(esw_vport_drops vm3 spoofed_mac)
  mtud0=$(peer_counter vm3 mtu_dropped)
  # shellcheck disable=SC2086
  esw_guest_boot "$log" "$WORK/initrd.gz" "$WORK/vm3.sock" "$MAC3" "$queues" $extra $([[ $mtu == 1400 ]] && echo host_mtu=1400)
  ESW_EXTRA_PIDS+=("$ESW_GUEST_PID")
  local i
  for ((i = 0; i < 1800; i++)); do
    kill -0 "$ESW_GUEST_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$ESW_GUEST_PID" 2>/dev/null; then
    kill -9 "$ESW_GUEST_PID"; sed 's/^/  guest: /' "$log" >&2; fail "$name: the guest did not finish in 180 s"
  fi
  wait "$ESW_GUEST_PID" 2>/dev/null || true
  kill "$TENANT_PID" 2>/dev/null || true; wait "$TENANT_PID" 2>/dev/null || true
  ctl show ports | grep '^port vm3 peer' | sed 's/^/  /'
  local foreign own
  foreign=$(cat "$WORK/foreign.count") own=$(cat "$WORK/own.count")
  # What was negotiated, from eswitchd's log of this session: the ring layout asked for, event index (the
  # Linux driver's notification suppression) and, with 2 queue pairs, both enabled by the guest.
  local line feat
  line=$(grep "vm3: vhost-user guest connected on $WORK/vm3.sock" "$WORK/eswitchd.log" | tail -1)
  feat=${line#*features 0x}; feat=$((16#${feat%%,*}))
  (( ((feat >> 34) & 1) == ($([[ $ring == packed ]] && echo 1 || echo 0)) )) || fail "$name: RING_PACKED is $(((feat >> 34) & 1)) in '$line'"
  (( (feat >> 29) & 1 )) || fail "$name: EVENT_IDX not negotiated ('$line')"
  # Offloads: the guest hands over partial checksums (CSUM) and TSO frames (HOST_TSO4/6); eswitchd completes them.
  (( (feat & 1) && ((feat >> 11) & 1) && ((feat >> 12) & 1) )) || fail "$name: CSUM/HOST_TSO4/HOST_TSO6 not negotiated ('$line')"
  # The control queue is the front-end's: QEMU negotiates CTRL_VQ / CTRL_MAC_ADDR with the guest and processes
  # its commands; eswitchd (the vhost-user back-end) never sees them.
  (( ((feat >> 17) & 1) == 0 && ((feat >> 23) & 1) == 0 )) || fail "$name: eswitchd negotiated CTRL_VQ/CTRL_MAC_ADDR ('$line')"
  local gfeat
  gfeat=$(sed -n 's/^GUEST: features \([01]*\).*/\1/p' "$log" | tail -1)
  [[ ${gfeat:17:1} == 1 && ${gfeat:23:1} == 1 ]] ||
    fail "$name: the guest did not negotiate CTRL_VQ (17) and CTRL_MAC_ADDR (23): features '$gfeat'"
  if ((queues > 1)); then
    tail -n +"$(grep -n "vm3: vhost-user guest connected" "$WORK/eswitchd.log" | tail -1 | cut -d: -f1)" "$WORK/eswitchd.log" |
      grep -Eq "vm3: ($queues of 2 queue pairs on|.*$queues of 2 queue pairs on\))" || fail "$name: eswitchd never saw $queues queue pairs on"
  fi
  # eswitchd's own view of the session: connected, the queue pairs the guest enabled, traffic on each, the ring.
  ctl --json show ports >"$WORK/ports.json"
  /usr/bin/python3 - "$WORK/ports.json" "$queues" "$ring" <<'PY' || fail "$name: eswitchd's view of the guest session is wrong"
import json, sys
ports = json.load(open(sys.argv[1]))["ports"]
want, ring = int(sys.argv[2]), sys.argv[3]
p = next(p for p in ports if p["name"] == "vm3")
peer, errs = p["peer"], []
# The guest powered off: the session is over, and it was had once.
if peer["connects"] < 1 or peer["disconnects"] < 1: errs.append(f"connects/disconnects {peer['connects']}/{peer['disconnects']}")
names = set(peer["feature_names"])
for q in range(want):
    qp = peer["queues"][q]
    if qp["rx_packets"] == 0: errs.append(f"queue pair {q}: nothing received from the guest")
rxq = p["rx_queues"]
for q in range(want):
    if rxq[q]["packets"] == 0: errs.append(f"switch rx queue {q}: no packets")
c = peer["counters"]
print(f"  offloads completed by eswitchd: {c['csum_completed']} checksums, {c['gso_frames']} TSO frames -> {c['gso_segments']} segments, {c['offload_errors']} errors")
if c["gso_frames"] == 0 or c["gso_segments"] <= c["gso_frames"]: errs.append("no TSO frame from the guest was segmented")
if c["offload_errors"] != 0: errs.append(f"{c['offload_errors']} offload errors")
for e in errs: print("  peer check:", e)
sys.exit(1 if errs else 0)
PY
  local ipd=$(( $(esw_vport_drops vm3 spoofed_ip) + $(esw_vport_drops vm3 arp_spoof) - ip0 )) macd=$(( $(esw_vport_drops vm3 spoofed_mac) - mac0 ))
  local mtud=$(( $(peer_counter vm3 mtu_dropped) - mtud0 ))
  sed -n 's/^GUEST: /  guest: /p' "$log"
  echo "  $name: $((SECONDS - t0)) s; eswitchd: vm3 spoofed_ip+arp_spoof +$ipd spoofed_mac +$macd mtu_dropped +$mtud; tenant received $(cat "$WORK/sink.count" 2>/dev/null || echo none) bytes, $foreign frame(s) from the foreign MAC/IP"
  g() { grep -q "^GUEST: $1" "$log" || { sed 's/^/  guest: /' "$log" "$log.qemu" >&2; fail "$name: $2"; }; }
  g "queues $queues" "the guest does not see $queues queue pairs"
  g "ping4 ok" "the guest could not ping the tenant over IPv4"
  g "ping6 ok" "the guest could not ping the tenant over IPv6"
  g "neigh 02:00:c6:12:00:01 02:00:c6:12:00:01" "the guest did not resolve the tenant by ARP and ND"
  g "tcp sent" "the guest's TCP send failed"
  [[ $(cat "$WORK/sink.count" 2>/dev/null) == $((8 << 20)) ]] || fail "$name: the tenant received $(cat "$WORK/sink.count" 2>/dev/null) of $((8 << 20)) bytes"
  g "tcp received $((8 << 20))" "the guest did not receive 8 MiB from the tenant"
  local csum1
  csum1=$(csum_errors)
  echo "  tenant InCsumErrors (Tcp+Udp): $csum0 -> $csum1"
  ((csum1 == csum0)) || fail "$name: the tenant counted $((csum1 - csum0)) segments with a bad checksum"
  g "live mac change ok 02:00:c6:12:00:99 up=1" "the guest's MAC change over the control queue (link up) failed"
  g "foreign mac cut off" "a foreign source MAC got through the binding"
  g "own mac answered again" "the guest was not answered again after taking its own MAC back"
  g "foreign ip cut off" "a foreign source IPv4 address got through the binding"
  g "own ip answered again" "the guest was not answered again after taking its own IPv4 address back"
  ((own > 0)) || fail "$name: the tenant's packet socket saw no frame from the guest at all (sniffer broken?)"
  ((foreign == 0)) || fail "$name: $foreign frame(s) from the guest's foreign MAC/IP reached the tenant"
  g "ping 1400 ok" "a 1400-byte IPv4 packet (the vport's MTU) from the guest was not answered"
  if [[ $mtu == 1400 ]]; then
    # The front-end's MTU reached eswitchd and was accepted; the guest's driver holds to it.
    (( (feat >> 3) & 1 )) || fail "$name: VIRTIO_NET_F_MTU not negotiated with host_mtu=1400 ('$line')"
    grep -q "vport vm3: the guest's front-end set MTU 1400 (VHOST_USER_NET_SET_MTU), within the vport's MTU 1400" \
      "$WORK/eswitchd.log" || fail "$name: eswitchd did not log the front-end's MTU 1400"
    (( $(peer_counter vm3 frontend_mtu) == 1400 )) || fail "$name: peer frontend_mtu is $(peer_counter vm3 frontend_mtu)"
    g "mtu 1400" "the guest's MTU is not the device's 1400"
    g "mtu capped" "the guest raised its MTU above the device's 1400"
    g "ping 1500 answered" "a 1500-byte ping from a guest with MTU 1400 (fragmented) was not answered"
    ((mtud == 0)) || fail "$name: $mtud frame(s) dropped for size from a guest with MTU 1400"
  else
    g "mtu 1500" "the guest's MTU is not 1500 without host_mtu"
    g "ping 1500 cut off" "a 1500-byte IPv4 packet above the vport's MTU 1400 got through"
    ((mtud >= 3)) || fail "$name: mtu_dropped rose by $mtud, expected >= 3 (the guest's 1500-byte pings)"
  fi
  local q
  for ((q = 0; q < queues; q++)); do g "ping from cpu$q ok" "the guest could not ping from vCPU $q"; done
  ((ipd >= 3)) || fail "$name: spoofed_ip + arp_spoof rose by $ipd, expected >= 3 (the guest's ARP/pings from 198.18.0.99)"
  ((macd >= 3)) || fail "$name: spoofed_mac rose by $macd, expected >= 3 (the guest's ARP/pings from 02:00:c6:12:00:99)"
  echo "ok: $name"
}

boot "split-1q" 1 split 1400
boot "packed-2q" 2 packed 1500 packed=on

esw_stop_eswitchd
echo "PASS: a Linux virtio_net guest (QEMU TCG) on a vhost-user vport: ARP/ND, ping v4/v6, TCP both ways, binding (MAC over the control queue, IP), MTU, split 1q and packed 2q"
