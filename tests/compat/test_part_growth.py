"""No size ceiling: parts grow as the upload proceeds, and the object restores intact."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from tests.support.s3proxy import S3Proxy
from devstack.s3server import MotoServer

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def incompressible_db(pg15: PgCluster) -> str:
    """~36 MiB of random bytes: with compression none the dump is larger than 7 parts of 5 MiB."""
    name = postgres.new_database(pg15, "growth")
    with postgres.connect(pg15, name) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, team_id text NOT NULL, data bytea NOT NULL)")
        conn.execute("ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL")
        conn.execute(
            "INSERT INTO blobs SELECT g, 'team-' || (g % 3), decode(string_agg(md5(g::text || ':' || h::text), ''), 'hex') "
            "FROM generate_series(1, 36) g, generate_series(1, 65536) h GROUP BY g"
        )
    return name


@pytest.fixture(scope="module")
def grown_backup(pg15: PgCluster, incompressible_db: str, s3: MotoServer) -> Iterator[dict[str, object]]:
    with buckets.fresh_bucket(s3, "growth") as bucket, S3Proxy(s3.endpoint_url, strict=True) as proxy:
        env = cli.job_env(proxy.endpoint_url, bucket, pg15.superuser_url(incompressible_db),
                          AGENT_BOM_BACKUP_COMPRESSION="none", AGENT_BOM_BACKUP_PART_SIZE="5MiB",
                          AGENT_BOM_BACKUP_PART_GROWTH_INTERVAL="2")
        result = cli.backup(env)
        assert result.returncode == 0, result.stderr
        parts = proxy.part_sizes()
        key = result.uri.removeprefix(f"s3://{bucket}/")
        manifest = buckets.read_manifest(s3.client(), bucket, key)
        yield {"env": env, "uri": result.uri, "key": key, "bucket": bucket, "parts": parts, "manifest": manifest}


def test_parts_grow_as_the_upload_proceeds(grown_backup: dict[str, object]) -> None:
    sizes = [size // MiB for size in grown_backup["parts"][:-1]]  # type: ignore[index]
    assert sizes[:6] == [5, 5, 10, 10, 20, 20][: len(sizes)] and len(sizes) >= 4


def test_part_count_is_recorded_in_the_manifest(grown_backup: dict[str, object]) -> None:
    assert grown_backup["manifest"]["dump"]["parts"] == len(grown_backup["parts"])  # type: ignore[index]


def test_grown_object_is_byte_identical_to_what_was_hashed(grown_backup: dict[str, object], s3: MotoServer) -> None:
    body = buckets.get_object(s3.client(), str(grown_backup["bucket"]), str(grown_backup["key"]))
    assert buckets.sha256(body) == grown_backup["manifest"]["dump"]["sha256"]  # type: ignore[index]


def test_grown_object_restores_the_same_bytes(
    grown_backup: dict[str, object], pg15: PgCluster, incompressible_db: str, s3: MotoServer
) -> None:
    target = postgres.new_database(pg15, "restore")
    env = {**grown_backup["env"], "AGENT_BOM_BACKUP_ENDPOINT_URL": s3.endpoint_url}  # type: ignore[dict-item]
    assert cli.restore(env, str(grown_backup["uri"]), pg15.superuser_url(target)).returncode == 0
    digest = "SELECT md5(string_agg(md5(data), '' ORDER BY id)) FROM blobs"
    assert pg15.run_sql(digest, dbname=target) == pg15.run_sql(digest, dbname=incompressible_db)
