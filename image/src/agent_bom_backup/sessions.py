"""A quiet target for the whole change: no other session writes between the safety dump,
the wipe and the verification.

The plan lists every other session on the target database and refuses (nothing changed)
unless the operator asked to end them (``--terminate-sessions``). Before the safety dump
the restore then *closes the door*: ``REVOKE CONNECT`` on the database from PUBLIC and
from every grantee except the restore role, then ends the other sessions
(``pg_terminate_backend``). ``ALLOW_CONNECTIONS false`` is not used (PostgreSQL refuses it
from a session on that database, and it would lock out the restore's own pg_dump,
``pg_restore -j`` and verification connections), nor ``CONNECTION LIMIT`` (it counts the
restore role too). When the restore is verified or has failed, the door opens again: the
CONNECT entries revoked are granted back, so the database's ACL is what it was.

REVOKE cannot stop some sessions; the plan refuses them by name: a superuser's, the
restore role's own (another client's, not this process's), and those of roles that have
the restore role's privileges (its members keep CONNECT through it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from .errors import RefusedError
from .log import event, get_logger

#: how long pg_terminate_backend waits for a session to end (PostgreSQL 14+), ms
TERMINATE_WAIT_MS = 5000
#: rounds of "terminate, look again" before giving up (a pooler reconnecting at once is
#: refused by the REVOKE, so a second round normally finds nothing)
TERMINATE_ROUNDS = 5


@dataclass(frozen=True)
class Session:
    """Another client's session on the target database."""

    pid: int
    user: str | None
    application_name: str | None
    client: str | None  # address, or None for a Unix socket / not visible
    state: str | None  # None when the restore role may not see it (pg_read_all_stats)
    superuser: bool = False
    is_restore_role: bool = False
    #: the session's role has the restore role's privileges (a member of it)
    inherits_restore_role: bool = False
    #: the restore role may end it (superuser, member of its role, or pg_signal_backend)
    can_terminate: bool = False

    def describe(self) -> str:
        return (f"pid {self.pid} user {self.user or '?'} application {self.application_name or '-'!r} "
                f"from {self.client or 'local socket'} ({self.state or 'state not visible'})")

    @property
    def unstoppable(self) -> str | None:
        """Why REVOKE CONNECT cannot keep this session's role out, or None."""
        if self.superuser:
            return "a superuser"
        if self.is_restore_role:
            return "the restore role itself"
        if self.inherits_restore_role:
            return "a member of the restore role"
        return None


_SESSIONS = """
SELECT a.pid, r.rolname, a.application_name, host(a.client_addr), a.state,
       COALESCE(r.rolsuper, false),
       COALESCE(r.rolname = current_user, false),
       COALESCE(r.oid IS NOT NULL AND pg_has_role(r.oid, current_user, 'USAGE'), false),
       COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                OR (r.oid IS NOT NULL AND pg_has_role(current_user, r.oid, 'USAGE'))
                OR (NOT COALESCE(r.rolsuper, false) AND pg_has_role(current_user, 'pg_signal_backend', 'USAGE')),
                false)
FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND a.pid <> pg_backend_pid()
  AND COALESCE(a.backend_type, 'client backend') = 'client backend'
ORDER BY a.pid
"""


def other_sessions(conn: psycopg.Connection) -> list[Session]:
    """Every other client session on the connection's database (this connection excluded:
    the restore holds no other connection while it asks)."""
    return [Session(pid=int(row[0]), user=row[1], application_name=row[2] or None, client=row[3],
                    state=row[4], superuser=bool(row[5]), is_restore_role=bool(row[6]),
                    inherits_restore_role=bool(row[7]), can_terminate=bool(row[8]))
            for row in conn.execute(_SESSIONS).fetchall()]


#: seconds to look again before calling a session "other": a client that just closed its
#: connection is listed until its backend has exited
SETTLE_S = 1.0


def settled_sessions(conn: psycopg.Connection) -> list[Session]:
    """:func:`other_sessions`, looked at twice: only those present both times count."""
    first = other_sessions(conn)
    if not first:
        return first
    time.sleep(SETTLE_S)
    pids = {s.pid for s in first}
    return [s for s in other_sessions(conn) if s.pid in pids]


def check_sessions(sessions: list[Session], *, database: str, restore_role: str, terminate: bool) -> None:
    """The plan's refusal: other sessions without ``--terminate-sessions``; with it, the
    sessions REVOKE cannot stop and those the restore role may not end."""
    if not sessions:
        return
    shown = "; ".join(s.describe() for s in sessions[:5]) + (" ..." if len(sessions) > 5 else "")
    if not terminate:
        raise RefusedError(
            f"{len(sessions)} other session(s) on target database {database}: {shown}; nothing was changed",
            hint="stop the application (scale it to 0) and retry, or pass --terminate-sessions "
            "(AGENT_BOM_RESTORE_TERMINATE_SESSIONS=true) to revoke CONNECT and end them for the restore",
        )
    unstoppable = [s for s in sessions if s.unstoppable]
    if unstoppable:
        listed = "; ".join(f"{s.describe()} is {s.unstoppable}" for s in unstoppable[:5])
        raise RefusedError(
            f"--terminate-sessions cannot keep these sessions out of {database} (REVOKE CONNECT does not apply "
            f"to them): {listed}; nothing was changed",
            hint="end them yourself (stop the client, or a superuser runs pg_terminate_backend) and retry",
        )
    blocked = [s for s in sessions if not s.can_terminate]
    if blocked:
        roles = sorted({s.user or "?" for s in blocked})
        raise RefusedError(
            f"restore role {restore_role} may not end the sessions of {', '.join(roles)} on {database} "
            f"({'; '.join(s.describe() for s in blocked[:5])}); nothing was changed",
            hint=f"a platform admin runs: GRANT pg_signal_backend TO {sql_ident(restore_role)}; "
            "or stop the application and retry without --terminate-sessions",
        )


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"' if not name.isidentifier() or name.lower() != name else name


@dataclass
class ConnectLock:
    """CONNECT revoked on the target database; what ``release`` puts back."""

    database: str
    #: (grantee, with grant option) of the CONNECT entries revoked; grantee "" is PUBLIC
    revoked: list[tuple[str, bool]] = field(default_factory=list)
    #: CONNECT granted to the restore role for the restore (it had it only through others)
    granted_to_restore_role: str | None = None
    terminated: list[Session] = field(default_factory=list)
    released: bool = False

    def describe(self) -> str:
        who = ", ".join(grantee or "PUBLIC" for grantee, _ in self.revoked) or "nobody"
        text = f"revoked CONNECT on database {self.database} from {who} until the restore ends"
        if self.terminated:
            text += f"; ended {len(self.terminated)} session(s): " + "; ".join(s.describe() for s in self.terminated)
        return text

    def undo_statements(self) -> list[str]:
        """What gives the database its CONNECT entries back (the report's way back after a kill)."""
        database = sql_ident(self.database)
        statements = [f"GRANT CONNECT ON DATABASE {database} TO {sql_ident(g) if g else 'PUBLIC'}"
                      + (" WITH GRANT OPTION" if grantable else "") for g, grantable in self.revoked]
        if self.granted_to_restore_role:
            statements.append(f"REVOKE CONNECT ON DATABASE {database} FROM {sql_ident(self.granted_to_restore_role)}")
        return statements

    def release(self, conn: psycopg.Connection) -> None:
        """Grant back what was revoked, in one transaction."""
        if self.released:
            return
        with conn.transaction():
            for statement in self.undo_statements():
                conn.execute(statement)  # type: ignore[arg-type]
        self.released = True
        event(get_logger(), "CONNECT on the target database restored", database=self.database)


_CONNECT_ENTRIES = """
SELECT CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END, a.is_grantable
FROM pg_database d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname = current_database() AND a.privilege_type = 'CONNECT'
"""


def close_the_door(conn: psycopg.Connection, *, database: str, restore_role: str, superuser: bool,
                   terminate: bool, server_major: int) -> ConnectLock:
    """Revoke CONNECT from everyone but the restore role, then end (``terminate``) or
    refuse the sessions still there. On a refusal the ACL is put back before raising."""
    lock = ConnectLock(database)
    entries = [(str(g), bool(grantable)) for g, grantable in conn.execute(_CONNECT_ENTRIES).fetchall()]
    target = sql.Identifier(database)
    with conn.transaction():
        if not superuser and not any(g == restore_role for g, _ in entries):
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(target, sql.Identifier(restore_role)))
            lock.granted_to_restore_role = restore_role
        for grantee, grantable in entries:
            if grantee == restore_role:
                continue
            who = sql.SQL("PUBLIC") if grantee == "" else sql.Identifier(grantee)
            conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {} CASCADE").format(target, who))
            lock.revoked.append((grantee, grantable))
    event(get_logger(), "CONNECT revoked on the target database", database=database,
          revoked=[g or "PUBLIC" for g, _ in lock.revoked])
    try:
        for _ in range(TERMINATE_ROUNDS):
            sessions = settled_sessions(conn)
            if not sessions:
                return lock
            check_sessions(sessions, database=database, restore_role=restore_role, terminate=terminate)
            for session in sessions:
                if server_major >= 14:
                    conn.execute("SELECT pg_terminate_backend(%s, %s)", [session.pid, TERMINATE_WAIT_MS])
                else:
                    conn.execute("SELECT pg_terminate_backend(%s)", [session.pid])
                lock.terminated.append(session)
                event(get_logger(), "ended a session on the target database", level=logging.WARNING,
                      session=session.describe())
        raise RefusedError(
            f"sessions on {database} keep coming back after {TERMINATE_ROUNDS} rounds of pg_terminate_backend; "
            "nothing was changed",
            hint="stop the application (scale it to 0) and retry",
        )
    except BaseException:
        lock.release(conn)
        raise
