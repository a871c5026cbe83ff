"""Extensions: recorded with their versions in the manifest."""

from __future__ import annotations

import json
import uuid

from tests.compat.conftest import job_env, run_cli
from tests.support.pgcluster import PgCluster
from tests.support.s3server import MotoServer


def test_manifest_records_installed_extensions_and_versions(pg15: PgCluster, bucket: str, s3: MotoServer) -> None:
    name = f"ext_{uuid.uuid4().hex[:8]}"
    pg15.run_sql(f"CREATE DATABASE {name}")
    pg15.run_sql("CREATE EXTENSION pg_trgm; CREATE TABLE t (team_id text)", dbname=name)
    version = pg15.run_sql("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'", dbname=name)[0][0]
    result = run_cli(["backup"], job_env(pg15, name, bucket, s3.endpoint_url))
    key = result.stdout.strip().split(f"s3://{bucket}/", 1)[1].replace(".dump", ".manifest.json")
    manifest = json.loads(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest["extensions"]["pg_trgm"] == version
