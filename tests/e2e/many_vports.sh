#!/usr/bin/env bash
# End-to-end: 30 vports, each a kernel tenant in its own network namespace attached as an ethdev (af_packet),
# plus an uplink ethdev, plus 30 tap representors: 61 switch ports where Debian's DPDK allows 32 ethdevs. That
# fits only because a representor is a tap file descriptor served on the main lcore, not an ethdev.
# Checks: every vport pings the uplink and the uplink pings every vport; a table miss from every vport arrives
# on that vport's representor (rep-<vport>, seen by a sniffer in the host) and on no other; eswitchd stops
# cleanly with every mbuf back.
#
# usage: many_vports.sh PATH/TO/eswitchd [N]
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd [N]}
N=${2:-30}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
esw_e2e_begin many
P="esw$(($$ % 10000))"
T="m$(($$ % 10000))"   # vport name prefix: rep-<name> must fit in 15 characters

mac_of() { printf '02:00:c6:12:%02x:%02x' $(($1 / 256)) $(($1 % 256)); }

esw_host_add "$P" up 02:00:c6:12:ff:fe 198.18.0.254/24
{
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 512, mbufs: 32768, rx_queue_size: 256, tx_queue_size: 256,
             idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "" }
uplinks:
  - { name: uplink0, attach: { devargs: "net_af_packet0,iface=${P}upp" } }
representors: { kind: tap }
vports:
YAML
  for i in $(seq 1 "$N"); do
    echo "  - { name: ${T}v$i, hw_addr: \"$(mac_of "$i")\", ipv4: [198.18.0.$i], attach: { devargs: \"net_af_packet$i,iface=${P}v${i}p\" } }"
  done
  # UDP to port 5555 goes to table 1, which has no rules: a table miss, whose default is the representor.
  cat <<YAML
tables:
  - id: 0
    rules:
      - { priority: 200, match: { udp: true, udp_dst: 5555 }, actions: [ goto_table: 1 ] }
  - id: 1
YAML
} >"$WORK/esw.yaml"
for i in $(seq 1 "$N"); do esw_host_add "$P" "v$i" "$(mac_of "$i")" "198.18.0.$i/24"; done

esw_start_eswitchd "$ESWITCHD" "$WORK/esw.yaml"
grep -q "forwarding on $((2 * N + 1)) ports" "$WORK/eswitchd.log" || fail "expected $((2 * N + 1)) ports: $(head -3 "$WORK/eswitchd.log")"
for i in $(seq 1 "$N"); do
  [[ -e "/sys/class/net/rep-${T}v$i" ]] || fail "representor rep-${T}v$i does not exist"
done
echo "ok: $N vports + uplink (ethdevs) + $N tap representors = $((2 * N + 1)) ports"

# Traffic between every vport and the uplink, both ways (in parallel: 30 namespaces).
pids=()
for i in $(seq 1 "$N"); do
  ip netns exec "$P-v$i" ping -c 2 -i 0.2 -W 3 198.18.0.254 >"$WORK/ping-v$i.log" 2>&1 & pids+=($!)
done
for i in $(seq 1 "$N"); do wait "${pids[$((i - 1))]}" || fail "ping vport $i -> uplink: $(cat "$WORK/ping-v$i.log")"; done
pids=()
for i in $(seq 1 "$N"); do
  ip netns exec "$P-up" ping -c 2 -i 0.2 -W 3 "198.18.0.$i" >"$WORK/ping-u$i.log" 2>&1 & pids+=($!)
done
for i in $(seq 1 "$N"); do wait "${pids[$((i - 1))]}" || fail "ping uplink -> vport $i: $(cat "$WORK/ping-u$i.log")"; done
echo "ok: every vport <-> uplink (ping both ways)"

# A miss from every vport: one UDP datagram each, with the vport's number in the payload. The sniffer listens
# on all representors and reports, per representor, the payloads it saw.
/usr/bin/python3 - "$N" "$T" "$WORK/sniffed" <<'PY' &
import sys, time
from scapy.all import AsyncSniffer, UDP, IP, Raw
n, t, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ifaces = [f"rep-{t}v{i}" for i in range(1, n + 1)]
seen = {}
def on(p):
    if UDP in p and p[UDP].dport == 5555 and Raw in p:
        seen.setdefault(p.sniffed_on, []).append((p[IP].src, bytes(p[Raw].load).decode(errors="replace")))
s = AsyncSniffer(iface=ifaces, prn=on, store=False, filter="udp port 5555")
s.start()
open(out + ".ready", "w").close()
deadline = time.time() + 30
while time.time() < deadline and len(seen) < n:
    time.sleep(0.2)
time.sleep(0.5)
s.stop()
with open(out, "w") as f:
    for i in ifaces:
        for src, payload in seen.get(i, []):
            f.write(f"{i} {src} {payload}\n")
PY
SNIFF=$!
ESW_EXTRA_PIDS+=("$SNIFF")
for _ in $(seq 200); do [[ -e "$WORK/sniffed.ready" ]] && break; sleep 0.1; done
[[ -e "$WORK/sniffed.ready" ]] || fail "sniffer did not start"
sleep 1
for i in $(seq 1 "$N"); do
  ip netns exec "$P-v$i" /usr/bin/python3 -c "
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b'miss-from-$i', ('198.18.0.254', 5555))" || fail "send from vport $i"
done
wait "$SNIFF" || true
for i in $(seq 1 "$N"); do
  grep -q "^rep-${T}v$i 198.18.0.$i miss-from-$i\$" "$WORK/sniffed" \
    || fail "no miss from vport $i on rep-${T}v$i; sniffed: $(cat "$WORK/sniffed")"
done
# ... and nothing on the wrong representor.
if awk -v t="rep-${T}v" '{ sub(t, "", $1); split($3, a, "-"); if ($1 != a[3]) { print; bad = 1 } } END { exit !bad }' "$WORK/sniffed"; then
  fail "a miss arrived on another vport's representor"
fi
echo "ok: a table miss from each of the $N vports arrives on its own representor"

esw_stop_eswitchd
for i in $(seq 1 "$N"); do
  [[ -e "/sys/class/net/rep-${T}v$i" ]] && fail "rep-${T}v$i left behind after shutdown"
done
echo "PASS: $N vports with tap representors"
