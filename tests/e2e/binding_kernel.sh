#!/usr/bin/env bash
# End-to-end anti-spoofing with the Linux kernel as the tenants: ping and TCP work for the bound addresses; a
# tenant that changes its IP address (ip addr) or its MAC (ip link set address) is cut off and its frames are
# counted as spoofed; once the config is changed to the new binding (eswitchctl apply), it gets through again.
#
# usage: binding_kernel.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
esw_e2e_begin bind
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }

esw_host_add "$P" t1 02:00:c6:12:00:01 198.18.0.1/24
esw_host_add "$P" t2 02:00:c6:12:00:02 198.18.0.2/24

# config VM1_MAC VM1_IP
config() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: vm1, hw_addr: "$1", ipv4: [$2], attach: { devargs: "net_af_packet0,iface=${P}t1p" } }
  - { name: vm2, hw_addr: "02:00:c6:12:00:02", ipv4: [198.18.0.2], attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
YAML
}
config 02:00:c6:12:00:01 198.18.0.1 >"$WORK/a.yaml"
esw_start_eswitchd "$ESWITCHD" "$WORK/a.yaml"
for _ in $(seq 50); do [[ -S "$SOCK" ]] && break; sleep 0.1; done

drops() {  # drops VPORT REASON
  ctl --json show vports | /usr/bin/python3 -c '
import json, sys
vport, reason = sys.argv[1], sys.argv[2]
data = json.load(sys.stdin)
rows = data["vports"] if isinstance(data, dict) and "vports" in data else data
for v in rows:
    if v["name"] == vport:
        d = v["drops"]
        print(d.get(reason, 0) if isinstance(d, dict) else dict((x["reason"], x["packets"]) for x in d).get(reason, 0))
' "$1" "$2"
}
reach() { ip netns exec "$P-t1" ping -c 2 -i 0.2 -W 1 "$@" 198.18.0.2 >/dev/null 2>&1; }
tcp_ok() {
  ip netns exec "$P-t2" timeout 10 nc -l -N 198.18.0.2 5202 >"$WORK/rx" &
  local nc=$!
  for _ in $(seq 50); do ip netns exec "$P-t2" ss -ltn | grep -q ':5202' && break; sleep 0.1; done
  head -c 200000 /dev/urandom >"$WORK/tx"
  ip netns exec "$P-t1" timeout 10 nc -N 198.18.0.2 5202 <"$WORK/tx" && wait "$nc" && cmp -s "$WORK/tx" "$WORK/rx"
}

reach || fail "bound tenants cannot ping"
tcp_ok || fail "bound tenants cannot talk TCP"
echo "ok: ping and TCP with the bound addresses"

# The tenant takes another IP address: cut off. Removing its old address flushed its neighbour cache, so it
# ARPs from the new address first (arp_spoof) and sends IP from it where it still knows the peer (spoofed_ip).
ip -n "$P-t1" addr del 198.18.0.1/24 dev "${P}t1"
ip -n "$P-t1" addr add 198.18.0.11/24 dev "${P}t1"
before=$(( $(drops vm1 spoofed_ip) + $(drops vm1 arp_spoof) ))
reach && fail "a tenant with an unbound IP address still gets through"
after=$(( $(drops vm1 spoofed_ip) + $(drops vm1 arp_spoof) ))
((after > before)) || fail "spoofed_ip + arp_spoof did not count ($before -> $after)"
echo "ok: new IP 198.18.0.11 is cut off (spoofed_ip + arp_spoof $before -> $after)"

config 02:00:c6:12:00:01 198.18.0.11 >"$WORK/b.yaml"
ctl apply "$WORK/b.yaml" >/dev/null || fail "apply of the new binding"
ip netns exec "$P-t2" ip neigh flush all
reach || fail "still cut off after binding 198.18.0.11"
tcp_ok || fail "TCP after rebinding"
echo "ok: after eswitchctl apply with ipv4 198.18.0.11 it gets through again"

# The tenant takes another MAC address: cut off, counted as spoofed_mac.
ip -n "$P-t1" link set "${P}t1" address 02:00:c6:12:00:11
ip netns exec "$P-t2" ip neigh flush all
before=$(drops vm1 spoofed_mac)
reach && fail "a tenant with another MAC still gets through"
after=$(drops vm1 spoofed_mac)
((after > before)) || fail "spoofed_mac did not count ($before -> $after)"
echo "ok: new MAC 02:00:c6:12:00:11 is cut off (spoofed_mac $before -> $after)"

config 02:00:c6:12:00:11 198.18.0.11 >"$WORK/c.yaml"
ctl apply "$WORK/c.yaml" >/dev/null || fail "apply of the new MAC"
reach || fail "still cut off after binding the new MAC"
echo "ok: after eswitchctl apply with hw_addr 02:00:c6:12:00:11 it gets through again"

esw_stop_eswitchd
echo "PASS: kernel tenants: binding enforced, follows the config"
