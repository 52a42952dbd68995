#!/usr/bin/env bash
# Fuzzes the YAML config loader: builds config/*.cc + tests/fuzz/config_fuzz.cc with clang
# (-fsanitize=fuzzer,address,undefined; yaml-cpp and fmt from Debian) into a temporary directory and runs libFuzzer
# for a fixed time, seeded with the configs kept in the repo (tests/config/valid, tests/config/invalid: read only;
# what the fuzzer finds goes to a temporary corpus).
#
#   tests/fuzz/run_config_fuzz.sh [seconds=20] [extra libFuzzer flags...]
#
# Exit status as run_fuzz.sh: 0 no finding; 77 skipped (no clang++ / libFuzzer runtime); anything else a build
# failure or a crash / invariant violation / leak / timeout, with the reproducer kept (path printed).
set -euo pipefail

secs="${1:-20}"
shift || true
case "$secs" in '' | *[!0-9]*) echo "run_config_fuzz.sh: seconds must be a number, got '$secs'" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cxx="${CLANGXX:-clang++}"
if ! command -v "$cxx" > /dev/null 2>&1; then
  echo "run_config_fuzz.sh: $cxx not found, skipping" >&2
  exit 77
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/esw-config-fuzz.XXXXXX")"
keep=0
cleanup() { if [ "$keep" = 0 ]; then rm -rf "$work"; fi; }
trap cleanup EXIT

printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' > "$work/probe.cc"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$work/probe.cc" -o "$work/probe" > /dev/null 2>&1; then
  echo "run_config_fuzz.sh: $cxx cannot link -fsanitize=fuzzer (install libclang-rt-dev), skipping" >&2
  exit 77
fi

flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
       -Wall -Wextra -Wpedantic -Werror -Wno-missing-field-initializers -I"$root")
echo "run_config_fuzz.sh: building in $work" >&2
# The loader's sources as config/meson.build lists them (default_yaml.cc is generated there too).
mapfile -t sources < <(sed -n "/static_library('esw_config'/,/)/p" "$root/config/meson.build" |
  grep -o "'[a-z_]*\.cc'" | tr -d "'" | sed "s|^|$root/config/|")
[ "${#sources[@]}" -gt 5 ] || { echo "run_config_fuzz.sh: cannot read the source list of config/meson.build" >&2; exit 1; }
/usr/bin/python3 "$root/config/embed.py" "$root/config/default.yaml" "$work/default_yaml.cc"
"$cxx" "${flags[@]}" "${sources[@]}" "$work/default_yaml.cc" "$root/tests/fuzz/config_fuzz.cc" \
  -lyaml-cpp -lfmt -o "$work/config_fuzz"

mkdir -p "$work/corpus"
status=0
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
ASAN_OPTIONS="abort_on_error=0:detect_leaks=1" \
  "$work/config_fuzz" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
  -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 -artifact_prefix="$work/" "$@" \
  "$work/corpus" "$root/tests/config/valid" "$root/tests/config/invalid" || status=$?
if [ "$status" -eq 77 ]; then status=1; fi

if [ "$status" -ne 0 ]; then
  keep=1
  echo "run_config_fuzz.sh: FAILED (exit $status); reproducer(s) and binary kept in $work:" >&2
  ls -1 "$work" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' >&2 || true
  echo "reproduce with: $work/config_fuzz $work/<file>" >&2
  exit "$status"
fi
echo "run_config_fuzz.sh: no findings in ${secs}s" >&2
