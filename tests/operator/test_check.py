"""`agent-bom-backup check --max-age`: exit 10 (STALE) with one line when the newest
complete backup is too old or missing; ListBucket only, so the backup role can run it.

Age is measured from the UTC timestamp in the backup's name (when it started)."""

from __future__ import annotations

from typing import Any

from agent_bom_backup.errors import ExitCode
from agent_bom_backup.catalog import check_freshness
from agent_bom_backup.storage import Storage, StorageConfig
from tests.operator import planting as helpers
from tests.operator.planting import Planter
from tests.support import cli
from devstack.s3server import MotoServer


def test_fresh_backup_passes(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(hours=2))
    run = cli.run_cli(["check", "--max-age", "26h"], cli_env)
    assert (run.returncode, run.stdout.split(":")[0]) == (0, "OK")


def test_pass_line_shows_the_age(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=2, minutes=5)
    planter.plant(backup_id)
    line = cli.run_cli(["check", "--max-age", "26h"], cli_env).stdout.strip()
    assert f"{backup_id} is 2h05m old (limit 1d02h)" in line


def test_too_old_backup_exits_stale(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(hours=27))
    run = cli.run_cli(["check", "--max-age", "26h"], cli_env)
    assert (run.returncode, run.stdout.split(":")[0]) == (ExitCode.STALE, "STALE")


def test_stale_output_is_one_line(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(hours=27))
    run = cli.run_cli(["check", "--max-age", "26h"], cli_env)
    assert (len(run.stdout.splitlines()), run.stderr) == (1, "")


def test_no_backup_exits_stale(cli_env: dict[str, str]) -> None:
    run = cli.run_cli(["check", "--max-age", "26h"], cli_env)
    assert run.returncode == ExitCode.STALE, str(run)
    assert run.stdout.startswith("STALE: no complete backup under s3://")


def test_newer_incomplete_backup_does_not_count(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(hours=30))
    planter.plant(helpers.backup_id_aged(hours=1), manifest=False)
    run = cli.run_cli(["check", "--max-age", "26h"], cli_env)
    assert run.returncode == ExitCode.STALE, str(run)
    assert "1 newer incomplete backup(s)" in run.stdout


def test_max_age_from_the_environment(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(hours=2))
    run = cli.run_cli(["check"], {**cli_env, "AGENT_BOM_BACKUP_MAX_AGE": "1h"})
    assert run.returncode == ExitCode.STALE, str(run)


def test_session_backup_just_taken_is_fresh(op_backup: Any, s3: MotoServer) -> None:
    run = cli.run_cli(["check", "--max-age", "10m"], cli.job_env(s3.endpoint_url, op_backup.bucket))
    assert run.returncode == 0, str(run)


def test_bad_max_age_is_a_usage_error(cli_env: dict[str, str]) -> None:
    run = cli.run_cli(["check", "--max-age", "soon"], cli_env)
    assert run.returncode == ExitCode.USAGE, str(run)


def test_check_sends_list_requests_only(planter: Planter, s3: MotoServer, bucket: str) -> None:
    """What the backup role's policy allows: s3:ListBucket (no GetObject, no HeadObject)."""
    planter.plant(helpers.backup_id_aged(hours=2))
    planter.plant(helpers.backup_id_aged(hours=1), manifest=False)
    storage = Storage(StorageConfig(bucket=bucket, prefix=cli.PREFIX, region=helpers.region(),
                                    endpoint_url=s3.endpoint_url, path_style=True))
    operations: list[str] = []
    storage.client.meta.events.register("before-call.s3", lambda model, **_: operations.append(model.name))
    check_freshness(storage, 26 * 3600)
    assert set(operations) == {"ListObjectsV2"}
