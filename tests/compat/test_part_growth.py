"""No size ceiling: parts grow as the upload proceeds, and the object restores intact."""

from __future__ import annotations

import hashlib
import json
import uuid

import psycopg
import pytest

from tests.compat.conftest import job_env, run_cli, scratch_database
from tests.support.pgcluster import PgCluster
from tests.support.s3proxy import StrictS3Proxy
from tests.support.s3server import MotoServer

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def incompressible_db(pg15: PgCluster) -> str:
    """~36 MiB of random bytes: with compression none the dump is larger than 7 parts of 5 MiB."""
    name = f"growth_{uuid.uuid4().hex[:8]}"
    pg15.run_sql(f"CREATE DATABASE {name}")
    with psycopg.connect(pg15.conninfo(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, team_id text NOT NULL, data bytea NOT NULL)")
        conn.execute("ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL")
        conn.execute(
            "INSERT INTO blobs SELECT g, 'team-' || (g % 3), decode(string_agg(md5(g::text || ':' || h::text), ''), 'hex') "
            "FROM generate_series(1, 36) g, generate_series(1, 65536) h GROUP BY g"
        )
    return name


@pytest.fixture(scope="module")
def grown_backup(pg15: PgCluster, incompressible_db: str, s3: MotoServer) -> dict[str, object]:
    bucket = f"growth-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    with StrictS3Proxy(upstream=s3.endpoint_url) as proxy:
        env = job_env(
            pg15, incompressible_db, bucket, proxy.endpoint_url,
            AGENT_BOM_BACKUP_COMPRESSION="none", AGENT_BOM_BACKUP_PART_SIZE="5MiB",
            AGENT_BOM_BACKUP_PART_GROWTH_INTERVAL="2",
        )
        result = run_cli(["backup"], env)
        assert result.returncode == 0, result.stderr
        parts = proxy.part_sizes()
    uri = result.stdout.strip()
    key = uri.split(f"s3://{bucket}/", 1)[1]
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=key.replace(".dump", ".manifest.json"))["Body"].read())
    return {"env": env, "uri": uri, "key": key, "bucket": bucket, "parts": parts, "manifest": manifest}


def test_parts_grow_as_the_upload_proceeds(grown_backup: dict[str, object]) -> None:
    sizes = [size // MiB for size in grown_backup["parts"][:-1]]  # type: ignore[index]
    assert sizes[:6] == [5, 5, 10, 10, 20, 20][: len(sizes)] and len(sizes) >= 4


def test_part_count_is_recorded_in_the_manifest(grown_backup: dict[str, object]) -> None:
    assert grown_backup["manifest"]["dump"]["parts"] == len(grown_backup["parts"])  # type: ignore[index]


def test_grown_object_is_byte_identical_to_what_was_hashed(grown_backup: dict[str, object], s3: MotoServer) -> None:
    body = s3.client().get_object(Bucket=grown_backup["bucket"], Key=grown_backup["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == grown_backup["manifest"]["dump"]["sha256"]  # type: ignore[index]


def test_grown_object_restores_the_same_bytes(
    grown_backup: dict[str, object], pg15: PgCluster, incompressible_db: str, s3: MotoServer
) -> None:
    target = scratch_database(pg15)
    env = {**grown_backup["env"], "AGENT_BOM_BACKUP_ENDPOINT_URL": s3.endpoint_url,  # type: ignore[dict-item]
           "AGENT_BOM_RESTORE_POSTGRES_URL": pg15.superuser_url(target)}
    assert run_cli(["restore", str(grown_backup["uri"])], env).returncode == 0
    digest = "SELECT md5(string_agg(md5(data), '' ORDER BY id)) FROM blobs"
    assert pg15.run_sql(digest, dbname=target) == pg15.run_sql(digest, dbname=incompressible_db)
