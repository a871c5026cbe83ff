"""Phase 4, **run**: the pg_restore passes, their progress, and the judgement of their exit.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import RestoreError
from ..log import event, get_logger, Progress, redact_url
from .config import (RESTORE_PROGRESS_INTERVAL_S, TRANSACTION_TIMEOUT_ERROR, TRANSACTION_TIMEOUT_QUERY_ERROR,
                     TRANSACTION_TIMEOUT_STATEMENT)
from .context import RestoreContext
from .prepare import _TOC_LINE


_ERROR_MESSAGE = re.compile(r"\berror: (.*)$", re.MULTILINE)


_ERRORS_IGNORED = re.compile(r"errors ignored on restore: (\d+)")


#: pg_restore writes "error: " in one piece before every error message
ERROR_PREFIX = "error: "


INTERLEAVED = "an error whose message is interleaved with other pg_restore output (see the full log)"


@dataclass(frozen=True)
class PgRestoreOutcome:
    """pg_restore's exit judged: the real errors (empty: success) and the count of
    tolerated ``SET transaction_timeout`` errors."""

    errors: list[str]
    tolerated: int = 0


def judge_pg_restore(returncode: int, stderr: str, tolerate_transaction_timeout: bool) -> PgRestoreOutcome:
    """Success, or the errors that make this pg_restore run a failure.

    A signal or an exit code other than 0/1 is a failure whatever was printed. Exactly one
    error is tolerated, and only when asked (pg_restore >= 17 into a server < 17): the
    "unrecognized configuration parameter" error of ``SET transaction_timeout = 0``, once
    per connection; a transaction_timeout error from any other statement makes them all
    real. Parallel workers write to the same stderr a piece at a time and their error
    counts never reach the leader's "errors ignored on restore: N", so the decision rests
    on what survives interleaving: pg_restore writes "error: " and each message in one
    piece, so they are counted; the line-based messages only show what went wrong.
    """
    messages = [m.group(1).strip() for m in _ERROR_MESSAGE.finditer(stderr)]
    ignored = _ERRORS_IGNORED.search(stderr)
    total = max(stderr.count(ERROR_PREFIX), int(ignored.group(1)) if ignored else 0)
    timeouts = stderr.count(TRANSACTION_TIMEOUT_QUERY_ERROR)
    tolerable = tolerate_transaction_timeout and timeouts > 0 and timeouts == stderr.count(TRANSACTION_TIMEOUT_STATEMENT)
    tolerated = timeouts if tolerable else 0
    others = [m for m in messages
              if not (tolerable and (TRANSACTION_TIMEOUT_ERROR in m or TRANSACTION_TIMEOUT_QUERY_ERROR.startswith(m)))]
    real_count = max(0, total - tolerated)
    errors = others[:real_count] + [INTERLEAVED] * max(0, real_count - len(others))
    if returncode < 0:
        errors.insert(0, f"pg_restore was killed by signal {-returncode}")
    elif returncode not in (0, 1) or (returncode == 1 and not errors and not tolerated):
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        errors.insert(0, f"pg_restore exited with code {returncode}" + (f": {last}" if last else ""))
    return PgRestoreOutcome(errors, tolerated)


def restore_passes(toc: list[str], phased: bool) -> list[tuple[str, list[str]]]:
    """The pg_restore runs: one with everything, or, for a restore role that is not a
    superuser, three: schemas and their privileges first (so the owners of what they hold
    have CREATE on them when pg_restore sets the owners), then everything else, then
    row-level security switched on (so foreign keys are validated before it applies:
    PostgreSQL validates them as the tables' owner, whom FORCEd policies would refuse)."""
    if not phased:
        return [("restore", toc)]

    def what(line: str) -> str:
        match = _TOC_LINE.match(line)
        return match.group("what") if match else ""

    schemas = [line for line in toc if what(line).startswith(("SCHEMA ", "ACL - SCHEMA "))]
    row_security = [line for line in toc if what(line).startswith("ROW SECURITY ")]
    rest = [line for line in toc if line not in schemas and line not in row_security]
    passes = [("schemas and their privileges", schemas), ("objects and data", rest),
              ("row-level security switched on", row_security)]
    return [(name, lines) for name, lines in passes if lines]


def _pg_restore(ctx: RestoreContext, dump_path: Path, toc: list[str], scratch: Path) -> list[str]:
    config, target, client = ctx.config, ctx.target, ctx.client
    passes = restore_passes(toc, ctx.plan.phased)
    event(get_logger(), "running pg_restore", version=client.version, jobs=ctx.plan.jobs, toc_entries=len(toc),
          passes=len(passes))
    done = 0
    tolerated = 0
    for index, (name, entries) in enumerate(passes):
        argv = [
            str(client.tool("pg_restore")),
            f"--dbname={target.conn_info.tool_conninfo(target.session)}",
            "--no-password",
            f"--jobs={ctx.plan.jobs if len(entries) > 1 else 1}",
        ]
        if config.no_owner:
            argv.append("--no-owner")
        if config.no_privileges:
            argv.append("--no-privileges")
        if ctx.plan.no_tablespaces:
            argv.append("--no-tablespaces")
        if ctx.plan.phased:
            list_file = scratch / f"pass-{index + 1}.list"
            list_file.write_text("\n".join(entries) + "\n")
            argv.append(f"--use-list={list_file}")
        argv += ["--verbose", str(dump_path)]
        returncode, stderr = _run_with_progress(argv, target.conn_info.tool_env(), len(toc), done)
        outcome = judge_pg_restore(returncode, stderr, ctx.plan.tolerate_transaction_timeout)
        if outcome.errors:
            where = f" ({name})" if ctx.plan.phased else ""
            raise RestoreError(f"pg_restore reported {len(outcome.errors)} error(s){where}; first: {outcome.errors[0]}")
        tolerated += outcome.tolerated
        done += len(entries)
    if not tolerated:
        return []
    return [f"{tolerated} x {TRANSACTION_TIMEOUT_ERROR} (pg_restore {client.major} sets it; "
            f"PostgreSQL {target.major} lacks it; harmless)"]


_PROGRESS_LINE = re.compile(r"pg_restore: (processing item|finished item|processing data for table)")


def _run_with_progress(argv: list[str], env: dict[str, str], total: int, done_before: int = 0) -> tuple[int, str]:
    """Run pg_restore --verbose, logging progress every 10 s so a long restore (one big
    table's COPY prints nothing for minutes) never looks hung; returns the exit code and
    the redacted stderr."""
    progress = Progress("restoring", RESTORE_PROGRESS_INTERVAL_S)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert process.stderr is not None
    lines: list[str] = []

    def drain() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            lines.append(raw.decode("utf-8", "replace"))

    reader = threading.Thread(target=drain, name="pg_restore-stderr", daemon=True)
    reader.start()
    started = time.monotonic()
    try:
        while True:
            try:
                returncode = process.wait(timeout=RESTORE_PROGRESS_INTERVAL_S)
                break
            except subprocess.TimeoutExpired:
                done = sum(1 for line in list(lines) if _PROGRESS_LINE.search(line))
                progress.update(items_done=done_before + done, toc_entries=total,
                                seconds=round(time.monotonic() - started))
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        reader.join(timeout=10)
    return returncode, redact_url("".join(lines))
