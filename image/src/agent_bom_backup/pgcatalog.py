"""Catalog queries: server identity, row counts, schema fingerprint, roles, extensions.

The same functions run on the source inside the dump's snapshot and on the restored
target, so a difference between the two is a difference in the data, not in the query.
Counting runs with ``row_security = off`` (set at connection start): a role that row
level security would filter gets an error instead of a silently low count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import psycopg
from psycopg import sql

USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""
NOT_EXTENSION_MEMBER = """
    NOT EXISTS (SELECT 1 FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
"""


@dataclass(frozen=True)
class ServerInfo:
    version: str
    version_num: int
    database: str
    current_user: str
    is_superuser: bool
    bypass_rls: bool
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
               r.rolsuper, r.rolbypassrls,
               pg_is_in_recovery(),
               CASE WHEN pg_is_in_recovery() THEN pg_last_xact_replay_timestamp() END,
               now(),
               pg_database_size(current_database())
        FROM pg_roles r WHERE r.rolname = current_user
        """
    ).fetchone()
    assert row is not None
    return ServerInfo(
        version=row[0].split()[0],
        version_num=row[1],
        database=row[2],
        current_user=row[3],
        is_superuser=bool(row[4]),
        bypass_rls=bool(row[5]),
        in_recovery=bool(row[6]),
        replay_timestamp=_iso(row[7]),
        snapshot_time=_iso(row[8]) or "",
        system_identifier=system_identifier(conn),
        database_size=int(row[9]),
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


def rls_filtered_tables(conn: psycopg.Connection) -> list[str]:
    """Tables whose rows row-level security would hide from the current role."""
    rows = conn.execute(
        f"""
        SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND {USER_SCHEMAS}
          AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
          AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'USAGE'))
        ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class TableCount:
    schema: str
    name: str
    rows: int
    tenants: dict[str, int] | None  # tenant value (as text; "<null>" for NULL) -> rows

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


NULL_TENANT = "<null>"


def row_counts(conn: psycopg.Connection, tenant_column: str) -> list[TableCount]:
    """Exact per-table counts, per tenant where the table has ``tenant_column``."""
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


def available_extensions(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions").fetchall()}


def referenced_roles(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every role the dump will name, by how it is named: object owners, grantees
    (table, column, schema, function and default privileges) and policy roles.

    Predefined ``pg_*`` roles and PUBLIC exist everywhere and are left out, as is the
    owner of the ``public`` schema (pg_dump does not restore it).
    """
    rows = conn.execute(
        f"""
        WITH refs(kind, r) AS (
            SELECT 'owners', nspowner FROM pg_namespace n WHERE {USER_SCHEMAS} AND n.nspname <> 'public'
            UNION SELECT 'owners', c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE {USER_SCHEMAS} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
            UNION SELECT 'owners', p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
            UNION SELECT 'owners', t.typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                  WHERE {USER_SCHEMAS} AND t.typtype IN ('c', 'd', 'e', 'r') AND t.typrelid = 0
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
    return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}


def user_tables(conn: psycopg.Connection) -> list[str]:
    """User objects that make a database non-empty: relations, then functions and
    types left behind (pg_restore would collide with those too)."""
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
        ORDER BY 1, 2
        """
    ).fetchall()
    return [r[1] for r in rows]


@dataclass(frozen=True)
class SequenceCheck:
    sequence: str
    column: str
    last_value: int | None
    column_max: int | None

    @property
    def ok(self) -> bool:
        if self.column_max is None:
            return True
        return self.last_value is not None and self.last_value >= self.column_max


def sequence_checks(conn: psycopg.Connection) -> list[SequenceCheck]:
    """Owned sequences must be at or past the largest value of their column.

    Sequence values are not covered by the dump's snapshot, so equality with the
    source would be the wrong test.
    """
    owned = conn.execute(
        f"""
        SELECT sn.nspname, s.relname, tn.nspname, t.relname, a.attname
        FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_namespace sn ON sn.oid = s.relnamespace
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_namespace tn ON tn.oid = t.relnamespace
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i') AND {USER_SCHEMAS}
        ORDER BY 1, 2
        """
    ).fetchall()
    checks: list[SequenceCheck] = []
    for seq_schema, seq_name, schema, table, column in owned:
        seq = sql.Identifier(seq_schema, seq_name)
        last = conn.execute(
            sql.SQL("SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {}").format(seq)
        ).fetchone()
        top = conn.execute(
            sql.SQL("SELECT max({col})::bigint FROM {tbl}").format(
                col=sql.Identifier(column), tbl=sql.Identifier(schema, table)
            )
        ).fetchone()
        checks.append(
            SequenceCheck(
                sequence=f"{seq_schema}.{seq_name}",
                column=f"{schema}.{table}.{column}",
                last_value=int(last[0]) if last and last[0] is not None else None,
                column_max=int(top[0]) if top and top[0] is not None else None,
            )
        )
    return checks
