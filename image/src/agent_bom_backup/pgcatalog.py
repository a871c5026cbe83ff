"""Catalog queries: server identity, row counts, schema fingerprint, extensions (roles: pgroles).

The same functions run on the source inside the dump's snapshot and on the restored
target, so a difference between the two is a difference in the data, not in the query.
Counting runs with ``row_security = off`` (set at connection start): a role that row
level security would filter gets an error instead of a silently low count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from .manifest import SequenceRecord

USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""
def not_extension_member(catalog: str, alias: str) -> str:
    """SQL: the row ``alias`` of ``catalog`` is no extension's member object."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass "
            f"AND d.objid = {alias}.oid AND d.deptype = 'e')")


NOT_EXTENSION_MEMBER = not_extension_member("pg_class", "c")


@dataclass(frozen=True)
class ServerInfo:
    version: str
    version_num: int
    database: str
    current_user: str
    in_recovery: bool
    replay_timestamp: str | None
    snapshot_time: str
    system_identifier: str | None
    database_size: int

    @property
    def major(self) -> int:
        return self.version_num // 10000


def server_info(conn: psycopg.Connection) -> ServerInfo:
    row = conn.execute(
        """
        SELECT current_setting('server_version'),
               current_setting('server_version_num')::int,
               current_database(), current_user,
               pg_is_in_recovery(),
               CASE WHEN pg_is_in_recovery() THEN pg_last_xact_replay_timestamp() END,
               now(),
               pg_database_size(current_database())
        """
    ).fetchone()
    assert row is not None
    return ServerInfo(
        version=row[0].split()[0],
        version_num=row[1],
        database=row[2],
        current_user=row[3],
        in_recovery=bool(row[4]),
        replay_timestamp=_iso(row[5]),
        snapshot_time=_iso(row[6]) or "",
        system_identifier=system_identifier(conn),
        database_size=int(row[7]),
    )


def system_identifier(conn: psycopg.Connection) -> str | None:
    """The cluster's system identifier, or None when the role may not read it."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def _iso(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat()  # type: ignore[attr-defined]


def first_column(conn: psycopg.Connection, query: str) -> list[Any]:
    """The first column of every row ``query`` returns."""
    return [row[0] for row in conn.execute(query).fetchall()]


def rls_filtered_tables(conn: psycopg.Connection) -> list[str]:
    """Tables whose rows row-level security would hide from the current role."""
    return first_column(
        conn,
        f"""
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND {USER_SCHEMAS}
          AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
          AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'USAGE'))
        ORDER BY 1
        """,
    )


@dataclass(frozen=True)
class TableCount:
    schema: str
    name: str
    rows: int
    tenants: dict[str, int] | None  # tenant value (as text; "<null>" for NULL) -> rows


NULL_TENANT = "<null>"


def row_counts(conn: psycopg.Connection, tenant_column: str,
               skip: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset()) -> list[TableCount]:
    """Exact per-table counts, per tenant where the table has ``tenant_column``; the
    (schema, table) pairs in ``skip`` (left out of the backup) are not read."""
    tables = conn.execute(
        f"""
        SELECT n.nspname, c.relname,
               EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
        ORDER BY 1, 2
        """,
        (tenant_column,),
    ).fetchall()
    counts: list[TableCount] = []
    for schema, name, has_tenant in tables:
        if (schema, name) in skip:
            continue
        table = sql.Identifier(schema, name)
        if has_tenant:
            query = sql.SQL("SELECT {col}::text, count(*) FROM {tbl} GROUP BY 1").format(
                col=sql.Identifier(tenant_column), tbl=table
            )
            tenants = {
                (value if value is not None else NULL_TENANT): int(n)
                for value, n in conn.execute(query).fetchall()
            }
            counts.append(TableCount(schema, name, sum(tenants.values()), dict(sorted(tenants.items()))))
        else:
            query = sql.SQL("SELECT count(*) FROM {tbl}").format(tbl=table)
            row = conn.execute(query).fetchone()
            counts.append(TableCount(schema, name, int(row[0]) if row else 0, None))
    return counts


# Each category is a list of canonical one-line descriptions; sorted, so two
# databases with the same schema produce the same lists whatever their OIDs.
FINGERPRINT_QUERIES: dict[str, str] = {
    "schemas": f"""
        SELECT 'schema ' || quote_ident(n.nspname) FROM pg_namespace n WHERE {USER_SCHEMAS}
    """,
    "tables": f"""
        SELECT c.relkind::text || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
    """,
    "columns": f"""
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(a.attname)
               || ' ' || format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
               || COALESCE(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
               || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
               || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
    """,
    "indexes": f"""
        SELECT pg_get_indexdef(i.indexrelid)
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
    """,
    "constraints": f"""
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ' || quote_ident(co.conname)
               || ' ' || pg_get_constraintdef(co.oid)
        FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE co.contype <> 'n' AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
    """,
    "sequences": f"""
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
               || ' ' || format_type(s.seqtypid, NULL) || ' start ' || s.seqstart
               || ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax
               || ' cache ' || s.seqcache || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
    """,
    "row_security": f"""
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
               || ' enabled=' || c.relrowsecurity || ' forced=' || c.relforcerowsecurity
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND (c.relrowsecurity OR c.relforcerowsecurity) AND {USER_SCHEMAS}
    """,
    "policies": """
        SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) || ' ' || quote_ident(policyname)
               || ' ' || permissive || ' ' || cmd || ' to ' || array_to_string(roles, ',')
               || ' using ' || COALESCE(qual, '-') || ' check ' || COALESCE(with_check, '-')
        FROM pg_policies
    """,
    "functions": """
        SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname)
               || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || p.prokind::text
               || ' ' || md5(COALESCE(p.prosrc, ''))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    """,
    "views": f"""
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ' || md5(pg_get_viewdef(c.oid))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
    """,
    "triggers": f"""
        SELECT pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND {USER_SCHEMAS}
    """,
    "owners": f"""
        SELECT 'schema ' || quote_ident(n.nspname) || ' ' || pg_get_userbyid(n.nspowner)
        FROM pg_namespace n WHERE {USER_SCHEMAS} AND n.nspname <> 'public'
        UNION ALL
        SELECT c.relkind::text || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
               || ' ' || pg_get_userbyid(c.relowner)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
        UNION ALL
        SELECT 'function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname)
               || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || pg_get_userbyid(p.proowner)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
    """,
    "grants": f"""
        SELECT c.relkind::text || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' '
               || CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(acl.grantee) END
               || ' ' || acl.privilege_type || CASE WHEN acl.is_grantable THEN ' grantable' ELSE '' END
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
             LATERAL aclexplode(c.relacl) acl
        WHERE c.relacl IS NOT NULL AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
          AND acl.grantee <> c.relowner
        UNION ALL
        SELECT 'schema ' || quote_ident(n.nspname) || ' '
               || CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(acl.grantee) END
               || ' ' || acl.privilege_type
        FROM pg_namespace n, LATERAL aclexplode(n.nspacl) acl
        WHERE n.nspacl IS NOT NULL AND {USER_SCHEMAS} AND acl.grantee <> n.nspowner
        UNION ALL
        SELECT 'column ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.'
               || quote_ident(a.attname) || ' '
               || CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(acl.grantee) END
               || ' ' || acl.privilege_type
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL aclexplode(a.attacl) acl
        WHERE a.attacl IS NOT NULL AND {USER_SCHEMAS}
    """,
}

# Categories that depend on restore options: skipped when owners/privileges were not restored.
OWNERSHIP_CATEGORIES = ("owners",)
PRIVILEGE_CATEGORIES = ("grants",)


def schema_fingerprint(conn: psycopg.Connection) -> dict[str, list[str]]:
    return {
        category: sorted(str(r[0]) for r in conn.execute(query).fetchall())
        for category, query in FINGERPRINT_QUERIES.items()
    }


def fingerprint_digest(fingerprint: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()


def extensions(conn: psycopg.Connection) -> dict[str, str]:
    return {name: version for name, version in conn.execute(
        "SELECT extname, extversion FROM pg_extension ORDER BY 1").fetchall()}


def user_objects(conn: psycopg.Connection) -> list[str]:
    """What makes a database non-empty: relations, then functions and types left behind
    (pg_restore would collide with those too), then large objects, event triggers and
    publications (not in any schema, so dropping the schemas leaves them)."""
    rows = conn.execute(
        f"""
        SELECT 1, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
        UNION ALL
        SELECT 2, 'function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {USER_SCHEMAS}
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 3, 'type ' || quote_ident(n.nspname) || '.' || quote_ident(t.typname)
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {USER_SCHEMAS} AND t.typtype IN ('c', 'd', 'e', 'r') AND t.typrelid = 0
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 4, 'large object ' || l.oid FROM pg_largeobject_metadata l
        UNION ALL
        SELECT 5, 'event trigger ' || quote_ident(e.evtname) FROM pg_event_trigger e
        WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_event_trigger'::regclass
                          AND d.objid = e.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 6, 'publication ' || quote_ident(p.pubname) FROM pg_publication p
        ORDER BY 1, 2
        """
    ).fetchall()
    objects = [r[1] for r in rows]
    # a schema is contents too (pg_restore's CREATE SCHEMA collides with it, and --clean
    # must drop it): those that hold nothing listed above, except public as every new
    # database has it (owned by pg_database_owner; by the bootstrap superuser before 15)
    holding = {o.removeprefix("function ").removeprefix("type ").partition(".")[0] for o in objects}
    schemas = first_column(conn, f"""
        SELECT quote_ident(n.nspname) FROM pg_namespace n
        WHERE {USER_SCHEMAS}
          AND NOT (n.nspname = 'public' AND (n.nspowner = 10 OR pg_get_userbyid(n.nspowner) = 'pg_database_owner'))
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                          AND d.objid = n.oid AND d.deptype = 'e')
        ORDER BY 1""")
    return objects + [f"schema {name}" for name in schemas if name not in holding]


def undroppable_objects(conn: psycopg.Connection) -> list[str]:
    """What --clean must drop but the current role may not: schemas, publications and
    large objects it does not own (directly or through a role whose privileges it
    inherits), and every event trigger unless it is a superuser."""
    return first_column(
        conn,
        f"""
        WITH me AS (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        SELECT 'schema ' || quote_ident(n.nspname) || ' (owner ' || pg_get_userbyid(n.nspowner) || ')'
        FROM pg_namespace n, me WHERE {USER_SCHEMAS} AND NOT me.rolsuper
          AND NOT pg_has_role(current_user, n.nspowner, 'USAGE')
        UNION ALL
        SELECT 'publication ' || quote_ident(p.pubname) || ' (owner ' || pg_get_userbyid(p.pubowner) || ')'
        FROM pg_publication p, me WHERE NOT me.rolsuper AND NOT pg_has_role(current_user, p.pubowner, 'USAGE')
        UNION ALL
        SELECT 'large object ' || l.oid || ' (owner ' || pg_get_userbyid(l.lomowner) || ')'
        FROM pg_largeobject_metadata l, me WHERE NOT me.rolsuper
          AND NOT pg_has_role(current_user, l.lomowner, 'USAGE')
        UNION ALL
        SELECT 'event trigger ' || quote_ident(e.evtname) || ' (only a superuser may drop it)'
        FROM pg_event_trigger e, me WHERE NOT me.rolsuper
        ORDER BY 1
        """,
    )


@dataclass(frozen=True)
class ExtensionInfo:
    installed: bool
    trusted: bool
    schema: str | None = None  # where it is installed


def extension_info(conn: psycopg.Connection) -> dict[str, ExtensionInfo]:
    """Every extension the server can install: whether it is installed in this database
    and whether a non-superuser with CREATE may install it (trusted, PostgreSQL 13+)."""
    rows = conn.execute(
        """
        SELECT a.name, a.installed_version IS NOT NULL,
               COALESCE((SELECT bool_or(v.trusted) FROM pg_available_extension_versions v
                         WHERE v.name = a.name), false),
               (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                WHERE e.extname = a.name)
        FROM pg_available_extensions a
        """
    ).fetchall()
    return {name: ExtensionInfo(bool(installed), bool(trusted), schema) for name, installed, trusted, schema in rows}


@dataclass(frozen=True)
class RlsTable:
    schema: str
    name: str
    forced: bool
    owned: bool  # the current role owns it (directly or through a role whose privileges it inherits)


def rls_tables(conn: psycopg.Connection) -> list[RlsTable]:
    """User tables with row-level security enabled or forced."""
    return [RlsTable(r[0], r[1], bool(r[2]), bool(r[3])) for r in conn.execute(
        f"""
        SELECT n.nspname, c.relname, c.relforcerowsecurity, pg_has_role(current_user, c.relowner, 'USAGE')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND (c.relrowsecurity OR c.relforcerowsecurity) AND {USER_SCHEMAS}
        ORDER BY 1, 2
        """
    ).fetchall()]


def forced_rls_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(schema, table) of user tables with FORCE ROW LEVEL SECURITY."""
    return [(r[0], r[1]) for r in conn.execute(
        f"""
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND c.relforcerowsecurity AND {USER_SCHEMAS}
        ORDER BY 1, 2
        """
    ).fetchall()]


def sequence_states(conn: psycopg.Connection,
                    skip: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset()) -> list[SequenceRecord]:
    """Every user sequence's increment, last value and is_called, and the column that
    owns it. Sequences are not transactional: this is their state now, not at the snapshot."""
    owned = conn.execute(
        f"""
        SELECT sn.nspname, s.relname, seq.seqincrement,
               (SELECT tn.nspname || '.' || t.relname || '.' || a.attname
                FROM pg_depend d
                JOIN pg_class t ON t.oid = d.refobjid
                JOIN pg_namespace tn ON tn.oid = t.relnamespace
                JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = s.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                LIMIT 1)
        FROM pg_class s
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        JOIN pg_sequence seq ON seq.seqrelid = s.oid
        WHERE s.relkind = 'S' AND {USER_SCHEMAS.replace("n.nspname", "sn.nspname")}
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = s.oid AND d.deptype = 'e')
        ORDER BY 1, 2
        """
    ).fetchall()
    states: list[SequenceRecord] = []
    for schema, name, increment, owned_by in owned:
        if (schema, name) in skip:
            continue
        row = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()
        assert row is not None
        states.append(SequenceRecord(schema, name, int(increment), int(row[0]), bool(row[1]), owned_by))
    return states


@dataclass(frozen=True)
class ColumnBound:
    """The extreme value of a sequence's owning column in its direction: max for an
    ascending sequence, min for a descending one (None: no rows)."""

    column: str
    value: int | None


def column_bound(conn: psycopg.Connection, owned_by: str, increment: int) -> ColumnBound:
    schema, table, column = owned_by.split(".", 2)
    function = sql.SQL("max" if increment > 0 else "min")
    row = conn.execute(
        sql.SQL("SELECT {}({})::bigint FROM {}").format(
            function, sql.Identifier(column), sql.Identifier(schema, table))
    ).fetchone()
    return ColumnBound(owned_by, int(row[0]) if row and row[0] is not None else None)
