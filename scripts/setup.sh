#!/usr/bin/env bash
# Installs every Debian package eswitch needs to build, test and run its demo.
# Idempotent: installs only what is missing; runs `apt-get update` at most once per call.
set -euo pipefail

PKGS=(
  # build
  build-essential g++ clang meson ninja-build pkg-config
  libdpdk-dev dpdk-dev libyaml-cpp-dev libbpf-dev libxdp-dev libelf-dev libpcap-dev libnuma-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libclang-rt-14-dev
  # tests and demo
  iproute2 ethtool iputils-ping netcat-openbsd tcpdump tshark python3 python3-scapy procps psmisc
  # a real Linux virtio_net guest under QEMU (TCG) for the vhost-user tests; its kernel is downloaded, not installed
  qemu-system-x86 busybox-static
  # unmodified programs under esw-smc-run (tests/e2e/smc_run_apps.sh, bench/smc_ism_switch.sh)
  sockperf iperf3 redis-server redis-tools
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]} (re-run as root to install them)" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer once, non-interactively.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
