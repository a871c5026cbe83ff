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
import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from .errors import RestoreError
from .log import event, get_logger

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE = re.compile(rf"^CREATE ROLE (?P<name>{_IDENT});$")
_ALTER_WITH = re.compile(rf"^ALTER ROLE (?P<name>{_IDENT}) WITH (?P<attrs>.*);$")
_ALTER_SET = re.compile(rf"^ALTER ROLE (?P<name>{_IDENT}) (?:IN DATABASE {_IDENT} )?SET .*;$")
_GRANT = re.compile(rf"^GRANT (?P<role>{_IDENT}) TO (?P<member>{_IDENT})(?P<rest>.*);$")
_PASSWORD = re.compile(r"\s+(?:ENCRYPTED\s+)?PASSWORD\s+('(?:[^']|'')*'|NULL)", re.IGNORECASE)
_GRANTED_BY = re.compile(rf"\s+GRANTED BY {_IDENT}", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"CONNECTION LIMIT -?\d+|VALID UNTIL '(?:[^']|'')*'|[A-Z]+", re.IGNORECASE)

#: attributes CREATE ROLE sets unless told otherwise; only the others are restored
DEFAULT_ATTRIBUTES = frozenset({"NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "INHERIT", "NOLOGIN", "NOREPLICATION",
                                "NOBYPASSRLS", "CONNECTION LIMIT -1"})


def unquote(identifier: str) -> str:
    if identifier.startswith('"') and identifier.endswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


@dataclass
class StoredRole:
    name: str
    attributes: str = ""
    settings: list[str] = field(default_factory=list)
    memberships: list[str] = field(default_factory=list)  # full GRANT statements (GRANTED BY removed)
    member_of: list[str] = field(default_factory=list)

    @property
    def attribute_list(self) -> list[str]:
        """The attributes that differ from CREATE ROLE's defaults, upper-cased
        (``VALID UNTIL`` keeps its literal)."""
        found = []
        for token in _ATTRIBUTE.findall(self.attributes):
            if token.upper().startswith("VALID UNTIL"):
                normal = "VALID UNTIL " + token[len("VALID UNTIL"):].strip()
            else:
                normal = " ".join(token.upper().split())
            if normal not in DEFAULT_ATTRIBUTES:
                found.append(normal)
        return found


def parse_globals(sql_text: str) -> dict[str, StoredRole]:
    roles: dict[str, StoredRole] = {}
    for raw in sql_text.splitlines():
        line = raw.strip()
        if match := _CREATE.match(line):
            name = unquote(match.group("name"))
            roles.setdefault(name, StoredRole(name=name))
        elif match := _ALTER_WITH.match(line):
            role = roles.setdefault(unquote(match.group("name")), StoredRole(name=unquote(match.group("name"))))
            role.attributes = _PASSWORD.sub("", match.group("attrs")).strip()
        elif match := _ALTER_SET.match(line):
            role = roles.setdefault(unquote(match.group("name")), StoredRole(name=unquote(match.group("name"))))
            role.settings.append(line)
        elif match := _GRANT.match(line):
            member = unquote(match.group("member"))
            role = roles.setdefault(member, StoredRole(name=member))
            role.memberships.append(_GRANTED_BY.sub("", line))
            role.member_of.append(unquote(match.group("role")))
    return roles


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
        statement = f"GRANT {_quote(role)} TO {_quote(self.name)}"
        return statement + (" WITH INHERIT TRUE, SET TRUE" if self.server_major >= 16 else "")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class RoleCreation:
    name: str
    attributes: list[str]
    dropped: list[str]
    settings: list[str]
    login: bool


@dataclass
class RolePlan:
    """The roles to create, with what, and the memberships to grant: the only change the
    restore makes to the cluster before it touches the target database."""

    grantor: Grantor
    create: list[RoleCreation] = field(default_factory=list)
    memberships: list[str] = field(default_factory=list)  # GRANT statements between roles
    self_grants: list[str] = field(default_factory=list)  # roles the restore role is granted

    @property
    def empty(self) -> bool:
        return not self.create and not self.self_grants

    @property
    def dropped(self) -> dict[str, list[str]]:
        return {c.name: c.dropped for c in self.create if c.dropped}


class UndefinedRolesError(RestoreError):
    """Roles the backup needs that its roles object does not define."""


def plan_roles(missing: list[str], stored: dict[str, StoredRole], grantor: Grantor, existing: set[str],
               self_grants: list[str]) -> RolePlan:
    """Create ``missing`` (all must be in ``stored``) with the attributes ``grantor`` may
    give; recreate the memberships whose member is created and whose role exists then;
    grant the restore role ``self_grants``."""
    unknown = [name for name in missing if name not in stored]
    if unknown:
        raise UndefinedRolesError(
            f"the backup's roles object does not define {', '.join(unknown)}",
            hint="create these roles on the target server by hand, then retry",
        )
    plan = RolePlan(grantor=grantor, self_grants=list(self_grants))
    for name in missing:
        role = stored[name]
        attributes = role.attribute_list
        kept = [a for a in attributes if grantor.may_grant(a)]
        plan.create.append(RoleCreation(name, kept, [a for a in attributes if a not in kept], list(role.settings),
                                        "LOGIN" in kept))
    available = existing | set(missing)
    for name in missing:
        for statement, granted in zip(stored[name].memberships, stored[name].member_of):
            if granted in available:
                plan.memberships.append(statement)
    return plan


@dataclass
class RolesApplied:
    created: list[str] = field(default_factory=list)
    need_password: list[str] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)  # role -> attributes and settings left out
    memberships: list[str] = field(default_factory=list)
    self_granted: list[str] = field(default_factory=list)


def apply_roles(conn: psycopg.Connection, plan: RolePlan) -> RolesApplied:
    """Carry out ``plan`` in one transaction. A stored setting or membership the restore
    role may not recreate (a superuser-only parameter, a predefined role it does not
    administer) is left out with a warning; anything else that fails undoes it all."""
    log = get_logger()
    result = RolesApplied(dropped={name: list(attrs) for name, attrs in plan.dropped.items()})
    try:
        with conn.transaction():
            for role in plan.create:
                ident = sql.Identifier(role.name).as_string(conn)
                conn.execute(f"CREATE ROLE {ident}" + (f" WITH {' '.join(role.attributes)}" if role.attributes else ""))
                result.created.append(role.name)
                if role.login:
                    result.need_password.append(role.name)
                for attribute in role.dropped:
                    event(log, "created role without an attribute the restore role may not grant: a platform admin "
                          "grants it if the application needs it", level=logging.WARNING, role=role.name, attribute=attribute)
            for role in plan.create:
                for setting in role.settings:
                    if not _optional(conn, setting):
                        result.dropped.setdefault(role.name, []).append(setting)
            for statement in plan.memberships:
                if _optional(conn, statement):
                    result.memberships.append(statement)
            for role_name in plan.self_grants:
                conn.execute(plan.grantor.self_grant(role_name))
                result.self_granted.append(role_name)
    except psycopg.Error as exc:
        raise RestoreError(
            f"creating roles failed, nothing was created: {str(exc).strip().splitlines()[0]}",
            hint="connect as a role with CREATEROLE (on PostgreSQL 16+ with ADMIN on the owner roles), "
            "or create the roles by hand",
        ) from None
    return result


def _optional(conn: psycopg.Connection, statement: str) -> bool:
    """Run ``statement`` in a savepoint; a refusal is a warning, not a failure."""
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.Error as exc:
        event(get_logger(), "left out of the recreated roles (the restore role may not run it)", level=logging.WARNING,
              statement=statement, error=str(exc).strip().splitlines()[0])
        return False
    return True
