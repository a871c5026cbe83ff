"""Phase 3, **change**: close the door (REVOKE CONNECT, end other sessions), the safety
backup of the target, then the wipe. From here on a failure is a failure after changes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from .. import agecrypt, pgcatalog
from ..dump import dump_to_file, DumpOptions
from ..errors import BackupError, DumpError, PreflightError, RefusedError, RestoreError
from ..log import event, get_logger
from ..pgclients import Compression, discover, PgClient, select_dump_client
from ..safety import backup_to_bucket, safety_storage
from ..sessions import close_the_door
from .context import RestoreContext
from .journal import Journal


def change_target(ctx: RestoreContext, journal: Journal) -> None:
    """The change phase, as planned: close the door, take the safety backup, wipe."""
    if ctx.plan.close_door:
        journal.step("change")
        _close_the_door(ctx, journal)
    if ctx.plan.wipe:
        journal.step("change")
        if ctx.config.safety_backup:
            journal.done.safety_backup = _safety_backup(ctx, journal)
            journal.checkpoint()
        journal.checkpoint(in_progress=f"dropping every user schema of {ctx.target.info.database} "
                           "(one transaction: all or nothing)")
        _wipe(ctx, journal)


def _close_the_door(ctx: RestoreContext, journal: Journal) -> None:
    """REVOKE CONNECT and end the other sessions (sessions.py), before the safety dump."""
    target = ctx.target
    journal.checkpoint(in_progress=f"revoking CONNECT on database {target.info.database} from every role "
                           f"but {target.role.name} and ending the other sessions")
    try:
        with target.conn_info.connect(target.session) as conn:
            ctx.connect_lock = close_the_door(conn, database=target.info.database, restore_role=target.role.name,
                                              superuser=target.role.superuser,
                                              terminate=ctx.config.terminate_sessions, server_major=target.major)
    except psycopg.Error as exc:
        raise RestoreError(f"cannot revoke CONNECT on database {target.info.database}: "
                           f"{str(exc).strip().splitlines()[0]}; nothing was changed") from None
    lock = ctx.connect_lock
    journal.changes.append(f"{lock.describe()} (to undo by hand: {'; '.join(lock.undo_statements())})")
    journal.done.sessions_ended = [s.describe() for s in lock.terminated]
    journal.checkpoint()


def _open_the_door(ctx: RestoreContext, journal: Journal) -> None:
    """Grant back the CONNECT entries revoked: the restore is verified, or has failed."""
    lock = ctx.connect_lock
    if lock is None or lock.released:
        return
    try:
        with ctx.target.conn_info.connect(ctx.target.session) as conn:
            lock.release(conn)
    except (psycopg.Error, BackupError) as exc:
        event(get_logger(), "could not grant CONNECT back on the target database: run the statements by hand",
              level=logging.ERROR, statements="; ".join(lock.undo_statements()), error=str(exc).strip())
        return
    journal.undone(lock.describe())  # the report keeps sessions_ended


def _safety_backup_in_bucket(ctx: RestoreContext) -> str:
    """A backup of the target like any other, under <prefix>/safety/ (safety.py), encrypted
    to the restored backup's recipients when it was. A role that does not see every row
    first proves the policies hide none from it."""
    target, config = ctx.target, ctx.config
    if not target.role.sees_every_row:
        try:
            _safety_backup_under_row_security(ctx, None, None, None)
        except psycopg.Error as exc:
            raise DumpError(f"safety backup of {target.info.database} failed: {str(exc).strip().splitlines()[0]}; "
                            "nothing was dropped") from None
    # encrypted to the restored backup's recipients when it was (as the local safety dump is)
    encrypt_to = tuple(ctx.manifest.encryption.recipients) if ctx.manifest.encryption is not None else ()
    uri = backup_to_bucket(target.conn_info, safety_storage(ctx.storage.config, ctx.keys.prefix),
                           sees_every_row=target.role.sees_every_row, lock_wait_timeout_s=config.lock_wait_timeout_s,
                           pg_bin_dirs=config.pg_bin_dirs, pg_bin_dirs_only=config.pg_bin_dirs_only,
                           encrypt_to=encrypt_to)
    event(get_logger(), "safety backup written", uri=uri)
    return uri


def _safety_backup(ctx: RestoreContext, journal: Journal) -> str:
    """The runbook: snapshot the current database if it is still reachable.

    A role without BYPASSRLS cannot dump FORCE-RLS tables with row security off (the way
    that guarantees every row); it dumps them with row security on, and the dump counts
    only if it is complete: inside the snapshot the dump read, the rows its policies let
    it see are counted, then (FORCE lifted, rolled back) every row. Any difference is a
    refusal before the wipe."""
    config, target = ctx.config, ctx.target
    if config.safety_backup_to_bucket:
        return _safety_backup_in_bucket(ctx)
    assert ctx.plan.safety_backup_dir is not None  # decided in the plan (plan._safety_location)
    directory = Path(ctx.plan.safety_backup_dir)
    try:
        # a full copy of the database: 0600 in a 0700 directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
    except OSError as exc:
        raise PreflightError(
            f"cannot create the safety backup directory {directory}: {exc.strerror}",
            hint="set --safety-backup-dir to a writable volume, or decline with --no-safety-backup",
        ) from None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{target.info.database}-before-{ctx.keys.backup_id}-{stamp}.dump"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # pg_dump --file keeps the mode
    client = select_dump_client(
        discover(config.pg_bin_dirs, config.pg_bin_dirs_only), target.major, target.conn_info.sslmode
    )
    options = DumpOptions(compression=Compression("gzip", 1), snapshot=None,
                          lock_wait_timeout_s=config.lock_wait_timeout_s)
    if target.role.sees_every_row:
        try:
            dump_to_file(client, target.conn_info, target.session, options, path)
        except DumpError:
            path.unlink(missing_ok=True)
            raise
    else:
        try:
            _safety_backup_under_row_security(ctx, client, options, path)
        except psycopg.Error as exc:
            path.unlink(missing_ok=True)
            raise DumpError(f"safety dump of {target.info.database} failed: {str(exc).strip().splitlines()[0]}; "
                            "nothing was dropped") from None
    journal.go_back.client = client  # the safety dump is restored with the client that took it
    path = agecrypt.safety_backup_encrypted(path, ctx.manifest)
    event(get_logger(), "safety backup written", path=str(path), bytes=path.stat().st_size)
    return str(path)


def _safety_backup_under_row_security(ctx: RestoreContext, client: PgClient | None, options: DumpOptions | None,
                                      path: Path | None) -> None:
    """The dump into ``path`` (None: only the proof that the policies hide no row)."""
    target = ctx.target
    session = replace(target.session, row_security=True)
    with target.conn_info.connect(session, autocommit=False) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        tables = pgcatalog.rls_tables(conn)
        foreign = [f"{t.schema}.{t.name}" for t in tables if not t.owned]
        if foreign:
            conn.rollback()
            raise RefusedError(
                f"restore role {target.role.name} (no BYPASSRLS) cannot take a complete safety dump of "
                f"{target.info.database}: row-level security applies to tables it does not own: "
                f"{', '.join(foreign[:5])}; nothing was dropped",
                hint="restore as a role with BYPASSRLS (or a superuser), or take a platform snapshot of the "
                "database (RDS/Aurora snapshot, Cloud SQL or Azure backup) and pass --no-safety-backup",
            )
        snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        names = [(t.schema, t.name) for t in tables]
        visible = _counts(conn, names)
        if path is not None and client is not None and options is not None:
            dump_to_file(client, target.conn_info, target.session,
                         replace(options, snapshot=snapshot, enable_row_security=True), path)
        for table in tables:
            if table.forced:
                conn.execute(psycopg.sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(
                    psycopg.sql.Identifier(table.schema, table.name)))
        every = _counts(conn, names)
        conn.rollback()
    hidden = [f"{name} ({visible[name]} of {rows})" for name, rows in every.items() if visible.get(name) != rows]
    if hidden:
        if path is not None:
            path.unlink(missing_ok=True)
        raise RefusedError(
            f"a safety dump by restore role {target.role.name} (no BYPASSRLS) would miss rows that row-level "
            f"security hides from it: {', '.join(hidden)}; nothing was dropped",
            hint="restore as a role with BYPASSRLS (or a superuser), or take a platform snapshot of the database "
            "(RDS/Aurora snapshot, Cloud SQL or Azure backup) and pass --no-safety-backup",
        )


def _counts(conn: psycopg.Connection, tables: list[tuple[str, str]]) -> dict[str, int]:
    found = {}
    for schema, table in tables:
        row = conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(
            psycopg.sql.Identifier(schema, table))).fetchone()
        found[f"{schema}.{table}"] = int(row[0]) if row else 0
    return found


def _wipe(ctx: RestoreContext, journal: Journal) -> None:
    """Drop everything that makes the target non-empty, in one transaction: event
    triggers, publications, large objects, every user schema; then recreate ``public``
    as initdb makes it."""
    target = ctx.target
    public_owner = "pg_database_owner" if target.major >= 15 else "CURRENT_USER"
    public_grant = "USAGE" if target.major >= 15 else "ALL"
    ident = psycopg.sql.Identifier
    try:
        with target.conn_info.connect(target.session) as conn, conn.transaction():
            for (name,) in conn.execute("SELECT evtname FROM pg_event_trigger").fetchall():
                conn.execute(psycopg.sql.SQL("DROP EVENT TRIGGER {}").format(ident(name)))
            for (name,) in conn.execute("SELECT pubname FROM pg_publication").fetchall():
                conn.execute(psycopg.sql.SQL("DROP PUBLICATION {}").format(ident(name)))
            conn.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
            schemas = pgcatalog.first_column(conn, f"SELECT nspname FROM pg_namespace n WHERE {pgcatalog.USER_SCHEMAS}")
            for schema in schemas:
                conn.execute(psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(ident(schema)))
            conn.execute(f"CREATE SCHEMA public AUTHORIZATION {public_owner}")
            conn.execute(f"GRANT {public_grant} ON SCHEMA public TO PUBLIC")
    except psycopg.Error as exc:
        raise RestoreError(f"cleaning the target failed (nothing was dropped): {str(exc).strip().splitlines()[0]}") from None
    journal.changed(f"dropped every user schema of {target.info.database} ({len(target.objects)} objects)")
    event(get_logger(), "target cleaned", schemas=len(schemas), objects=len(target.objects))
