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

# ---- end-to-end test scaffolding --------------------------------------------------------------------------
# esw_e2e_begin TAG: needs root (else exits 77 = skipped), sets WORK (a temp dir), PREFIX (the DPDK file prefix
# of this run) and SW_PID, and installs a trap that kills eswitchd and anything in ESW_EXTRA_PIDS, removes the
# namespaces and interfaces created, WORK and the run's DPDK runtime directory - also on failure or Ctrl-C.
ESW_EXTRA_PIDS=()
esw_e2e_begin() {
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root"; exit 77; }
  WORK=$(mktemp -d "/tmp/esw-$1.XXXXXX")
  PREFIX="esw-$1-$$"
  SW_PID=""
  trap esw_e2e_cleanup EXIT
  trap 'exit 130' INT TERM
}

esw_e2e_cleanup() {
  local p
  for p in "${ESW_EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -n "${SW_PID:-}" ]] && kill -0 "$SW_PID" 2>/dev/null; then kill -9 "$SW_PID" 2>/dev/null || true; fi
  esw_topo_down
  rm -rf "$WORK" "/var/run/dpdk/$PREFIX"
}

# fail MESSAGE: prints it and eswitchd's log, exits 1.
fail() {
  echo "FAIL: $*" >&2
  [[ -f "$WORK/eswitchd.log" ]] && sed 's/^/  eswitchd: /' "$WORK/eswitchd.log" >&2
  exit 1
}

# esw_vport_drops VPORT REASON: the vport's drop counter for REASON, through the management API (the caller's
# ctl function).
esw_vport_drops() {
  ctl --json show vports | /usr/bin/python3 -c '
import json, sys
rows = json.load(sys.stdin)["vports"]
print(next((v["drops"].get(sys.argv[2], 0) for v in rows if v["name"] == sys.argv[1]), 0))' "$1" "$2"
}

# esw_start_eswitchd ESWITCHD CONFIG [ARGS...]: starts it (log in $WORK/eswitchd.log), waits until it forwards.
esw_start_eswitchd() {
  local bin=$1 config=$2
  shift 2
  "$bin" --config "$config" --state-dir "$WORK/state" --ready-file "$WORK/ready" "$@" >"$WORK/eswitchd.log" 2>&1 &
  SW_PID=$!
  esw_wait_file "$WORK/ready" "$SW_PID" 30 || fail "eswitchd did not start"
}

# esw_stop_eswitchd: SIGINT, and it must exit 0 (clean stop, every mbuf back).
esw_stop_eswitchd() {
  local rc=0
  kill -INT "$SW_PID"
  wait "$SW_PID" || rc=$?
  SW_PID=""
  [[ $rc -eq 0 ]] || fail "eswitchd exited with $rc"
}
