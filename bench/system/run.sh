#!/usr/bin/env bash
# System benchmarks: eswitch side by side with dpdk-testpmd and Open vSwitch (DPDK datapath). See bench/README.md.
#
#   sudo bench/system/run.sh [--short] [--no-build] [--no-install] [bench.py options...]
#
#   sudo bench/system/run.sh --scenarios a,b --eswitch-baseline /path/to/old/eswitchd   (old vs new build)
#
# Builds eswitchd (only that target) unless --no-build, installs the peers from Debian unless --no-install
# (bench/system/install_peers.sh; with --short, missing peers are skipped instead), then runs bench.py pinned to
# core 0. --eswitch-baseline PATH adds a second, already built eswitchd as system "eswitch-base" (not built here).
# Results: results/<timestamp>/{results.json,table.md,mpps_vs_rules.png,mpps_vs_flows.png}.
# Every process, DPDK runtime directory, socket and network namespace it creates is removed at the end, also on
# Ctrl-C or SIGTERM; after a SIGKILL, `bench/system/bench.py --cleanup /tmp/eswb<pid>` does it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3   # Debian's interpreter (not a pyenv one on PATH)

build=1
install=1
short=0
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --no-install) install=0 ;;
    --short) short=1; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  echo "bench: run as root: sudo $0 $*" >&2
  ((short)) && exit 77   # the test suite's "skipped"
  exit 1
fi

# Short mode installs nothing (it runs from the test suite): peers that are missing are skipped.
if ((install && !short)); then
  bash "$ROOT/scripts/setup.sh"
  bash "$HERE/install_peers.sh"
fi

if ((build)); then
  BUILD="$ROOT/build"
  if [[ ! -f "$BUILD/build.ninja" ]]; then
    meson setup "$BUILD" "$ROOT" >/dev/null
  fi
  echo "bench: building eswitchd" >&2
  ninja -C "$BUILD" dataplane/eswitchd >/dev/null || ninja -C "$BUILD" dataplane/eswitchd
fi

# The harness itself stays off the forwarding cores; each system pins its own threads. bench.py handles INT,
# TERM and HUP itself (stops what it started, removes what it created), so it replaces this shell.
exec taskset -c 0 "$PY" "$HERE/bench.py" "${args[@]}"
