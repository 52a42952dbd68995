#!/usr/bin/python3
"""Where the worker's time goes: perf samples of eswitchd's worker thread only, by source line.

  perf_worker.py --eswitchd build/dataplane/eswitchd [--cases a,c10,c100k] [--seconds 8] [--out DIR] [--top 25]

Each case is ab_cpu.py's (a = 1 flow cross_connect; cN = N rules over one mask, 10,000 flows): eswitchd starts
with main core 0 and worker core 1, warms up 2 s, then `perf record -e cpu-clock -t <worker tid>` samples only that
thread, so time it is descheduled (this machine is shared, and has no PMU for `cycles`) is not counted. The report
is by symbol and by source line (the fast path is inlined into the worker loop, so symbols alone say little);
both are printed and written to DIR/<case>.{sym,line}.txt with the raw perf.data.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ab_cpu  # noqa: E402


def report(data: str, sort: str, top: int) -> str:
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                          "--percent-limit", "0.5"], capture_output=True, text=True, check=True).stdout
    rows = [l for l in out.splitlines() if l.strip() and not l.startswith("#")]
    return "\n".join(rows[:top])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eswitchd", required=True)
    ap.add_argument("--cases", default="a,c10,c100k")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("perf_worker: perf is not installed (Debian: linux-perf)")
    work = tempfile.mkdtemp(prefix=f"esw-perf{os.getpid()}-")
    out = a.out or work
    os.makedirs(out, exist_ok=True)
    try:
        for case in a.cases.split(","):
            prefix = f"esw-perf{os.getpid()}-{case}"
            config = ab_cpu.write_case(work, case, prefix)
            run = ab_cpu.Run(os.path.abspath(a.eswitchd), config, os.path.join(work, f"{case}.log"), prefix, work)
            try:
                run.wait_ready()
                time.sleep(2.0)
                ts = ab_cpu.threads(run.proc.pid)
                worker = [t for t, c in ts.items() if "worker" in c]
                if len(worker) != 1:
                    raise SystemExit(f"perf_worker: {case}: no single worker thread among {ts}")
                data = os.path.join(out, f"{case}.perf.data")
                rx0 = run.rx()
                subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-t", str(worker[0]), "-o", data, "--",
                                "sleep", str(a.seconds)], check=True, stdout=subprocess.DEVNULL)
                time.sleep(0.3)
                pkts = run.rx() - rx0
            finally:
                run.stop()
            sym = report(data, "sym", a.top)
            line = report(data, "srcline", a.top)
            for kind, text in (("sym", sym), ("line", line)):
                with open(os.path.join(out, f"{case}.{kind}.txt"), "w") as f:
                    f.write(text + "\n")
            print(f"== {case}: {pkts} packets in the window; worker samples by symbol\n{sym}\n"
                  f"== {case}: by source line\n{line}\n", flush=True)
    finally:
        if a.out:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
