"""The table (Markdown) and the plots (gnuplot PNG) of a results.json."""

import os
import shutil
import statistics
import subprocess

COLS = [("eswitch", "eswitch"), ("testpmd-io", "testpmd io"), ("testpmd-macswap", "testpmd macswap"),
        ("ovs", "OVS")]
BASELINE = "eswitch-base"  # a second eswitchd build (bench.py --eswitch-baseline)


def _cols(meta) -> list:
    """The system columns: the baseline eswitch, when the run had one, right after eswitch."""
    if BASELINE in meta.get("systems", []):
        return COLS[:1] + [(BASELINE, "eswitch base")] + COLS[1:]
    return COLS


def _cell(e) -> str:
    if e is None:
        return ""
    if e.get("status") == "skipped":
        return "skip"
    if e.get("status") == "failed":
        return "FAIL"
    if "median_mpps" not in e:
        return "?"
    s = f"{e['median_mpps']:.2f} [{e['min_mpps']:.2f}–{e['max_mpps']:.2f}]"
    if e.get("verdict_problem"):
        s += " (!)"
    return s


def _med(p, name):
    e = p["systems"].get(name)
    return e.get("median_mpps") if e and e.get("status") == "ok" else None


def _ratio(a, b, digits=2) -> str:
    return f"{a / b:.{digits}f}" if a and b else ""


def _cycles(p, meta):
    """Cycles per packet: reported by the system (OVS pmd-stats, testpmd fwd stats) or derived from the clock
    (one busy-polling core: cpu_hz / packets per second), marked with ~."""
    mhz = meta.get("cpu_mhz")
    workers = meta.get("workers", 1)
    out = []
    for name, label in _cols(meta):
        e = p["systems"].get(name)
        if not e or e.get("status") != "ok":
            continue
        if e.get("cycles_reported"):
            out.append(f"{label} {e['cycles_reported']:.0f}")
        elif mhz and e.get("median_mpps"):
            out.append(f"{label} ~{mhz * workers / e['median_mpps']:.0f}")
    return ", ".join(out)


def table_md(results) -> str:
    meta = results.get("meta", {})
    lines = [f"# System benchmark {meta.get('timestamp', '')}{' (short mode)' if meta.get('short') else ''}", ""]
    lines.append(f"Machine: {meta.get('cpu_model', '?')}, {meta.get('cpus', '?')} cores at "
                 f"{meta.get('cpu_mhz', 0):.0f} MHz, hugepages: {'yes' if meta.get('hugepages') else 'no'}; "
                 f"eswitch {meta.get('eswitch_commit', '?')}; {'; '.join(meta.get('packages', []))}.")
    lines.append(f"Mpps = packets received per second from the source ports (forwarded + dropped by policy; d, "
                 f"PVP: sent to the sink, i.e. what came back through the guest); "
                 f"median [min–max] of {meta.get('runs', '?')} run(s) of {meta.get('window_s', '?')} s, "
                 f"systems interleaved run by run, {meta.get('workers', 1)} forwarding core(s) each. "
                 f"Frame sizes include the FCS (pcap frames are 4 bytes shorter). "
                 f"Cycles/packet: reported by the system, or ~ = derived as core clock / rate.")
    cols = _cols(meta)
    has_base = len(cols) > len(COLS)
    lines.append("")
    lines.append("| point | " + " | ".join(label for _, label in cols) +
                 " | esw/testpmd-io |" + (" base/testpmd-io | new/base |" if has_base else "") +
                 " esw/OVS | cycles/packet | what |")
    lines.append("|" + "---|" * (len(cols) + 5 + (2 if has_base else 0)))
    notes = []
    for p in results.get("points", []):
        cells = [_cell(p["systems"].get(name)) for name, _ in cols]
        esw = _med(p, "eswitch")
        tpio = _med(p, "testpmd-io")
        base = (f" {_ratio(_med(p, BASELINE), tpio)} | {_ratio(esw, _med(p, BASELINE))} |" if has_base else "")
        lines.append(f"| {p['id']} | " + " | ".join(cells) +
                     f" | {_ratio(esw, tpio)} |{base} {_ratio(esw, _med(p, 'ovs'))} | "
                     f"{_cycles(p, meta)} | {p['title']} |")
        for name, e in p["systems"].items():
            if e.get("status") in ("skipped", "failed"):
                notes.append(f"- {p['id']} {name}: {e['status']}: {e.get('reason', '')}")
            if e.get("verdict_problem"):
                notes.append(f"- {p['id']} {name}: (!) {e['verdict_problem']}")
            if e.get("same_as"):
                notes.append(f"- {p['id']} {name}: same setup as {e['same_as']}, measured once")
            bad_runs = [r for r in e.get("runs", []) if r.get("status") == "failed"]
            if bad_runs and e.get("status") == "ok":
                notes.append(f"- {p['id']} {name}: {len(bad_runs)} run(s) failed: {bad_runs[0].get('error')}")
    if has_base:
        lines += _baseline_section(results)
    churn = [p for p in results.get("points", []) if p["scenario"] == "e"]
    if churn:
        lines += ["", "## Rule churn (e)", "",
                  "| system | before (Mpps) | during (Mpps) | during/before | rule changes/s achieved |",
                  "|---|---|---|---|---|"]
        for p in churn:
            for name, e in p["systems"].items():
                if e.get("status") != "ok":
                    lines.append(f"| {name} | {e.get('status')} | | | |")
                    continue
                lines.append(f"| {name} | {e['median_before_mpps']:.2f} | {e['median_mpps']:.2f} "
                             f"[{e['min_mpps']:.2f}–{e['max_mpps']:.2f}] | {e.get('during_over_before') or 0:.2f} | "
                             f"{e.get('changes_per_s', 0):.0f} |")
    lines += _vhost_section(results)
    if meta.get("unavailable"):
        lines += ["", "## Not available", ""] + [f"- {k}: {v}" for k, v in meta["unavailable"].items()]
    if notes:
        lines += ["", "## Notes", ""] + notes
    return "\n".join(lines) + "\n"


def _m(e, k) -> str:
    v = e.get(f"median_{k}")
    return f"{v:.2f}" if v is not None else ""


def _v(e, k, fmt) -> str:
    v = e.get(f"median_{k}")
    return format(v, fmt) if v is not None else ""


def _pct(e, k) -> str:
    v = e.get(f"median_{k}")
    return f"{100 * v:.0f}%" if v is not None else ""


def _vhost_section(results) -> list:
    """Where a vhost-user point's limit is: the guests' own counters next to the system's, medians over the runs."""
    rows = []
    for p in results.get("points", []):
        for name, e in p["systems"].items():
            if e.get("status") != "ok" or e.get("median_guest_rx_mpps") is None:
                continue
            busy = e.get("median_guest_cpu")
            fwd = e.get("fwd_thread_cpu")
            onc = e.get("oncpu_cycles_per_pkt")
            rows.append(f"| {p['id']} | {name} | {e['median_mpps']:.2f} | {_m(e, 'sys_vhost_out_mpps')} | "
                        f"{_m(e, 'sys_vhost_out_drop_mpps')} | "
                        f"{_m(e, 'sys_vhost_back_mpps')} | {_m(e, 'guest_rx_mpps')} | {_m(e, 'guest_tx_mpps')} | "
                        f"{_m(e, 'guest_tx_dropped_mpps')} | {f'{100 * busy:.0f}%' if busy is not None else ''} | "
                        f"{f'{100 * fwd:.0f}%' if fwd else ''} | {f'{onc:.0f}' if onc else ''} | "
                        f"{_v(e, 'guest_oncpu_cycles_per_pkt', '.0f')} | {_v(e, 'guest_writes_per_pkt', '.3f')} | "
                        f"{_pct(e, 'guest_rx_empty_poll_share')} | {_v(e, 'guest_rx_pkts_per_poll', '.1f')} | "
                        f"{e.get('vhost_features', '')} |")
    if not rows:
        return []
    return ["", "## vhost-user guests (d, d-rx, bv)", "",
            "Mpps, medians over the runs. d (PVP) is counted at the sink: what came back through the guest. "
            "system -> guest / guest -> system: the system's own counters of its vhost-user port (d). guest rx / "
            "tx: the guests' forwarding counters over the window (d: from / back into vhost-user; d-rx, bv: from "
            "their pcaps / into vhost-user); refused: guest tx the full ring did not take (the system did not "
            "drain it: the system is the limit); system -> guest refused: the system's tx the guest's full ring did "
            "not take (eswitch, OVS: port counters; testpmd: forward statistics); guest CPU: the guests' on-CPU time over the window (100% = one "
            "whole core; they busy-poll, so less means they shared the core with something else). d: system -> "
            "guest refused by the guest's ring while the guest refuses nothing itself means the guest is the limit. "
            "fwd thread: the system's busiest thread's on-CPU share of the window and its on-CPU cycles per "
            "counted packet (load-independent, unlike TSC cycles). guest on-CPU cycles/pkt: the guests' on-CPU "
            "time x core clock / packets they put into vhost-user (what each system makes the guest spend per "
            "packet; load-independent). guest writes/pkt: the guests' write system calls per such packet - their "
            "kicks (eventfd writes) unless the system suppressed them, plus a few lines of console output. "
            "guest rx polls empty / pkts per poll: the guests' rx polls that found nothing, and the packets the "
            "others found (testpmd --record-burst-stats; 32 = full bursts: the guest is the limit; empty polls and "
            "small bursts: it waits for the system). "
            "features: the virtio features negotiated on the run's vhost-user sockets, from the system's log.",
            "", "| point | system | Mpps | system -> guest | system -> guest refused | guest -> system | guest rx "
            "| guest tx | guest tx refused | guest CPU | fwd thread CPU | fwd thread on-CPU cycles/pkt "
            "| guest on-CPU cycles/pkt | guest writes/pkt | guest rx polls empty | guest pkts/poll | features |",
            "|" + "---|" * 17] + rows


def _paired(p, a, b) -> list:
    """a/b per run number: run k of every system is measured in round k (interleaved, order rotated)."""
    ea, eb = p["systems"].get(a) or {}, p["systems"].get(b) or {}
    rb = {r["run"]: r["rx_mpps"] for r in eb.get("runs", []) if r.get("status") == "ok"}
    return [r["rx_mpps"] / rb[r["run"]] for r in ea.get("runs", [])
            if r.get("status") == "ok" and rb.get(r["run"])]


def _spread(vals) -> str:
    if not vals:
        return ""
    return f"{statistics.median(vals):.3f} [{min(vals):.3f}–{max(vals):.3f}]"


def _baseline_section(results) -> list:
    """Old build against new build, each against testpmd io measured in the same run."""
    meta = results.get("meta", {})
    bins = meta.get("eswitch_binaries", {})

    def ident(name):
        b = bins.get(name, {})
        return f"`{b.get('path', '?')}` ({b.get('commit', 'commit unknown')}, sha256 {b.get('sha256', '?')})"

    out = ["", f"## New build against baseline (eswitch vs {BASELINE})", "",
           f"eswitch = {ident('eswitch')}; {BASELINE} = {ident(BASELINE)}. Both ran interleaved with testpmd in "
           f"this run, on the same traffic and the same generated config. Ratios of medians; new/base = "
           f"(eswitch/testpmd-io) / (base/testpmd-io) = eswitch / base. Paired = median [min–max] over the rounds "
           f"of the ratio of the two systems' runs in the same round (run k of each; rounds take seconds, the "
           f"drift on these VMs takes minutes).", "",
           "| point | eswitch/testpmd-io | base/testpmd-io | new/base | new/base paired | eswitch/testpmd-io paired "
           "| base/testpmd-io paired |",
           "|---|---|---|---|---|---|---|"]
    for p in results.get("points", []):
        if BASELINE not in p["systems"]:
            continue
        esw, base, tpio = _med(p, "eswitch"), _med(p, BASELINE), _med(p, "testpmd-io")
        out.append(f"| {p['id']} | {_ratio(esw, tpio, 3)} | {_ratio(base, tpio, 3)} | {_ratio(esw, base, 3)} | "
                   f"{_spread(_paired(p, 'eswitch', BASELINE))} | {_spread(_paired(p, 'eswitch', 'testpmd-io'))} | "
                   f"{_spread(_paired(p, BASELINE, 'testpmd-io'))} |")
    return out


def _series(points, scenario, xkey, name, filt=None):
    rows = []
    for p in points:
        if p["scenario"] != scenario or (filt and not filt(p)):
            continue
        e = p["systems"].get(name)
        if e and e.get("status") == "ok" and "median_mpps" in e:
            rows.append((p["params"][xkey], e["median_mpps"], e["min_mpps"], e["max_mpps"]))
    return sorted(rows)


def _write_dat(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(" ".join(str(x) for x in r) + "\n")


STYLE = {"eswitch": "lc rgb '#d62728' lw 2 pt 7", BASELINE: "lc rgb '#ff9896' lw 2 pt 6 dt 3",
         "ovs": "lc rgb '#1f77b4' lw 2 pt 5",
         "testpmd-io": "lc rgb '#7f7f7f' lw 2 pt 9 dt 2"}


def plots(results, out_dir) -> list:
    """mpps_vs_rules.png (scenario c, one panel per mask count) and mpps_vs_flows.png (flow sweep), one line per
    system. Returns the files written; none when gnuplot is missing or there is nothing to plot."""
    if shutil.which("gnuplot") is None:
        return []
    pts = results.get("points", [])
    data_dir = os.path.join(out_dir, "plotdata")
    os.makedirs(data_dir, exist_ok=True)
    written = []

    masks = sorted({p["params"]["masks"] for p in pts if p["scenario"] == "c" and p["params"].get("masks")})
    ceiling = next((p["systems"]["testpmd-io"].get("median_mpps") for p in pts
                    if p["id"] == "c/ceiling" and p["systems"].get("testpmd-io", {}).get("status") == "ok"), None)
    rule_counts = sorted({p["params"]["rules"] for p in pts if p["scenario"] == "c" and p["params"].get("rules")})
    if masks and rule_counts:
        g = ["set terminal pngcairo size 1500,520 font ',10'" if _has_cairo() else "set terminal png size 1500,520",
             f"set output '{os.path.join(out_dir, 'mpps_vs_rules.png')}'",
             f"set multiplot layout 1,{len(masks)} title 'Mpps against rules (64 B, one forwarding core; "
             f"testpmd io = ceiling)'",
             "set logscale x", "set xlabel 'rules'", "set ylabel 'Mpps'", "set grid", "set key outside bottom center horizontal",
             f"set xrange [{rule_counts[0] / 2}:{rule_counts[-1] * 2}]", "set yrange [0:*]"]
        for m in masks:
            plots_m = []
            for name in ("eswitch", BASELINE, "ovs"):
                rows = _series(pts, "c", "rules", name, lambda p, m=m: p["params"].get("masks") == m)
                if rows:
                    dat = os.path.join(data_dir, f"rules-m{m}-{name}.dat")
                    _write_dat(dat, rows)
                    plots_m.append(f"'{dat}' using 1:2:3:4 with yerrorlines {STYLE[name]} title '{name}'")
            if ceiling:
                plots_m.append(f"{ceiling} with lines {STYLE['testpmd-io']} title 'testpmd io'")
            g.append(f"set title '{m} mask{'s' if m > 1 else ''}'")
            g.append("plot " + (", ".join(plots_m) if plots_m else "NaN title 'no data'"))
        g.append("unset multiplot")
        if _gnuplot(g, out_dir, "rules"):
            written.append("mpps_vs_rules.png")

    flow_counts = sorted({p["params"]["flows"] for p in pts if p["scenario"] == "flows"})
    if flow_counts:
        g = ["set terminal pngcairo size 800,520 font ',10'" if _has_cairo() else "set terminal png size 800,520",
             f"set output '{os.path.join(out_dir, 'mpps_vs_flows.png')}'",
             "set title 'Mpps against flows (1000 rules over 4 masks, 64 B, one forwarding core)'",
             "set logscale x", "set xlabel 'distinct flows'", "set ylabel 'Mpps'", "set grid", "set key outside bottom center horizontal",
             f"set xrange [{max(flow_counts[0] / 2, 0.5)}:{flow_counts[-1] * 2}]", "set yrange [0:*]"]
        series = []
        for name in ("eswitch", BASELINE, "ovs", "testpmd-io"):
            rows = []
            for p in pts:
                if p["scenario"] != "flows":
                    continue
                e = p["systems"].get(name)
                if e and e.get("status") == "ok" and "median_mpps" in e:
                    rows.append((p["params"]["flows"], e["median_mpps"], e["min_mpps"], e["max_mpps"]))
            if rows:
                dat = os.path.join(data_dir, f"flows-{name}.dat")
                _write_dat(dat, sorted(rows))
                series.append(f"'{dat}' using 1:2:3:4 with yerrorlines {STYLE[name]} title '{name}'")
        g.append("plot " + (", ".join(series) if series else "NaN title 'no data'"))
        if _gnuplot(g, out_dir, "flows"):
            written.append("mpps_vs_flows.png")
    return written


_CAIRO = None


def _has_cairo() -> bool:
    global _CAIRO
    if _CAIRO is None:
        r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
        _CAIRO = "pngcairo" in (r.stdout + r.stderr)
    return _CAIRO


def _gnuplot(lines, out_dir, tag) -> bool:
    script = os.path.join(out_dir, "plotdata", f"{tag}.gp")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"gnuplot ({tag}): {r.stderr.strip()[:400]}")
        return False
    return True
