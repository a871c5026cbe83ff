"""Extensions: recorded with their versions in the manifest."""

from __future__ import annotations

from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer


def test_manifest_records_installed_extensions_and_versions(pg15: PgCluster, bucket: str, s3: MotoServer) -> None:
    name = postgres.new_database(pg15, "ext")
    pg15.run_sql("CREATE EXTENSION pg_trgm; CREATE TABLE t (team_id text)", dbname=name)
    version = pg15.run_sql("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'", dbname=name)[0][0]
    result = cli.backup(cli.job_env(s3.endpoint_url, bucket, pg15.superuser_url(name)))
    manifest = buckets.read_manifest(s3.client(), bucket, result.uri.split(f"s3://{bucket}/", 1)[1])
    assert manifest["extensions"]["pg_trgm"] == version
