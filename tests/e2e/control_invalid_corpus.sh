#!/usr/bin/env bash
# End-to-end: every invalid config of the corpus (tests/config/invalid/*.yaml) is applied to a running eswitchd
# that forwards traffic the whole time. Each apply must be refused with the errors the file's
# `# expect: <path> | <line>:<col> | <fragment>` lines announce (located in that file), the running config must
# stay exactly what it was, and the forwarding counters must keep increasing between applies.
#
# usage: control_invalid_corpus.sh PATH/TO/eswitchd PATH/TO/eswitchctl
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=${ESW_INVALID_CORPUS:-$HERE/../config/invalid}
# shellcheck source=control_lib.sh
source "$HERE/control_lib.sh"
ctl_setup ctlcorpus

compgen -G "$CORPUS/*.yaml" >/dev/null || { echo "SKIP: no corpus in $CORPUS"; exit 77; }
{ ctl_config_head; ctl_fwd_table; } >"$WORK/running.yaml"
ctl_start "$WORK/running.yaml"

/usr/bin/python3 - "$ESWITCHCTL" "$SOCK" "$WORK/running.yaml" "$CORPUS" <<'PY'
import glob, json, os, re, subprocess, sys, time

ctl, sock, running_file, corpus = sys.argv[1:]
running = open(running_file).read()

def run(*args):
    p = subprocess.run([ctl, "--socket", sock, *args], capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr

def vm2_tx():
    rc, out, err = run("show", "ports", "--json")
    assert rc == 0, err
    return [p["tx_packets"] for p in json.loads(out)["ports"] if p["name"] == "vm2"][0]

expect_re = re.compile(r"^# expect:\s*(.*?)\s*\|\s*(\d+):(\d+)\s*\|\s*(.*?)\s*$")
failures = []
failed_files = set()
files = sorted(glob.glob(os.path.join(corpus, "*.yaml")))
tx = vm2_tx()
start = time.monotonic()
for path in files:
    name = os.path.basename(path)
    expects = []
    for line in open(path, encoding="utf-8", errors="replace"):
        m = expect_re.match(line)
        if m:
            expects.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
    if not expects:
        failures.append(f"{name}: no '# expect:' lines")
        continue
    rc, out, err = run("apply", "--json", path)
    try:
        reply = json.loads(out)
    except ValueError:
        failures.append(f"{name}: apply printed no JSON (rc {rc}): {err.strip()}")
        continue
    if rc != 1 or reply.get("ok") is not False:
        failures.append(f"{name}: an invalid config was accepted (rc {rc})")
        continue
    got = reply["error"].get("errors", [])
    for (epath, eline, ecol, frag) in expects:
        if not any(e["path"] == epath and e["line"] == eline and e["column"] == ecol and frag in e["message"]
                   for e in got):
            failures.append(f"{name}: expected error {epath or '(source)'} at {eline}:{ecol} containing {frag!r}; got: "
                            + "; ".join(f"{e['path']} {e['line']}:{e['column']} {e['message']}" for e in got))
    # Nothing changed, and the switch kept forwarding meanwhile.
    rc, out, err = run("config", "--json")
    cfg = json.loads(out)
    if cfg["yaml"] != running or cfg["generation"] != 1:
        failures.append(f"{name}: the running config changed (generation {cfg['generation']})")
        running = cfg["yaml"]
    # The worker shares its core with whatever else runs on this machine: a sample taken a few ms after the
    # last one may see no progress for scheduling reasons alone, so give it up to 2 s.
    deadline = time.monotonic() + 2
    now = vm2_tx()
    while now <= tx and time.monotonic() < deadline:
        time.sleep(0.05)
        now = vm2_tx()
    if now <= tx:
        failures.append(f"{name}: forwarding stalled (vm2 tx {tx} -> {now} over 2 s)")
    tx = now
elapsed = time.monotonic() - start
for f in failures:
    print("FAIL:", f, file=sys.stderr)
    failed_files.add(f.split(":")[0])
print(f"{len(files)} invalid configs applied in {elapsed:.1f} s: {len(files) - len(failed_files)} refused with the "
      f"expected located errors, the running config unchanged and forwarding continuing")
sys.exit(1 if failures else 0)
PY

ctl_stop
echo "PASS: the invalid-config corpus is refused by a running eswitchd that keeps forwarding"
