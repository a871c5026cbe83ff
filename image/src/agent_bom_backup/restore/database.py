"""The target database's own state (owner, ACL, settings, role settings) given the
recorded one: before pg_restore (the owner), after it (the rest), and when the door opens
after verification (the ACL).
"""

from __future__ import annotations

from dataclasses import asdict

import psycopg

from .. import dbstate, pgroles
from ..log import event, get_logger
from .context import RestoreContext
from .journal import Journal


def _database_owner(ctx: RestoreContext, journal: Journal) -> None:
    """Before pg_restore: the database gets its recorded owner (whose ``public`` the
    archive's objects are created in), or the owners of objects in ``public`` get CREATE
    on it; the owner that could not be set is "not restored"."""
    plan, target, record, config = ctx.plan, ctx.target, ctx.manifest.database, ctx.config
    recorded = record.owner if record is not None and not config.no_owner and not ctx.scratch and \
        record.owner != dbstate.ADMINISTRATOR else None
    if record is not None and record.owner == dbstate.ADMINISTRATOR and not config.no_owner and not ctx.scratch:
        _administrator_owner(ctx, journal)
    if not plan.public_grants and recorded is None:
        return
    line = f"owner {dbstate.quote_ident(recorded)}" if recorded else ""
    statement = dbstate.statement_for(dbstate.DATABASE_CATEGORY, line, target.info.database) if recorded else ""
    with target.conn_info.connect(target.session) as conn:
        if recorded and recorded == pgroles.restore_role(conn).database_owner_name:
            return  # already its owner (a --clean over the application's own database)
        if plan.database_owner and record is not None:
            error = dbstate.set_owner(conn, record, target.info.database)
            if error is None:
                journal.changed(f"made {plan.database_owner} the owner of database {target.info.database}")
                journal.done.database_statements.append(statement)
                return
        else:
            error = (f"restore role {target.role.name} may not make {recorded} the database's owner (it needs to own "
                     "the database, CREATEDB and membership in the role)")
        if recorded:
            journal.done.not_restored.append(asdict(dbstate.NotRestored(f"{dbstate.DATABASE_CATEGORY}: {line}",
                                                                      statement, error)))
        for owner in plan.public_grants:
            statement = f"GRANT CREATE ON SCHEMA public TO {dbstate.quote_ident(owner)}"
            conn.execute(statement)
            journal.done.privileges_granted.append(statement)
            journal.changed(f"granted CREATE on schema public to {owner}")


def _administrator_owner(ctx: RestoreContext, journal: Journal) -> None:
    """A database the source's administrator owned, restored into one an application role
    owns (a --clean over it): left as it is, and listed with the statement that makes the
    restore role (the target's administrator) its owner."""
    target = ctx.target
    with target.conn_info.connect(target.session) as conn:
        row = conn.execute("SELECT pg_get_userbyid(d.datdba), r.rolsuper OR r.rolcreaterole FROM pg_database d "
                           "JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()").fetchone()
    if row is None or row[1] or row[0] == target.role.name:
        return
    line = f"owner {dbstate.ADMINISTRATOR}"
    journal.done.not_restored.append(asdict(dbstate.NotRestored(
        f"{dbstate.DATABASE_CATEGORY}: {line}",
        dbstate.statement_for(dbstate.DATABASE_CATEGORY, line, target.info.database),
        f"the source database was owned by its administrator; {row[0]} owns the target")))


def _database_state(ctx: RestoreContext, journal: Journal) -> None:
    """After pg_restore: the recorded connection limit, comment, ACL, settings and role
    settings, one savepoint each; what the restore role may not apply is "not restored"
    with the statement to run. A scratch restore's omissions are not applied, not listed.
    While CONNECT is revoked (sessions.py) the ACL waits for verification: applying it now
    would let the application in before the restore is verified."""
    record, config, target = ctx.manifest.database, ctx.config, ctx.target
    if record is None or ctx.scratch:
        return
    skip = frozenset(k for k, off in (("owner", config.no_owner), ("acl", config.no_privileges),
                                      ("role setting", config.no_privileges)) if off)
    door_closed = ctx.connect_lock is not None and not ctx.connect_lock.released
    with target.conn_info.connect(target.session) as conn:
        actual = _target_state(ctx, conn, record)
        if door_closed and "acl" not in skip:
            want = set(record.fingerprint()[dbstate.DATABASE_CATEGORY])
            have = set(actual.fingerprint()[dbstate.DATABASE_CATEGORY])
            ctx.deferred_acl = {line for line in want ^ have if line.startswith("acl ")}
            skip = skip | {"acl"}
        applied = _record_applied(journal, dbstate.apply(conn, record, actual, target.info.database, skip=skip))
    if applied.statements:
        journal.changed(f"applied the database's recorded state ({len(applied.statements)} statement(s))")


def _target_state(ctx: RestoreContext, conn: psycopg.Connection, record: dbstate.DatabaseRecord
                  ) -> dbstate.DatabaseRecord:
    """The target database's state as it stands, in the recorded one's terms."""
    return dbstate.capture(conn, set(), administrator=ctx.target.role.name, reached=set(record.reached_roles),
                           name=record.name)


def _record_applied(journal: Journal, applied: dbstate.Applied) -> dbstate.Applied:
    """What applying recorded state ran, and what it could not, into the journal."""
    journal.done.database_statements.extend(applied.statements)
    journal.done.not_restored.extend(asdict(item) for item in applied.not_restored)
    return applied


def _open_with_recorded_acl(ctx: RestoreContext, journal: Journal) -> None:
    """The restore is verified: CONNECT comes back as the backup recorded it (the database's
    ACL made exactly the recorded one), not as the target had it. Without a recorded ACL to
    apply this does nothing, and the entries revoked are granted back by _open_the_door,
    which the trunk always runs last."""
    lock, record, target = ctx.connect_lock, ctx.manifest.database, ctx.target
    if lock is None or lock.released or record is None or not ctx.deferred_acl:
        return
    with target.conn_info.connect(target.session) as conn:
        applied = _record_applied(journal, dbstate.apply(conn, record, _target_state(ctx, conn, record),
                                                     target.info.database, skip=dbstate.LINE_KINDS - {"acl"}))
    lock.released = True
    event(get_logger(), "CONNECT on the target database set as the backup recorded it", database=lock.database,
          statements=len(applied.statements))
    journal.undone(lock.describe())
