#!/usr/bin/env bash
# Runs every test: installs what is missing, builds (normal and ASan+UBSan), runs all meson test suites (unit,
# integration, e2e with network namespaces, fuzz, benchmark smoke runs) and the unit + integration suites again
# under the sanitizers. Exit status is non-zero on any failure. Ends with "N passed, N failed".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [[ $(id -u) -ne 0 ]]; then
  echo "test: run as root (network namespaces, af_packet ports): sudo $0" >&2
  exit 1
fi

bash scripts/setup.sh
bash scripts/build.sh "$ROOT/build"
ESW_SKIP_ASAN=${ESW_SKIP_ASAN:-0}
if [[ "$ESW_SKIP_ASAN" != 1 ]]; then
  bash scripts/build.sh "$ROOT/build-asan" -Dsanitize=true -Dbuildtype=debug
fi

status=0
meson test -C build --print-errorlogs --num-processes 1 || status=1
if [[ "$ESW_SKIP_ASAN" != 1 ]]; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    meson test -C build-asan --print-errorlogs --num-processes 1 --suite unit --suite integration || status=1
fi

/usr/bin/python3 - build build-asan <<'PY'
import json, os, sys
passed = failed = skipped = 0
for d in sys.argv[1:]:
    log = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        continue
    for line in open(log):
        r = json.loads(line)
        res = r.get("result")
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
