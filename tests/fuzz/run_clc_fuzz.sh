#!/usr/bin/env bash
# Fuzzes the SMC CLC codec and the session table's reassembly: builds dataplane/smc/{clc,session_table}.cc +
# tests/fuzz/clc_fuzz.cc with clang
# (-fsanitize=fuzzer,address,undefined; no DPDK) into a temporary directory and runs libFuzzer for a fixed time
# from the seed corpus tests/fuzz/clc_corpus (copied: the repository is not written).
#
#   tests/fuzz/run_clc_fuzz.sh [seconds=20] [extra libFuzzer flags...]
#
# Exit status: 0 no finding; 77 skipped (no clang++ / libFuzzer runtime); anything else a build failure or a
# crash / invariant violation / leak / timeout, with the reproducer kept (path printed). CLANGXX overrides the
# compiler.
set -euo pipefail

secs="${1:-20}"
shift || true
case "$secs" in '' | *[!0-9]*) echo "run_clc_fuzz.sh: seconds must be a number, got '$secs'" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cxx="${CLANGXX:-clang++}"
if ! command -v "$cxx" > /dev/null 2>&1; then
  echo "run_clc_fuzz.sh: $cxx not found, skipping" >&2
  exit 77
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/esw-clc-fuzz.XXXXXX")"
keep=0
cleanup() { if [ "$keep" = 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' > "$work/probe.cc"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$work/probe.cc" -o "$work/probe" > /dev/null 2>&1; then
  echo "run_clc_fuzz.sh: $cxx cannot link -fsanitize=fuzzer (install libclang-rt-dev), skipping" >&2
  exit 77
fi

seeds="$root/tests/fuzz/clc_corpus"
n=$(find "$seeds" -name '*.bin' | wc -l)
if [ "$n" -lt 20 ]; then
  echo "run_clc_fuzz.sh: seed corpus $seeds has $n files (expected one per message kind, >= 20)" >&2
  exit 1
fi

flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -Wall -Wextra -Wpedantic -Werror -Wno-missing-field-initializers -I"$root")
echo "run_clc_fuzz.sh: building in $work" >&2
"$cxx" "${flags[@]}" "$root/dataplane/smc/clc.cc" "$root/dataplane/smc/session_table.cc" \
  "$root/tests/fuzz/clc_fuzz.cc" -o "$work/clc_fuzz"

mkdir -p "$work/corpus"
cp "$seeds"/*.bin "$work/corpus/"
status=0
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
ASAN_OPTIONS="abort_on_error=0:detect_leaks=1" \
  "$work/clc_fuzz" -max_total_time="$secs" -max_len=1100 -timeout=10 -rss_limit_mb=2048 \
  -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 -artifact_prefix="$work/" "$@" \
  "$work/corpus" || status=$?
if [ "$status" -eq 77 ]; then status=1; fi

if [ "$status" -ne 0 ]; then
  keep=1
  echo "run_clc_fuzz.sh: FAILED (exit $status); reproducer(s) and binary kept in $work:" >&2
  ls -1 "$work" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' >&2 || true
  echo "reproduce with: $work/clc_fuzz $work/<file>" >&2
  exit "$status"
fi
echo "run_clc_fuzz.sh: no findings in ${secs}s" >&2
