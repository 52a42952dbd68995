"""The systems under test: eswitch (eswitchd), dpdk-testpmd (io and macswap forwarding: the ceiling) and Open vSwitch
with its DPDK datapath. Each adapter turns a scenarios.Setup into that system's own configuration, starts it, reads
its counters on demand and stops it again.

Counters: `rx` is what the system received from its source ports (pcap or vhost-user), `tx` what it sent to its
sink ports, both cumulative; the harness turns the difference over a measured window into Mpps.

Cores (default, 2-core machine): every system's control/main thread on core 0, one forwarding core (eswitch worker,
testpmd forwarding lcore, OVS PMD) on core 1. --workers N uses cores 1..N.

Adding eswitch to a scenario it cannot run yet is one line: its `skip_reason` below, or the feature probe, decides.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import Optional

import scenarios
from procs import Child, Registry

TESTPMD = "dpdk-testpmd"
OVS_VSWITCHD = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class Skip(Exception):
    """The system cannot express this point (yet): reported with the reason, not a failure."""


class Fail(Exception):
    """The system should have run the point and did not."""


@dataclass
class Sample:
    t: float              # when rx was read
    rx: int
    tx: int
    t_tx: Optional[float] = None  # when tx was read, if not at t
    # More cumulative packet counters read at t, where the system has them (pvp: "vhost_out" = sent to the guest,
    # "vhost_out_drop" = refused by the guest's full ring, "vhost_back" = received back from the guest).
    extra: Optional[dict] = None


@dataclass
class Ctx:
    reg: Registry
    run_dir: str
    sid: str              # session id, part of every name we create ("eswb<pid>")
    eswitchd: str
    main_cpu: int = 0
    worker_cpus: tuple = (1,)
    seq: int = 0

    def next(self) -> int:
        self.seq += 1
        return self.seq

    def log_path(self, name: str) -> str:
        d = os.path.join(self.run_dir, "logs")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, name + ".log")


def _mem_mb(mbufs: int, base: int = 256) -> int:
    return base + (mbufs * 2560) // (1 << 20)


class System:
    name = "?"
    reports_cycles = False

    def __init__(self, ctx: Ctx):
        self.ctx = ctx

    def unavailable(self) -> Optional[str]:
        """None when the system can run at all here, else why not (not installed, ...)."""
        return None

    def skip_reason(self, point) -> Optional[str]:
        return None

    def start(self, point):
        raise NotImplementedError

    def sample(self) -> Sample:
        raise NotImplementedError

    def cycles_begin(self):
        pass

    def cycles_end(self) -> Optional[float]:
        return None

    def window_extra(self) -> dict:
        """More figures over the last window (read by cycles_end), e.g. {"sys_vhost_out_drop_mpps": ...}."""
        return {}

    def churn(self, adds: list, dels: list):
        raise Skip(f"{self.name} has no way to change rules while running")

    def pid(self) -> Optional[int]:
        """The process that forwards, for pause/resume."""
        child = getattr(self, "child", None)
        return child.proc.pid if child is not None and child.alive() else None

    def pause(self):
        """Freezes the system (SIGSTOP: no CPU at all) while another one is measured."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)

    def resume(self):
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> Optional[str]:
        """Stops the run; returns a problem found while stopping (mbuf leak, crash), or None."""
        return None

    def close(self):
        """End of the whole benchmark."""

    # The vhost-user socket a guest connects to, once start() has run (d-rx).
    vhost_socket: Optional[str] = None
    # Where the vhost-user sockets of a point live (set by the harness before start()): vport NAME's socket is
    # vhost_dir/NAME.sock, created by the system (server) or by the guest (setup.guest_server: the system connects).
    vhost_dir: Optional[str] = None

    # What each vhost-user session of this run negotiated, from the system's own log: rte_vhost's "negotiated
    # Virtio features" (testpmd net_vhost; OVS forwards DPDK's log to its own) or eswitchd's "guest connected on
    # <socket> (features 0x...)". The guest is the same for every system, so a difference here is the system's.
    _FEATURE_RES = (re.compile(r"\((/\S+)\) negotiated Virtio features: (0x[0-9a-fA-F]+)"),
                    re.compile(r"guest connected on (/\S+) \(features (0x[0-9a-fA-F]+)"))

    def vhost_log_text(self) -> str:
        child = getattr(self, "child", None)
        return child.text() if child is not None else ""

    def vhost_features(self) -> Optional[str]:
        """The distinct feature sets negotiated on this run's vhost-user sockets ("0x..", comma-separated), or
        None when the log names none."""
        text = self.vhost_log_text()
        found = set()
        for rx in self._FEATURE_RES:
            for path, f in rx.findall(text):
                if (self.vhost_dir and path.startswith(self.vhost_dir + "/")) or path == self.vhost_socket:
                    found.add(hex(int(f, 16)))
        return ",".join(sorted(found)) or None

    def vhost_path(self, name: str) -> str:
        return os.path.join(self.vhost_dir or self.ctx.run_dir, f"{name}.sock")


# ---------------------------------------------------------------------------------------------------------------
# eswitch


def _yaml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def _rule_yaml(r: scenarios.Rule) -> str:
    match = ", ".join(f"{k}: {v}" for k, v in r.match)
    acts = ", ".join(f"{{{n}: {a}}}" if a else n for n, a in r.actions)
    return f"      - {{priority: {r.priority}, match: {{{match}}}, actions: [{acts}]}}\n"


class Eswitch(System):
    """eswitchd. A second instance with another binary (--eswitch-baseline: the build before a change) runs as
    its own system, e.g. "eswitch-base": its own config probe, pid record, EAL prefixes, config file and logs, so
    the two can be started, frozen and measured side by side."""

    STATS_INTERVAL = 0.25

    def __init__(self, ctx: Ctx, name: str = "eswitch", binary: Optional[str] = None):
        super().__init__(ctx)
        self.name = name
        self.binary = binary or ctx.eswitchd
        # Process/pid-file/log tag: "eswitchd" for the default instance (unchanged), "eswitchd-base" for a baseline.
        self.tag = "eswitchd" + name[len("eswitch"):]
        self._last_cycles = None
        self._cyc0 = None
        self.child = None
        self._features = None
        self._yaml_cache = {}
        self._api = None
        self._churn_rules = []

    def unavailable(self):
        if not os.access(self.binary, os.X_OK):
            if self.binary != self.ctx.eswitchd:
                return f"{self.binary} is not an executable (build the baseline first; bench/README.md)"
            return f"{self.binary} is not built (bench/system/run.sh builds it)"
        return None

    # Which config keys and options this eswitchd understands: the harness generates only those, and skips
    # points that need the others with the loader's own message.
    def features(self) -> dict:
        if self._features is not None:
            return self._features
        help_text = subprocess.run([self.binary, "--help"], capture_output=True, text=True).stdout
        f = {"api_socket_option": "--api-socket" in help_text, "state_dir_option": "--state-dir" in help_text}
        probe = os.path.join(self.ctx.run_dir, f"{self.name}-probe.yaml")
        prefix = f"{self.ctx.sid}-probe" + self.name[len("eswitch"):]
        self.ctx.reg.add("prefixes", prefix)
        with open(probe, "w") as out:
            out.write("apiVersion: eswitch/v1\n"
                      f"dataplane: {{main_core: {self.ctx.main_cpu}, worker_cores: [{self.ctx.worker_cpus[0]}], "
                      f"memory_mb: 256, mbufs: 4096, file_prefix: {prefix}}}\n"
                      "representors: {kind: none}\n"
                      "vports:\n"
                      "  - name: vm1\n"
                      "    hw_addr: \"02:00:c6:12:00:01\"\n"
                      "    ipv4: [\"198.18.0.1\"]\n"
                      "    spoofchk: false\n"
                      "    attach: {devargs: \"net_null0,no-rx=1\"}\n"
                      "tables:\n"
                      "  - id: 0\n"
                      "    rules:\n"
                      "      - {priority: 1, match: {ipv4_dst: 198.18.16.0, ip_proto: 17}, actions: [drop]}\n")
        # A config error ends eswitchd before the EAL starts; a config it takes is built for real (ports, rules)
        # and one packet traced through it, then it exits.
        args = [self.binary, "--config", probe, "--trace", "in_port=vm1,ipv4_dst=198.18.16.0,udp"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
        unknown = set(re.findall(r'unknown key "([^"]+)"', r.stderr))
        f["representors"] = "representors" not in unknown
        f["vport_binding"] = not ({"ipv4", "spoofchk"} & unknown)
        f["tables"] = "tables" not in unknown
        f["probe_errors"] = r.stderr.strip() if r.returncode != 0 else ""
        # eswitch's own vhost-user vports (rte_vhost, no ethdev): the embedded default config has one when the
        # build knows `attach.vhost_user`; older builds are measured with DPDK's net_vhost ethdev.
        default_cfg = subprocess.run([self.binary, "--print-default-config"], capture_output=True, text=True).stdout
        f["vhost_user_attach"] = "vhost_user:" in default_cfg
        self._features = f
        return f

    def skip_reason(self, point):
        f = self.features()
        s = point.setup
        if s.rules and not f["tables"]:
            return "eswitchd's config loader has no `tables:` yet (rules in YAML are being added)"
        if s.spoofchk and not f["vport_binding"]:
            return "eswitchd's config loader has no vport binding (`ipv4`, `spoofchk`) yet"
        if point.churn and not f["api_socket_option"]:
            return "eswitchd has no management API yet (rule changes while running need `apply` over its socket)"
        return None

    def config_yaml(self, point) -> str:
        """The config for a point, with __PREFIX__ standing for the per-run EAL file prefix."""
        s = point.setup
        if s.key in self._yaml_cache:
            return self._yaml_cache[s.key]
        f = self.features()
        mbufs = scenarios.mbufs_for(s)
        workers = ", ".join(str(c) for c in self.ctx.worker_cpus)
        y = ["apiVersion: eswitch/v1\n",
             "dataplane:\n",
             f"  main_core: {self.ctx.main_cpu}\n",
             f"  worker_cores: [{workers}]\n",
             f"  memory_mb: {_mem_mb(mbufs)}\n",
             f"  mbufs: {mbufs}\n",
             "  idle_sleep_us: 0\n",
             "  file_prefix: __PREFIX__\n"]
        if s.vhost:
            y.append("  eal_extra: [\"--single-file-segments\"]\n")
        if f["representors"]:
            y.append("representors: {kind: none}\n")
        y.append(f"uplinks:\n  - name: {scenarios.SINK}\n    attach: {{devargs: \"net_null0,no-rx=1\"}}\n")
        mode = "client" if s.guest_server else "server"
        if s.vhost_kind == "pvp":
            # PVP: the physical-like source is an uplink (pcap); the VM's vhost-user vport sits between it and the
            # sink (cross_connect wire0 -> vm1 -> uplink0).
            if not f["vhost_user_attach"]:
                raise Skip("eswitchd has no vhost_user vport attachment (PVP is measured with eswitch's own "
                           "vhost-user vports)")
            src = s.sources[0]
            y.append(f"  - name: {src.name}\n    attach: {{devargs: "
                     f"{_yaml_str(f'net_pcap0,rx_pcap={src.pcap},infinite_rx=1')}}}\n")
            y.append(f"vports:\n  - name: {s.pvp_vport}\n")
            if f["vport_binding"]:
                y.append("    spoofchk: false\n")
            y.append(f"    attach: {{vhost_user: {{socket: \"__VHOST__{s.pvp_vport}\", mode: {mode}, queues: 1}}}}\n")
            y.append(f"pipeline:\n  mode: cross_connect\n  cross_connect:\n"
                     f"    - {{from: {src.name}, to: {s.pvp_vport}}}\n"
                     f"    - {{from: {s.pvp_vport}, to: {scenarios.SINK}}}\n")
            text = "".join(y)
            self._yaml_cache = {s.key: text}
            return text
        y.append("vports:\n")
        for i, src in enumerate(s.sources):
            y.append(f"  - name: {src.name}\n")
            attach = None
            if s.vhost and f["vhost_user_attach"]:
                attach = f"{{vhost_user: {{socket: \"__VHOST__{src.name}\", mode: {mode}, queues: 1}}}}"
            elif s.vhost_kind == "vports":
                raise Skip("eswitchd has no vhost_user vport attachment (64 vhost-user vports need no ethdev only "
                           "with it)")
            elif s.vhost:
                devargs = f"net_vhost0,iface=__VHOST__{src.name},queues=1"
            else:
                devargs = f"net_pcap{i},rx_pcap={src.pcap},infinite_rx=1"
            if s.spoofchk:
                y.append(f"    hw_addr: {_yaml_str(src.mac)}\n    ipv4: [{_yaml_str(src.ipv4)}]\n    spoofchk: true\n")
            elif f["vport_binding"]:
                y.append("    spoofchk: false\n")
            y.append(f"    attach: {attach}\n" if attach else f"    attach: {{devargs: {_yaml_str(devargs)}}}\n")
        if not s.rules:
            y.append("pipeline:\n  mode: cross_connect\n  cross_connect:\n")
            for src in s.sources:
                y.append(f"    - {{from: {src.name}, to: {scenarios.SINK}}}\n")
        else:
            # tables last: rule churn appends to this list.
            y.append("tables:\n  - id: 0\n    rules:\n")
            y.extend(_rule_yaml(r) for r in s.rules)
        text = "".join(y)
        self._yaml_cache = {s.key: text}  # one at a time: 100k-rule configs are large
        return text

    def start(self, point):
        s = point.setup
        n = self.ctx.next()
        prefix = f"{self.ctx.sid}-esw{n}"
        self.ctx.reg.add("prefixes", prefix)
        self.prefix = prefix
        text = self.config_yaml(point).replace("__PREFIX__", prefix)
        if s.vhost:
            names = [s.pvp_vport] if s.vhost_kind == "pvp" else [src.name for src in s.sources]
            # Longest names first: __VHOST__vm1 must not eat the start of __VHOST__vm10.
            for name in sorted(names, key=len, reverse=True):
                text = text.replace(f"__VHOST__{name}", self.vhost_path(name))
            self.vhost_socket = self.vhost_path(names[0])
        self.running_yaml = text
        cfg = os.path.join(self.ctx.run_dir, f"{self.name}.yaml")
        with open(cfg, "w") as out:
            out.write(text)
        self.nports = 1 + len(s.sources) + (1 if s.vhost_kind == "pvp" else 0)
        self.source_names = {src.name for src in s.sources}
        self.pvp_vport = s.pvp_vport if s.vhost_kind == "pvp" else None
        args = [self.binary, "--config", cfg, "--stats-interval", str(self.STATS_INTERVAL)]
        self.api_path = None
        if self.features()["api_socket_option"]:
            if point.churn:
                self.api_path = os.path.join(self.ctx.run_dir, f"esw{n}.api.sock")
                args += ["--api-socket", self.api_path]
            else:
                args += ["--api-socket", "none"]
        if self.features()["state_dir_option"]:
            # Saved state of its own (never /var/lib/eswitch), with the default fsync per committed change.
            args += ["--state-dir", os.path.join(self.ctx.run_dir, f"{self.tag}-{n}-state")]
        self._churn_rules = []
        self.child = Child(self.ctx.reg, self.tag, args, self.ctx.log_path(f"{self.tag}-{n}"))
        got = self.child.wait_for(lambda t: t.startswith("eswitchd: forwarding on"), timeout=180)
        if got is None:
            self.child.stop()
            out = self.child.text()
            errors = [ln for ln in out.splitlines() if ln.startswith("eswitchd:")]
            msg = "; ".join(errors[:3]) or out[-500:]
            if "unknown key" in out:
                raise Skip(f"eswitchd does not understand this config yet: {msg}")
            raise Fail(f"eswitchd did not start: {msg}")
        self._seen = got[0]

    def _snapshot(self, after_index: int, timeout: float):
        """The first complete stats table printed after line after_index: (index past it, time, rows)."""
        while True:
            got = self.child.wait_for(lambda t: t.startswith("port ") and "rx_pkts" in t, timeout, after_index)
            if got is None:
                raise Fail("eswitchd stopped printing stats" + ("" if self.child.alive() else " (it exited)"))
            i, t, _ = got
            rows = {}
            j = i + 1
            while len(rows) < self.nports:
                row = self.child.wait_for(lambda _: True, 2.0, j)
                if row is None:
                    raise Fail("eswitchd printed an incomplete stats table")
                j = row[0] + 1
                parts = row[2].split()
                if len(parts) != 9:
                    break
                rows[parts[0]] = parts
            if len(rows) == self.nports:
                return j, t, rows
            after_index = j

    def sample(self) -> Sample:
        with self.child.cond:
            start = len(self.child.lines)
        j, t, rows = self._snapshot(start, timeout=5.0)
        rx = sum(int(r[3]) for name, r in rows.items() if name in self.source_names)
        tx = int(rows[scenarios.SINK][5])
        self._last_cycles = self._worker_cycles(j)
        extra = None
        if self.pvp_vport is not None and self.pvp_vport in rows:
            v = rows[self.pvp_vport]
            extra = {"vhost_out": int(v[5]), "vhost_out_drop": int(v[7]), "vhost_back": int(v[3])}
        return Sample(t, rx, tx, extra=extra)

    _WORKER_LINE = re.compile(r"worker \d+ lcore \d+: busy_cycles=(\d+) idle_cycles=(\d+) packets=(\d+)")

    def _worker_cycles(self, j: int):
        """(busy cycles, packets) summed over the "worker ..." lines eswitchd prints after the port table and the
        vports' drop lines (its own cycle accounting), or None when this build prints none (an older baseline)."""
        busy = pkts = 0
        seen = False
        while True:
            # Any next line (this table's worker line, or the next table's header 0.25 s later) ends the wait;
            # the reader thread may not have read the worker line yet when the port rows are in.
            row = self.child.wait_for(lambda _: True, 1.0, j)
            if row is not None and not seen and row[2].startswith("vport "):  # drops lines come first
                j = row[0] + 1
                continue
            m = self._WORKER_LINE.match(row[2]) if row is not None else None
            if m is None:
                break
            seen = True
            busy += int(m.group(1))
            pkts += int(m.group(3))
            j = row[0] + 1
        return (busy, pkts) if seen else None

    # eswitch's own cycles/packet over the window: busy TSC cycles / packets the workers received.
    def cycles_begin(self):
        self._cyc0 = self._last_cycles

    def cycles_end(self):
        c0, c1 = self._cyc0, self._last_cycles
        if c0 is None or c1 is None or c1[1] <= c0[1]:
            return None
        return (c1[0] - c0[0]) / (c1[1] - c0[1])

    # Rule churn: the management API's "rules" method adds and deletes named runtime rules incrementally (one
    # transaction per call; the config's own rules stay as installed).
    def churn(self, adds, dels):
        if self.api_path is None:
            raise Skip("eswitchd has no management API socket option")
        if self._api is None:
            self._api = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._api.connect(self.api_path)
            self._api_buf = b""
            self._api_id = 0

        def name(r):
            return "churn-" + hashlib.sha1(json.dumps(r.match).encode()).hexdigest()[:12]

        def text(r):
            match = ",".join(f"{k}={v}" for k, v in r.match)
            acts = ",".join(f"{n}:{a}" if a else n for n, a in r.actions)
            return f"priority={r.priority},name={name(r)},{match} actions={acts}"

        self._api_id += 1
        req = {"api": 1, "id": self._api_id, "method": "rules",
               "params": {"add": [text(r) for r in adds], "delete": [name(r) for r in dels]}}
        self._api.sendall(json.dumps(req).encode() + b"\n")
        while b"\n" not in self._api_buf:
            chunk = self._api.recv(1 << 16)
            if not chunk:
                raise Fail("eswitchd closed the API connection")
            self._api_buf += chunk
        line, self._api_buf = self._api_buf.split(b"\n", 1)
        reply = json.loads(line)
        if not reply.get("ok"):
            raise Fail(f"eswitchd refused a churn change: {reply.get('error')}")

    def stop(self):
        if self._api is not None:
            self._api.close()
            self._api = None
        if self.child is None:
            return None
        rc = self.child.stop()
        out = self.child.text()
        self.child = None
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
        self.ctx.reg.remove("prefixes", self.prefix)
        if rc == 3:
            return "eswitchd: mbufs missing from the pool after shutdown (leak)"
        if rc not in (0, None):
            return f"eswitchd exited with status {rc}: {out.splitlines()[-1] if out else ''}"
        return None


# ---------------------------------------------------------------------------------------------------------------
# dpdk-testpmd: the ceiling


class Testpmd(System):
    reports_cycles = True

    def __init__(self, ctx: Ctx, mode: str):
        super().__init__(ctx)
        self.mode = mode
        self.name = f"testpmd-{mode}"
        self.child = None

    def unavailable(self):
        if shutil.which(TESTPMD) is None:
            return "dpdk-testpmd is not installed (package dpdk-dev; bench/system/install_peers.sh)"
        return None

    def skip_reason(self, point):
        if point.churn:
            return "testpmd has no rules"
        if point.setup.vhost and self.mode != "io":
            return "vhost-user is measured with io forwarding only"
        if point.setup.vhost_kind == "vports" and len(point.setup.sources) + 1 > scenarios.max_ethports():
            return (f"{len(point.setup.sources)} net_vhost ports + the sink need more ethdevs than Debian's DPDK "
                    f"allows in one process (RTE_MAX_ETHPORTS={scenarios.max_ethports()})")
        return None

    def start(self, point):
        s = point.setup
        n = self.ctx.next()
        self.prefix = f"{self.ctx.sid}-tp{n}"
        self.ctx.reg.add("prefixes", self.prefix)
        mbufs = scenarios.mbufs_for(s)
        workers = self.ctx.worker_cpus
        lcores = ",".join(str(c) for c in (self.ctx.main_cpu, *workers))
        eal = ["--no-huge", "-m", str(_mem_mb(mbufs)), "--no-pci", f"--file-prefix={self.prefix}",
               "-l", lcores, "--main-lcore", str(self.ctx.main_cpu)]
        vdevs = []
        app = ["-i", f"--forward-mode={self.mode}", f"--nb-cores={len(workers)}", f"--total-num-mbufs={mbufs}",
               "--auto-start", "--record-core-cycles", "--rxq=1", "--txq=1"]
        # Which port's rx is "received from the sources" and which port's tx is "sent to the sink" (None: all).
        self.rx_ports = self.tx_ports = None
        self.pvp_port = None
        if s.vhost_kind == "pvp":
            # Ports 0 (pcap source), 1 (net_vhost to the guest), 2 (net_null sink); chained: 0 -> 1 -> 2 (-> 0:
            # net_null receives nothing).
            eal.append("--single-file-segments")
            self.vhost_socket = self.vhost_path(s.pvp_vport)
            client = ",client=1" if s.guest_server else ""
            vdevs += [f"net_pcap0,rx_pcap={s.sources[0].pcap},infinite_rx=1",
                      f"net_vhost0,iface={self.vhost_socket},queues=1{client}", "net_null0,no-rx=1"]
            app.append("--port-topology=chained")
            self.rx_ports, self.tx_ports, self.pvp_port = {0}, {2}, 1
            self.sink_is_sources = False
        elif s.vhost:
            eal.append("--single-file-segments")
            self.vhost_socket = self.vhost_path(s.sources[0].name)
            vdevs.append(f"net_vhost0,iface={self.vhost_socket},queues=1")
        else:
            vdevs += [f"net_pcap{i},rx_pcap={src.pcap},infinite_rx=1" for i, src in enumerate(s.sources)]
        if s.vhost_kind == "pvp":
            pass
        elif len(s.sources) > 1:
            # Each pcap port forwards to itself; net_pcap without a tx file drops (and counts) what it sends. No
            # other topology sends 64 ports to one in testpmd; the cost of the drop is that of net_null's tx.
            app.append("--port-topology=loop")
            self.sink_is_sources = True
        else:
            vdevs.append("net_null0,no-rx=1")
            self.sink_is_sources = False
        args = ["stdbuf", "-oL", TESTPMD] + eal + [a for v in vdevs for a in ("--vdev", v)] + ["--"] + app
        self.nports = len(vdevs)
        self.child = Child(self.ctx.reg, self.name, args, self.ctx.log_path(f"{self.name}-{n}"), stdin=True,
                           exe=TESTPMD)
        got = self.child.wait_for(lambda t: "Checking link statuses" in t or "EAL: Error" in t or
                                  "Fail" in t or "EXIT" in t, timeout=120)
        out = self.child.text()
        configured = len(set(re.findall(r"Configuring Port (\d+)", out)))
        if got is None or "Checking link statuses" not in got[2] or configured != self.nports:
            self.child.stop()
            errors = [ln for ln in self.child.text().splitlines() if re.search(r"rror|Fail|EXIT|Cannot", ln)]
            raise Fail(f"dpdk-testpmd did not start with {self.nports} ports: " + "; ".join(errors[:4]))

    def _port_stats(self):
        with self.child.cond:
            start = len(self.child.lines)
        self.child.send("show port stats all\n")
        rx = tx = 0
        t0 = None
        i = start
        extra = None
        for _ in range(self.nports):
            got = self.child.wait_for(lambda t: "NIC statistics for port" in t, 5.0, i)
            if got is None:
                raise Fail("dpdk-testpmd did not answer `show port stats all`")
            t0 = t0 or got[1]
            port = int(re.search(r"for port (\d+)", got[2]).group(1))
            r = self.child.wait_for(lambda t: "RX-packets:" in t, 2.0, got[0])
            w = self.child.wait_for(lambda t: "TX-packets:" in t, 2.0, got[0])
            if r is None or w is None:
                raise Fail("dpdk-testpmd printed incomplete port stats")
            prx = int(re.search(r"RX-packets:\s*(\d+)", r[2]).group(1))
            ptx = int(re.search(r"TX-packets:\s*(\d+)", w[2]).group(1))
            if self.rx_ports is None or port in self.rx_ports:
                rx += prx
            if self.tx_ports is None or port in self.tx_ports:
                tx += ptx
            if port == self.pvp_port:
                extra = {"vhost_out": ptx, "vhost_back": prx}
            i = w[0] + 1
        return Sample(t0, rx, tx, extra=extra)

    def sample(self):
        return self._port_stats()

    def cycles_begin(self):
        self.child.send("clear fwd stats all\n")
        self._t_clear = time.time()

    def cycles_end(self):
        with self.child.cond:
            start = len(self.child.lines)
        self.child.send("show fwd stats all\n")
        t = time.time()
        got = self.child.wait_for(lambda t: "CPU cycles/packet=" in t, 5.0, start)
        if got is None:
            return None
        self._window_extra = {}
        if getattr(self, "pvp_port", None) is not None:
            # d: what the guest's full ring refused of testpmd's tx to net_vhost (its forward stats of that port).
            with self.child.cond:
                text = "\n".join(ln for _, ln in self.child.lines[start:got[0]])
            m = re.search(rf"Forward statistics for port {self.pvp_port}\b.*?TX-dropped:\s*(\d+)", text, re.S)
            if m and t > self._t_clear:
                self._window_extra["sys_vhost_out_drop_mpps"] = int(m.group(1)) / (t - self._t_clear) / 1e6
        return float(re.search(r"CPU cycles/packet=([\d.]+)", got[2]).group(1))

    def window_extra(self) -> dict:
        return getattr(self, "_window_extra", {})

    def stop(self):
        if self.child is None:
            return None
        self.child.send("stop\nquit\n")
        try:
            self.child.proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
        rc = self.child.stop()
        self.child = None
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
        self.ctx.reg.remove("prefixes", self.prefix)
        return None if rc in (0, None) else f"dpdk-testpmd exited with status {rc}"


class GuestProc:
    """One guest process: dpdk-testpmd (interactive, so its forwarding counters can be read and cleared) with
    net_virtio_user ports, its forwarding lcore on the main core (the system's forwarding core stays its own)."""

    def __init__(self, ctx: Ctx, vdevs: list, fwd: str, topology: str, mbufs: int, first_socket: str,
                 server: bool):
        self.ctx = ctx
        n = ctx.next()
        self.prefix = f"{ctx.sid}-guest{n}"
        ctx.reg.add("prefixes", self.prefix)
        self.nports = len(vdevs)
        self.first_socket = first_socket
        self.server = server
        c = ctx.main_cpu
        args = ["stdbuf", "-oL", TESTPMD, f"--lcores=0@{c},1@{c}", "--main-lcore=0", "--no-huge", "-m",
                str(_mem_mb(mbufs)), "--single-file-segments", "--no-pci", f"--file-prefix={self.prefix}"]
        for v in vdevs:
            args += ["--vdev", v]
        # --record-burst-stats: how many packets each of its rx polls found (empty polls included), i.e. whether
        # it waited for the system or the system for it.
        args += ["--", "-i", f"--forward-mode={fwd}", f"--port-topology={topology}", "--nb-cores=1", "--auto-start",
                 f"--total-num-mbufs={mbufs}", "--record-core-cycles", "--record-burst-stats"]
        self.child = Child(ctx.reg, f"guest{n}", args, ctx.log_path(f"guest-{n}"), stdin=True, exe=TESTPMD)

    def wait_listening(self, timeout=60):
        """Server mode: the guest's first socket exists (testpmd waits in accept() for the system)."""
        deadline = time.time() + timeout
        while not os.path.exists(self.first_socket):
            if time.time() > deadline or not self.child.alive():
                raise Fail("the vhost-user guest (testpmd virtio_user, server) did not create "
                           f"{self.first_socket}: " + self.child.text()[-600:])
            time.sleep(0.05)

    def wait_ready(self, timeout):
        got = self.child.wait_for(lambda t: "Checking link statuses" in t or "EAL: Error" in t or "EXIT" in t or
                                  "Fail" in t, timeout=timeout)
        configured = len(set(re.findall(r"Configuring Port (\d+)", self.child.text())))
        if got is None or "Checking link statuses" not in got[2] or configured != self.nports:
            errors = [ln for ln in self.child.text().splitlines() if re.search(r"rror|Fail|EXIT|Cannot", ln)]
            raise Fail(f"the vhost-user guest (testpmd virtio_user) did not start with {self.nports} ports in "
                       f"{timeout:.0f} s: " + ("; ".join(errors[:4]) or self.child.text()[-400:]))

    def _cpu_s(self) -> float:
        """On-CPU seconds of the guest process (all its threads) so far."""
        try:
            with open(f"/proc/{self.child.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def _syscw(self) -> Optional[int]:
        """Write system calls of the guest process (all its threads) so far: a polling virtio PMD's kicks (eventfd
        writes to the system) are most of them; the rest is its console output."""
        try:
            with open(f"/proc/{self.child.proc.pid}/io") as f:
                for line in f:
                    if line.startswith("syscw:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None

    def clear(self):
        self.child.send("clear fwd stats all\n")
        self.t_clear = time.time()
        self.cpu0 = self._cpu_s()
        self.w0 = self._syscw()

    def read(self) -> dict:
        """Forwarding counters since clear(): rx, tx, tx refused (ring full), busy cycles, elapsed seconds."""
        with self.child.cond:
            start = len(self.child.lines)
        self.child.send("show fwd stats all\n")
        t = time.time()
        acc = self.child.wait_for(lambda x: "Accumulated forward statistics" in x, 10.0, start)
        if acc is None:
            raise Fail("the guest (testpmd) did not answer `show fwd stats all`")
        r = self.child.wait_for(lambda x: "RX-packets:" in x, 2.0, acc[0])
        w = self.child.wait_for(lambda x: "TX-packets:" in x, 2.0, acc[0])
        if r is None or w is None:
            raise Fail("the guest (testpmd) printed incomplete forward stats")
        # Per port: "RX-bursts : <polls> [<e>% of 0 pkts + ...]" (testpmd's burst spread; the empty share is
        # printed first).
        with self.child.cond:
            text = "\n".join(ln for _, ln in self.child.lines[start:acc[0]])
        polls = empty = 0.0
        rx_lines = re.findall(r"RX-bursts : (\d+) \[(?:(\d+)% of 0 pkts)?", text)
        for n, e in rx_lines:
            polls += int(n)
            empty += int(n) * int(e or 0) / 100
        # The shares are rounded to whole percents (99% empty hides how many found packets): with one port (d: the
        # loop topology), each poll that found packets made one tx call, so the TX-bursts count is exact.
        tx_lines = re.findall(r"TX-bursts : (\d+)", text)
        if len(rx_lines) == 1 and len(tx_lines) == 1:
            empty = polls - int(tx_lines[0])
        out = {"rx_polls": polls, "rx_empty_polls": empty,
               "rx": int(re.search(r"RX-packets:\s*(\d+)", r[2]).group(1)),
               "tx": int(re.search(r"TX-packets:\s*(\d+)", w[2]).group(1)),
               "tx_dropped": int(re.search(r"TX-dropped:\s*(\d+)", w[2]).group(1)), "elapsed": t - self.t_clear}
        cpu_s = self._cpu_s() - self.cpu0
        cpu = cpu_s / max(time.time() - self.t_clear, 1e-3)
        if cpu == cpu:  # not NaN
            out["cpu"] = cpu
            out["cpu_s"] = cpu_s
        w1 = self._syscw()
        if w1 is not None and self.w0 is not None:
            out["writes"] = w1 - self.w0
        return out

    def stop(self):
        if self.child is not None:
            self.child.send("stop\nquit\n")
            try:
                self.child.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            self.child.stop()
            self.child = None
            shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)
            self.ctx.reg.remove("prefixes", self.prefix)


class Guests:
    """The vhost-user guests of a point, all testpmd net_virtio_user on the main core, the same for every system:
      d-rx:   one process, virtio_user + the pcap it replays into the system (io);
      d:      one process, one virtio_user port in macswap, looped (what the system sends comes back);
      bv:     processes of up to 16 (virtio_user, pcap) pairs (io, paired: pcap k -> virtio_user k), 32 ethdevs
              each (Debian's RTE_MAX_ETHPORTS), one pcap per vport (flows, binding, spoofed share as b).
    With setup.guest_server the guests listen (virtio_user server=1) and the systems connect: start them first."""

    PAIRS_PER_PROC = 16
    # virtio ring size: room for a scheduler slice of the shared core 0 (256, DPDK's default, made no difference
    # to bv on the loaded machine).
    QUEUE_SIZE = 1024

    def __init__(self, ctx: Ctx, setup, socket_of):
        self.ctx, self.setup, self.socket_of = ctx, setup, socket_of
        self.procs = []
        self.server = setup.guest_server

    def _vu(self, i, name):
        server = ",server=1" if self.server else ""
        # No mergeable rx buffers, in-order: the guest's fast (vector) paths, as DPDK's PVP reference benchmark
        # sets its guests up, so the guest is less likely to be the limit. Every system negotiates the same.
        return (f"net_virtio_user{i},path={self.socket_of(name)},queues=1,queue_size={self.QUEUE_SIZE},"
                f"mrg_rxbuf=0,in_order=1{server}")

    def launch(self):
        s = self.setup
        if s.vhost_kind == "pvp":
            self.procs.append(GuestProc(self.ctx, [self._vu(0, s.pvp_vport)], "macswap", "loop", 16384,
                                        self.socket_of(s.pvp_vport), self.server))
        else:
            srcs = s.sources
            per = self.PAIRS_PER_PROC if s.vhost_kind == "vports" else 1
            for k in range(0, len(srcs), per):
                chunk = srcs[k:k + per]
                vdevs = []
                for i, src in enumerate(chunk):
                    vdevs += [self._vu(i, src.name), f"net_pcap{i},rx_pcap={src.pcap},infinite_rx=1"]
                # net_pcap holds its file's frames in mbufs (copied into fresh ones at rx); the rest: rx rings,
                # tx in flight, the lcore cache. No rounding up: fewer buffers in the pool, fewer pages in use.
                frames = sum(src.frames for src in chunk)
                mbufs = frames + len(chunk) * (2 * self.QUEUE_SIZE + 64) + 4096
                self.procs.append(GuestProc(self.ctx, vdevs, "io", "paired", mbufs, self.socket_of(chunk[0].name),
                                            self.server))
        if self.server:
            for p in self.procs:
                p.wait_listening()

    def wait_ready(self):
        # Server mode: virtio_user accepts one socket after the other, and a connecting system retries each
        # second (rte_vhost's reconnect thread): about 1 s per port of a guest process.
        timeout = 60 + (self.PAIRS_PER_PROC * 2 if self.server and len(self.procs) > 1 else 0)
        for p in self.procs:
            p.wait_ready(timeout)

    def begin(self):
        for p in self.procs:
            p.clear()

    def end(self) -> dict:
        """The guests' own counters over the window (since begin): rx = what they received (d: from the system;
        d-rx/bv: from their pcaps), tx = what they put into vhost-user, tx_dropped = refused by a full ring (the
        system did not drain it), cpu = the guests' on-CPU time / window (1.0 = a whole core; they poll, so less
        means they were not scheduled all the time)."""
        reads = [p.read() for p in self.procs]
        dt = statistics.median(r["elapsed"] for r in reads)
        out = {"guest_rx_mpps": sum(r["rx"] for r in reads) / dt / 1e6,
               "guest_tx_mpps": sum(r["tx"] for r in reads) / dt / 1e6,
               "guest_tx_dropped_mpps": sum(r["tx_dropped"] for r in reads) / dt / 1e6,
               "guest_rx_packets": sum(r["rx"] for r in reads), "guest_tx_packets": sum(r["tx"] for r in reads),
               "guest_procs": len(reads), "guest_min_tx_packets": min(r["tx"] for r in reads)}
        cpu = [r["cpu"] for r in reads if "cpu" in r]
        if cpu:
            out["guest_cpu"] = sum(cpu)   # on-CPU share of a core, all guest processes together
        if len(cpu) == len(reads):
            out["guest_cpu_s"] = sum(r["cpu_s"] for r in reads)
        # Write system calls per packet the guests put into vhost-user: kicks (a polling guest needs none when the
        # system suppresses them, as net_vhost does) plus console output (a few per window).
        # Rx polls: the share that found nothing and the packets per poll that found some (up to 32). A guest
        # that is the limit finds full bursts; one waiting for the system polls empty or finds a few.
        polls = sum(r["rx_polls"] for r in reads)
        if polls > 0:
            empty = sum(r["rx_empty_polls"] for r in reads)
            out["guest_rx_empty_poll_share"] = empty / polls
            if polls > empty:
                out["guest_rx_pkts_per_poll"] = out["guest_rx_packets"] / (polls - empty)
        if all("writes" in r for r in reads) and out["guest_tx_packets"] > 0:
            out["guest_writes_per_pkt"] = sum(r["writes"] for r in reads) / out["guest_tx_packets"]
        return out

    def stop(self):
        for p in self.procs:
            p.stop()
        self.procs = []


# ---------------------------------------------------------------------------------------------------------------
# Open vSwitch (DPDK datapath), private instance


_OF_FIELDS = {"in_port": "in_port", "eth_src": "dl_src", "eth_dst": "dl_dst", "ipv4_src": "nw_src",
              "ipv4_dst": "nw_dst", "udp_src": "tp_src", "udp_dst": "tp_dst", "dscp": "ip_dscp"}


class Ovs(System):
    name = "ovs"
    reports_cycles = True
    BRIDGE = "eswbbr0"

    def __init__(self, ctx: Ctx):
        super().__init__(ctx)
        self.dir = os.path.join(ctx.run_dir, "ovs")
        self.env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir, OVS_LOGDIR=self.dir,
                        OVS_SYSCONFDIR=self.dir)
        self.db_sock = os.path.join(self.dir, "db.sock")
        self.ctl = os.path.join(self.dir, "ovs-vswitchd.ctl")
        self.db_child = None
        self.vs_child = None
        self.netns = f"{ctx.sid}-ovs"
        self.vdev_seq = 0
        self.bridge_up = False

    def unavailable(self):
        for tool in ("ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (package openvswitch-switch-dpdk; bench/system/install_peers.sh)"
        if not os.access(OVS_VSWITCHD, os.X_OK):
            return f"{OVS_VSWITCHD} is not installed (package openvswitch-switch-dpdk)"
        return None

    def skip_reason(self, point):
        return None

    def _run(self, argv, timeout=120, input=None, check=True):
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise Fail(f"{' '.join(argv[:3])}...: {r.stderr.strip()[-400:]}")
        return r.stdout

    def vsctl(self, *args, timeout=120):
        return self._run(["ovs-vsctl", f"--db=unix:{self.db_sock}", f"--timeout={timeout}", *args], timeout + 5)

    def ofctl(self, *args, input=None, timeout=600):
        return self._run(["ovs-ofctl", *args], timeout, input=input)

    def appctl(self, *args, timeout=30):
        return self._run(["ovs-appctl", "-t", self.ctl, f"--timeout={timeout}", *args], timeout + 5)

    def _ensure_daemons(self):
        if self.vs_child is not None and self.vs_child.alive() and self.db_child.alive():
            return
        self._stop_daemons()
        os.makedirs(self.dir, exist_ok=True)
        self.ctx.reg.add("dirs", self.dir)
        db = os.path.join(self.dir, "conf.db")
        if os.path.exists(db):
            os.unlink(db)
        self._run(["ovsdb-tool", "create", db, OVS_SCHEMA])
        self.db_child = Child(self.ctx.reg, "ovsdb-server",
                              ["ovsdb-server", db, f"--remote=punix:{self.db_sock}",
                               f"--unixctl={os.path.join(self.dir, 'ovsdb-server.ctl')}",
                               f"--pidfile={os.path.join(self.dir, 'ovsdb-server.pid')}",
                               f"--log-file={os.path.join(self.dir, 'ovsdb-server.log')}"],
                              self.ctx.log_path("ovsdb-server"), env=self.env)
        deadline = time.time() + 20
        while not os.path.exists(self.db_sock):
            if time.time() > deadline or not self.db_child.alive():
                raise Fail("ovsdb-server did not start: " + self.db_child.text()[-400:])
            time.sleep(0.05)
        self.prefix = f"{self.ctx.sid}-ovs"
        self.ctx.reg.add("prefixes", self.prefix)
        pmd_mask = sum(1 << c for c in self.ctx.worker_cpus)
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   "other_config:dpdk-init=true",
                   f"other_config:dpdk-lcore-mask={hex(1 << self.ctx.main_cpu)}",
                   f"other_config:pmd-cpu-mask={hex(pmd_mask)}",
                   f"other_config:dpdk-extra=--no-huge --legacy-mem -m 2048 --no-pci --file-prefix={self.prefix}")
        # Its own network namespace: the bridge's internal port (a tap in the userspace datapath) lives and dies
        # there. Full CPU affinity: OVS pins its own threads (main thread to the lcore mask, PMDs to theirs).
        if not os.path.exists(f"/var/run/netns/{self.netns}"):
            subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self.ctx.reg.add("netns", self.netns)
        cpus = ",".join(str(c) for c in (self.ctx.main_cpu, *self.ctx.worker_cpus))
        self.vs_child = Child(self.ctx.reg, "ovs-vswitchd",
                              ["ip", "netns", "exec", self.netns, "taskset", "-c", cpus, OVS_VSWITCHD,
                               f"unix:{self.db_sock}", f"--unixctl={self.ctl}",
                               f"--pidfile={os.path.join(self.dir, 'ovs-vswitchd.pid')}",
                               f"--log-file={os.path.join(self.dir, 'ovs-vswitchd.log')}"],
                              self.ctx.log_path("ovs-vswitchd"), env=self.env, exe=os.path.basename(OVS_VSWITCHD))
        try:
            self.vsctl("wait-until", "Open_vSwitch", ".", "dpdk_initialized=true", timeout=120)
        except Fail:
            raise Fail("ovs-vswitchd-dpdk did not initialise DPDK: " + self.vs_child.text()[-600:])

    def _stop_daemons(self):
        if self.vs_child is not None:
            if self.vs_child.alive():
                self._run(["ovs-appctl", "-t", self.ctl, "--timeout=20", "exit", "--cleanup"], 25, check=False)
                try:
                    self.vs_child.proc.wait(20)
                except subprocess.TimeoutExpired:
                    pass
            self.vs_child.stop(grace=10)
            self.vs_child = None
        if self.db_child is not None:
            self.db_child.stop(sig=15, grace=5)
            self.db_child = None
        if os.path.exists(f"/var/run/netns/{self.netns}"):
            subprocess.run(["ip", "netns", "del", self.netns], stderr=subprocess.DEVNULL)
        self.ctx.reg.remove("netns", self.netns)
        if getattr(self, "prefix", None):
            shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def _of_match(self, match, ports) -> str:
        fields = dict(match)
        items = []
        if "ip_proto" in fields:
            items.append("udp" if fields["ip_proto"] == "17" else f"ip,nw_proto={fields['ip_proto']}")
        elif any(k in fields for k in ("ipv4_src", "ipv4_dst", "dscp")):
            items.append("ip")
        for k, v in match:
            if k == "ip_proto":
                continue
            if k == "in_port":
                v = str(ports[v])
            items.append(f"{_OF_FIELDS[k]}={v}")
        return ",".join(items)

    def _of_actions(self, actions, ports) -> str:
        out = []
        for n, a in actions:
            if n == "output":
                out.append(f"output:{ports[a]}")
            elif n == "drop":
                out.append("drop")
            else:
                raise Fail(f"no OpenFlow translation for action {n}")
        return ",".join(out)

    def flows_text(self, setup, ports) -> str:
        lines = []
        acl_table = 0
        if setup.spoofchk:
            # Anti-spoofing as OVS users write it: a vport may send IPv4 only from its MAC and address.
            acl_table = 1
            for src in setup.sources:
                lines.append(f"table=0,priority=100,in_port={ports[src.name]},dl_src={src.mac},ip,"
                             f"nw_src={src.ipv4},actions=resubmit(,1)")
            lines.append("table=0,priority=0,actions=drop")
        if setup.vhost_kind == "pvp":
            # PVP: the source to the VM's vhost-user port, what comes back from it to the sink.
            vm = ports[setup.pvp_vport]
            lines.append(f"table=0,priority=100,in_port={ports[setup.sources[0].name]},actions=output:{vm}")
            lines.append(f"table=0,priority=100,in_port={vm},actions=output:{ports[scenarios.SINK]}")
        elif not setup.rules:
            for src in setup.sources:
                lines.append(f"table=0,priority=100,in_port={ports[src.name]},actions=output:{ports[scenarios.SINK]}")
        else:
            for r in setup.rules:
                lines.append(f"table={r.table + acl_table},priority={r.priority},{self._of_match(r.match, ports)},"
                             f"actions={self._of_actions(r.actions, ports)}")
            lines.append(f"table={acl_table},priority=0,actions=drop")
        return "\n".join(lines) + "\n"

    def start(self, point):
        s = point.setup
        self._ensure_daemons()
        n = self.ctx.next()
        self.ports = {scenarios.SINK: 1}
        cmd = ["--", "add-br", self.BRIDGE, "--", "set", "bridge", self.BRIDGE, "datapath_type=netdev",
               "fail-mode=secure"]
        self.vdev_seq += 1
        cmd += ["--", "add-port", self.BRIDGE, scenarios.SINK, "--", "set", "Interface", scenarios.SINK, "type=dpdk",
                f"options:dpdk-devargs=net_null{self.vdev_seq},no-rx=1", "ofport_request=1"]
        self.vhost_socket = None
        self.pmd_rx = s.vhost_kind in ("rx", "vports")
        self.pvp_ofport = None
        if s.vhost_kind == "pvp":
            # The VM's port: OVS connects to the guest's socket (dpdkvhostuserclient).
            self.pvp_ofport = len(s.sources) + 2
            self.ports[s.pvp_vport] = self.pvp_ofport
            self.vhost_socket = self.vhost_path(s.pvp_vport)
            cmd += ["--", "add-port", self.BRIDGE, s.pvp_vport, "--", "set", "Interface", s.pvp_vport,
                    "type=dpdkvhostuserclient", f"options:vhost-server-path={self.vhost_socket}",
                    f"ofport_request={self.pvp_ofport}"]
        for i, src in enumerate(s.sources):
            self.vdev_seq += 1
            ofport = i + 2
            self.ports[src.name] = ofport
            if s.vhost_kind == "vports":
                path = self.vhost_path(src.name)
                cmd += ["--", "add-port", self.BRIDGE, src.name, "--", "set", "Interface", src.name]
                if s.guest_server:
                    cmd += ["type=dpdkvhostuserclient", f"options:vhost-server-path={path}"]
                else:
                    raise Fail("bv: the guests are the vhost-user servers (OVS: dpdkvhostuserclient)")
                cmd.append(f"ofport_request={ofport}")
            elif s.vhost and s.vhost_kind != "pvp":
                name = f"vhu{n}"
                self.vhost_socket = os.path.join(self.dir, name)
                cmd += ["--", "add-port", self.BRIDGE, name, "--", "set", "Interface", name, "type=dpdkvhostuser",
                        f"ofport_request={ofport}"]
                self.ports[src.name] = ofport
            else:
                cmd += ["--", "add-port", self.BRIDGE, src.name, "--", "set", "Interface", src.name, "type=dpdk",
                        f"options:dpdk-devargs=net_pcap{self.vdev_seq},rx_pcap={src.pcap},infinite_rx=1",
                        f"ofport_request={ofport}"]
        self.bridge_up = True
        self.vsctl(*cmd, timeout=300)
        errors = self.vsctl("--format=csv", "--no-headings", "--columns=name,error", "list", "Interface")
        bad = [ln for ln in errors.splitlines() if ln.split(",", 1)[1].strip() not in ('""', "[]", "")]
        if bad:
            raise Fail("OVS could not open ports: " + "; ".join(bad[:3]))
        flows = os.path.join(self.ctx.run_dir, "ovs-flows.txt")
        with open(flows, "w") as out:
            out.write(self.flows_text(s, self.ports))
        self.ofctl("--bundle", "add-flows", self.BRIDGE, flows)
        self.sources = {self.ports[src.name] for src in s.sources}

    def vhost_log_text(self) -> str:
        try:
            with open(os.path.join(self.dir, "ovs-vswitchd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pid(self):
        return self.vs_child.proc.pid if self.vs_child is not None and self.vs_child.alive() else None

    def _pmd_totals(self):
        """(packets received, processing cycles) summed over the PMD threads. The datapath's own receive counter
        covers every port type (OVS reports no port statistics for dpdkvhostuser ports)."""
        out = self.appctl("dpif-netdev/pmd-stats-show")
        packets = cycles = 0
        for block in out.split("pmd thread")[1:]:
            m = re.search(r"packets received:\s*(\d+)", block)
            c = re.search(r"processing cycles:\s*(\d+)", block)
            packets += int(m.group(1)) if m else 0
            cycles += int(c.group(1)) if c else 0
        return packets, cycles

    def sample(self):
        # One dump-ports reads the sources and the sink at the same moment. OVS reports no port statistics for
        # dpdkvhostuser ports ("?"): then rx comes from the PMDs' receive counter, read just before.
        t0 = time.time()
        pmd_rx = self._pmd_totals()[0] if self.pmd_rx else None
        t1 = time.time()
        out = self.ofctl("dump-ports", self.BRIDGE, timeout=30)
        t2 = time.time()
        rx = tx = 0
        port = None
        extra = {}
        for line in out.splitlines():
            m = re.match(r"\s*port\s+(\S+):\s+rx pkts=(\d+)", line)
            if m:
                port = int(m.group(1)) if m.group(1).isdigit() else None
                if port in self.sources:
                    rx += int(m.group(2))
                if port is not None and port == self.pvp_ofport:
                    extra["vhost_back"] = int(m.group(2))
                continue
            m = re.match(r"\s*port\s+(\S+):", line)
            if m:
                port = int(m.group(1)) if m.group(1).isdigit() else None
                continue
            m = re.match(r"\s*tx pkts=(\d+),.*drop=(\d+|\?)", line) or re.match(r"\s*tx pkts=(\d+)", line)
            if m and port == self.ports[scenarios.SINK]:
                tx += int(m.group(1))
            if m and port is not None and port == self.pvp_ofport:
                extra["vhost_out"] = int(m.group(1))
                if m.lastindex == 2 and m.group(2).isdigit():
                    extra["vhost_out_drop"] = int(m.group(2))
        if pmd_rx is not None:
            return Sample((t0 + t1) / 2, pmd_rx, tx, (t1 + t2) / 2)
        return Sample((t1 + t2) / 2, rx, tx, extra=extra or None)

    def cycles_begin(self):
        self._cyc0 = self._pmd_totals()

    def cycles_end(self):
        p1, c1 = self._pmd_totals()
        p0, c0 = self._cyc0
        # The counters are read without a lock on the PMD's side: a read that went backwards is no figure.
        return (c1 - c0) / (p1 - p0) if p1 > p0 and c1 > c0 else None

    def churn(self, adds, dels):
        lines = []
        for r in adds:
            lines.append(f"add table={r.table + 1},priority={r.priority},{self._of_match(r.match, self.ports)},"
                         f"actions={self._of_actions(r.actions, self.ports)}")
        for r in dels:
            lines.append(f"delete_strict table={r.table + 1},priority={r.priority},"
                         f"{self._of_match(r.match, self.ports)}")
        self.ofctl("--bundle", "add-flows", self.BRIDGE, "-", input="\n".join(lines) + "\n")

    def stop(self):
        problem = None
        if self.bridge_up:
            try:
                self.vsctl("--if-exists", "del-br", self.BRIDGE, timeout=120)
            except (Fail, subprocess.TimeoutExpired) as e:
                problem = f"OVS: del-br failed: {e}"
            self.bridge_up = False
        if self.vs_child is not None and not self.vs_child.alive():
            problem = "ovs-vswitchd-dpdk exited: " + self.vs_child.text()[-300:]
            self._stop_daemons()
        return problem

    def close(self):
        self._stop_daemons()
