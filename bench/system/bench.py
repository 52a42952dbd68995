#!/usr/bin/python3
"""System benchmarks: eswitch side by side with dpdk-testpmd (the ceiling) and Open vSwitch (DPDK datapath).

Run through bench/system/run.sh, which builds eswitchd and installs the peers first; see bench/README.md.

Method: every point of every scenario is run for every system that can express it, the systems interleaved run by
run (run 1: eswitch, testpmd, OVS; run 2: the same, order rotated; ...), because figures on these VMs drift within
minutes. Each run starts the system, waits until its rate is steady, measures the packets it received (rx) and
sent to its sink (tx) over a window, and stops it. A point's figure is the median over the runs, with min and max.

  bench.py [--short] [--runs N] [--window S] [--systems a,b] [--scenarios a,b,...] [--workers N] [--out DIR]
           [--eswitchd PATH] [--eswitch-baseline PATH]
  bench.py --cleanup RUN_DIR      remove what an interrupted run left (processes, DPDK dirs, netns)
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import report  # noqa: E402
import scenarios  # noqa: E402
import systems  # noqa: E402
from procs import Registry, cleanup_run  # noqa: E402

ALL_SYSTEMS = ["eswitch", "testpmd-io", "testpmd-macswap", "ovs"]
# --eswitch-baseline PATH: a second eswitchd (the build before a change) measured as one more system, interleaved
# with the others wherever eswitch runs.
BASELINE = "eswitch-base"
ALL_SCENARIOS = ["a", "b", "bv", "c", "d", "d-rx", "e", "f", "flows"]


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


# ---------------------------------------------------------------------------------------------------------------
# One measurement


class Churner:
    """Changes rules at a fixed rate (batches of adds + deletes of ACL-shaped rules that no traffic matches, so
    verdicts stay the same) while running; records how many changes it achieved. One per system and point: the
    rules it added stay across runs."""

    def __init__(self, system, setup, rate: int, batch: int):
        self.system, self.setup, self.rate, self.batch = system, setup, rate, batch
        self.next_id = 0
        self.live = []
        self.vports = [s.name for s in setup.sources]
        self.thread = None

    def make_rule(self):
        j = self.next_id
        self.next_id += 1
        dst = scenarios.pcapgen.ip_str(scenarios.pcapgen.ip_int("198.19.128.0") + j % 30000)
        return scenarios.Rule(0, 1000, [("in_port", self.vports[j % len(self.vports)]), ("ipv4_dst", dst),
                                        ("ip_proto", "17"), ("udp_dst", str(1024 + j % 60000))],
                              [("output", scenarios.SINK)])

    def prefill(self, n: int):
        if self.live:
            return
        adds = [self.make_rule() for _ in range(n)]
        self.system.churn(adds, [])
        self.live += adds

    def start(self):
        self.stop_event = threading.Event()
        self.changes = 0
        self.elapsed = 0.0
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join(120)
        if self.thread.is_alive():
            self.error = self.error or "a rule change did not complete within 120 s"

    def _run(self):
        half = self.batch // 2
        period = self.batch / self.rate
        start = time.time()
        k = 0
        try:
            while not self.stop_event.is_set():
                adds = [self.make_rule() for _ in range(half)]
                dels = self.live[:half]
                self.system.churn(adds, dels)
                self.live = self.live[half:] + adds
                self.changes += len(adds) + len(dels)
                k += 1
                delay = start + k * period - time.time()
                if delay > 0:
                    self.stop_event.wait(delay)
        except Exception as e:  # reported with the measurement
            self.error = f"{type(e).__name__}: {e}"
        self.elapsed = time.time() - start


def _cpu_hz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1]) * 1e6
    except (OSError, ValueError):
        pass
    return None


CPU_HZ = _cpu_hz()


def rate_between(s0, s1):
    dt = s1.t - s0.t
    dt_tx = (s1.t_tx - s0.t_tx) if s1.t_tx is not None and s0.t_tx is not None else dt
    if dt <= 0 or dt_tx <= 0:
        return 0.0, 0.0, dt
    return (s1.rx - s0.rx) / dt / 1e6, (s1.tx - s0.tx) / dt_tx / 1e6, dt


def warm_up(system, opts, at_sink=False, min_s=None, step=None, max_s=None):
    """Waits until two successive rates (opts.step apart) agree within 5%, at least warmup_min after the start, or
    until warmup_max passes; returns (seconds, whether it was steady). The rate is the received one, or the one
    at the sink for points counted there (PVP)."""
    t0 = time.time()
    prev = system.sample()
    rates = []
    while True:
        time.sleep(step or opts.step)
        cur = system.sample()
        rx, tx, _ = rate_between(prev, cur)
        prev = cur
        rates.append(tx if at_sink else rx)
        elapsed = time.time() - t0
        stable = len(rates) >= 2 and rates[-1] > 0 and \
            max(rates[-2:]) - min(rates[-2:]) <= 0.05 * max(rates[-2:])
        if stable and elapsed >= (opts.warmup_min if min_s is None else min_s):
            return elapsed, True
        if elapsed >= (max_s or (opts.warmup_max_vhost if getattr(system, "vhost_dir", None) else opts.warmup_max)):
            if max(rates[-3:]) <= 0:
                raise systems.Fail(f"no packets received in {elapsed:.1f} s")
            return elapsed, False


def thread_cpu(pid):
    """{thread id: on-CPU seconds} of a process's threads (utime + stime), or {} when it cannot be read."""
    out = {}
    if pid is None:
        return out
    tck = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[tid] = (int(fields[11]) + int(fields[12])) / tck
        except (OSError, IndexError, ValueError):
            continue
    return out


def window(system, seconds, guests=None, at_sink=False):
    s0 = system.sample()
    system.cycles_begin()
    if guests is not None:
        guests.begin()
    cpu0, tcpu0 = thread_cpu(system.pid()), time.time()
    time.sleep(seconds)
    cpu1, tcpu1 = thread_cpu(system.pid()), time.time()
    s1 = system.sample()
    cycles = system.cycles_end()
    rx, tx, dt = rate_between(s0, s1)
    out = {"rx_mpps": rx, "tx_mpps": tx, "fwd_fraction": (tx / rx) if rx > 0 else 0.0, "window_s": round(dt, 4),
           "split_read": s1.t_tx is not None,
           "rx_packets": s1.rx - s0.rx, "tx_packets": s1.tx - s0.tx, "cycles_reported": cycles}
    # The point's figure: received from the sources, or (PVP) what reached the sink, i.e. came back through the
    # guest.
    out["mpps"] = tx if at_sink else rx
    # The forwarding thread (the one of the system's threads that ran most in the window): its share of a core,
    # and its on-CPU cycles per packet (core clock x on-CPU seconds / packets of the point's figure), which unlike
    # the systems' own TSC-based cycles do not count time the thread was descheduled (a shared, loaded machine).
    deltas = [cpu1[t] - cpu0[t] for t in cpu1 if t in cpu0]
    if deltas and tcpu1 > tcpu0:
        busiest = max(deltas)
        out["fwd_thread_cpu"] = busiest / (tcpu1 - tcpu0)
        pkts = (tx if at_sink else rx) * 1e6 * (tcpu1 - tcpu0)
        if pkts > 0 and CPU_HZ:
            out["oncpu_cycles_per_pkt"] = busiest * CPU_HZ / pkts
    out.update(system.window_extra())
    if s0.extra and s1.extra and dt > 0:
        for k in s1.extra:
            if k in s0.extra:
                out[f"sys_{k}_mpps"] = (s1.extra[k] - s0.extra[k]) / dt / 1e6
    if guests is not None:
        out.update(guests.end())
        # The guests' on-CPU cycles per packet they put into vhost-user: in d the guest is the limit, and this says
        # how much each system makes it spend per packet (load-independent, unlike the guest's rate).
        if out.get("guest_cpu_s") is not None and out.get("guest_tx_packets", 0) > 0 and CPU_HZ:
            out["guest_oncpu_cycles_per_pkt"] = out["guest_cpu_s"] * CPU_HZ / out["guest_tx_packets"]
        features = system.vhost_features()
        if features:
            out["vhost_features"] = features
    return out


def measure_window(system, point, opts, churner=None, guests=None):
    """Warm-up and one measured window (two for rule churn: before and during) on a running system."""
    result = {}
    at_sink = point.setup.count_at_sink
    # bv: the systems map each guest's 4 KiB pages once per device (64 mappings) and take a page fault per page
    # and mapping first touched: the rate climbs for a while after the guests connect (bench/README.md).
    # It ends when two successive 1 s rates agree within 5% (a climb shows over 1 s, not always over 0.25 s).
    vports = point.setup.vhost_kind == "vports" and not opts.short
    warm_s, stable = warm_up(system, opts, at_sink, opts.warmup_min_vports if vports else None,
                             1.0 if vports else None, opts.warmup_max_vports if vports else None)
    result["warmup_s"] = round(warm_s, 3)
    result["steady"] = stable
    if churner is not None:
        before = window(system, opts.window)
        churner.start()
        time.sleep(opts.churn_settle)
        try:
            during = window(system, opts.window)
        finally:
            churner.stop()
        if churner.error:
            raise systems.Fail(f"rule churn failed: {churner.error}")
        result.update(during)
        result["before"] = before
        result["changes_per_s"] = churner.changes / churner.elapsed if churner.elapsed > 0 else 0.0
        result["during_over_before"] = during["rx_mpps"] / before["rx_mpps"] if before["rx_mpps"] else None
    else:
        result.update(window(system, opts.window, guests, at_sink))
        if result["rx_packets"] <= 0 or result["tx_packets"] <= 0:
            # Warm-up saw traffic: on a loaded machine the forwarding thread can get no CPU for a second (seen on
            # 2 shared cores at load 15). One more window, recorded; still nothing fails the run below.
            result.update(window(system, opts.window, guests, at_sink), window_retried=True)
    if result.get("rx_packets", 0) <= 0 or result.get("tx_packets", 0) <= 0:
        raise systems.Fail(f"forwarded no packets in the measured window (received {result.get('rx_packets')}, "
                           f"sent {result.get('tx_packets')} in {result.get('window_s')} s)")
    if guests is not None:
        # Traffic must have gone through the guests: d: the guest received from the system and sent back (the
        # sink can get nothing else); d-rx/bv: every guest process put packets into vhost-user.
        if point.setup.vhost_kind == "pvp" and (result["guest_rx_packets"] <= 0 or result["guest_tx_packets"] <= 0):
            raise systems.Fail(f"no traffic through the guest (guest rx {result['guest_rx_packets']}, tx "
                               f"{result['guest_tx_packets']} packets in the window)")
        if result["guest_min_tx_packets"] <= 0:
            raise systems.Fail("a guest process sent nothing into vhost-user in the window")
    return result


def start_system(system, point, opts):
    """Starts a system on a point (and its rule churn, prefilled). Returns (seconds, churner)."""
    t = time.time()
    system.start(point)
    churner = None
    if point.churn:
        churner = Churner(system, point.setup, rate=opts.churn_rate, batch=opts.churn_batch)
        churner.prefill(opts.churn_batch * 5)
    return time.time() - t, churner


def measure_restart(system, point, ctx, opts):
    """One run with its own start and stop (vhost-user: the guests belong to one system instance)."""
    guests = None
    s = point.setup
    try:
        if s.vhost:
            system.vhost_dir = os.path.join(ctx.run_dir, f"vhost{ctx.next()}")
            os.makedirs(system.vhost_dir, exist_ok=True)
            if s.vhost_kind == "rx":
                # d-rx: the system listens on its own socket (vhost_socket, known after start); one guest connects.
                def socket_of(_name):
                    return system.vhost_socket
            else:
                socket_of = system.vhost_path
            guests = systems.Guests(ctx, s, socket_of)
            if s.guest_server:
                guests.launch()   # they listen; the system connects to them
        t0 = time.time()
        start_s, churner = start_system(system, point, opts)
        if guests is not None:
            if not s.guest_server:
                deadline = time.time() + 30
                while not os.path.exists(system.vhost_socket):
                    if time.time() > deadline:
                        raise systems.Fail(f"the system did not create the vhost-user socket {system.vhost_socket}")
                    time.sleep(0.05)
                guests.launch()
            guests.wait_ready()
            start_s = time.time() - t0
        result = measure_window(system, point, opts, churner, guests)
        result["start_s"] = round(start_s, 3)
    finally:
        if guests is not None:
            guests.stop()
        problem = system.stop()
        system.vhost_dir = None
    if problem:
        raise systems.Fail(problem)
    return result


# ---------------------------------------------------------------------------------------------------------------
# The whole run


def make_systems(ctx, names, baseline=None):
    out = {}
    for n in names:
        if n == "eswitch":
            out[n] = systems.Eswitch(ctx)
        elif n == BASELINE and baseline:
            out[n] = systems.Eswitch(ctx, name=BASELINE, binary=baseline)
        elif n.startswith("testpmd-"):
            out[n] = systems.Testpmd(ctx, n.split("-", 1)[1])
        elif n == "ovs":
            out[n] = systems.Ovs(ctx)
        else:
            raise SystemExit(f"unknown system {n}; known: {', '.join(ALL_SYSTEMS)} "
                             f"({BASELINE} with --eswitch-baseline PATH)")
    return out


def summarise(entry, expected_fwd, checks_verdicts, at_sink=False):
    runs = [r for r in entry["runs"] if r.get("status") == "ok"]
    if not runs:
        return
    vals = [r.get("mpps", r["rx_mpps"]) for r in runs]
    entry["median_mpps"] = statistics.median(vals)
    entry["min_mpps"] = min(vals)
    entry["max_mpps"] = max(vals)
    entry["median_tx_mpps"] = statistics.median(r["tx_mpps"] for r in runs)
    entry["fwd_fraction"] = statistics.median(r["fwd_fraction"] for r in runs)
    cyc = [r["cycles_reported"] for r in runs if r.get("cycles_reported")]
    entry["cycles_reported"] = statistics.median(cyc) if cyc else None
    for k in ("fwd_thread_cpu", "oncpu_cycles_per_pkt"):
        v = [r[k] for r in runs if r.get(k)]
        entry[k] = statistics.median(v) if v else None
    if any("before" in r for r in runs):
        entry["median_before_mpps"] = statistics.median(r["before"]["rx_mpps"] for r in runs)
        ratios = [r["during_over_before"] for r in runs if r.get("during_over_before")]
        entry["during_over_before"] = statistics.median(ratios) if ratios else None
        entry["changes_per_s"] = statistics.median(r["changes_per_s"] for r in runs)
    for k in sorted({k for r in runs for k in r if (k.startswith("guest_") or k.startswith("sys_"))
                     and isinstance(r[k], float)}):
        vals_k = [r[k] for r in runs if k in r]
        entry[f"median_{k}"] = statistics.median(vals_k)
    features = sorted({f for r in runs for f in r.get("vhost_features", "").split(",") if f})
    if features:
        entry["vhost_features"] = ",".join(features)  # every feature set negotiated over the runs
    want = expected_fwd if checks_verdicts else 1.0
    entry["expected_fwd_fraction"] = round(want, 4)
    if at_sink:
        entry["fwd_check"] = ("not checked: counted at the sink (PVP); the pcap source offers more than the "
                              "vhost-user path carries, the rest is dropped at the guest's ring")
    elif any(r.get("split_read") for r in runs):
        # rx and tx came from two commands (OVS with vhost-user) whose timing jitter is a few % of a short window.
        entry["fwd_check"] = "not checked: rx and tx read by different commands"
    elif abs(entry["fwd_fraction"] - want) > 0.01:
        entry["verdict_problem"] = (f"forwarded {entry['fwd_fraction']:.3f} of what it received, expected "
                                    f"{want:.3f}: its rules do not do what the scenario says")


def point_systems(point, sysmap) -> list:
    """The systems a point runs, in order: the baseline eswitch (if any) right after eswitch, wherever it runs."""
    names = list(point.systems)
    if BASELINE in sysmap and "eswitch" in names and BASELINE not in names:
        names.insert(names.index("eswitch") + 1, BASELINE)
    return names


def run_all(points, sysmap, ctx, opts, results):
    cache = {}  # (setup key, system, churn) -> entry already measured for another point
    for pi, point in enumerate(points):
        pres = {"id": point.id, "scenario": point.scenario, "title": point.title, "params": point.params,
                "setup": point.setup.key, "expected_fwd_fraction": point.setup.expected_fwd, "systems": {}}
        results["points"].append(pres)
        active = []
        for name in point_systems(point, sysmap):
            if name not in sysmap:
                continue
            sysobj = sysmap[name]
            entry = {"status": "pending", "runs": []}
            pres["systems"][name] = entry
            reason = opts.unavailable.get(name) or sysobj.skip_reason(point)
            if reason:
                entry.update(status="skipped", reason=reason)
                continue
            key = (point.setup.key, name, point.churn)
            if key in cache:
                src_id, src_entry = cache[key]
                entry.update({k: v for k, v in src_entry.items() if k != "same_as"}, same_as=src_id)
                continue
            active.append(name)
        log(f"point {pi + 1}/{len(points)} {point.id}: {point.title} [{', '.join(active) or 'nothing to run'}]")
        fails = {n: 0 for n in active}

        def record(name, run, fn):
            entry = pres["systems"][name]
            try:
                r = fn()
                r["status"] = "ok"
                r["run"] = run + 1
                entry["runs"].append(r)
                extra = ""
                if "before" in r:
                    extra = f" (before churn {r['before']['rx_mpps']:.2f}, {r['changes_per_s']:.0f} changes/s)"
                if r.get("guest_rx_mpps") is not None:
                    extra += (f" (guest: rx {r['guest_rx_mpps']:.2f}, tx {r['guest_tx_mpps']:.2f}, refused "
                              f"{r['guest_tx_dropped_mpps']:.2f}" +
                              (f", on CPU {100 * r['guest_cpu']:.0f}%" if "guest_cpu" in r else "") +
                              (f", {r['guest_oncpu_cycles_per_pkt']:.0f} on-CPU cyc/pkt"
                               if "guest_oncpu_cycles_per_pkt" in r else "") +
                              (f", {r['guest_writes_per_pkt']:.3f} writes/pkt" if "guest_writes_per_pkt" in r
                               else "") +
                              (f", rx polls {100 * r['guest_rx_empty_poll_share']:.0f}% empty, "
                               f"{r.get('guest_rx_pkts_per_poll', 0):.1f} pkts/poll"
                               if "guest_rx_empty_poll_share" in r else "") + ")")
                if r.get("vhost_features"):
                    extra += f" (features {r['vhost_features']})"
                if r.get("sys_vhost_out_mpps") is not None:
                    extra += f" (to guest {r['sys_vhost_out_mpps']:.2f}, back {r.get('sys_vhost_back_mpps', 0):.2f})"
                cyc = f", {r['cycles_reported']:.0f} cyc/pkt" if r.get("cycles_reported") else ""
                if r.get("oncpu_cycles_per_pkt"):
                    cyc += (f" ({r['oncpu_cycles_per_pkt']:.0f} on-CPU, fwd thread on CPU "
                            f"{100 * r['fwd_thread_cpu']:.0f}%)")
                log(f"  run {run + 1} {name:16s} {r['rx_mpps']:7.3f} Mpps in, {r['tx_mpps']:7.3f} out{extra}{cyc} "
                    f"(warm {r['warmup_s']:.1f} s, start {r.get('start_s', 0):.1f} s)")
            except systems.Skip as e:
                entry.update(status="skipped", reason=str(e))
                log(f"  {name}: skipped: {e}")
            except systems.Fail as e:
                fails[name] += 1
                entry["runs"].append({"status": "failed", "run": run + 1, "error": str(e)})
                log(f"  run {run + 1} {name}: FAILED: {e}")

        def runnable(name):
            return pres["systems"][name]["status"] != "skipped" and fails[name] < 2

        if point.setup.vhost or not opts.pause:
            for run in range(opts.runs):
                for name in active[run % len(active):] + active[:run % len(active)] if active else []:
                    if runnable(name):
                        record(name, run, lambda: measure_restart(sysmap[name], point, ctx, opts))
        else:
            # Start every system once, frozen (SIGSTOP) while the others run; each run thaws one system,
            # measures it and freezes it again. Interleaved like restarts, without paying start-up (100k-rule
            # configs take seconds to load) five times.
            running = {}
            try:
                for name in active:
                    try:
                        start_s, churner = start_system(sysmap[name], point, opts)
                        sysmap[name].pause()
                        running[name] = churner
                        pres["systems"][name]["start_s"] = round(start_s, 3)
                    except systems.Skip as e:
                        pres["systems"][name].update(status="skipped", reason=str(e))
                        log(f"  {name}: skipped: {e}")
                        problem = sysmap[name].stop()
                    except systems.Fail as e:
                        fails[name] = 2
                        pres["systems"][name]["runs"].append({"status": "failed", "run": 1, "error": str(e)})
                        log(f"  {name}: FAILED to start: {e}")
                        sysmap[name].stop()
                order = list(running)
                for run in range(opts.runs):
                    for name in order[run % len(order):] + order[:run % len(order)] if order else []:
                        if not runnable(name):
                            continue
                        sysobj = sysmap[name]

                        def one(sysobj=sysobj, churner=running[name]):
                            sysobj.resume()
                            try:
                                return measure_window(sysobj, point, opts, churner)
                            finally:
                                sysobj.pause()
                        record(name, run, one)
            finally:
                for name in running:
                    sysmap[name].resume()
                    problem = sysmap[name].stop()
                    if problem:
                        fails[name] += 1
                        pres["systems"][name]["runs"].append({"status": "failed", "run": 0, "error": problem})
                        log(f"  {name}: {problem}")
        for name in active:
            entry = pres["systems"][name]
            if entry["status"] == "skipped":
                continue
            ok = [r for r in entry["runs"] if r.get("status") == "ok"]
            entry["status"] = "ok" if ok else "failed"
            if not ok:
                entry["reason"] = "; ".join(r["error"] for r in entry["runs"])[:800]
            summarise(entry, point.setup.expected_fwd, checks_verdicts=not name.startswith("testpmd"),
                      at_sink=point.setup.count_at_sink)
            cache[(point.setup.key, name, point.churn)] = (point.id, entry)


def binary_info(path: str) -> dict:
    """What identifies an eswitchd build: its path, content hash, and the commit of the tree it sits in."""
    info = {"path": path}
    try:
        with open(path, "rb") as f:
            info["sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        pass
    git = subprocess.run(["git", "-C", os.path.dirname(path), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    if git.returncode == 0:
        info["commit"] = git.stdout.strip()
    return info


def machine_info():
    info = {"host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and "cpu_model" not in info:
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                if line.startswith("cpu MHz") and "cpu_mhz" not in info:
                    info["cpu_mhz"] = float(line.split(":", 1)[1])
    except OSError:
        pass
    pk = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n", "dpdk-dev", "openvswitch-switch-dpdk"],
                        capture_output=True, text=True).stdout.split("\n")
    info["packages"] = [p for p in pk if p]
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True)
    info["eswitch_commit"] = git.stdout.strip()
    info["hugepages"] = any(" hugetlbfs " in ln for ln in open("/proc/mounts"))
    return info


def short_mode_checks(results, out_dir, sysmap, opts) -> list:
    """What short mode asserts: every available system forwarded packets somewhere, nothing failed, and the
    outputs parse. Speeds are never asserted."""
    problems = []
    with open(os.path.join(out_dir, "results.json")) as f:
        parsed = json.load(f)
    table = open(os.path.join(out_dir, "table.md")).read()
    for p in parsed["points"]:
        if f"| {p['id']} " not in table:
            problems.append(f"table.md has no row for {p['id']}")
        for name, e in p["systems"].items():
            if e["status"] == "failed":
                problems.append(f"{p['id']} {name}: failed: {e.get('reason')}")
            if e.get("verdict_problem"):
                problems.append(f"{p['id']} {name}: {e['verdict_problem']}")
    for name in sysmap:
        scheduled = any(p["systems"].get(name, {}).get("status") in ("ok", "failed") for p in parsed["points"])
        if name in opts.unavailable or not scheduled:
            continue
        forwarded = any(p["systems"].get(name, {}).get("status") == "ok" and
                        p["systems"][name].get("median_tx_mpps", 0) > 0 for p in parsed["points"])
        if not forwarded:
            problems.append(f"{name} forwarded no packets in any scenario")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="a few seconds per scenario; asserts that every system "
                    "forwarded packets and that the outputs parse (no speeds)")
    ap.add_argument("--runs", type=int, help="runs per point and system (default 5, short 1)")
    ap.add_argument("--window", type=float, help="measured seconds per run (default 1.0, short 0.5)")
    ap.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS))
    ap.add_argument("--workers", type=int, default=1, help="forwarding cores per system (cores 1..N; default 1)")
    ap.add_argument("--eswitchd", default=os.path.join(ROOT, "build", "dataplane", "eswitchd"))
    ap.add_argument("--eswitch-baseline", metavar="PATH", help=f"a second eswitchd (e.g. the build before a "
                    f"change), run as system '{BASELINE}' wherever eswitch runs, interleaved with the others, with "
                    f"the same generated config; the table adds its ratios and new/baseline")
    ap.add_argument("--out", help="results directory (default results/<timestamp> in the repository)")
    ap.add_argument("--restart-each-run", action="store_true", help="start and stop every system for every run "
                    "(default: start once per point, freeze it with SIGSTOP while the others run)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (configs, pcaps, logs)")
    ap.add_argument("--cleanup", metavar="RUN_DIR", help="only clean up what an interrupted run left behind")
    opts = ap.parse_args()

    if opts.cleanup:
        cleanup_run(opts.cleanup, log=log)
        return 0
    if os.geteuid() != 0:
        print("bench: run as root (DPDK vdevs, network namespace for OVS)", file=sys.stderr)
        return 1

    opts.runs = opts.runs or (1 if opts.short else 5)
    opts.window = opts.window or (0.5 if opts.short else 1.0)
    opts.step = 0.25
    opts.warmup_min = 0.5
    opts.warmup_max = 3.0 if opts.short else 5.0
    # vhost-user points: a system may take seconds after the guests connect before it polls their queues (OVS
    # reconfigures its PMDs per new vhost device: 64 of them in bv).
    opts.warmup_max_vhost = 10.0 if opts.short else 20.0
    opts.warmup_min_vports, opts.warmup_max_vports = 10.0, 25.0   # bv, not in short mode
    opts.churn_rate = 1000
    opts.churn_batch = 100
    opts.churn_settle = 0.5 if opts.short else 1.0
    opts.pause = not opts.restart_each_run
    ncpu = os.cpu_count() or 2
    if not 1 <= opts.workers <= ncpu - 1:
        print(f"bench: --workers must be 1..{ncpu - 1} on this machine (core 0 runs the control threads)",
              file=sys.stderr)
        return 2

    names = [s for s in opts.systems.split(",") if s]
    if opts.eswitch_baseline:
        opts.eswitch_baseline = os.path.abspath(opts.eswitch_baseline)
        if not os.access(opts.eswitch_baseline, os.X_OK):
            print(f"bench: --eswitch-baseline {opts.eswitch_baseline} is not an executable eswitchd", file=sys.stderr)
            return 2
        if BASELINE not in names:
            names.insert(names.index("eswitch") + 1 if "eswitch" in names else len(names), BASELINE)
    elif BASELINE in names:
        print(f"bench: system {BASELINE} needs --eswitch-baseline PATH", file=sys.stderr)
        return 2

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = opts.out or os.path.join(ROOT, "results", stamp + ("-short" if opts.short else ""))
    os.makedirs(out_dir, exist_ok=True)
    sid = f"eswb{os.getpid()}"
    run_dir = f"/tmp/{sid}"
    os.makedirs(run_dir, exist_ok=True)
    reg = Registry(run_dir)
    with open(os.path.join(out_dir, "run_dir.txt"), "w") as f:
        f.write(run_dir + "\n")
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    ctx = systems.Ctx(reg=reg, run_dir=run_dir, sid=sid, eswitchd=os.path.abspath(opts.eswitchd),
                      worker_cpus=tuple(range(1, 1 + opts.workers)))
    sysmap = {}
    status = 0
    t_begin = time.time()
    results = {"meta": {}, "points": []}
    try:
        sysmap = make_systems(ctx, names, opts.eswitch_baseline)
        opts.unavailable = {}
        for name, s in sysmap.items():
            why = s.unavailable()
            if why:
                opts.unavailable[name] = why
                log(f"{name}: not available: {why}")
        features = {}
        for name in ("eswitch", BASELINE):
            if name in sysmap and name not in opts.unavailable:
                features[name] = sysmap[name].features()
                log(f"{name} ({sysmap[name].binary}) features: " +
                    ", ".join(f"{k}={v}" for k, v in features[name].items() if k != "probe_errors"))
        if len(features) == 2:
            same = all(features["eswitch"][k] == features[BASELINE][k] for k in features["eswitch"]
                       if k != "probe_errors")
            # Each binary gets the config generated from its own probe: identical YAML when the probes agree.
            log(f"{BASELINE}: " + ("same config features as eswitch: both get the same generated YAML" if same else
                                    "config features differ from eswitch: each gets the YAML its loader takes"))
        log("generating traffic")
        points = scenarios.plan(os.path.join(run_dir, "traffic"),
                                scenarios.PlanOptions(short=opts.short,
                                                      scenarios=tuple(s for s in opts.scenarios.split(",") if s)))
        results["meta"] = {"timestamp": stamp, "short": opts.short, "runs": opts.runs, "window_s": opts.window,
                           "workers": opts.workers, "systems": list(sysmap), "unavailable": opts.unavailable,
                           "eswitch_features": features.get("eswitch"),
                           **({"eswitch_base_features": features[BASELINE]} if BASELINE in features else {}),
                           "eswitch_binaries": {n: binary_info(sysmap[n].binary) for n in ("eswitch", BASELINE)
                                                if n in sysmap},
                           "frame_size_convention": "wire size with FCS; pcap/mbuf frames are 4 bytes shorter",
                           "mpps_convention": "packets received from the source ports per second (forwarded + "
                                              "dropped by policy); fwd_fraction = sent to the sink / received",
                           **machine_info()}
        run_all(points, sysmap, ctx, opts, results)
    except Interrupted as e:
        log(f"interrupted ({e}): cleaning up")
        status = 130
    except Exception:
        traceback.print_exc()
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for s in sysmap.values():
            try:
                s.resume()  # a frozen process would not act on the stop
                s.stop()
            except Exception as e:
                log(f"cleanup: {s.name}: {e}")
            try:
                s.close()
            except Exception as e:
                log(f"cleanup: {s.name}: {e}")
        if opts.keep:
            log(f"keeping {run_dir} (remove with: bench.py --cleanup {run_dir})")
        else:
            logs = os.path.join(run_dir, "logs")
            if status != 0 and os.path.isdir(logs):
                shutil.copytree(logs, os.path.join(out_dir, "logs"), dirs_exist_ok=True)
        cleanup_run(run_dir, keep_dir=opts.keep, log=log)
        if not opts.keep:
            os.unlink(os.path.join(out_dir, "run_dir.txt"))
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    results["meta"]["elapsed_s"] = round(time.time() - t_begin, 1)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    table = report.table_md(results)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table)
    plots = report.plots(results, out_dir)
    print(table)
    log(f"results: {out_dir} ({', '.join(['results.json', 'table.md'] + plots)}); "
        f"{results['meta']['elapsed_s']:.0f} s")
    if status == 0 and opts.short:
        problems = short_mode_checks(results, out_dir, sysmap, opts)
        for p in problems:
            log(f"CHECK FAILED: {p}")
        if problems:
            status = 1
        else:
            log("short mode: every available system forwarded packets; results.json and table.md parse")
    return status


if __name__ == "__main__":
    sys.exit(main())
