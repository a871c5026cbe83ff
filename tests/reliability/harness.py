"""Helpers of the reliability suite that only it needs: a large database whose dump
streams long enough to strike mid-upload, and what a failed run must leave as it was.
Running the CLI, the bucket and new databases are :mod:`tests.support.cli`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from botocore.client import BaseClient
from psycopg import sql

from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.seed import SeedSpec
from tests.support import buckets
from tests.support import postgres

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
    keys = buckets.object_keys(client, bucket)
    dumps = [k for k in keys if k.endswith(buckets.DUMP) and buckets.manifest_key(k) in keys]
    for dump in dumps:
        manifest = json.loads(buckets.get_object(client, bucket, buckets.manifest_key(dump)))
        data = buckets.get_object(client, bucket, dump)
        assert manifest["dump"]["key"] == dump
        assert (len(data), buckets.sha256(data)) == (manifest["dump"]["size"], manifest["dump"]["sha256"]), dump
    return dumps


def add_blobs(cluster: PgCluster, dbname: str, total: int = BLOB_BYTES) -> None:
    """A table of incompressible bytes, so a dump with compression none is large and a
    slowed upload leaves pg_dump mid-stream for seconds."""
    with postgres.connect(cluster, dbname) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, team_id text, payload bytea)")
        conn.execute("ALTER TABLE blobs ALTER payload SET STORAGE EXTERNAL")
        with conn.cursor().copy("COPY blobs (id, team_id, payload) FROM STDIN") as copy:
            for index in range(total // BLOB_ROW_BYTES):
                copy.write_row((index, "team-alpha", os.urandom(BLOB_ROW_BYTES)))


def database_digest(cluster: PgCluster, dbname: str) -> str:
    """A digest of everything a failed or refused restore must leave as it was: relations,
    every row of every table, policies, and the cluster's roles."""
    digest = hashlib.sha256()
    with postgres.connect(cluster, dbname) as conn:
        relations = postgres.user_relations(conn)
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


#: a pg_dump that writes the whole archive (the real pg_dump's), then reports an error;
#: ``@MARKER@`` is created once the real pg_dump has finished
PG_DUMP_FAILS_AT_END = """#!/bin/sh
case " $* " in *" --version "*) exec @REAL@ "$@" ;; esac
case " $* " in *" --schema-only "*) exec @REAL@ "$@" ;; esac
@REAL@ "$@" || exit
touch @MARKER@
echo "pg_dump: error: could not write to output file: Input/output error" >&2
exit 1
"""
#: a pg_dumpall that fails at once; ``@MARKER@`` is created when it runs
PG_DUMPALL_FAILS = """#!/bin/sh
case " $* " in *" --version "*) exec @REAL@ "$@" ;; esac
touch @MARKER@
echo "pg_dumpall: error: query failed: ERROR:  permission denied for table pg_authid" >&2
exit 1
"""


def failing_clients(path: Path, **scripts: str) -> Path:
    """``path`` holding PostgreSQL 15's pg_dump, pg_dumpall, pg_restore and psql, except the
    programs named in ``scripts`` (e.g. ``pg_dump=PG_DUMP_FAILS_AT_END``), written as
    scripts: ``@REAL@`` stands for the real program, ``@MARKER@`` for ``path/<program>.ran``.
    For ``--pg-bin-dir``: its major-15 programs come before any other."""
    path.mkdir(parents=True, exist_ok=True)
    real_dir = tools.pg_bin_dir(15)
    for program in ("pg_dump", "pg_dumpall", "pg_restore", "psql"):
        target = path / program
        if program in scripts:
            target.write_text(scripts[program].replace("@REAL@", str(real_dir / program))
                              .replace("@MARKER@", str(path / f"{program}.ran")))
            target.chmod(0o755)
        else:
            target.symlink_to(real_dir / program)
    return path
