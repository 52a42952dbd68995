#!/usr/bin/env bash
# Builds eswitch into build/ (or the dir given as $1 with extra meson options after it). Configures on first use.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
shift || true
if [[ ! -f "$BUILD/build.ninja" ]]; then
  meson setup "$BUILD" "$ROOT" "$@" >/dev/null
fi
ninja -C "$BUILD" >/dev/null || ninja -C "$BUILD"   # second run shows the error in full
