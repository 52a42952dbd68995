"""Child processes and everything else the benchmark creates, recorded so that it can all be removed again.

Every process is started in its own session (a terminal's Ctrl-C reaches only the harness, which then stops the
children in order) and recorded in <run>/pids/<name>.pid together with its executable, so that cleanup, even one
run later from another process (`bench.py --cleanup RUN`), kills only what is still ours. DPDK runtime
directories (/var/run/dpdk/<prefix>), the network namespace Open vSwitch runs in and the run directory itself are
recorded the same way.
"""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

DPDK_RUNTIME = "/var/run/dpdk"


class Registry:
    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.pid_dir = os.path.join(run_dir, "pids")
        os.makedirs(self.pid_dir, exist_ok=True)
        self.state_path = os.path.join(run_dir, "created.json")
        self._lock = threading.Lock()
        self._state = {"prefixes": [], "netns": [], "dirs": []}
        self._save()

    def _save(self):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self._state, f)
        os.replace(tmp, self.state_path)

    def add(self, kind: str, value: str):
        with self._lock:
            if value not in self._state[kind]:
                self._state[kind].append(value)
                self._save()

    def remove(self, kind: str, value: str):
        with self._lock:
            if value in self._state[kind]:
                self._state[kind].remove(value)
                self._save()

    def record_pid(self, name: str, pid: int, exe: str):
        with open(os.path.join(self.pid_dir, f"{name}.pid"), "w") as f:
            f.write(f"{pid} {exe}\n")

    def forget_pid(self, name: str):
        try:
            os.unlink(os.path.join(self.pid_dir, f"{name}.pid"))
        except FileNotFoundError:
            pass


def _alive_and_ours(pid: int, exe_names: str) -> bool:
    """exe_names: comma-separated basenames the process may carry (a wrapper before it execs, then the program)."""
    names = set(exe_names.split(","))
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        state = stat[stat.rindex(")") + 2]
        if state == "Z":
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False
    return any(os.path.basename(a.decode(errors="replace")) in names for a in argv[:2])


def kill_pid(pid: int, exe_base: str, grace: float = 5.0, first=signal.SIGTERM):
    """Stops pid if it is still the process we started (same executable)."""
    if not _alive_and_ours(pid, exe_base):
        return
    try:
        os.kill(pid, first)
        os.kill(pid, signal.SIGCONT)  # in case it was frozen (the benchmark pauses idle systems)
    except ProcessLookupError:
        return
    end = time.time() + grace
    while time.time() < end:
        if not _alive_and_ours(pid, exe_base):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def cleanup_run(run_dir: str, keep_dir: bool = False, log=print):
    """Removes whatever a run recorded: processes (by pid file), DPDK runtime dirs, network namespaces, then the run
    directory. Safe to call twice and from another process."""
    pid_dir = os.path.join(run_dir, "pids")
    if os.path.isdir(pid_dir):
        for name in sorted(os.listdir(pid_dir)):
            path = os.path.join(pid_dir, name)
            try:
                pid_s, exe = open(path).read().split()
                if _alive_and_ours(int(pid_s), exe):
                    log(f"cleanup: stopping {exe} (pid {pid_s})")
                    kill_pid(int(pid_s), exe)
            except (ValueError, OSError):
                pass
            try:
                os.unlink(path)
            except OSError:
                pass
    state = {}
    try:
        with open(os.path.join(run_dir, "created.json")) as f:
            state = json.load(f)
    except (OSError, ValueError):
        pass
    for prefix in state.get("prefixes", []):
        shutil.rmtree(os.path.join(DPDK_RUNTIME, prefix), ignore_errors=True)
    for ns in state.get("netns", []):
        if os.path.exists(f"/var/run/netns/{ns}"):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    for d in state.get("dirs", []) if not keep_dir else []:
        shutil.rmtree(d, ignore_errors=True)
    try:
        os.rmdir(DPDK_RUNTIME)  # only if empty: other users may have their own runtime dirs there
    except OSError:
        pass
    if not keep_dir:
        shutil.rmtree(run_dir, ignore_errors=True)


class Child:
    """A child process whose stdout+stderr lines are read by a thread, timestamped and kept (and logged)."""

    def __init__(self, reg: Registry, name: str, argv: list, log_path: str, stdin=False, env=None, exe=None):
        self.name = name
        self.reg = reg
        self.argv = argv
        self.log = open(log_path, "w", buffering=1)
        self.log.write("$ " + " ".join(argv) + "\n")
        self.lines = []           # (time, text)
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                     start_new_session=True, env=env, errors="replace")
        # The executable as /proc/PID/cmdline will name it: wrappers (stdbuf, taskset, ip netns exec) exec it.
        self.exe = ",".join(dict.fromkeys([exe or os.path.basename(argv[0]), os.path.basename(argv[0])]))
        reg.record_pid(name, self.proc.pid, self.exe)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            t = time.time()
            self.log.write(f"{t:.3f} {line}")
            with self.cond:
                self.lines.append((t, line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate, timeout: float, start_index: int = 0):
        """Waits until predicate(text) holds for a line from start_index on; returns (index, time, text) or None
        when the process exited or the timeout passed."""
        end = time.time() + timeout
        i = start_index
        with self.cond:
            while True:
                while i < len(self.lines):
                    t, text = self.lines[i]
                    if predicate(text):
                        return i, t, text
                    i += 1
                if self.proc.poll() is not None and not self._reader.is_alive():
                    return None
                left = end - time.time()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.1))

    def text(self) -> str:
        with self.cond:
            return "\n".join(t for _, t in self.lines)

    def send(self, text: str):
        try:
            self.proc.stdin.write(text)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGINT, grace: float = 10.0) -> int:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.send_signal(signal.SIGCONT)  # a frozen (SIGSTOPped) system would never see sig
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()  # SIGKILL always ends it; on a loaded machine that can take more than seconds
        self._reader.join(2)
        self.reg.forget_pid(self.name)
        self.log.close()
        return self.proc.returncode
