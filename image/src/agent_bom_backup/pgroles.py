"""Catalog queries about roles: which roles a dump names, which exist, and what the
restoring role may do with them (own, set, inherit, grant).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from .pgcatalog import NOT_EXTENSION_MEMBER, USER_SCHEMAS, not_extension_member, first_column


def referenced_roles(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every role the dump will name, by how it is named: object owners, grantees
    (table, column, schema, function and default privileges) and policy roles.

    Predefined ``pg_*`` roles and PUBLIC exist everywhere and are left out, as is the
    owner of the ``public`` schema (pg_dump does not restore it), and the owners of an
    extension's member objects: pg_dump dumps ``CREATE EXTENSION``, never their ``OWNER TO``
    (a trusted extension a database owner created, e.g. pg_trgm, has members owned by the
    bootstrap superuser, whom no managed admin may act as).
    """
    rows = conn.execute(
        f"""
        WITH refs(kind, r) AS (
            SELECT 'owners', nspowner FROM pg_namespace n WHERE {USER_SCHEMAS} AND n.nspname <> 'public'
                  AND {not_extension_member('pg_namespace', 'n')}
            UNION SELECT 'owners', c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE {USER_SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {NOT_EXTENSION_MEMBER}
            UNION SELECT 'owners', p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                  AND {not_extension_member('pg_proc', 'p')}
            UNION SELECT 'owners', t.typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                  WHERE {USER_SCHEMAS} AND t.typtype IN ('c', 'd', 'e', 'r') AND t.typrelid = 0
                  AND {not_extension_member('pg_type', 't')}
            UNION SELECT 'owners', defaclrole FROM pg_default_acl
            UNION SELECT 'grantees', acl.grantee FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
                  LATERAL aclexplode(c.relacl) acl WHERE {USER_SCHEMAS}
            UNION SELECT 'grantees', acl.grantee FROM pg_namespace n, LATERAL aclexplode(n.nspacl) acl
                  WHERE {USER_SCHEMAS}
            UNION SELECT 'grantees', acl.grantee FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
                  LATERAL aclexplode(p.proacl) acl WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
            UNION SELECT 'grantees', acl.grantee FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(a.attacl) acl
                  WHERE {USER_SCHEMAS}
            UNION SELECT 'grantees', acl.grantee FROM pg_default_acl, LATERAL aclexplode(defaclacl) acl
            UNION SELECT 'policies', unnest(polroles) FROM pg_policy
        )
        SELECT DISTINCT kind, rolname FROM refs JOIN pg_roles ON pg_roles.oid = refs.r
        WHERE refs.r <> 0 AND rolname NOT LIKE 'pg\\_%%'
        ORDER BY 1, 2
        """
    ).fetchall()
    result: dict[str, list[str]] = {"owners": [], "grantees": [], "policies": []}
    for kind, role in rows:
        result[kind].append(role)
    return result


def existing_roles(conn: psycopg.Connection) -> set[str]:
    return set(first_column(conn, "SELECT rolname FROM pg_roles"))


@dataclass(frozen=True)
class RestoreRole:
    """The role a restore connects as, and what it may do."""

    name: str
    superuser: bool
    createrole: bool
    createdb: bool
    bypassrls: bool
    replication: bool
    inherit: bool
    database_owner: bool  # owns the target database (directly or through a role it inherits)
    database_owner_name: str  # the target database's owner role
    create_on_database: bool

    @property
    def sees_every_row(self) -> bool:
        return self.superuser or self.bypassrls


def restore_role(conn: psycopg.Connection) -> RestoreRole:
    row = conn.execute(
        """
        SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
               r.rolinherit, pg_has_role(current_user, d.datdba, 'USAGE'), pg_get_userbyid(d.datdba),
               has_database_privilege(current_database(), 'CREATE')
        FROM pg_roles r, pg_database d
        WHERE r.rolname = current_user AND d.datname = current_database()
        """
    ).fetchone()
    assert row is not None
    return RestoreRole(
        name=str(row[0]), superuser=bool(row[1]), createrole=bool(row[2]), createdb=bool(row[3]),
        bypassrls=bool(row[4]), replication=bool(row[5]), inherit=bool(row[6]), database_owner=bool(row[7]),
        database_owner_name=str(row[8]), create_on_database=bool(row[9]),
    )


@dataclass(frozen=True)
class RoleAccess:
    """How the current role relates to another role."""

    name: str
    exists: bool
    superuser: bool = False
    can_set: bool = False  # may SET ROLE to it (and so make it an object's owner)
    inherits: bool = False  # has its privileges (acts as the owner of what it owns)
    admin: bool = False  # may grant membership in it


def role_access(conn: psycopg.Connection, names: list[str]) -> dict[str, RoleAccess]:
    """``RoleAccess`` of each name; PostgreSQL <= 15 has no separate SET privilege
    (membership is enough)."""
    set_privilege = "SET" if conn.info.server_version >= 160000 else "MEMBER"
    found: dict[str, RoleAccess] = {}
    for name, superuser, can_set, inherits, admin in conn.execute(
        f"""
        SELECT r.rolname, r.rolsuper, pg_has_role(current_user, r.oid, '{set_privilege}'),
               pg_has_role(current_user, r.oid, 'USAGE'),
               pg_has_role(current_user, r.oid, 'MEMBER WITH ADMIN OPTION')
        FROM pg_roles r WHERE r.rolname = ANY(%s)
        """,
        (list(names),),
    ).fetchall():
        found[name] = RoleAccess(name, True, bool(superuser), bool(can_set), bool(inherits), bool(admin))
    return {name: found.get(name, RoleAccess(name, False)) for name in names}
