"""A loopback server as a child process: start it with its output in a log file, wait
until it answers, stop its whole process group. Shared by the S3 and registry starters;
:class:`StartStop` gives every server (PostgreSQL too) its ``with`` block."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


class StartStop:
    """``with server:`` starts it and stops it, whatever happens inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def log_tail(log_file: Path, lines: int = 30) -> str:
    """The last ``lines`` of a server's log, headed for an error message ('' when unreadable)."""
    try:
        text = log_file.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n--- {log_file.name} (tail) ---\n" + "\n".join(text)


def spawn_logged(argv: Sequence[str], env: Mapping[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (so :func:`stop_process_group` reaches its
    children) with stdout and stderr appended to ``log_file`` and no stdin."""
    with log_file.open("ab") as log:
        return subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env), start_new_session=True,
        )


def wait_until_ready(
    process: subprocess.Popen[bytes],
    answers: Callable[[], bool],
    *,
    name: str,
    log_file: Path,
    timeout_s: float,
    error: type[Exception],
) -> None:
    """Poll ``answers()`` until it is true; raise ``error`` (with the log's tail) when the
    process exits first or ``timeout_s`` passes (the process is stopped then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise error(f"{name} exited with {process.returncode}{log_tail(log_file)}")
        if answers():
            return
        time.sleep(0.1)
    stop_process_group(process)
    raise error(f"{name} did not answer within {timeout_s:g}s{log_tail(log_file)}")


def start_logged(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_file: Path,
    answers: Callable[[], bool],
    *,
    name: str,
    timeout_s: float,
    error: type[Exception],
) -> subprocess.Popen[bytes]:
    """:func:`spawn_logged`, then :func:`wait_until_ready`: the process once it answers, or
    ``error`` (the process stopped)."""
    process = spawn_logged(argv, env, log_file)
    wait_until_ready(process, answers, name=name, log_file=log_file, timeout_s=timeout_s, error=error)
    return process


def stop_process_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process's group, then SIGKILL if it is still there. Idempotent."""
    if process is None or process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
