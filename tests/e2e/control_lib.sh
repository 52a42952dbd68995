# shellcheck shell=bash
# Shared by the control_*.sh end-to-end tests: a real eswitchd forwarding real traffic on DPDK virtual devices
# (net_pcap replaying a pcap forever into uplink0, net_null sinks for the vports), driven by eswitchctl over the
# API socket. Everything lives under a private work directory and a private DPDK file prefix; the EXIT trap
# stops eswitchd (SIGKILL if it must) and removes what the test created, whatever happened.
#
# Caller sets ESWITCHD and ESWITCHCTL, sources this file, then calls ctl_setup NAME.

ctl_setup() {
  local name=$1
  [[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (DPDK)"; exit 77; }
  WORK=$(mktemp -d "/tmp/esw-${name}.XXXXXX")
  PREFIX="esw-${name}-$$"
  SOCK="$WORK/run/eswitchd.sock"
  SW_PID=""
  CTL_EXTRA_CLEANUP=()
  trap ctl_cleanup EXIT
  trap 'exit 130' INT TERM
  ctl_make_pcap "$WORK/traffic.pcap"
}

ctl_cleanup() {
  local rc=$?
  local c
  for c in "${CTL_EXTRA_CLEANUP[@]}"; do eval "$c" || true; done
  if [[ -n "$SW_PID" ]] && kill -0 "$SW_PID" 2>/dev/null; then
    kill -INT "$SW_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SW_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SW_PID" 2>/dev/null || true
  fi
  rm -rf "/var/run/dpdk/$PREFIX"
  if [[ $rc -ne 0 && -f "$WORK/eswitchd.log" ]]; then sed 's/^/  eswitchd: /' "$WORK/eswitchd.log" | tail -30 >&2; fi
  rm -rf "$WORK"
  exit $rc
}

fail() { echo "FAIL: $*" >&2; exit 1; }

ctl() { "$ESWITCHCTL" --socket "$SOCK" "$@"; }

# 64 UDP frames 198.18.0.1 -> 198.18.0.2 (distinct source ports), addressed to vm2's MAC.
ctl_make_pcap() {
  /usr/bin/python3 - "$1" <<'PY'
import struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
def frame(i):
    payload = bytes(18)
    udp = struct.pack('!HHHH', 1000 + i, 2000, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, bytes([198, 18, 0, 1]),
                     bytes([198, 18, 0, 2]))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    return bytes.fromhex('0200c6120002') + bytes.fromhex('0200c61200fe') + b'\x08\x00' + ip + udp
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(64):
        b = frame(i)
        f.write(struct.pack('<IIII', 0, 0, len(b), len(b)) + b)
PY
}

# The config header every control test shares: uplink0 replays the pcap, vm1/vm2 are sinks. $1: extra dataplane
# lines (indented two spaces), may be empty.
ctl_config_head() {
  cat <<YAML
apiVersion: eswitch/v1
dataplane:
  main_core: 0
  worker_cores: [1]
  memory_mb: 256
  hugepages: off
  mbufs: 8192
  file_prefix: $PREFIX
  api_socket: $SOCK
${1:-}
uplinks:
  - name: uplink0
    attach: { devargs: "net_pcap0,rx_pcap=$WORK/traffic.pcap,infinite_rx=1" }
vports:
  - name: vm1
    hw_addr: "02:00:c6:12:00:01"
    spoofchk: false
    attach: { devargs: "net_null0,no-rx=1" }
  - name: vm2
    hw_addr: "02:00:c6:12:00:02"
    spoofchk: false
    attach: { devargs: "net_null1,no-rx=1" }
representors: { kind: none }
YAML
}

# The table the control tests forward with: uplink0's UDP (the pcap's frames) counted and sent to vm2. Rules printed
# after it (indented six spaces) join its list.
ctl_fwd_table() {
  cat <<'YAML'
tables:
  - id: 0
    rules:
      - name: fwd
        priority: 1000
        match: { in_port: uplink0, udp: true }
        actions: [count, output: vm2]
YAML
}

# Starts eswitchd on CONFIG and waits until it forwards and its API answers.
ctl_start() {
  local config=$1
  rm -f "$WORK/ready"
  "$ESWITCHD" --config "$config" --state-dir "$WORK/state" --ready-file "$WORK/ready" >"$WORK/eswitchd.log" 2>&1 &
  SW_PID=$!
  for _ in $(seq 300); do
    [[ -e "$WORK/ready" ]] && break
    kill -0 "$SW_PID" 2>/dev/null || fail "eswitchd exited during start-up"
    sleep 0.1
  done
  [[ -e "$WORK/ready" ]] || fail "eswitchd did not become ready"
  ctl ping >/dev/null || fail "eswitchd does not answer on $SOCK"
}

# Stops eswitchd with SIGINT; it must exit 0, with every mbuf back and its socket removed.
ctl_stop() {
  kill -INT "$SW_PID"
  local rc=0
  wait "$SW_PID" || rc=$?
  SW_PID=""
  [[ $rc -eq 0 ]] || fail "eswitchd exited with $rc after SIGINT"
  grep -q "stopped cleanly; all .* mbufs back in the pool" "$WORK/eswitchd.log" || fail "no clean-stop report"
  [[ ! -e "$SOCK" ]] || fail "API socket $SOCK left behind"
  [[ ! -e "/var/run/dpdk/$PREFIX" ]] || fail "DPDK runtime directory left behind"
}

# A JSON value from a command's --json output: ctl_json 'python expression over j' CMD...
ctl_json() {
  local expr=$1
  shift
  "$@" | /usr/bin/python3 -c "import json, sys; j = json.load(sys.stdin); print($expr)"
}

# Packets vm2 has sent (the forwarding counter the tests watch).
ctl_vm2_tx() { ctl_json '[p["tx_packets"] for p in j["ports"] if p["name"] == "vm2"][0]' ctl show ports --json; }
