#!/usr/bin/env bash
# End-to-end: two tenant network namespaces (the Linux kernel stack as the peers) and an uplink namespace, wired
# to eswitchd through veth pairs opened with net_af_packet. Kernel ping and a TCP stream must cross the switch,
# counters must show it, and eswitchd must stop cleanly on SIGINT with every mbuf back in its pool and no DPDK
# runtime files left behind.
#
# usage: netns_ping_tcp.sh PATH/TO/eswitchd
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"

esw_e2e_begin e2e
P="esw$(($$ % 10000))"

esw_host_add "$P" t1 02:00:c6:12:00:01 198.18.0.1/24 2001:db8::1/64
esw_host_add "$P" t2 02:00:c6:12:00:02 198.18.0.2/24 2001:db8::2/64
esw_host_add "$P" up0 02:00:c6:12:00:fe 198.18.0.254/24

cat >"$WORK/esw.yaml" <<YAML
apiVersion: eswitch/v1
dataplane:
  main_core: 0
  worker_cores: [1]
  memory_mb: 256
  hugepages: auto
  mbufs: 8192
  idle_sleep_us: 20
  file_prefix: $PREFIX
  api_socket: ""
uplinks:
  - name: uplink0
    attach: { devargs: "net_af_packet0,iface=${P}up0p" }
vports:
  - name: vm1
    hw_addr: "02:00:c6:12:00:01"
    ipv4: [198.18.0.1]
    ipv6: ["2001:db8::1"]
    attach: { devargs: "net_af_packet1,iface=${P}t1p" }
  - name: vm2
    hw_addr: "02:00:c6:12:00:02"
    ipv4: [198.18.0.2]
    ipv6: ["2001:db8::2"]
    attach: { devargs: "net_af_packet2,iface=${P}t2p" }
representors: { kind: none }
YAML

esw_start_eswitchd "$ESWITCHD" "$WORK/esw.yaml" --stats-json "$WORK/stats.json"

ip netns exec "$P-t1" ping -c 3 -i 0.2 -W 2 198.18.0.2 >/dev/null || fail "ping vm1 -> vm2"
ip netns exec "$P-t2" ping -c 3 -i 0.2 -W 2 198.18.0.1 >/dev/null || fail "ping vm2 -> vm1"
ip netns exec "$P-t1" ping -c 3 -i 0.2 -W 2 198.18.0.254 >/dev/null || fail "ping vm1 -> uplink"
ip netns exec "$P-t1" ping -6 -c 3 -i 0.2 -W 2 2001:db8::2 >/dev/null || fail "ping6 vm1 -> vm2"
echo "ok: ping (IPv4 both ways, to the uplink, IPv6)"

# A TCP stream: 8 MiB from vm1 to vm2, checked end to end.
head -c $((8 << 20)) /dev/urandom >"$WORK/tx.bin"
ip netns exec "$P-t2" timeout 60 nc -l -N 198.18.0.2 5201 >"$WORK/rx.bin" &
NC_PID=$!
for _ in $(seq 50); do
  ip netns exec "$P-t2" ss -ltn 2>/dev/null | grep -q ':5201' && break
  sleep 0.1
done
ip netns exec "$P-t1" timeout 60 nc -N 198.18.0.2 5201 <"$WORK/tx.bin" || fail "TCP sender"
wait "$NC_PID" || fail "TCP receiver"
cmp -s "$WORK/tx.bin" "$WORK/rx.bin" || fail "TCP stream corrupted or truncated ($(stat -c %s "$WORK/rx.bin") bytes)"
echo "ok: TCP 8 MiB vm1 -> vm2 intact"

esw_stop_eswitchd
grep -q "stopped cleanly; all .* mbufs back in the pool" "$WORK/eswitchd.log" || fail "no clean-stop report"
[[ ! -e "/var/run/dpdk/$PREFIX" ]] || fail "runtime directory /var/run/dpdk/$PREFIX left behind"

/usr/bin/python3 - "$WORK/stats.json" <<'PY' || fail "counters"
import json, sys
s = json.load(open(sys.argv[1]))
ports = {p["name"]: p for p in s["ports"]}
assert s["mbufs"]["in_use_after_shutdown"] == 0, s["mbufs"]
# 8 MiB of TCP payload is at least 5,700 full-size segments from vm1, all of which must leave on vm2.
assert ports["vm1"]["rx_packets"] > 5700, ports["vm1"]
assert ports["vm2"]["tx_packets"] > 5700, ports["vm2"]
assert ports["vm2"]["tx_bytes"] > 8 << 20, ports["vm2"]
assert ports["uplink0"]["tx_packets"] >= 3 and ports["uplink0"]["rx_packets"] >= 3, ports["uplink0"]
for p in ports.values():
    assert p["tx_dropped"] == 0, p
print("ok: counters", {n: (p["rx_packets"], p["tx_packets"]) for n, p in ports.items()})
PY
echo "PASS: netns ping + TCP through eswitchd"
