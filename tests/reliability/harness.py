"""Helpers of the reliability suite that only it needs: a large database whose dump
streams long enough to strike mid-upload, and what a failed run must leave as it was.
Running the CLI, the bucket and new databases are :mod:`tests.support.cli`."""

from __future__ import annotations

import hashlib
import json
import os

from botocore.client import BaseClient
from psycopg import sql

from tests.support import cli
from devstack.pgcluster import PgCluster
from devstack.seed import SeedSpec

SMALL_SEED = SeedSpec(audit_rows_per_tenant=30, payload_bytes=64)
#: other data, for a non-empty target a restore replaces
OTHER_SEED = SeedSpec(tenants=("team-other",), audit_rows_per_tenant=7, payload_bytes=64)
#: incompressible bytes in the "large" database: with --compression none its dump is
#: about twice this (bytea is dumped as hex), i.e. ~8 parts of 5 MiB
BLOB_BYTES = 20 * 1024 * 1024
BLOB_ROW_BYTES = 256 * 1024
PART = "5MiB"


def complete_backups_are_intact(client: BaseClient, bucket: str) -> list[str]:
    """Every dump that has a manifest matches it (size and SHA-256); returns those dumps."""
    keys = cli.object_keys(client, bucket)
    dumps = [k for k in keys if k.endswith(cli.DUMP) and cli.manifest_key(k) in keys]
    for dump in dumps:
        manifest = json.loads(cli.get_object(client, bucket, cli.manifest_key(dump)))
        data = cli.get_object(client, bucket, dump)
        assert manifest["dump"]["key"] == dump
        assert (len(data), cli.sha256(data)) == (manifest["dump"]["size"], manifest["dump"]["sha256"]), dump
    return dumps


def add_blobs(cluster: PgCluster, dbname: str, total: int = BLOB_BYTES) -> None:
    """A table of incompressible bytes, so a dump with compression none is large and a
    slowed upload leaves pg_dump mid-stream for seconds."""
    with cli.connect(cluster, dbname) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, team_id text, payload bytea)")
        conn.execute("ALTER TABLE blobs ALTER payload SET STORAGE EXTERNAL")
        with conn.cursor().copy("COPY blobs (id, team_id, payload) FROM STDIN") as copy:
            for index in range(total // BLOB_ROW_BYTES):
                copy.write_row((index, "team-alpha", os.urandom(BLOB_ROW_BYTES)))


def database_digest(cluster: PgCluster, dbname: str) -> str:
    """A digest of everything a failed or refused restore must leave as it was: relations,
    every row of every table, policies, and the cluster's roles."""
    digest = hashlib.sha256()
    with cli.connect(cluster, dbname) as conn:
        relations = cli.user_relations(conn)
        digest.update(repr(relations).encode())
        for schema, name, kind in relations:
            if kind != "r":
                continue
            row = conn.execute(
                sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t")
                .format(sql.Identifier(schema, name))
            ).fetchone()
            digest.update(repr((schema, name, row)).encode())
        digest.update(repr(conn.execute("SELECT tablename, policyname, roles::text, qual FROM pg_policies ORDER BY 1, 2").fetchall()).encode())
        digest.update(repr(conn.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall()).encode())
    return digest.hexdigest()
