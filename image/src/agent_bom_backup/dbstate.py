"""Database-level state: what ``pg_dump`` without ``--create`` does not carry.

Recorded in the manifest (format 3) at backup, applied to the target database whatever
its name at restore, and compared as two fingerprint categories:

* ``database``: the owner, connection limit, comment, ACL (PUBLIC's and each role's
  privileges on the database, the owner's own left out), the database's settings
  (``ALTER DATABASE ... SET``) and its roles' settings in it (``ALTER ROLE ... IN
  DATABASE ... SET``);
* ``memberships``: the membership graph among the roles the archive reaches
  (:func:`rolesfile.reached_roles`).

A database owned by a superuser or a CREATEROLE administrator is recorded as owned by
"(administrator)": on the target, the superuser or the restore role that created it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from .rolesfile import reached_roles

ADMINISTRATOR = "(administrator)"
DATABASE_CATEGORY = "database"
MEMBERSHIP_CATEGORY = "memberships"
CATEGORIES = (DATABASE_CATEGORY, MEMBERSHIP_CATEGORY)


@dataclass
class DatabaseRecord:
    """The source database's own state (manifest format 3)."""

    name: str
    owner: str  # ADMINISTRATOR when a superuser or CREATEROLE administrator owned it
    connection_limit: int = -1
    comment: str | None = None
    acl: list[str] = field(default_factory=list)  # "grantee PRIVILEGE[ grantable]"; grantee PUBLIC or a role
    settings: list[str] = field(default_factory=list)  # "name=value" (pg_db_role_setting.setconfig)
    role_settings: dict[str, list[str]] = field(default_factory=dict)  # role -> "name=value" in this database
    reached_roles: list[str] = field(default_factory=list)
    memberships: list[str] = field(default_factory=list)  # "role <- member[ admin]" among reached_roles

    def acl_grantees(self) -> list[str]:
        return sorted({_split_acl(line)[0] for line in self.acl} - {"PUBLIC"})

    def roles(self, *, owners: bool = True, privileges: bool = True) -> set[str]:
        """The roles this state names (the seeds of the archive's reach)."""
        names = set()
        if owners and self.owner != ADMINISTRATOR:
            names.add(self.owner)
        if privileges:
            names.update(self.acl_grantees())
            names.update(self.role_settings)
        return names

    def fingerprint(self) -> dict[str, list[str]]:
        owner = self.owner if self.owner == ADMINISTRATOR else quote_ident(self.owner)
        lines = [f"owner {owner}", f"connection limit {self.connection_limit}"]
        if self.comment is not None:
            lines.append(f"comment {self.comment}")
        for entry in self.acl:
            grantee, rest = _split_acl(entry)
            lines.append(f"acl {grantee if grantee == 'PUBLIC' else quote_ident(grantee)} {rest}")
        lines += [f"setting {s}" for s in self.settings]
        lines += [f"role setting {quote_ident(role)} {s}"
                  for role, settings in self.role_settings.items() for s in settings]
        return {DATABASE_CATEGORY: sorted(lines), MEMBERSHIP_CATEGORY: sorted(self.memberships)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatabaseRecord":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class MembershipEdge:
    role: str
    member: str
    admin: bool


def capture(conn: psycopg.Connection, seeds: set[str], *, administrator: str | None = None,
            reached: set[str] | None = None, name: str | None = None) -> DatabaseRecord:
    """The current database's state. ``seeds``: the roles the archive names (owners,
    grantees, policy roles). On a restore target, ``administrator`` is the restore role
    (owning the database as the administrator did) and ``reached`` the manifest's roles."""
    row = conn.execute(
        """
        SELECT d.datname, pg_get_userbyid(d.datdba), r.rolsuper OR r.rolcreaterole, d.datconnlimit,
               shobj_description(d.oid, 'pg_database')
        FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()
        """
    ).fetchone()
    assert row is not None
    database, owner, owner_admin, limit, comment = row
    if owner_admin or owner == administrator:
        owner = ADMINISTRATOR
    acl = sorted(
        f"{grantee} {privilege}" + (" grantable" if grantable else "")
        for grantee, privilege, grantable in conn.execute(
            """
            SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
                   a.privilege_type, a.is_grantable
            FROM pg_database d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a
            WHERE d.datname = current_database() AND a.grantee <> d.datdba
            """
        ).fetchall()
    )
    settings: list[str] = []
    role_settings: dict[str, list[str]] = {}
    for role, config in conn.execute(
        """
        SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, s.setconfig
        FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = current_database() ORDER BY 1
        """
    ).fetchall():
        if role is None:
            settings = sorted(config or [])
        else:
            role_settings[role] = sorted(config or [])
    edges, privileged = membership_graph(conn)
    record = DatabaseRecord(name if name is not None else database, owner, int(limit), comment, acl, settings,
                            dict(sorted(role_settings.items())))
    if reached is None:
        reached = reached_roles(seeds | record.roles(), [(e.role, e.member) for e in edges], privileged)
    record.reached_roles = sorted(reached)
    record.memberships = membership_lines(edges, reached)
    return record


def membership_graph(conn: psycopg.Connection) -> tuple[list[MembershipEdge], set[str]]:
    """Every membership (one per role and member, with ADMIN if any grant has it) and the
    roles no restore grants membership in (SUPERUSER, BYPASSRLS, REPLICATION, CREATEROLE)."""
    edges = [MembershipEdge(r, m, bool(a)) for r, m, a in conn.execute(
        """
        SELECT r.rolname, m.rolname, bool_or(am.admin_option)
        FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
        GROUP BY 1, 2 ORDER BY 1, 2
        """
    ).fetchall()]
    privileged = {name for (name,) in conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolsuper OR rolbypassrls OR rolreplication OR rolcreaterole").fetchall()}
    return edges, privileged


def membership_lines(edges: list[MembershipEdge], reached: set[str]) -> list[str]:
    return sorted(membership_line(e.role, e.member, e.admin)
                  for e in edges if e.role in reached and e.member in reached)


def membership_line(role: str, member: str, admin: bool) -> str:
    return f"{quote_ident(role)} <- {quote_ident(member)}" + (" admin" if admin else "")


def _split_acl(entry: str) -> tuple[str, str]:
    """("grantee", "PRIVILEGE[ grantable]") of an ACL entry (the grantee may hold spaces)."""
    words = entry.split(" ")
    tail = 2 if words[-1] == "grantable" else 1
    return " ".join(words[:-tail]), " ".join(words[-tail:])


_QUOTED = re.compile(r'^"((?:[^"]|"")*)"(?: (.*))?$')


def _unquote_first(text: str) -> tuple[str, str]:
    """The leading quoted identifier of ``text`` (unquoted) and the rest."""
    match = _QUOTED.match(text)
    if not match:
        raise ValueError(f"expected a quoted name: {text!r}")
    return match.group(1).replace('""', '"'), match.group(2) or ""


# --------------------------------------------------------------------------- applying
@dataclass(frozen=True)
class NotRestored:
    """An item the backup recorded that the restore role could not apply."""

    item: str  # the fingerprint line ("database: acl app_user CONNECT")
    statement: str  # what a platform admin runs
    reason: str


def quote_ident(name: str) -> str:
    """An identifier quoted as SQL reads it back unchanged, whatever it holds."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A string literal (standard_conforming_strings on)."""
    return "'" + value.replace("'", "''") + "'"


def _set_value(value: str) -> str:
    """A setconfig value as SET syntax: a list value (``"$user", public``) as written, a
    single value as a literal."""
    return value if ("," in value or value.startswith('"')) else quote_literal(value)


def statement_for(category: str, line: str, database: str, *, missing: bool = True) -> str:
    """The SQL that makes ``line`` of ``category`` true (``missing``) or false (unexpected)."""
    db = quote_ident(database)
    if category == MEMBERSHIP_CATEGORY:
        role, rest = _unquote_first(line)
        member, admin = _unquote_first(rest.removeprefix("<- "))
        if not missing:
            return f"REVOKE {quote_ident(role)} FROM {quote_ident(member)}"
        return f"GRANT {quote_ident(role)} TO {quote_ident(member)}" + (" WITH ADMIN OPTION" if admin else "")
    kind, _, rest = line.partition(" ")
    if line.startswith("owner "):
        return f"ALTER DATABASE {db} OWNER TO {rest}" if rest != ADMINISTRATOR else \
            f"ALTER DATABASE {db} OWNER TO CURRENT_USER"
    if line.startswith("connection limit "):
        return f"ALTER DATABASE {db} CONNECTION LIMIT {line.rsplit(' ', 1)[1]}"
    if line.startswith("comment "):
        return f"COMMENT ON DATABASE {db} IS {quote_literal(line[len('comment '):]) if missing else 'NULL'}"
    if kind == "acl":
        who, _, privilege = rest.rpartition(" ") if not rest.endswith(" grantable") else \
            rest.removesuffix(" grantable").rpartition(" ")
        grantable = rest.endswith(" grantable")
        if not missing:
            return f"REVOKE {privilege} ON DATABASE {db} FROM {who}"
        return f"GRANT {privilege} ON DATABASE {db} TO {who}" + (" WITH GRANT OPTION" if grantable else "")
    if line.startswith("role setting "):
        role, setting = _unquote_first(line[len("role setting "):])
        name, _, value = setting.partition("=")
        if not missing:
            return f"ALTER ROLE {quote_ident(role)} IN DATABASE {db} RESET {quote_ident(name)}"
        return f"ALTER ROLE {quote_ident(role)} IN DATABASE {db} SET {quote_ident(name)} TO {_set_value(value)}"
    if line.startswith("setting "):
        name, _, value = line[len("setting "):].partition("=")
        if not missing:
            return f"ALTER DATABASE {db} RESET {quote_ident(name)}"
        return f"ALTER DATABASE {db} SET {quote_ident(name)} TO {_set_value(value)}"
    raise ValueError(f"no statement for {category} line {line!r}")


def _run(conn: psycopg.Connection, category: str, line: str, database: str, missing: bool) -> str | None:
    """Make one line true (or false); the error's first line when the role may not."""
    try:
        with conn.transaction():
            setting = None
            if line.startswith("role setting ") and missing:
                role, setting = _unquote_first(line[len("role setting "):])
            elif line.startswith("setting ") and missing:
                setting, role = line[len("setting "):], None
            if setting is not None:
                # set_config parses the value as the parameter's own syntax (lists included);
                # FROM CURRENT stores exactly that
                name, _, value = setting.partition("=")
                conn.execute("SELECT set_config(%s, %s, true)", (name, value))
                target = (sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(database))
                          if role is not None else sql.SQL("ALTER DATABASE {}").format(sql.Identifier(database)))
                conn.execute(sql.SQL("{} SET {} FROM CURRENT").format(target, sql.Identifier(name)))
            else:
                conn.execute(statement_for(category, line, database, missing=missing))
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def set_owner(conn: psycopg.Connection, record: DatabaseRecord, database: str) -> str | None:
    """Give the target database the recorded owner (before pg_restore: the owner of
    ``public`` is the database's). None when done or nothing to do, else the error."""
    if record.owner == ADMINISTRATOR:
        return None
    return _run(conn, DATABASE_CATEGORY, f"owner {record.owner}", database, True)


@dataclass
class Applied:
    statements: list[str] = field(default_factory=list)
    not_restored: list[NotRestored] = field(default_factory=list)


def apply(conn: psycopg.Connection, record: DatabaseRecord, actual: DatabaseRecord, database: str,
          categories: tuple[str, ...] = (DATABASE_CATEGORY,), skip: frozenset[str] = frozenset()) -> Applied:
    """Make the target's state (``actual``) the recorded one: each missing line applied,
    each unexpected line undone (RESET, REVOKE), one savepoint each. What the restore role
    may not do is returned as not restored, with the statement to run. ``skip``: lines
    of the database category not to touch (the scratch restore's omissions)."""
    done = Applied()
    expected, found = record.fingerprint(), actual.fingerprint()
    for category in categories:
        if category == MEMBERSHIP_CATEGORY:
            continue  # granted with the roles (roles.apply_roles), from the roles object
        want, have = set(expected[category]), set(found[category])
        changes = [(line, False) for line in sorted(have - want) if not _owner_or_limit(line)]
        # the owner is given before pg_restore (set_owner), not here
        changes += [(line, True) for line in sorted(want - have) if not line.startswith("owner ")]
        for line, missing in changes:
            if _kind(line) in skip:
                continue
            if category == MEMBERSHIP_CATEGORY and not missing:
                continue  # memberships the target has beyond the backup's are the platform's
            statement = statement_for(category, line, database, missing=missing)
            error = _run(conn, category, line, database, missing)
            if error is None:
                done.statements.append(statement)
            elif missing:
                done.not_restored.append(NotRestored(f"{category}: {line}", statement, error))
            else:
                done.not_restored.append(NotRestored(f"{category}: not in the backup: {line}", statement, error))
    return done


def _owner_or_limit(line: str) -> bool:
    """Lines replaced rather than removed: the owner and the connection limit always have a value."""
    return line.startswith(("owner ", "connection limit "))


#: what a database-category fingerprint line can be (``apply``'s ``skip`` names these)
LINE_KINDS = frozenset({"owner", "connection limit", "comment", "acl", "setting", "role setting"})


def _kind(line: str) -> str:
    if line.startswith("role setting "):
        return "role setting"
    if line.startswith("connection limit "):
        return "connection limit"
    return line.split(" ", 1)[0]
