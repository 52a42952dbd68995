#!/usr/bin/python3
"""Old build against new build on a shared machine: cycles per packet from the worker thread's own on-CPU time.

run.sh's Mpps figures need a quiet machine: when the cores are shared with compiles, a busy-polling worker is
descheduled for long stretches and every rate (and eswitch's own TSC-based cycles/packet, which counts the time a
thread is descheduled inside a loop iteration) measures the machine's load, not the switch. Hardware counters
(`perf stat -e cycles`) are not available in these VMs. This script counts what the worker thread itself ran:
on-CPU nanoseconds from /proc/<pid>/task/<tid>/schedstat over a window, times the core clock, divided by the packets
received in that window (eswitchd's --stats-interval table). The main thread's on-CPU time over the same window is
reported as a share of the window (the main core's load with stats printed every 0.25 s: its work per interval
is fixed, so on a loaded machine it still gets done, later), and the resident size.

  ab_cpu.py --new build/dataplane/eswitchd --base /tmp/old/build/dataplane/eswitchd [--cases a,c10,c100k]
            [--rounds 3] [--window 3] [--out DIR]

Cases: a = 1 flow, cross_connect vport -> uplink (scenario a); cN = N rules (each its own ipv4_dst, ip_proto 17,
one mask), 10,000 flows spread over all N rules (scenario c at 1 mask). Each round runs new and base in turn
(order alternating), each started afresh, 64 B frames from net_pcap (infinite_rx) into net_null, main core 0,
worker core 1. Everything is named esw-ab<pid>..., under a private directory, removed at the end.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcapgen  # noqa: E402

SRC_MAC, DST_MAC = "02:00:c6:12:00:01", "02:00:c6:12:00:fe"
SRC_IP = pcapgen.ip_int("198.18.200.1")
DST_BASE = pcapgen.ip_int("198.18.0.0")
FLOWS = 10000


def cpu_hz() -> float:
    for line in open("/proc/cpuinfo"):
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) * 1e6
    raise SystemExit("ab_cpu: no 'cpu MHz' in /proc/cpuinfo")


def write_case(work: str, case: str, prefix: str) -> str:
    pcap = os.path.join(work, f"{case}.pcap")
    if case == "a":
        frames = [pcapgen.Frame(SRC_MAC, DST_MAC, SRC_IP, DST_BASE + 1, 1000, 2000)]
        n_rules = 0
    else:
        n_rules = int(case[1:].replace("k", "000"))
        frames = [pcapgen.Frame(SRC_MAC, DST_MAC, SRC_IP, DST_BASE + (k * n_rules) // FLOWS, 1000 + k % 50000, 2000)
                  for k in range(FLOWS)]
    pcapgen.write_pcap(pcap, frames)
    mbufs = 16384 + len(frames)
    y = ["apiVersion: eswitch/v1\n", "dataplane:\n", "  main_core: 0\n", "  worker_cores: [1]\n",
         f"  memory_mb: {256 + mbufs * 2560 // (1 << 20)}\n", f"  mbufs: {mbufs}\n", "  idle_sleep_us: 0\n",
         f"  file_prefix: {prefix}\n", "representors: {kind: none}\n",
         "uplinks:\n  - name: sink0\n    attach: {devargs: \"net_null0,no-rx=1\"}\n",
         "vports:\n  - name: vm1\n    spoofchk: false\n",
         f"    attach: {{devargs: \"net_pcap0,rx_pcap={pcap},infinite_rx=1\"}}\n"]
    if n_rules == 0:
        y.append("pipeline:\n  mode: cross_connect\n  cross_connect:\n    - {from: vm1, to: sink0}\n")
    else:
        y.append("tables:\n  - id: 0\n    rules:\n")
        for r in range(n_rules):
            y.append(f"      - {{priority: 1000, match: {{ipv4_dst: {pcapgen.ip_str(DST_BASE + r)}, ip_proto: 17}}, "
                     f"actions: [{{output: sink0}}]}}\n")
    path = os.path.join(work, f"{case}.yaml")
    with open(path, "w") as f:
        f.write("".join(y))
    return path


def on_cpu_ns(pid: int, tid: int) -> int:
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        return int(f.read().split()[0])


def threads(pid: int):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            out[int(tid)] = f.read().strip()
    return out


def rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Run:
    def __init__(self, binary, config, log, prefix, work):
        self.log_path = log
        self.prefix = prefix
        self.log = open(log, "w")
        state = os.path.join(work, f"state-{os.path.basename(log)}")
        self.proc = subprocess.Popen([binary, "--config", config, "--stats-interval", "0.25", "--api-socket", "none",
                                      "--state-dir", state], stdout=self.log, stderr=subprocess.STDOUT)

    def text(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def wait_ready(self, timeout=300):
        end = time.time() + timeout
        while time.time() < end:
            if "eswitchd: forwarding on" in self.text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"eswitchd exited: {self.text()[-800:]}")
            time.sleep(0.2)
        raise RuntimeError("eswitchd did not start")

    def rx(self) -> int:
        """vm1's rx_pkts in the last complete stats table."""
        rows = re.findall(r"^vm1\s+vport\s+\S+\s+(\d+)\s", self.text(), re.M)
        return int(rows[-1]) if rows else 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)


def measure(binary, config, work, tag, window, hz):
    prefix = f"esw-ab{os.getpid()}-{tag}"
    run = Run(binary, config, os.path.join(work, f"{tag}.log"), prefix, work)
    try:
        run.wait_ready()
        pid = run.proc.pid
        time.sleep(2.0)  # warm-up: caches, flow cache, first stats lines
        ts = threads(pid)
        worker = [t for t, c in ts.items() if "worker" in c]
        if len(worker) != 1:  # name not recognised: the busiest thread that is not the main one
            busy = sorted(((on_cpu_ns(pid, t), t) for t in ts if t != pid), reverse=True)
            worker = [busy[0][1]]
        w = worker[0]
        rx0, w0, m0, t0 = run.rx(), on_cpu_ns(pid, w), on_cpu_ns(pid, pid), time.time()
        time.sleep(window)
        time.sleep(0.3)  # the next stats table
        rx1, w1, m1, t1 = run.rx(), on_cpu_ns(pid, w), on_cpu_ns(pid, pid), time.time()
        rss = rss_kb(pid)
    finally:
        run.stop()
    pkts = rx1 - rx0
    if pkts <= 0 or w1 <= w0:
        raise RuntimeError(f"{tag}: no packets ({rx0} -> {rx1}) or no worker time ({w0} -> {w1} ns) in the window")
    return {"cycles_per_packet": (w1 - w0) * hz / 1e9 / pkts, "packets": pkts, "worker_on_cpu_s": (w1 - w0) / 1e9,
            "worker_share_of_wall": (w1 - w0) / 1e9 / (t1 - t0),
            "main_per_worker_s": (m1 - m0) / max(1, (w1 - w0)), "main_share_of_wall": (m1 - m0) / 1e9 / (t1 - t0),
            "rss_mb": rss / 1024}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new", required=True)
    ap.add_argument("--base", required=True)
    ap.add_argument("--cases", default="a,c10,c100k")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", type=float, default=3.0)
    ap.add_argument("--out", default=None)
    o = ap.parse_args()
    hz = cpu_hz()
    work = tempfile.mkdtemp(prefix=f"esw-ab{os.getpid()}-")
    results = {"cpu_hz": hz, "new": o.new, "base": o.base, "cases": {}}
    try:
        for case in o.cases.split(","):
            res = results["cases"][case] = {"new": [], "base": []}
            for rnd in range(o.rounds):
                order = ("new", "base") if rnd % 2 == 0 else ("base", "new")
                for b in order:
                    config = write_case(work, case, f"esw-ab{os.getpid()}-{b}")
                    for attempt in range(3):  # a window in which the shared machine ran nothing of ours
                        try:
                            r = measure(getattr(o, b), config, work, f"{case}-{b}-{rnd}", o.window, hz)
                            break
                        except RuntimeError as e:
                            print(f"{case} round {rnd + 1} {b}: {e}; again", flush=True)
                    else:
                        raise SystemExit(f"ab_cpu: {case} {b}: three windows without a figure")
                    res[b].append(r)
                    print(f"{case} round {rnd + 1} {b:4}: {r['cycles_per_packet']:7.1f} cycles/packet on CPU "
                          f"({r['packets']} packets, worker on CPU {r['worker_share_of_wall']:.0%} of the window), "
                          f"main thread on CPU {r['main_share_of_wall']:.2%} of the window, RSS {r['rss_mb']:.0f} MB",
                          flush=True)
            med = {b: statistics.median(x["cycles_per_packet"] for x in res[b]) for b in ("new", "base")}
            paired = [n["cycles_per_packet"] / b["cycles_per_packet"] for n, b in zip(res["new"], res["base"])]
            res["median_cycles_per_packet"] = med
            res["paired_new_over_base"] = paired
            print(f"{case}: median cycles/packet new {med['new']:.1f}, base {med['base']:.1f}; new/base paired "
                  f"{statistics.median(paired):.3f} [{min(paired):.3f}-{max(paired):.3f}]", flush=True)
    finally:
        if o.out:
            os.makedirs(o.out, exist_ok=True)
            with open(os.path.join(o.out, "ab_cpu.json"), "w") as f:
                json.dump(results, f, indent=1)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
