"""`controlPlane.backup.retentionDays` does what it says: the rendered retention CronJob's command
and environment (its own static credentials resolved) run against a real S3 endpoint delete the
backups older than retentionDays and keep the newer ones and the keepLast newest complete ones."""

from __future__ import annotations

import pytest

from devstack.s3server import ACCESS_KEY, SECRET_KEY, MotoServer
from tests.chart.helm_render import RETENTION_TEMPLATE, backup_values, container, render_chart
from tests.operator import planting as helpers
from tests.operator.planting import Planter
from tests.support import cli


def _retention_job(s3: MotoServer, bucket: str, days: int, keep_last: int) -> tuple[list[str], dict[str, str]]:
    values = backup_values(
        retentionDays=days,
        retention={"keepLast": keep_last, "staticCredentialsSecret": "agent-bom-prune"},
        destination={"bucket": bucket, "endpointUrl": s3.endpoint_url, "pathStyle": True,
                     "staticCredentials": {"enabled": True, "existingSecret": "agent-bom-backup-s3"}},
    )
    (cronjob,) = render_chart(values, show_only=[RETENTION_TEMPLATE])
    job = container(cronjob)
    secrets = {"agent-bom-prune": {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}}
    return [*job["command"][1:], *job["args"]], cli.base_env(**cli.container_env(job, secrets))


def _ids(planter: Planter) -> set[str]:
    return {key.rsplit("/", 1)[1].split(".", 1)[0] for key in planter.keys()}


@pytest.fixture
def planted(planter: Planter) -> dict[str, str]:
    ages = {"new": 2, "recent": 20, "old": 40, "older": 50}
    ids = {name: helpers.backup_id_aged(days=days) for name, days in ages.items()}
    for backup_id in ids.values():
        planter.plant(backup_id)
    return ids


def test_backups_older_than_retention_days_are_deleted(s3: MotoServer, bucket: str, planter: Planter, planted):
    args, env = _retention_job(s3, bucket, days=30, keep_last=1)
    run = cli.run_cli(args, env)
    assert run.returncode == 0, str(run)
    assert _ids(planter) == {planted["new"], planted["recent"]}


def test_keep_last_keeps_expired_complete_backups(s3: MotoServer, bucket: str, planter: Planter, planted):
    args, env = _retention_job(s3, bucket, days=1, keep_last=3)
    run = cli.run_cli(args, env)
    assert run.returncode == 0, str(run)
    assert _ids(planter) == {planted["new"], planted["recent"], planted["old"]}
