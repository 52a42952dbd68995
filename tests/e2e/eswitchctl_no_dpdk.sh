#!/usr/bin/env bash
# eswitchctl links no DPDK library (issue 9: the offline validator uses the rule compiler, not the runtime
# pipeline). Checked on the built binaries: `ldd eswitchctl` lists no librte_* and eswitchctl imports no rte_*
# symbol. The same checks run on eswitchd first and must find DPDK there, so a broken check cannot pass.
#
# usage: eswitchctl_no_dpdk.sh PATH/TO/eswitchctl PATH/TO/eswitchd
set -euo pipefail
ESWITCHCTL=${1:?usage: $0 eswitchctl eswitchd}
ESWITCHD=${2:?usage: $0 eswitchctl eswitchd}

dpdk_libs() { ldd "$1" | awk '{print $1}' | grep '^librte_' || true; }
dpdk_symbols() { nm -D --undefined-only "$1" | awk '{print $NF}' | grep '^rte_' || true; }

# The detector works: eswitchd is a DPDK program.
if ! ldd "$ESWITCHD" >/dev/null; then echo "FAIL: ldd $ESWITCHD failed"; exit 1; fi
if [[ -z "$(dpdk_libs "$ESWITCHD")" || -z "$(dpdk_symbols "$ESWITCHD")" ]]; then
  echo "FAIL: the check finds no DPDK in eswitchd either; it cannot be trusted"
  exit 1
fi

if ! ldd "$ESWITCHCTL" >/dev/null; then echo "FAIL: ldd $ESWITCHCTL failed"; exit 1; fi
libs=$(dpdk_libs "$ESWITCHCTL")
syms=$(dpdk_symbols "$ESWITCHCTL")
if [[ -n "$libs" || -n "$syms" ]]; then
  echo "FAIL: eswitchctl links DPDK"
  [[ -n "$libs" ]] && echo "libraries: $(echo $libs)"
  [[ -n "$syms" ]] && echo "symbols: $(echo $syms | head -c 2000)"
  exit 1
fi
echo "ok: eswitchctl links no librte_* library and imports no rte_* symbol"
