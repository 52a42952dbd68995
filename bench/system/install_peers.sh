#!/usr/bin/env bash
# Installs what the system benchmark needs from Debian, and only what is missing: dpdk-testpmd (dpdk-dev),
# Open vSwitch with its DPDK datapath (openvswitch-switch-dpdk) and gnuplot for the plots.
#
# Package scripts must not start Open vSwitch: the benchmark runs its own private instance. While installing,
# a policy-rc.d that refuses every service start is in place (removed afterwards if we created it), and any
# ovsdb-server / ovs-vswitchd that appeared during the install anyway is stopped by its pid.
#
#   install_peers.sh [--no-ovs] [--no-plots]     exit 0 when everything wanted is there
set -euo pipefail

want_ovs=1
want_plots=1
for a in "$@"; do
  case "$a" in
    --no-ovs) want_ovs=0 ;;
    --no-plots) want_plots=0 ;;
    *) echo "install_peers: unknown option $a" >&2; exit 2 ;;
  esac
done

PKGS=(dpdk-dev)
((want_ovs)) && PKGS+=(openvswitch-switch-dpdk)
((want_plots)) && PKGS+=(gnuplot-nox)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install_peers: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi

ovs_pids() { pgrep -x 'ovsdb-server|ovs-vswitchd|ovs-vswitchd-dp' 2>/dev/null | sort || true; }
before=$(ovs_pids)

POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  ((created_policy)) && rm -f "$POLICY"
  return 0
}
trap cleanup EXIT INT TERM
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\n# eswitch bench: no service starts while packages install\nexit 101\n' >"$POLICY"
  chmod 755 "$POLICY"
  created_policy=1
fi

echo "install_peers: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# Whatever Open vSwitch daemon the install started (it should have started none) is stopped again.
for pid in $(comm -13 <(echo "$before") <(ovs_pids)); do
  echo "install_peers: stopping $(ps -o comm= -p "$pid") (pid $pid) started by the package" >&2
  kill "$pid" 2>/dev/null || true
done
exit 0
