"""Run one command and measure it: wall time, exit code, and peak RSS of the process
itself and of its whole process tree (psutil, polled at ~20 Hz; tree = the sum of the
RSS of the process and all its descendants at the same instant).

The machine may be shared, so each measurement also accounts for CPU time: the command's
own tree (``getrusage(RUSAGE_CHILDREN)`` of this process), the servers it talks to
(PostgreSQL's postmaster with its reaped backends, moto) and everything else on the
machine (``other``: busy CPU time not spent by any of those, including VM steal time).
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

POLL_INTERVAL_S = 0.05
MiB = 1024 * 1024


@dataclass
class Sample:
    t: float
    rss_main: int
    rss_tree: int


@dataclass
class Measured:
    argv0: str
    seconds: float
    returncode: int
    peak_rss_main: int
    peak_rss_tree: int
    started_at: float  # time.time() at start, to align with the command's own log times
    stdout: str = ""
    stderr: str = ""
    samples: list[Sample] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            tail = "\n".join((self.stderr or self.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{what} failed with exit code {self.returncode}:\n{tail}")
        return self


class _Sampler(threading.Thread):
    def __init__(self, pid: int, started: float, pid_file: Path | None = None) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.pid_file = pid_file
        self.started = started
        self.stop_event = threading.Event()
        self.samples: list[Sample] = []
        self.peak_main = 0
        self.peak_tree = 0
        self.cpu_seen: dict[int, tuple[str, float]] = {}

    def _note_cpu(self, process: psutil.Process) -> None:
        try:
            t = process.cpu_times()
            name = process.name()  # read each time: a wrapper script or runc's init execs the real program
        except psutil.Error:
            return
        if name.startswith("agent-bom-back"):
            name = "agent-bom-backup"  # comm is cut at 15 characters
        self.cpu_seen[process.pid] = (name, t.user + t.system)

    def cpu_by_name(self) -> dict[str, float]:
        """CPU seconds per process name in the tree, as last seen (up to one poll short)."""
        totals: dict[str, float] = {}
        for name, seconds in self.cpu_seen.values():
            totals[name] = totals.get(name, 0.0) + seconds
        return totals

    def _container_root(self) -> psutil.Process | None:
        """The container's first process, once the engine has written its pid file."""
        while not self.stop_event.is_set():
            try:
                return psutil.Process(int(self.pid_file.read_text().strip()))  # type: ignore[union-attr]
            except (OSError, ValueError, psutil.Error):
                self.stop_event.wait(0.005)
        return None

    def run(self) -> None:
        try:
            root = self._container_root() if self.pid_file else psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        if root is None:
            return
        while not self.stop_event.is_set():
            try:
                main = root.memory_info().rss
            except psutil.Error:
                break
            tree = main
            self._note_cpu(root)
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                try:
                    tree += child.memory_info().rss
                except psutil.Error:
                    continue
                self._note_cpu(child)
            self.peak_main = max(self.peak_main, main)
            self.peak_tree = max(self.peak_tree, tree)
            self.samples.append(Sample(time.monotonic() - self.started, main, tree))
            self.stop_event.wait(POLL_INTERVAL_S)


#: servers whose CPU time is accounted separately, name -> pid (set by the runner); each
#: one's CPU time is reported as ``server:<name>_s``
SERVER_PIDS: dict[str, int] = {}
#: before each command, wait up to this long for the machine to be quiet (0: never wait)
QUIET_WAIT_S = 0.0
#: "quiet": the busy share of all CPUs stays below this for two 0.5 s samples in a row
QUIET_BUSY_FRACTION = 0.30


def wait_quiet(max_wait: float) -> tuple[float, float]:
    """Wait until other work on the machine calms down; returns (seconds waited, busy share
    of the CPUs in the last sample). Between measurements the benchmark's own servers are
    idle, so what keeps the CPUs busy here is someone else."""
    started = time.monotonic()
    calm = 0
    busy = psutil.cpu_percent(interval=0.5) / 100
    while time.monotonic() - started < max_wait:
        calm = calm + 1 if busy < QUIET_BUSY_FRACTION else 0
        if calm >= 2:
            break
        busy = psutil.cpu_percent(interval=0.5) / 100
    return time.monotonic() - started, busy


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _server_state() -> tuple[dict[str, float], set[int]]:
    """CPU time of each server — the process, its reaped children (``children_*``) and its
    live children (running PostgreSQL backends) — and the pids of those live children."""
    totals: dict[str, float] = {}
    live: set[int] = set()
    for name, pid in SERVER_PIDS.items():
        try:
            process = psutil.Process(pid)
            t = process.cpu_times()
            children = process.children(recursive=True)
        except psutil.Error:
            continue
        total = t.user + t.system + t.children_user + t.children_system
        for child in children:
            try:
                c = child.cpu_times()
            except psutil.Error:
                continue
            total += c.user + c.system
            live.add(child.pid)
        totals[name] = total
    return totals, live


def _settled_server_state(before: set[int], timeout: float = 3.0) -> dict[str, float]:
    """Server CPU once the backends the command used have exited and been reaped: a
    backend between exit and reaping is in neither its parent's children times nor the
    live list, and would be lost."""
    deadline = time.monotonic() + timeout
    previous: dict[str, float] | None = None
    while True:
        totals, live = _server_state()
        if live <= before and totals == previous:
            return totals
        if time.monotonic() > deadline:
            return totals
        previous = totals if live <= before else None
        time.sleep(0.05)


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(
    argv: list[str],
    env: dict[str, str],
    *,
    stdout_path: Path | None = None,
    keep_samples: bool = False,
    timeout: float = 3600,
    pid_file: Path | None = None,
    cwd: Path | None = None,
) -> Measured:
    """Run ``argv`` to completion; stdout goes to ``stdout_path`` (e.g. /dev/null) or is
    captured. With ``pid_file`` (a container engine's ``--pidfile``, removed first and
    afterwards) memory and CPU are the container's processes'."""
    if pid_file is not None:
        pid_file.unlink(missing_ok=True)
    waited, busy_before = wait_quiet(QUIET_WAIT_S) if QUIET_WAIT_S > 0 else (0.0, -1.0)
    servers_before, live_before = _server_state()
    before = (_busy_seconds(), _children_seconds(), _self_seconds())
    wall_start = time.time()
    started = time.monotonic()
    out_handle = open(stdout_path, "wb") if stdout_path else None  # noqa: SIM115 - closed below
    try:
        process = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_handle if out_handle else subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
        )
        sampler = _Sampler(process.pid, started, pid_file)
        sampler.start()
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        seconds = time.monotonic() - started
        sampler.stop_event.set()
        sampler.join()
    finally:
        if out_handle:
            out_handle.close()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
    after = (_busy_seconds(), _children_seconds(), _self_seconds())
    servers_after = _settled_server_state(live_before)
    busy, tree, own = (a - b for a, b in zip(after, before))
    by_name = sampler.cpu_by_name()
    if pid_file is not None:  # not this process's children: seen by the sampler only
        tree += sum(by_name.values())
    servers = {name: servers_after[name] - servers_before.get(name, 0.0) for name in servers_after}
    server = sum(servers.values())
    cpu = {
        "capacity_s": round(seconds * (os.cpu_count() or 1), 3),
        "busy_s": round(busy, 3),
        "command_s": round(tree, 3),
        **{f"server:{name}_s": round(value, 3) for name, value in servers.items()},
        "servers_s": round(server, 3),
        "bench_s": round(own, 3),
        "other_s": round(max(0.0, busy - tree - server - own), 3),
        "quiet_wait_s": round(waited, 2),
        "busy_before": round(busy_before, 3),
        **{f"tree:{name}_s": round(value, 3) for name, value in by_name.items()},
    }
    return Measured(
        argv0=Path(argv[0]).name,
        seconds=seconds,
        returncode=process.returncode,
        peak_rss_main=sampler.peak_main,
        peak_rss_tree=sampler.peak_tree,
        started_at=wall_start,
        stdout=(stdout or b"").decode("utf-8", "replace"),
        stderr=(stderr or b"").decode("utf-8", "replace"),
        samples=sampler.samples if keep_samples else [],
        cpu=cpu,
    )
