"""PostgreSQL helpers of the tests: new databases with unique names, seeded ones, and what
is in them: :func:`unique_name`, :func:`new_database`, :func:`seeded_database`
(:class:`Database`), :func:`blob_database`, :func:`connect`, :func:`user_relations`.

The servers themselves are :mod:`devstack.pgcluster`; running the CLI against them is
:mod:`tests.support.cli`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import psycopg

from devstack.pgcluster import PgCluster
from devstack.seed import SeedSpec, seed

#: a small seed: every table and tenant, few rows (keeps dumps and restores quick)
SMALL_SEED = SeedSpec(audit_rows_per_tenant=40, payload_bytes=64)


def unique_name(prefix: str) -> str:
    """``prefix_`` and 8 random hex digits: a database, role or file name no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def connect(cluster: PgCluster, dbname: str) -> psycopg.Connection:
    """Superuser connection over the socket, autocommit."""
    return psycopg.connect(cluster.conninfo(dbname), autocommit=True)


def blob_database(cluster: PgCluster, prefix: str, mib: int) -> Database:
    """A new database holding ~``mib`` MiB of row data in one table (no roles or tenants):
    a dump of about that size with compression none."""
    name = new_database(cluster, prefix)
    cluster.run_sql("CREATE TABLE blob AS SELECT g AS id, repeat(md5(g::text), 32) AS body "
                    f"FROM generate_series(1, {mib * 1024}) g", name)
    return Database(cluster, name, {})


def new_database(cluster: PgCluster, prefix: str) -> str:
    """A new empty database with a unique name; returns the name."""
    name = unique_name(prefix)
    cluster.create_database(name)
    return name


def user_relations(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(schema, name, relkind) of every relation outside the system schemas, in order."""
    return conn.execute(
        "SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
        "ORDER BY 1, 2"
    ).fetchall()


@dataclass(frozen=True)
class Database:
    """A database on a cluster (e.g. a backup's source); ``audit_rows`` is what the seed
    put in audit_log per tenant."""

    cluster: PgCluster
    name: str
    audit_rows: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.cluster.superuser_url(self.name)


def seeded_database(cluster: PgCluster, prefix: str, spec: SeedSpec = SMALL_SEED) -> Database:
    """A new database holding the synthetic control-plane data (:func:`devstack.seed.seed`)."""
    name = new_database(cluster, prefix)
    with connect(cluster, name) as conn:
        rows = seed(conn, spec)
    return Database(cluster, name, rows)
