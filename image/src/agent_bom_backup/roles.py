"""Recreate missing roles from the stored ``pg_dumpall --globals-only`` output.

Only the roles the target lacks are created, with their stored attributes and
memberships; never passwords (the backup stored none). A role that had LOGIN keeps
it, and the report says that a password must be set before the application can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from .errors import RestoreError

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE = re.compile(rf"^CREATE ROLE (?P<name>{_IDENT});$")
_ALTER_WITH = re.compile(rf"^ALTER ROLE (?P<name>{_IDENT}) WITH (?P<attrs>.*);$")
_ALTER_SET = re.compile(rf"^ALTER ROLE (?P<name>{_IDENT}) (?:IN DATABASE {_IDENT} )?SET .*;$")
_GRANT = re.compile(rf"^GRANT (?P<role>{_IDENT}) TO (?P<member>{_IDENT})(?P<rest>.*);$")
_PASSWORD = re.compile(r"\s+(?:ENCRYPTED\s+)?PASSWORD\s+('(?:[^']|'')*'|NULL)", re.IGNORECASE)
_GRANTED_BY = re.compile(rf"\s+GRANTED BY {_IDENT}", re.IGNORECASE)


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
    def can_login(self) -> bool:
        return bool(re.search(r"(?<!NO)LOGIN\b", self.attributes))


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


@dataclass
class CreatedRoles:
    created: list[str] = field(default_factory=list)
    need_password: list[str] = field(default_factory=list)
    memberships: list[str] = field(default_factory=list)


def create_missing_roles(conn: psycopg.Connection, missing: list[str], stored: dict[str, StoredRole]) -> CreatedRoles:
    """Create ``missing`` roles (all must be in ``stored``) in one transaction."""
    unknown = [name for name in missing if name not in stored]
    if unknown:
        raise RestoreError(
            f"the stored roles object does not define {', '.join(unknown)}",
            hint="create these roles by hand on the target, then retry",
        )
    result = CreatedRoles()
    existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    try:
        with conn.transaction():
            for name in missing:
                role = stored[name]
                ident = sql.Identifier(name).as_string(conn)
                conn.execute(f"CREATE ROLE {ident}")
                if role.attributes:
                    conn.execute(f"ALTER ROLE {ident} WITH {role.attributes}")
                for setting in role.settings:
                    conn.execute(setting)
                result.created.append(name)
                if role.can_login:
                    result.need_password.append(name)
            available = existing | set(result.created)
            for name in missing:
                for statement, granted in zip(stored[name].memberships, stored[name].member_of):
                    if granted in available:
                        conn.execute(statement)
                        result.memberships.append(statement)
    except psycopg.Error as exc:
        raise RestoreError(
            f"creating missing roles failed: {str(exc).strip().splitlines()[0]}",
            hint="connect as a role with CREATEROLE (or a superuser for SUPERUSER/REPLICATION/BYPASSRLS roles)",
        ) from None
    return result
