"""Recreate missing roles from the stored ``pg_dumpall --globals-only`` output.

Only the roles the target lacks are created; roles that exist are never altered. Each is
created with the attributes the restore role may grant: on managed PostgreSQL (RDS,
Cloud SQL, Azure) the restore role is an admin with CREATEROLE, not a superuser, and
PostgreSQL refuses it SUPERUSER, REPLICATION and BYPASSRLS (and, from 16 on, CREATEDB,
REPLICATION and BYPASSRLS unless it holds them itself). Those are dropped with a warning
per role and attribute: the data, owners, grants and policies restore faithfully, and the
attributes are the platform's to grant afterwards. Passwords are never restored (the
backup stored none); a login role is reported as needing one.

The restore role also gets membership in the owner roles it must act as (pg_restore sets
owners with ``ALTER ... OWNER TO``, which needs it): on PostgreSQL 15 a CREATEROLE role may
grant itself any non-superuser role; from 16 on it needs ADMIN on the role, which it has
on roles it created, and the grant must carry ``INHERIT TRUE, SET TRUE``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from .dbstate import NotRestored, membership_line, quote_ident, quote_literal
from .errors import RestoreError
from .log import event, get_logger
from .rolesfile import Membership, RolesFile, StoredRole, parse_roles_file

__all__ = ["StoredRole", "RolesFile", "parse_globals"]

def unquote(identifier: str) -> str:
    if identifier.startswith('"') and identifier.endswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def parse_globals(sql_text: str) -> RolesFile:
    """The roles object, parsed as data (:mod:`rolesfile`); refuses what pg_dumpall does not write."""
    return parse_roles_file(sql_text)


@dataclass(frozen=True)
class Grantor:
    """What the restore role may give the roles it creates."""

    name: str
    server_major: int
    superuser: bool
    createrole: bool
    createdb: bool = False
    bypassrls: bool = False
    replication: bool = False

    def may_grant(self, attribute: str) -> bool:
        word = attribute.split()[0]
        if self.superuser:
            return True
        if word == "SUPERUSER":
            return False
        if word == "REPLICATION":
            return self.server_major >= 16 and self.replication
        if word == "BYPASSRLS":
            return self.server_major >= 16 and self.bypassrls
        if word == "CREATEDB":
            return self.server_major < 16 or self.createdb
        if word == "CREATEROLE":
            return self.createrole
        return True

    def self_grant(self, role: str) -> str:
        """The GRANT that lets this role act as ``role``'s objects' owner."""
        statement = f"GRANT {quote_ident(role)} TO {quote_ident(self.name)}"
        return statement + (" WITH INHERIT TRUE, SET TRUE" if self.server_major >= 16 else "")


@dataclass
class RoleCreation:
    name: str
    attributes: list[str]
    dropped: list[str]
    settings: list[str]  # ALTER ROLE ... SET statements, built from the parsed values
    login: bool
    comment: str | None = None  # COMMENT ON ROLE statement


@dataclass(frozen=True)
class PlannedMembership:
    statement: str
    line: str  # the memberships fingerprint line it makes true
    role: str
    member: str


@dataclass
class RolePlan:
    """The roles to create, with what, and the memberships to grant: the only change the
    restore makes to the cluster before it touches the target database."""

    grantor: Grantor
    create: list[RoleCreation] = field(default_factory=list)
    memberships: list[PlannedMembership] = field(default_factory=list)  # GRANTs between the archive's roles
    self_grants: list[str] = field(default_factory=list)  # roles the restore role is granted
    skipped: list[str] = field(default_factory=list)  # what the roles object holds that is never run

    @property
    def empty(self) -> bool:
        return not self.create and not self.self_grants and not self.memberships

    @property
    def dropped(self) -> dict[str, list[str]]:
        return {c.name: c.dropped for c in self.create if c.dropped}


class UndefinedRolesError(RestoreError):
    """Roles the backup needs that its roles object does not define."""


def grant_statement(membership: Membership, major: int) -> str:
    """The GRANT for ``membership`` on a server of ``major`` (INHERIT and SET options from 16 on)."""
    statement = f"GRANT {quote_ident(membership.role)} TO {quote_ident(membership.member)}"
    if major < 16:
        return statement + (" WITH ADMIN OPTION" if membership.admin else "")
    options = ["ADMIN OPTION"] if membership.admin else []
    if membership.inherit is not None:
        options.append(f"INHERIT {'TRUE' if membership.inherit else 'FALSE'}")
    if membership.set is not None:
        options.append(f"SET {'TRUE' if membership.set else 'FALSE'}")
    return statement + (" WITH " + ", ".join(options) if options else "")


@dataclass(frozen=True)
class RoleScope:
    """What :func:`plan_roles` recreates memberships among, and the databases role
    settings are scoped to."""

    #: the roles the archive reaches (None: the created roles and the roles they are members of)
    reached: set[str] | None = None
    #: settings ``IN DATABASE`` the source database are kept, and re-scoped to the target database
    source_database: str | None = None
    target_database: str | None = None


def plan_roles(missing: list[str], stored: RolesFile | dict[str, StoredRole], grantor: Grantor, existing: set[str],
               self_grants: list[str], scope: RoleScope | None = None, **keywords: Any) -> RolePlan:
    """Create ``missing`` (all must be in ``stored``) with the attributes ``grantor`` may
    give and their settings; recreate the memberships among the roles the archive
    reaches (``scope.reached``; None: the created roles and the roles they are members of)
    that exist then; grant the restore role ``self_grants``. Never a membership in a
    predefined ``pg_*`` role or in a SUPERUSER/BYPASSRLS/REPLICATION/CREATEROLE role:
    those are listed as skipped. ``scope``'s fields are accepted as keywords too."""
    scope = scope or RoleScope(**keywords)
    reached, source_database, target_database = scope.reached, scope.source_database, scope.target_database
    roles_file = stored if isinstance(stored, RolesFile) else RolesFile(roles=dict(stored))
    roles = roles_file.roles
    unknown = [name for name in missing if name not in roles]
    if unknown:
        raise UndefinedRolesError(
            f"the backup's roles object does not define {', '.join(unknown)}",
            hint="create these roles on the target server by hand, then retry",
        )
    plan = RolePlan(grantor=grantor, self_grants=list(self_grants), skipped=list(roles_file.skipped))
    for name in missing:
        role = roles[name]
        attributes = role.attribute_list
        kept = [a for a in attributes if grantor.may_grant(a)]
        settings = []
        for setting in role.settings:
            if setting.database is not None and setting.database != source_database:
                continue
            where = f" IN DATABASE {quote_ident(target_database or setting.database)}" if setting.database else ""
            settings.append(f"ALTER ROLE {quote_ident(name)}{where} SET {quote_ident(setting.parameter)} TO "
                            + ", ".join(quote_literal(v) for v in setting.values))
        settings += [f"GRANT {', '.join(g.privileges)} ON PARAMETER {quote_ident(g.parameter)} TO {quote_ident(name)}"
                     + (" WITH GRANT OPTION" if g.grant_option else "")
                     for g in roles_file.parameter_grants if g.grantee == name]
        comment = (f"COMMENT ON ROLE {quote_ident(name)} IS {quote_literal(role.comment)}"
                   if role.comment is not None else None)
        plan.create.append(RoleCreation(name, kept, [a for a in attributes if a not in kept], settings,
                                        "LOGIN" in kept, comment))
    available = existing | set(missing)
    if reached is None:  # before format 3: what the created roles are members of
        reached = set(missing) | {m.role for m in roles_file.memberships if m.member in missing}
    seen = set()
    for membership in roles_file.memberships:
        role, member = membership.role, membership.member
        if member not in reached or (role, member) in seen:
            continue
        seen.add((role, member))
        text = f"GRANT {quote_ident(role)} TO {quote_ident(member)} (roles object line {membership.line})"
        if role.startswith("pg_"):
            plan.skipped.append(f"{text}: a predefined role (a platform admin grants it if the application needs it)")
        elif role in roles and roles[role].privileged:
            plan.skipped.append(f"{text}: {role} has {', '.join(sorted(set(roles[role].attributes) & PRIVILEGED))}")
        elif role not in reached:
            plan.skipped.append(f"{text}: the archive does not reach {role}")
        elif role in available and member in available:
            plan.memberships.append(PlannedMembership(grant_statement(membership, grantor.server_major),
                                                      membership_line(role, member, membership.admin), role, member))
    return plan


PRIVILEGED = frozenset({"SUPERUSER", "BYPASSRLS", "REPLICATION", "CREATEROLE"})


@dataclass
class RolesApplied:
    created: list[str] = field(default_factory=list)
    need_password: list[str] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)  # role -> attributes and settings left out
    memberships: list[str] = field(default_factory=list)
    self_granted: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)  # every statement run, in order
    not_restored: list[NotRestored] = field(default_factory=list)


def apply_roles(conn: psycopg.Connection, plan: RolePlan) -> RolesApplied:
    """Carry out ``plan`` in one transaction. A stored setting the restore role may not
    recreate (a superuser-only parameter) is left out with a warning, a membership it may
    not grant is "not restored" with its GRANT; anything else that fails undoes it all."""
    log = get_logger()
    result = RolesApplied(dropped={name: list(attrs) for name, attrs in plan.dropped.items()})
    try:
        with conn.transaction():
            for role in plan.create:
                ident = sql.Identifier(role.name).as_string(conn)
                statement = f"CREATE ROLE {ident}" + (f" WITH {' '.join(role.attributes)}" if role.attributes else "")
                conn.execute(statement)
                result.statements.append(statement)
                result.created.append(role.name)
                if role.login:
                    result.need_password.append(role.name)
                for attribute in role.dropped:
                    event(log, "created role without an attribute the restore role may not grant: a platform admin "
                          "grants it if the application needs it", level=logging.WARNING, role=role.name, attribute=attribute)
            for role in plan.create:
                for setting in role.settings + ([role.comment] if role.comment else []):
                    if _optional(conn, setting):
                        result.statements.append(setting)
                    else:
                        result.dropped.setdefault(role.name, []).append(setting)
            for role_name in plan.self_grants:
                statement = plan.grantor.self_grant(role_name)
                conn.execute(statement)
                result.statements.append(statement)
                result.self_granted.append(role_name)
            for membership in plan.memberships:
                if _member(conn, membership.role, membership.member):
                    continue
                error = _attempt(conn, membership.statement)
                if error is None:
                    result.memberships.append(membership.statement)
                    result.statements.append(membership.statement)
                else:
                    result.not_restored.append(NotRestored(f"memberships: {membership.line}", membership.statement,
                                                           error))
    except psycopg.Error as exc:
        raise RestoreError(
            f"creating roles failed, nothing was created: {str(exc).strip().splitlines()[0]}",
            hint="connect as a role with CREATEROLE (on PostgreSQL 16+ with ADMIN on the owner roles), "
            "or create the roles by hand",
        ) from None
    return result


def _member(conn: psycopg.Connection, role: str, member: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member "
        "WHERE r.rolname = %s AND m.rolname = %s", (role, member)).fetchone() is not None


def _attempt(conn: psycopg.Connection, statement: str) -> str | None:
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _optional(conn: psycopg.Connection, statement: str) -> bool:
    """Run ``statement`` in a savepoint; a refusal is a warning, not a failure."""
    error = _attempt(conn, statement)
    if error is not None:
        event(get_logger(), "left out of the recreated roles (the restore role may not run it)", level=logging.WARNING,
              statement=statement, error=error)
        return False
    return True
