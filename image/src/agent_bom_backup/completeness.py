"""Did a backup under ``--enable-row-security`` see every row? Exactly, or it fails.

With ``--enable-row-security`` the policies decide what the backup role sees. Where the
role sees every row by itself (superuser or BYPASSRLS; a table without row-level security;
a table it owns without FORCE) the counts are exact and nothing more is needed. For every
other table, its count in the snapshot is compared with the cumulative statistics
(``pg_stat_user_tables.n_live_tup``), which no policy filters:

* ``before`` is sampled in its own statement *before* the snapshot's transaction starts,
  ``after`` once the snapshot has been counted (``pg_stat_clear_snapshot()`` first: inside
  a transaction the statistics are otherwise cached);
* every row committed before the snapshot is in the count; the statistics of rows written
  after ``before`` show as inserts and deletes between the two samples. So a table whose
  count falls short of ``n_live_tup`` by more than those inserts plus deletes had rows
  hidden from the backup; a quiet table must match exactly.

A count *above* ``n_live_tup`` cannot come from a policy (policies only hide rows): it means
the statistics lag (reset, crash recovery) and is not a failure. Backends flush their
statistics when they go idle, at most once a second (PostgreSQL 15+), so a shortfall is
sampled again a few times before it fails. The blind spots are in docs/limits.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from .errors import VerifyError
from .pgcatalog import USER_SCHEMAS, TableCount

#: seconds between the samples of a shortfall (a backend flushes its statistics at most once a second)
RESAMPLE_INTERVAL_S = 1.2
RESAMPLES = 2


@dataclass(frozen=True)
class TableStats:
    live: int
    inserted: int
    deleted: int
    #: the statistics hold any record of the table (after a reset or crash recovery they hold none)
    recorded: bool = True
    #: pg_class.reltuples: the row count the last VACUUM/ANALYZE saw (-1: never; survives a reset)
    reltuples: int = -1


Stats = dict[tuple[str, str], TableStats]


def sample(conn: psycopg.Connection) -> Stats:
    """``n_live_tup``, ``n_tup_ins`` and ``n_tup_del`` of every user table, read afresh."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return {(schema, name): TableStats(int(live), int(ins), int(dels), bool(recorded), int(reltuples))
            for schema, name, live, ins, dels, recorded, reltuples in conn.execute(
                """
                SELECT s.schemaname, s.relname, s.n_live_tup, s.n_tup_ins, s.n_tup_del,
                       s.n_live_tup + s.n_dead_tup + s.n_tup_ins + s.n_tup_upd + s.n_tup_del + s.vacuum_count
                       + s.autovacuum_count + s.analyze_count + s.autoanalyze_count > 0,
                       c.reltuples::bigint
                FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
                """).fetchall()}


def filtered_tables(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """(schema, table) of the tables whose rows the policies decide for the current role."""
    return {(r[0], r[1]) for r in conn.execute(
        f"""
        SELECT n.nspname, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND {USER_SCHEMAS}
          AND c.relrowsecurity
          AND NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
          AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'USAGE'))
        """
    ).fetchall()}


@dataclass(frozen=True)
class Shortfall:
    table: str
    counted: int
    live: int
    written: int  # inserts + deletes the statistics saw during the backup
    #: the statistics had no record of the table (reset): ``live`` is pg_class.reltuples
    reset: bool = False

    def describe(self) -> str:
        live = f"{self.live} at the last ANALYZE/VACUUM, statistics reset since" if self.reset else f"{self.live} live"
        return (f"{self.table} ({self.counted} rows seen, {live}"
                + (f", {self.written} written meanwhile" if self.written else "") + ")")


def shortfalls(counts: list[TableCount], filtered: set[tuple[str, str]], before: Stats, after: Stats) -> list[Shortfall]:
    found = []
    for count in counts:
        key = (count.schema, count.name)
        if key not in filtered or key not in before or key not in after:
            continue
        b, a = before[key], after[key]
        written = max(0, a.inserted - b.inserted) + max(0, a.deleted - b.deleted)
        if not b.recorded:
            # statistics reset (pg_stat_reset, crash recovery): the rows the catalog last saw
            # are the only reference; fewer rows than that cannot be told from hidden ones
            if b.reltuples - count.rows > written:
                found.append(Shortfall(f"{count.schema}.{count.name}", count.rows, b.reltuples, written,
                                       reset=True))
            continue
        if b.live - count.rows > written:
            found.append(Shortfall(f"{count.schema}.{count.name}", count.rows, b.live, written))
    return found


def require_every_row(counts: list[TableCount], filtered: set[tuple[str, str]], before: Stats,
                      resample: Callable[[], Stats], *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Raise VerifyError (exit 7) naming each table whose rows the policies hid."""
    if not filtered:
        return
    found = shortfalls(counts, filtered, before, resample())
    for _ in range(RESAMPLES):
        if not found:
            return
        sleep(RESAMPLE_INTERVAL_S)  # statistics not flushed yet by a backend still writing
        found = shortfalls(counts, filtered, before, resample())
    if found:
        raise VerifyError(
            f"row-level security hid rows from the backup (no manifest written, upload aborted): "
            f"{', '.join(s.describe() for s in found[:10])}{' ...' if len(found) > 10 else ''}",
            hint="the configured bypass does not let this role see every tenant's rows: fix the session setting "
            "or the policies, or back up as a role with BYPASSRLS"
            + ("; where the statistics were reset (crash recovery, pg_stat_reset) and rows were deleted "
               "since the last ANALYZE, run ANALYZE on the table as its owner and retry" if any(s.reset for s in found)
               else ""),
        )
