"""Phase 2, **prepare** (the target database is not touched): download the dump and verify
it, read its table of contents and what it needs from the target, then create the missing
roles and memberships (the only change before the wipe, additive).
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

from .. import agecrypt
from ..archivecheck import check_target, parse_definitions, read_definitions
from ..errors import PreflightError, RestoreError, VerifyError
from ..log import event, get_logger, Progress, redact_url
from ..manifest import BackupKeys, Manifest
from ..pgclients import PgClient
from ..roles import apply_roles
from ..storage import Storage
from .config import DOWNLOAD_PROGRESS_INTERVAL_S
from .context import RestoreContext
from .journal import Journal


def _download_verified(storage: Storage, keys: BackupKeys, manifest: Manifest, path: Path,
                       parallel_threshold: int | None) -> None:
    log = get_logger()
    started = time.monotonic()
    progress = Progress("downloading", DOWNLOAD_PROGRESS_INTERVAL_S)

    def downloaded(done: int) -> None:
        progress.update(bytes=done, of=manifest.dump.size, percent=round(100 * done / max(manifest.dump.size, 1), 1))

    size, digest = storage.download(keys.dump, path, progress=downloaded, parallel_threshold=parallel_threshold)
    if size != manifest.dump.size or digest != manifest.dump.sha256:
        raise VerifyError(
            f"{storage.config.uri(keys.dump)} does not match its manifest "
            f"(size {size} vs {manifest.dump.size}, sha256 {digest[:12]}... vs {manifest.dump.sha256[:12]}...): "
            "corrupted or truncated; the target was not touched",
            hint="restore another backup",
        )
    event(log, "dump downloaded and verified", bytes=size, sha256=digest, seconds=round(time.monotonic() - started, 1))


_TOC_LINE = re.compile(r"^\d+; \d+ \d+ (?P<what>.*)$")


def _read_toc(client: PgClient, dump_path: Path) -> list[str]:
    """The archive's table of contents (``pg_restore --list``): the restore's units of work."""
    result = subprocess.run([str(client.tool("pg_restore")), "--list", str(dump_path)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        lines = redact_url(result.stderr).strip().splitlines()
        raise RestoreError(
            f"pg_restore {client.version} cannot read the archive's table of contents: "
            f"{lines[-1] if lines else result.returncode}; the target was not touched",
            hint="restore another backup, or with a newer pg_restore (--pg-bin-dir)",
        )
    return [line for line in result.stdout.splitlines() if _TOC_LINE.match(line)]


def _check_archive(ctx: RestoreContext, dump_path: Path) -> None:
    """What the archive uses that the target lacks (archivecheck.py), before any change:
    missing collations or text search configurations refuse; missing tablespaces make the
    restore run with --no-tablespaces, said in the plan."""
    needs = parse_definitions(read_definitions(ctx.client, dump_path))
    try:
        with ctx.target.conn_info.connect(ctx.target.session) as conn:
            check = check_target(conn, needs)
    except psycopg.Error as exc:
        raise PreflightError(f"cannot inspect the target's tablespaces and collations: "
                             f"{str(exc).strip().splitlines()[0]}") from None
    ctx.plan.no_tablespaces = bool(check.missing_tablespaces)
    ctx.plan.archive_steps = check.steps()
    if check.missing_tablespaces:
        event(get_logger(), "restoring without tablespaces: the target lacks them", level=logging.WARNING,
              tablespaces=check.missing_tablespaces)


@dataclass(frozen=True)
class Prepared:
    """The archive downloaded, verified (and decrypted) into the scratch space, and its
    table of contents."""

    dump_path: Path
    toc: list[str]


def prepare_restore(ctx: RestoreContext, journal: Journal, scratch: Path) -> Prepared:
    """The prepare phase: the archive and what it needs from the target, then the roles
    (the only change before the wipe, announced in the report before it is made)."""
    journal.step("prepare")
    dump_path = _fetch(ctx, scratch)
    toc = _read_toc(ctx.client, dump_path)
    _check_archive(ctx, dump_path)
    if ctx.role_plan is not None and not ctx.role_plan.empty:
        journal.checkpoint(in_progress="creating the missing roles and the restore role's memberships")
    _apply_roles(ctx, journal)
    return Prepared(dump_path, toc)


def _fetch(ctx: RestoreContext, scratch: Path) -> Path:
    """The dump downloaded into ``scratch`` and verified (decrypted when encrypted)."""
    dump_path = scratch / (ctx.keys.backup_id + ".dump")
    downloaded = agecrypt.download_path(dump_path, ctx.manifest)
    _download_verified(ctx.storage, ctx.keys, ctx.manifest, downloaded, ctx.config.parallel_download_threshold)
    agecrypt.decrypt_dump(downloaded, dump_path, ctx.manifest, ctx.config.identity_file)
    return dump_path


def _dry_run_archive(ctx: RestoreContext) -> None:
    """A dry run reads the archive too (downloaded and verified into the scratch space,
    then deleted), so the plan shows what the archive needs from the target."""
    with tempfile.TemporaryDirectory(prefix="agent-bom-restore-", dir=ctx.scratch_parent) as scratch:
        _check_archive(ctx, _fetch(ctx, Path(scratch)))


def _apply_roles(ctx: RestoreContext, journal: Journal) -> None:
    """Create the missing roles and grant the restore role its memberships, in one
    transaction: the last step of prepare, the only change before the wipe."""
    if ctx.role_plan is None or ctx.role_plan.empty:
        return
    log = get_logger()
    with ctx.target.conn_info.connect(ctx.target.session) as conn:
        applied = apply_roles(conn, ctx.role_plan)
    report = journal.done
    report.roles_created = applied.created
    report.roles_needing_password = applied.need_password
    report.roles_attributes_dropped = applied.dropped
    report.memberships_granted = applied.self_granted
    report.memberships_recreated = applied.memberships
    report.role_statements = applied.statements
    report.not_restored.extend(asdict(item) for item in applied.not_restored)
    if applied.memberships:
        journal.changes.append(f"granted memberships {'; '.join(applied.memberships)} (left in place)")
    if applied.created:
        journal.changes.append(f"created roles {', '.join(applied.created)} (cluster-wide, left in place)")
    if applied.self_granted:
        journal.changes.append(f"granted {ctx.target.role.name} membership in {', '.join(applied.self_granted)} "
                           "(left in place)")
    for name in applied.need_password:
        event(log, "created login role without a password: set one before the application connects",
              role=name, level=logging.WARNING)
