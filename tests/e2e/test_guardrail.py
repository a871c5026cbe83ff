"""The runbook's CI guardrail, end to end: seed synthetic tenants → run the *rendered*
CronJob container (its command, its env, its secretKeyRefs) → wipe the database
(DROP DATABASE + CREATE DATABASE) → restore through deploy/ops/restore-postgres-backup.sh
exactly as the runbook calls it → verify row counts and the tenant distribution with the
runbook's own psql queries.

.github/workflows/backup-restore.yml runs this module (``-k guardrail``)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm_render import CRONJOB_TEMPLATE, backup_values, container, render_chart
from tests.e2e import helpers
from devstack import tools
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster
from devstack.s3server import ACCESS_KEY, DEFAULT_REGION, SECRET_KEY, MotoServer
from devstack.seed import SeedSpec

REGION = DEFAULT_REGION
APPROVAL = "INC-4242"
OPERATOR = "oncall-guardrail"
DB_SECRET = "agent-bom-postgres"  # the chart's default Secret name and key
S3_SECRET = "agent-bom-backup-s3"


def _psql(url: str, query: str) -> list[list[str]]:
    """The runbook's ``psql "$RESTORE_POSTGRES_URL" -c "..."``; returns the table's rows."""
    result = subprocess.run([str(tools.pg_program(15, "psql")), url, "-c", query], capture_output=True, text=True,
                            timeout=60, check=True, env={"PATH": cli.SYSTEM_PATH, "LANG": "C.UTF-8"})
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"-+(\+-+)*", line))
    rows = []
    for line in lines[start + 1:]:
        if re.fullmatch(r"\(\d+ rows?\)", line):
            break
        rows.append([cell.strip() for cell in line.split("|")])
    return rows


@dataclass(frozen=True)
class Drill:
    database: str
    url: str
    seeded_counts: dict[str, int]
    seeded_distribution: dict[str, int]
    cronjob: dict[str, Any]
    backup: cli.Run
    refused: cli.Run
    relations_after_refusal: dict[str, int]
    restored: cli.Run
    report: dict[str, Any]


@pytest.fixture(scope="module")
def drill(s3: MotoServer, pg15: PgCluster, tmp_root: Path) -> Iterator[Drill]:
    with buckets.fresh_bucket(s3, "abb-guardrail") as bucket:
        yield _drill(s3, pg15, bucket, tmp_root)


def _drill(s3: MotoServer, pg15: PgCluster, bucket: str, tmp_root: Path) -> Drill:
    work = tmp_root / postgres.unique_name("guardrail")
    work.mkdir()
    kms_alias = f"alias/agent-bom-backups-{bucket[-8:]}"
    s3.create_kms_key(alias=kms_alias)

    # seed synthetic tenants
    database = postgres.seeded_database(pg15, "agent_bom", SeedSpec()).name
    url = pg15.superuser_url(database)
    seeded_counts = helpers.table_counts(pg15, database)
    seeded_distribution = {team: int(n) for team, n in _psql(
        url, "select team_id, count(*) from audit_log group by team_id order by team_id;")}

    # the rendered CronJob's container, run the way the kubelet would
    values = backup_values(destination={
        "bucket": bucket, "bucketRegion": REGION, "endpointUrl": s3.endpoint_url, "pathStyle": True,
        "encryption": {"enabled": True, "mode": "aws:kms", "kmsKeyId": kms_alias},
        "staticCredentials": {"enabled": True, "existingSecret": S3_SECRET},
    })
    cronjob = render_chart(values, show_only=[CRONJOB_TEMPLATE])[0]
    secrets = {
        DB_SECRET: {"AGENT_BOM_POSTGRES_URL": url},
        S3_SECRET: {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    }
    backup = helpers.run_container(container(cronjob), secrets, cwd=work)
    assert backup.returncode == 0, str(backup)
    uri = backup.stdout.strip()

    # wipe
    pg15.run_sql(f'DROP DATABASE "{database}" WITH (FORCE)')
    pg15.create_database(database)

    # restore through the production script, as the runbook calls it
    operator_env = cli.base_env(
        AGENT_BOM_BACKUP_ENDPOINT_URL=s3.endpoint_url, AGENT_BOM_BACKUP_PATH_STYLE="true",
        AGENT_BOM_BACKUP_LOG_FORMAT="json", AGENT_BOM_RESTORE_OPERATOR=OPERATOR,
    )
    refused = cli.restore_script(operator_env, uri, url, REGION, cwd=work)
    relations_after_refusal = helpers.table_counts(pg15, database)
    report_path = work / "restore-report.json"
    restored = cli.restore_script(operator_env, uri, url, REGION, "--approval", APPROVAL,
                                      "--report", str(report_path), cwd=work)
    assert restored.returncode == 0, str(restored)
    return Drill(database, url, seeded_counts, seeded_distribution, cronjob, backup, refused,
                 relations_after_refusal, restored, json.loads(report_path.read_text()))


def test_guardrail_cronjob_runs_the_backup_command(drill: Drill) -> None:
    assert container(drill.cronjob)["command"] + container(drill.cronjob)["args"] == ["agent-bom-backup", "backup"]


def test_guardrail_cronjob_writes_a_runbook_named_dump(drill: Drill) -> None:
    key = drill.backup.stdout.strip().split("/", 3)[3]
    assert helpers.DUMP_KEY.match(key), key


def test_guardrail_cronjob_encrypts_with_the_runbook_kms_mode(s3: MotoServer, drill: Drill) -> None:
    bucket, key = drill.backup.stdout.strip().removeprefix("s3://").split("/", 1)
    assert s3.client().head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "aws:kms"


def test_guardrail_restore_over_the_wiped_live_database_needs_approval(drill: Drill) -> None:
    assert (drill.refused.returncode, "live source database" in drill.refused.error_message) == (8, True), \
        str(drill.refused)


def test_guardrail_refused_restore_leaves_the_wiped_database_empty(drill: Drill) -> None:
    assert drill.relations_after_refusal == {}


def test_guardrail_restore_with_approval_is_verified(drill: Drill) -> None:
    assert (drill.restored.returncode, drill.report["status"]) == (0, "verified")


def test_guardrail_restored_row_counts_equal_the_seeded_ones(pg15: PgCluster, drill: Drill) -> None:
    assert helpers.table_counts(pg15, drill.database) == drill.seeded_counts


def test_guardrail_runbook_audit_log_count_equals_the_seeded_one(drill: Drill) -> None:
    assert _psql(drill.url, "select count(*) from audit_log;") == [[str(drill.seeded_counts["public.audit_log"])]]


def test_guardrail_runbook_tenant_distribution_equals_the_seeded_one(drill: Drill) -> None:
    restored = {team: int(n) for team, n in _psql(
        drill.url, "select team_id, count(*) from audit_log group by team_id order by team_id;")}
    assert restored == drill.seeded_distribution


def test_guardrail_seeded_several_tenants(drill: Drill) -> None:
    assert len(drill.seeded_distribution) >= 3


@pytest.mark.parametrize("field", ["backup_uri", "operator", "approval"])
def test_guardrail_report_records_the_incident_field(drill: Drill, field: str) -> None:
    expected = {"backup_uri": drill.backup.stdout.strip(), "operator": OPERATOR, "approval": APPROVAL}
    assert drill.report[field] == expected[field]


def test_guardrail_report_records_start_before_end(drill: Drill) -> None:
    assert datetime.fromisoformat(drill.report["started_at"]) < datetime.fromisoformat(drill.report["finished_at"])


def test_guardrail_report_data_loss_window_runs_from_snapshot_to_restore_start(drill: Drill) -> None:
    window = (datetime.fromisoformat(drill.report["started_at"])
              - datetime.fromisoformat(drill.report["backup_snapshot_time"])).total_seconds()
    assert drill.report["data_loss_window_seconds"] == pytest.approx(window, abs=0.1) and window > 0


def test_guardrail_summary_is_printed_for_the_incident_record(drill: Drill) -> None:
    lines = drill.restored.stdout.splitlines()
    assert {"status:            VERIFIED", f"approval:          {APPROVAL}", f"operator:          {OPERATOR}"} <= set(lines)
