"""Helpers of the end-to-end tests that only they need: run the rendered CronJob
container, read moto's request log, describe a database. Running the CLI, the bucket
and new databases are :mod:`tests.support.cli`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from devstack import tools
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer

#: the runbook's object name
DUMP_KEY = re.compile(r"^agent-bom/postgres/agent-bom-\d{8}T\d{6}Z\.dump$")


def run_container(container: dict[str, Any], secrets: dict[str, dict[str, str]], cwd: Path) -> cli.Run:
    """Run the container's command and args as the kubelet would, with the image's PATH
    (the venv first, like /opt/venv/bin in the image) and LANG, and nothing else inherited."""
    image_env = {"PATH": f"{tools.venv_bin_dir()}:{cli.SYSTEM_PATH}", "LANG": "C.UTF-8"}
    env = image_env | cli.container_env(container, secrets)
    return cli.run([*container.get("command", []), *container.get("args", [])], env, cwd=cwd)


_REQUEST_LINE = re.compile(r'"(?P<method>PUT|POST) /(?P<bucket>[^/ ]+)/(?P<key>[^? ]+)(?:\?(?P<query>\S*))? HTTP/[\d.]+" 2\d\d ')


def completed_objects(s3: MotoServer, bucket: str, key_prefix: str) -> list[str]:
    """Keys under ``key_prefix`` in the order their objects were completed (a PutObject or
    a CompleteMultipartUpload served by moto), read from moto_server's request log."""
    keys = []
    for line in s3.log_file.read_text(errors="replace").splitlines():
        match = _REQUEST_LINE.search(line)
        if not match or match["bucket"] != bucket or not match["key"].startswith(key_prefix):
            continue
        query = match["query"] or ""
        if (match["method"] == "PUT" and not query) or (match["method"] == "POST" and query.startswith("uploadId=")):
            keys.append(match["key"])
    return keys


def table_counts(cluster: PgCluster, dbname: str) -> dict[str, int]:
    """count(*) of every user table, as the superuser (RLS does not apply to it)."""
    with postgres.connect(cluster, dbname) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        return {
            f"{schema}.{name}": int(conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone()[0])
            for schema, name in tables
        }


def tenant_counts(cluster: PgCluster, dbname: str, table: str) -> dict[str, int]:
    with postgres.connect(cluster, dbname) as conn:
        rows = conn.execute(
            sql.SQL("SELECT team_id, count(*) FROM {} GROUP BY 1").format(sql.Identifier("public", table))
        ).fetchall()
    return {team: int(n) for team, n in rows}


def database_state(cluster: PgCluster, dbname: str) -> dict[str, Any]:
    """What a refusal must leave as it was: relations, row counts, policies, the cluster's roles."""
    with postgres.connect(cluster, dbname) as conn:
        relations = postgres.user_relations(conn)
        policies = conn.execute(
            "SELECT tablename, policyname, roles::text FROM pg_policies ORDER BY 1, 2"
        ).fetchall()
        roles = conn.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall()
    return {
        "relations": relations,
        "counts": table_counts(cluster, dbname),
        "policies": policies,
        "roles": [r[0] for r in roles],
    }


@dataclass(frozen=True)
class CleanRestore:
    """A restore with ``--clean`` over a non-empty database: the run, the target's state
    (:func:`database_state`) before and after, and the safety-backup folder it was given."""

    run: cli.Run
    before: dict[str, Any]
    after: dict[str, Any]
    safety_dir: Path


def clean_restore(env: dict[str, str], uri: str, cluster: PgCluster, target: str, safety_dir: Path,
                  *args: str) -> CleanRestore:
    """Restore ``uri`` over database ``target`` with ``--clean --confirm-target`` (and ``args``)."""
    before = database_state(cluster, target)
    run = cli.restore(env, uri, cluster.superuser_url(target), "--clean", "--confirm-target", target,
                      "--safety-backup-dir", str(safety_dir), *args)
    return CleanRestore(run, before, database_state(cluster, target), safety_dir)


@dataclass(frozen=True)
class RestoreOf:
    """A restore of ``backup``: the run and the JSON report it wrote."""

    backup: cli.Backup
    run: cli.Run
    report: dict[str, Any]


def copy_with_one_audit_row_too_many(s3: MotoServer, backup: cli.Backup, bucket: str) -> None:
    """``backup`` copied into ``bucket`` with a manifest that claims one audit row more than
    its dump holds (the checksum matches: only the restored database can show it), so a
    restore of it fails in verification, after the wipe and pg_restore."""
    client = s3.client()
    cli.copy_backup(client, backup, bucket)
    manifest = json.loads(buckets.get_object(client, bucket, buckets.manifest_key(backup.key)))
    audit = next(t for t in manifest["tables"] if t["name"] == "audit_log")
    audit["rows"] += 1
    audit["tenants"]["team-alpha"] += 1
    buckets.put_object(client, bucket, buckets.manifest_key(backup.key), json.dumps(manifest).encode())
