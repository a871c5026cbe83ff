"""Write a golden backup: the objects one real backup run puts in the bucket.

Backups outlive releases: every backup this tool ever wrote must restore with every
later release. ``tests/golden/<name>/`` holds one backup per manifest format version
(the dump, the roles object and the manifest, under their object names), made by the
release that introduced that format; ``tests/e2e/test_golden_backups.py`` restores
each one with the code under test. A format change adds a directory; none is ever
rewritten.

    scripts/make_golden_backup.py tests/golden/v2-0.2.0

Runs a throwaway PostgreSQL 15 (Debian's build: its pg_dump writes an archive every
later pg_restore reads) and moto, seeds the small synthetic control plane, runs
``agent-bom-backup backup`` exactly as the CronJob does, and downloads what it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import psycopg  # noqa: E402

from devstack.pgcluster import PgCluster  # noqa: E402
from devstack.s3server import MotoServer, dummy_aws_env  # noqa: E402
from devstack.seed import SeedSpec, seed  # noqa: E402

BUCKET = "agent-bom-golden"
PREFIX = "agent-bom/postgres"
DATABASE = "agent_bom"
PG_MAJOR = 15
SEED = SeedSpec(audit_rows_per_tenant=20, payload_bytes=32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="new folder for the golden backup (must not exist)")
    args = parser.parse_args()
    if args.directory.exists():
        parser.error(f"{args.directory} exists: golden backups are never rewritten; pick a new name")

    work = Path(tempfile.mkdtemp(prefix="agent-bom-golden-"))
    work.chmod(0o755)
    pg = PgCluster(PG_MAJOR, work / "pg")
    s3 = MotoServer(work / "s3")
    try:
        pg.start()
        s3.start()
        s3.create_bucket(BUCKET)
        pg.run_sql(f"CREATE DATABASE {DATABASE}")
        with psycopg.connect(pg.conninfo(DATABASE), autocommit=True) as conn:
            seed(conn, SEED)
        env = {
            **os.environ,
            **dummy_aws_env(),
            "PATH": f"{REPO / '.tools' / 'venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "AGENT_BOM_POSTGRES_URL": pg.superuser_url(DATABASE),
            "AGENT_BOM_BACKUP_BUCKET": BUCKET,
            "AGENT_BOM_BACKUP_PREFIX": PREFIX,
            "AGENT_BOM_BACKUP_ENDPOINT_URL": s3.endpoint_url,
            "AGENT_BOM_BACKUP_PG_BIN_DIRS": str(pg.bin_dir),
            "AGENT_BOM_BACKUP_PG_BIN_DIRS_ONLY": "true",
            "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
        }
        result = subprocess.run(["agent-bom-backup", "backup"], env=env, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        dump_key = result.stdout.strip().splitlines()[-1].removeprefix(f"s3://{BUCKET}/")
        client = s3.client()
        manifest = json.loads(client.get_object(Bucket=BUCKET, Key=dump_key.replace(".dump", ".manifest.json"))
                              ["Body"].read())
        args.directory.mkdir(parents=True)
        keys = [manifest["dump"]["key"], manifest["roles"]["key"], dump_key.replace(".dump", ".manifest.json")]
        for key in keys:
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            (args.directory / key.rsplit("/", 1)[-1]).write_bytes(body)
        print(f"golden backup {manifest['backup_id']} (manifest format {manifest['format_version']}, "
              f"agent-bom-backup {manifest['tool_version']}) written to {args.directory}")
        return 0
    finally:
        s3.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
