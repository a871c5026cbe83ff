"""Run pg_dump and pg_dumpall. Knows nothing of S3.

``DumpStream`` exposes pg_dump's stdout as a reader. The trap every peer falls into:
when pg_dump dies mid-stream the pipe simply ends and the upload completes a
truncated object. ``DumpStream.finish()`` waits for pg_dump and raises on a non-zero
exit, and the uploader calls it *before* completing the multipart upload.
"""

from __future__ import annotations

import io
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .errors import DumpError
from .log import event, get_logger, redact_url
from .pgclients import Compression, PgClient
from .pgconn import ConnInfo, SessionSettings

STANDBY_CONFLICT = "canceling statement due to conflict with recovery"
LOCK_TIMEOUT = "canceling statement due to lock timeout"
CONNECTION_LOST = (
    "server closed the connection",
    "terminating connection",
    "connection to server was lost",
    "PQgetResult() failed",
    "could not receive data from server",
)


@dataclass(frozen=True)
class DumpOptions:
    compression: Compression
    snapshot: str | None
    lock_wait_timeout_s: int
    enable_row_security: bool = False
    #: exact ``--exclude-table`` patterns (tableaccess.dump_pattern): definition and data left out
    exclude: tuple[str, ...] = ()


def pg_dump_argv(client: PgClient, conn_info: ConnInfo, session: SessionSettings, options: DumpOptions) -> list[str]:
    argv = [
        str(client.tool("pg_dump")),
        "--format=custom",
        options.compression.pg_dump_arg(client.major),
        f"--lock-wait-timeout={options.lock_wait_timeout_s * 1000}",
        "--no-password",
        f"--dbname={conn_info.tool_conninfo(session)}",
    ]
    if options.snapshot:
        argv.append(f"--snapshot={options.snapshot}")
    if options.enable_row_security:
        argv.append("--enable-row-security")
    argv += [f"--exclude-table={pattern}" for pattern in options.exclude]
    return argv


class _StderrTail:
    """Collects pg_dump's stderr in a thread so the pipe never fills up."""

    def __init__(self, stream, max_lines: int = 50) -> None:  # type: ignore[no-untyped-def]
        self.lines: deque[str] = deque(maxlen=max_lines)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream) -> None:  # type: ignore[no-untyped-def]
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode("utf-8", "replace").rstrip())
        stream.close()

    def join(self) -> None:
        self._thread.join(timeout=10)


class DumpStream:
    """pg_dump's stdout as a reader; ``finish()`` raises if pg_dump failed."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        event(get_logger(), "starting pg_dump", argv=redact_url(" ".join(argv[:1] + argv[1:4])))
        # unbuffered: each read returns what the pipe holds (the reader fills part buffers)
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, bufsize=0
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._stdout = self.process.stdout
        self._stderr = _StderrTail(io.BufferedReader(self.process.stderr))
        #: set when pg_dump's first bytes arrive, or it ended without any
        self.output_started = threading.Event()

    def readinto(self, view: memoryview) -> int:
        """Read what pg_dump wrote into ``view`` (the upload's part buffer: no copy); 0 at
        its end. The first bytes are logged: the end of the backup's fixed start-up cost
        (process start to here; bench/ reads it) and, when pg_dump waits for a lock, the
        line that does not come."""
        count = self._stdout.readinto(view)
        if not self.output_started.is_set():
            if count:
                event(get_logger(), "pg_dump output started")
            self.output_started.set()
        return count or 0

    def finish(self) -> None:
        """Wait for pg_dump; raise DumpError with its own words if it failed."""
        code = self.process.wait()
        self._stderr.join()
        if code != 0:
            raise DumpError(self._explain(code))

    def kill(self) -> None:
        self.output_started.set()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.join()

    def _explain(self, code: int) -> str:
        errors = [line for line in self._stderr.lines if "error" in line.lower() or "fatal" in line.lower()]
        detail = redact_url(errors[0] if errors else (self._stderr.lines[-1] if self._stderr.lines else ""))
        if code < 0:
            return f"pg_dump was killed by signal {-code}" + (f": {detail}" if detail else "")
        text = " ".join(self._stderr.lines)
        if STANDBY_CONFLICT in text:
            return (
                "pg_dump was cancelled by a recovery conflict on the hot standby; set "
                "hot_standby_feedback = on or raise max_standby_streaming_delay on the replica, "
                "or back up from the primary"
            )
        if any(marker in text for marker in CONNECTION_LOST):
            return (
                f"pg_dump lost its connection to the database (restart, failover or network): {detail}"
            )
        if "lock timeout" in text or "could not obtain lock" in text:
            return (
                f"pg_dump could not get a lock within the lock wait timeout: {detail} "
                "(a long transaction holds an exclusive lock; raise --lock-wait-timeout or retry later)"
            )
        if "row-level security" in text or "row security" in text:
            return (
                f"pg_dump refused a table protected by row-level security: {detail} "
                "(use a role with BYPASSRLS, or --enable-row-security with a bypass setting)"
            )
        return f"pg_dump exited with code {code}: {detail}"


GLOBALS_TIMEOUT_S = 600


def dump_globals(client: PgClient, conn_info: ConnInfo, session: SessionSettings,
                 timeout_s: float = GLOBALS_TIMEOUT_S) -> bytes:
    """The cluster's roles and tablespaces, without passwords (works for non-superusers)."""
    argv = [
        str(client.tool("pg_dumpall")),
        "--globals-only",
        "--no-role-passwords",
        "--no-password",
        f"--dbname={conn_info.tool_conninfo(session)}",
        # pg_dumpall ignores the database in --dbname; name the one it may connect to
        f"--database={conn_info.dbname}",
    ]
    try:
        result = subprocess.run(argv, capture_output=True, env=conn_info.tool_env(), stdin=subprocess.DEVNULL,
                                timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DumpError(
            f"pg_dumpall --globals-only did not finish within {timeout_s:g} s (killed); nothing was uploaded",
            hint="check the database's load and locks on the role catalogs, then rerun",
        ) from None
    if result.returncode != 0:
        stderr = redact_url(result.stderr.decode("utf-8", "replace")).strip().splitlines()
        raise DumpError(f"pg_dumpall --globals-only failed: {stderr[0] if stderr else result.returncode}")
    return result.stdout


def dump_to_file(client: PgClient, conn_info: ConnInfo, session: SessionSettings, options: DumpOptions, path: Path) -> None:
    """A plain pg_dump to a local file (the safety snapshot before --clean)."""
    argv = pg_dump_argv(client, conn_info, session, options) + [f"--file={path}"]
    result = subprocess.run(argv, capture_output=True, env=conn_info.tool_env(), stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        stderr = redact_url(result.stderr.decode("utf-8", "replace")).strip().splitlines()
        raise DumpError(f"safety pg_dump failed: {stderr[-1] if stderr else result.returncode}")
