#!/usr/bin/env bash
# Fuzzes the management API's request handling (tests/fuzz/api_request_fuzz.cc: the envelope parser with its
# depth and size bounds, error replies, and the rule-string parser the runtime `rules` method shares with the
# YAML): builds it with clang (-fsanitize=fuzzer,address,undefined; no DPDK needed) with config/ and
# dataplane/daemon/api_request.cc into a temporary directory and runs libFuzzer for a fixed time, starting from
# the corpus kept in the repo (tests/fuzz/api_corpus/; new inputs go to the temporary directory, not the repo).
#
#   tests/fuzz/run_api_fuzz.sh [seconds=20] [extra libFuzzer flags...]
#
# Exit status: 0 no finding; 77 skipped (no clang++ / libFuzzer runtime: meson counts 77 as a skip); anything
# else a build failure or a crash / invariant violation / leak / timeout, with the reproducer kept (path
# printed). CLANGXX overrides the compiler.
set -euo pipefail

secs="${1:-20}"
shift || true
case "$secs" in '' | *[!0-9]*) echo "run_api_fuzz.sh: seconds must be a number, got '$secs'" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cxx="${CLANGXX:-clang++}"
if ! command -v "$cxx" > /dev/null 2>&1; then
  echo "run_api_fuzz.sh: $cxx not found, skipping" >&2
  exit 77
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/esw-api-fuzz.XXXXXX")"
keep=0
cleanup() { if [ "$keep" = 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' > "$work/probe.cc"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$work/probe.cc" -o "$work/probe" > /dev/null 2>&1; then
  echo "run_api_fuzz.sh: $cxx cannot link -fsanitize=fuzzer (install libclang-rt-dev), skipping" >&2
  exit 77
fi

/usr/bin/python3 "$root/config/embed.py" "$root/config/default.yaml" "$work/default_yaml.cc"
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -Wall -Wextra -Wpedantic -Werror -Wno-missing-field-initializers -I"$root" -I"$root/tests")
echo "run_api_fuzz.sh: building in $work" >&2
"$cxx" "${flags[@]}" "$root"/config/*.cc "$work/default_yaml.cc" "$root/dataplane/daemon/api_request.cc" \
  "$root/tests/fuzz/api_request_fuzz.cc" -lyaml-cpp -lfmt -o "$work/api_request_fuzz"

mkdir -p "$work/corpus"
status=0
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
ASAN_OPTIONS="abort_on_error=0:detect_leaks=1" \
  "$work/api_request_fuzz" -max_total_time="$secs" -max_len=300000 -timeout=10 -rss_limit_mb=2048 \
  -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 -artifact_prefix="$work/" "$@" \
  "$work/corpus" "$root/tests/fuzz/api_corpus" || status=$?
if [ "$status" -eq 77 ]; then status=1; fi

if [ "$status" -ne 0 ]; then
  keep=1
  echo "run_api_fuzz.sh: FAILED (exit $status); reproducer(s) and binary kept in $work:" >&2
  ls -1 "$work" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' >&2 || true
  echo "reproduce with: $work/api_request_fuzz $work/<file>" >&2
  exit "$status"
fi
echo "run_api_fuzz.sh: no findings in ${secs}s" >&2
