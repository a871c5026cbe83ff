"""Tables the backup identity may not read, and tables left out of the backup by configuration.

pg_dump locks every table whose definition it dumps (``LOCK TABLE … IN ACCESS SHARE MODE``,
which needs SELECT) and reads every sequence; the backup's own counts read every table.
So a relation the backup role may not SELECT fails the dump, late and in pg_dump's words.
:func:`unreadable` finds them all before anything is written, and :func:`refusal` names each
with its owner and the three ways out.

``--exclude-table SCHEMA.TABLE`` leaves a table out whole (definition and data): with it
its partitions and the sequences it owns (which pg_dump would otherwise dump without it).
Names follow SQL's rules: an unquoted part is folded to lower case, a double-quoted one is
taken as written (``'"Tenant Keys"."Signing.Keys"'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from .errors import ConfigError, RefusedError
from .pgcatalog import NOT_EXTENSION_MEMBER, USER_SCHEMAS

#: relation kinds pg_dump reads: tables, partitioned tables, sequences
_READ_KINDS = {"r": "table", "p": "partitioned table", "S": "sequence"}
EXCLUDE_ENV = "AGENT_BOM_BACKUP_EXCLUDE_TABLES"
EXCLUDE_CHART_VALUE = "controlPlane.backup.dump.excludeTables"


def parse_name(text: str) -> tuple[str, str]:
    """``SCHEMA.TABLE`` as (schema, table), by SQL's rules; a bad name is a ConfigError."""
    parts: list[str] = []
    current: list[str] = []
    quoted = in_quotes = False
    i = 0
    text = text.strip()
    while i < len(text):
        ch = text[i]
        if in_quotes:
            if ch == '"' and text[i + 1:i + 2] == '"':
                current.append('"')
                i += 1
            elif ch == '"':
                in_quotes = False
            else:
                current.append(ch)
        elif ch == '"':
            in_quotes = quoted = True
        elif ch == ".":
            parts.append(_part(current, quoted, text))
            current, quoted = [], False
        else:
            current.append(ch.lower())
        i += 1
    if in_quotes:
        raise _bad_name(text, "an unclosed double quote")
    parts.append(_part(current, quoted, text))
    if len(parts) != 2:
        raise _bad_name(text, "not SCHEMA.TABLE")
    return parts[0], parts[1]


def _part(chars: list[str], quoted: bool, text: str) -> str:
    value = "".join(chars)
    if not quoted:
        value = value.strip()
    if not value:
        raise _bad_name(text, "an empty name")
    return value


def _bad_name(text: str, why: str) -> ConfigError:
    return ConfigError(f"--exclude-table {text!r}: {why}",
                       hint='write SCHEMA.TABLE, double-quoting a part with upper case or dots: \'"My Schema"."Keys"\'')


def split_env(values: tuple[str, ...]) -> tuple[str, ...]:
    """``--exclude-table`` values; the environment variable holds one name per line."""
    return tuple(line.strip() for value in values for line in value.splitlines() if line.strip())


def dump_pattern(schema: str, name: str) -> str:
    """A pg_dump ``--exclude-table`` pattern matching exactly this relation: each part
    double-quoted (no case folding; ``.``, ``*``, ``?`` and regex characters literal)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, name))


@dataclass(frozen=True)
class Excluded:
    """What an exclusion leaves out: the named relations, their partitions and owned sequences."""

    schema: str
    name: str
    qualified: str  # quote_ident(schema).quote_ident(name), as the fingerprint names it
    requested: bool  # named by --exclude-table (else a partition or an owned sequence of one)

    @property
    def pattern(self) -> str:
        return dump_pattern(self.schema, self.name)


def resolve(conn: psycopg.Connection, names: tuple[str, ...]) -> list[Excluded]:
    """The relations ``--exclude-table`` leaves out; a name that is no relation, or a table
    another table's foreign key references (the dump would keep the key and the restore
    fail on it), is refused (exit 3) before anything is written."""
    if not names:
        return []
    excluded = _with_partitions_and_sequences(conn, _named_relations(conn, [parse_name(n) for n in names]))
    _refuse_if_still_needed(conn, excluded)
    return excluded


#: the relation each (schema, name) names, NULL for none
_NAMED_SQL = f"""
    WITH wanted(schema, name) AS (SELECT * FROM unnest(%s::text[], %s::text[]))
    SELECT w.schema, w.name, c.oid::bigint
    FROM wanted w
    LEFT JOIN pg_namespace n ON n.nspname = w.schema
    LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.name
         AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f') AND {NOT_EXTENSION_MEMBER}
    """


def _named_relations(conn: psycopg.Connection, pairs: list[tuple[str, str]]) -> list[int]:
    """The oids of the relations named; a name that is none is a ConfigError."""
    rows = conn.execute(_NAMED_SQL, ([p[0] for p in pairs], [p[1] for p in pairs])).fetchall()
    missing = [f"{schema}.{name}" for schema, name, oid in rows if oid is None]
    if missing:
        raise ConfigError(
            f"--exclude-table names no table in this database: {', '.join(missing)}",
            hint="check the name (agent-bom-backup compares it as PostgreSQL does: unquoted parts in lower case) "
            f"or remove it from {EXCLUDE_ENV} / {EXCLUDE_CHART_VALUE}",
        )
    return [int(r[2]) for r in rows]


#: the relations named, their partitions (recursively) and the sequences they own
_LEFT_OUT_SQL = """
    WITH RECURSIVE tree(oid) AS (
        SELECT unnest(%s::oid[])
        UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
    ), owned AS (
        SELECT d.objid AS oid FROM pg_depend d JOIN tree t ON d.refobjid = t.oid
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i')
          AND (SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'
    ), everything AS (SELECT oid FROM tree UNION SELECT oid FROM owned)
    SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
           c.oid = ANY(%s::oid[])
    FROM everything e JOIN pg_class c ON c.oid = e.oid JOIN pg_namespace n ON n.oid = c.relnamespace
    ORDER BY 3
    """


def _with_partitions_and_sequences(conn: psycopg.Connection, oids: list[int]) -> list[Excluded]:
    return [Excluded(r[0], r[1], r[2], bool(r[3])) for r in conn.execute(_LEFT_OUT_SQL, (oids, oids)).fetchall()]


#: what is kept but depends on what is left out: foreign keys referencing it, views reading it
_STILL_NEEDED_SQL = """
    WITH left_out AS (
        SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE quote_ident(n.nspname) || '.' || quote_ident(c.relname) = ANY(%s)
    )
    SELECT 'foreign key ' || quote_ident(co.conname) || ' of ' || co.conrelid::regclass::text
           || ' (references ' || co.confrelid::regclass::text || ')'
    FROM pg_constraint co
    WHERE co.contype = 'f' AND co.confrelid IN (SELECT oid FROM left_out)
      AND co.conrelid NOT IN (SELECT oid FROM left_out)
    UNION
    SELECT 'view ' || r.ev_class::regclass::text || ' (reads ' || d.refobjid::regclass::text || ')'
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.refobjid IN (SELECT oid FROM left_out) AND r.ev_class NOT IN (SELECT oid FROM left_out)
      AND r.ev_class <> d.refobjid
    ORDER BY 1
    """


def _refuse_if_still_needed(conn: psycopg.Connection, excluded: list[Excluded]) -> None:
    """The dump would keep what depends on a left-out table, and the restore fail on it."""
    referencing = conn.execute(_STILL_NEEDED_SQL, ([e.qualified for e in excluded],)).fetchall()
    if referencing:
        raise ConfigError(
            f"--exclude-table would leave out a table that the backup still needs: "
            f"{', '.join(r[0] for r in referencing)}",
            hint="exclude what depends on it too, or do not exclude this one",
        )


@dataclass(frozen=True)
class Unreadable:
    kind: str  # table, partition, partitioned table, sequence, schema
    qualified: str
    owner: str

    def describe(self) -> str:
        return f"{self.kind} {self.qualified} (owner {self.owner})"


def unreadable(conn: psycopg.Connection, excluded: list[Excluded]) -> list[Unreadable]:
    """Every schema the current role lacks USAGE on and every table, partition and sequence
    it lacks SELECT on, that the dump and the counts would read (excluded ones aside)."""
    skip = [e.qualified for e in excluded]
    rows = conn.execute(
        f"""
        WITH rels AS (
            SELECT n.oid AS nsp, n.nspname, c.oid, c.relkind, c.relispartition, c.relowner,
                   quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'S') AND {USER_SCHEMAS} AND {NOT_EXTENSION_MEMBER}
        ), kept AS (SELECT * FROM rels WHERE NOT (qualified = ANY(%s)))
        SELECT DISTINCT 0, 'schema', quote_ident(n.nspname), pg_get_userbyid(n.nspowner)
        FROM kept JOIN pg_namespace n ON n.oid = kept.nsp
        WHERE NOT has_schema_privilege(kept.nsp, 'USAGE')
        UNION ALL
        SELECT 1, CASE WHEN relispartition THEN 'partition' ELSE relkind::text END, qualified,
               pg_get_userbyid(relowner)
        FROM kept WHERE has_schema_privilege(nsp, 'USAGE') AND NOT has_table_privilege(oid, 'SELECT')
        ORDER BY 1, 3
        """,
        (skip,),
    ).fetchall()
    return [Unreadable(_READ_KINDS.get(kind, kind), qualified, owner) for _, kind, qualified, owner in rows]


def refusal(role: str, found: list[Unreadable]) -> RefusedError:
    """One message: what the role may not read, and the three ways out."""
    tables = [u for u in found if u.kind != "schema"]
    grants = "; ".join(
        [f"GRANT USAGE ON SCHEMA {u.qualified} TO {role}" for u in found if u.kind == "schema"]
        + [f"GRANT SELECT ON {u.qualified} TO {role}" for u in tables])
    # an owned sequence goes with its table; naming it too is harmless
    exclude = " ".join(f"--exclude-table {u.qualified}" for u in tables) or "--exclude-table SCHEMA.TABLE"
    return RefusedError(
        f"backup refused, nothing written: role {role} may not read {len(found)} "
        f"{'object' if len(found) == 1 else 'objects'} the dump needs: {', '.join(u.describe() for u in found)}. "
        "Choose one: (1) back up as a role that may read it (its owner or a member of the owner role); "
        f"(2) {grants} -- the backup then holds those secrets: encrypt it client-side (age, --encrypt-to) or "
        "use SSE-KMS with a key policy that limits who may decrypt; "
        f"(3) leave it out: {exclude} (repeatable; env {EXCLUDE_ENV}, one per line; "
        f"chart {EXCLUDE_CHART_VALUE}): its definition and data are not in the backup and a restore "
        "lists it as not restored, by configuration"
    )


def without_excluded(fingerprint: dict[str, list[str]], excluded: list[Excluded]) -> dict[str, list[str]]:
    """The fingerprint without the items of excluded relations (their columns, indexes,
    constraints, policies, triggers, grants, owners, sequences)."""
    if not excluded:
        return fingerprint
    names = [e.qualified for e in excluded]
    return {category: [item for item in items if not any(_mentions(item, name) for name in names)]
            for category, items in fingerprint.items()}


_BEFORE = " (,"
_AFTER = " .(,"


def _mentions(item: str, qualified: str) -> bool:
    start = item.find(qualified)
    while start >= 0:
        end = start + len(qualified)
        if (start == 0 or item[start - 1] in _BEFORE) and (end == len(item) or item[end] in _AFTER):
            return True
        start = item.find(qualified, start + 1)
    return False
