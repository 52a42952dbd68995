# shellcheck shell=bash
# Tenant hosts for demos and end-to-end tests: each host is a network namespace with one veth whose other end
# stays in the root namespace for eswitchd to open (af_packet/af_xdp). Everything created is recorded and
# removed by esw_topo_down, which callers run from an EXIT trap so an interrupted run leaves nothing behind.
#
#   esw_host_add PREFIX NAME MAC IPV4/LEN [IPV6/LEN]
#     creates netns "PREFIX-NAME", iface "PREFIXNAME" inside it and "PREFIXNAMEp" in the root namespace.
#   esw_topo_down   removes every namespace and root-side interface this shell created.

ESW_CREATED_NS=()
ESW_CREATED_LINKS=()

esw_host_add() {
  local prefix=$1 name=$2 mac=$3 ip4=$4 ip6=${5:-}
  local ns="${prefix}-${name}" inner="${prefix}${name}" outer="${prefix}${name}p"
  if ((${#outer} > 15)); then
    echo "netns: interface name ${outer} is longer than 15 characters" >&2
    return 1
  fi
  ip netns add "$ns"
  ESW_CREATED_NS+=("$ns")
  ip link add "$outer" type veth peer name "$inner"
  ESW_CREATED_LINKS+=("$outer")
  ip link set "$inner" netns "$ns"
  # The switch side carries no addresses and sends nothing of its own.
  sysctl -qw "net.ipv6.conf.${outer}.disable_ipv6=1" >/dev/null 2>&1 || true
  # af_packet hands us frames as the kernel built them: without this, TCP/UDP checksums would be left for a
  # NIC that does not exist (CHECKSUM_PARTIAL) and segments would be up to 64 KiB (GSO).
  ethtool -K "$outer" gro off tso off gso off tx off rx off >/dev/null 2>&1 || true
  ip link set "$outer" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "$inner" address "$mac"
  ip netns exec "$ns" ethtool -K "$inner" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
  ip -n "$ns" addr add "$ip4" dev "$inner"
  if [[ -n "$ip6" ]]; then
    ip -n "$ns" addr add "$ip6" dev "$inner" nodad
  fi
  ip -n "$ns" link set "$inner" up
}

esw_topo_down() {
  local l ns
  for l in "${ESW_CREATED_LINKS[@]}"; do
    ip link del "$l" >/dev/null 2>&1 || true
  done
  for ns in "${ESW_CREATED_NS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 >/dev/null 2>&1 || true
    ip netns del "$ns" >/dev/null 2>&1 || true
  done
  ESW_CREATED_LINKS=()
  ESW_CREATED_NS=()
}

# Waits until FILE exists or PID dies; fails after SECONDS.
esw_wait_file() {
  local file=$1 pid=$2 secs=${3:-30} i
  for ((i = 0; i < secs * 10; i++)); do
    [[ -e "$file" ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
