#!/usr/bin/env bash
# The dependency direction the folders promise (dataplane/README.md): the fast path includes nothing of the
# control side; the rule compiler nothing of the daemon; backends (ports/, representors/, vdpa/) nothing of the
# daemon; control/ and config/ nothing of the daemon or the fast path's runtime. Fails naming each offending
# include.
#
# usage: layering.sh SOURCE_ROOT
set -euo pipefail
ROOT=${1:?usage: $0 source-root}
cd "$ROOT"
bad=0
check() {  # check DIR FORBIDDEN-PREFIX...
  local dir=$1
  shift
  local f p
  for p in "$@"; do
    while IFS= read -r f; do
      echo "layering: $f includes \"$p...\" (not allowed from $dir)"
      bad=1
    done < <(grep -lE "^#include \"$p" "$dir"/*.h "$dir"/*.cc 2>/dev/null || true)
  done
}
check dataplane/fastpath dataplane/rules/ dataplane/daemon/ dataplane/ports/ config/ control/ representors/ vdpa/
check dataplane/rules dataplane/daemon/ dataplane/ports/ control/ representors/ vdpa/
check dataplane/ports dataplane/daemon/ dataplane/rules/ control/ representors/ vdpa/
check dataplane/offload dataplane/daemon/ dataplane/rules/ dataplane/ports/ control/ representors/ vdpa/ config/
check representors dataplane/daemon/ control/ vdpa/
check vdpa dataplane/daemon/ control/ representors/
# The SMC codec is self-contained: the fast path and the daemon both use it.
check dataplane/smc dataplane/fastpath/ dataplane/rules/ dataplane/daemon/ dataplane/ports/ config/ control/ representors/ vdpa/
check config dataplane/ representors/ vdpa/
# config/ may include the API's protocol constants (header-only), nothing else of control/.
for f in $(grep -lE '^#include "control/' config/*.h config/*.cc 2>/dev/null || true); do
  if grep -E '^#include "control/' "$f" | grep -vq '"control/api_protocol.h"'; then
    echo "layering: $f includes control/ beyond control/api_protocol.h"
    bad=1
  fi
done
check control dataplane/daemon/ dataplane/ports/ representors/ vdpa/
[[ $bad -eq 0 ]] || exit 1
echo "ok: fastpath <- rules <- daemon; ports <- representors, vdpa <- daemon; control and config free of the daemon"
