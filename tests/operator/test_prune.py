"""`agent-bom-backup prune --keep-days N --keep-last M [--yes]`: expired backups go with
all three objects (the manifest first), the newest complete backup never does, failed
runs older than the keep window do, a dry run is the default, versioned buckets keep
their previous versions."""

from __future__ import annotations

import pytest

from agent_bom_backup.errors import ExitCode
from agent_bom_backup.prune import apply_prune, plan_prune
from agent_bom_backup.storage import Storage, StorageConfig
from tests.operator import planting as helpers
from tests.operator.planting import Planter
from tests.support import buckets
from tests.support import cli
from devstack.s3server import MotoServer


def _objects(backup_id: str) -> list[str]:
    return sorted(helpers.key(backup_id, suffix) for suffix in (buckets.DUMP, buckets.ROLES, buckets.MANIFEST))


def _prune(env: dict[str, str], *args: str) -> cli.Run:
    run = cli.run_cli(["prune", *args], env)
    assert run.returncode == 0, str(run)
    return run


def test_newest_complete_backup_survives_even_when_expired(planter: Planter, cli_env: dict[str, str]) -> None:
    newest = helpers.backup_id_aged(days=40)
    planter.plant(newest)
    planter.plant(helpers.backup_id_aged(days=50))
    _prune(cli_env, "--keep-days", "30", "--keep-last", "1", "--yes")
    assert planter.keys() == _objects(newest)


def test_expired_backup_loses_all_three_objects(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    expired = helpers.backup_id_aged(days=50)
    planter.plant(expired)
    _prune(cli_env, "--keep-days", "30", "--yes")
    assert not set(_objects(expired)) & set(planter.keys())


def test_backups_within_keep_days_are_kept(planter: Planter, cli_env: dict[str, str]) -> None:
    ids = [helpers.backup_id_aged(days=d) for d in (1, 10, 29)]
    for backup_id in ids:
        planter.plant(backup_id)
    _prune(cli_env, "--keep-days", "30", "--yes")
    assert len(planter.keys()) == 3 * len(ids)


def test_keep_last_keeps_that_many_old_backups(planter: Planter, cli_env: dict[str, str]) -> None:
    ids = [helpers.backup_id_aged(days=d) for d in (40, 41, 42, 43, 44)]
    for backup_id in ids:
        planter.plant(backup_id)
    _prune(cli_env, "--keep-days", "30", "--keep-last", "3", "--yes")
    assert planter.keys() == sorted(k for backup_id in ids[:3] for k in _objects(backup_id))


@pytest.mark.parametrize(("missing", "days"), [("manifest", 8), ("dump", 9)],
                         ids=["dump-without-manifest", "manifest-without-dump"])
def test_expired_incomplete_backup_is_removed(planter: Planter, cli_env: dict[str, str], missing: str,
                                              days: int) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    failed = helpers.backup_id_aged(days=days)
    planter.plant(failed, **{missing: False})
    _prune(cli_env, "--keep-days", "7", "--yes")
    assert not [k for k in planter.keys() if failed in k]


def test_incomplete_backup_within_keep_days_is_kept(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    failed = helpers.backup_id_aged(days=3)
    planter.plant(failed, manifest=False)
    _prune(cli_env, "--keep-days", "7", "--yes")
    assert [k for k in planter.keys() if failed in k] == [helpers.key(failed, buckets.DUMP), helpers.key(failed, buckets.ROLES)]


def test_incomplete_backup_within_the_grace_is_kept_with_zero_keep_days(planter: Planter,
                                                                        cli_env: dict[str, str]) -> None:
    """A backup whose manifest is not written yet may still be running."""
    planter.plant(helpers.backup_id_aged(days=1))
    running = helpers.backup_id_aged(minutes=20)
    planter.plant(running, manifest=False)
    _prune(cli_env, "--keep-days", "0", "--yes")
    assert helpers.key(running, buckets.DUMP) in planter.keys()


def test_dry_run_is_the_default_and_deletes_nothing(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    planter.plant(helpers.backup_id_aged(days=50))
    before = planter.keys()
    _prune(cli_env, "--keep-days", "30")
    assert planter.keys() == before


def test_dry_run_prints_what_would_go(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    expired = helpers.backup_id_aged(days=50)
    planter.plant(expired)
    lines = _prune(cli_env, "--keep-days", "30").stdout.splitlines()
    assert [line.split()[:3] for line in lines if expired in line] == [["would", "delete", expired]]


def test_yes_from_the_environment_deletes(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    planter.plant(helpers.backup_id_aged(days=50))
    _prune({**cli_env, "AGENT_BOM_PRUNE_DRY_RUN": "false", "AGENT_BOM_PRUNE_KEEP_DAYS": "30"})
    assert len(planter.keys()) == 3


def test_foreign_objects_are_never_deleted(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    foreign = [f"{cli.PREFIX}/notes.txt", f"{cli.PREFIX}/archive/{helpers.backup_id_aged(days=90)}.dump",
               f"other/{helpers.backup_id_aged(days=90)}.dump"]
    for object_key in foreign:
        planter.put(object_key, b"keep me")
    _prune(cli_env, "--keep-days", "0", "--incomplete-grace", "0", "--yes")
    assert set(foreign) <= set(planter.keys())


def test_manifests_are_deleted_before_dumps(planter: Planter, s3: MotoServer, bucket: str) -> None:
    """An interrupted prune leaves backups that look incomplete, never a manifest without its dump."""
    planter.plant(helpers.backup_id_aged(days=1))
    planter.plant(helpers.backup_id_aged(days=50))
    planter.plant(helpers.backup_id_aged(days=60))
    storage = Storage(StorageConfig(bucket=bucket, prefix=cli.PREFIX, region=helpers.region(),
                                    endpoint_url=s3.endpoint_url, path_style=True))
    deleted: list[str] = []  # in request order, whichever delete API the storage module uses
    storage.client.meta.events.register(
        "before-parameter-build.s3.DeleteObject", lambda params, **_: deleted.append(params["Key"]))
    storage.client.meta.events.register(
        "before-parameter-build.s3.DeleteObjects",
        lambda params, **_: deleted.extend(o["Key"] for o in params["Delete"]["Objects"]))
    apply_prune(storage, plan_prune(storage, 30, 1), dry_run=False)
    assert [k.endswith(buckets.MANIFEST) for k in deleted] == [True] * 2 + [False] * 4


def test_keep_last_zero_is_a_usage_error(cli_env: dict[str, str]) -> None:
    run = cli.run_cli(["prune", "--keep-days", "30", "--keep-last", "0"], cli_env)
    assert run.returncode == ExitCode.USAGE, str(run)


def test_keep_days_is_required(cli_env: dict[str, str]) -> None:
    run = cli.run_cli(["prune"], cli_env)
    assert run.returncode == ExitCode.USAGE, str(run)
    assert "--keep-days" in run.stderr


# ----------------------------------------------------------------------------- versioned bucket
def _enable_versioning(s3: MotoServer, bucket: str) -> None:
    s3.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


@pytest.fixture
def pruned_versioned(planter: Planter, cli_env: dict[str, str], s3: MotoServer, bucket: str) -> str:
    """A versioned bucket with a recent and an expired backup, pruned; the expired id."""
    _enable_versioning(s3, bucket)
    planter.plant(helpers.backup_id_aged(days=1))
    expired = helpers.backup_id_aged(days=50)
    planter.plant(expired)
    _prune(cli_env, "--keep-days", "30", "--yes")
    return expired


def test_versioned_bucket_prune_hides_the_backup(planter: Planter, pruned_versioned: str) -> None:
    assert not [k for k in planter.keys() if pruned_versioned in k]


def _versions(s3: MotoServer, bucket: str, backup_id: str) -> dict[str, list[object]]:
    return s3.client().list_object_versions(Bucket=bucket, Prefix=helpers.key(backup_id, ""))


def test_versioned_bucket_keeps_previous_versions(pruned_versioned: str, s3: MotoServer, bucket: str) -> None:
    assert len(_versions(s3, bucket, pruned_versioned).get("Versions", [])) == 3


def test_versioned_bucket_gets_a_delete_marker_per_object(pruned_versioned: str, s3: MotoServer, bucket: str) -> None:
    assert len(_versions(s3, bucket, pruned_versioned).get("DeleteMarkers", [])) == 3


def test_versioned_bucket_output_says_current_versions_only(planter: Planter, cli_env: dict[str, str],
                                                            s3: MotoServer, bucket: str) -> None:
    _enable_versioning(s3, bucket)
    planter.plant(helpers.backup_id_aged(days=1))
    run = _prune(cli_env, "--keep-days", "30")
    assert "bucket versioning is Enabled: prune deletes current versions only" in run.stdout


def test_unversioned_bucket_output_does_not_mention_versions(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    assert "version" not in _prune(cli_env, "--keep-days", "30").stdout


# ----------------------------------------------------------------------------- one catalog with restore
def test_unreadable_backup_is_never_deleted(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(days=1))
    broken = helpers.backup_id_aged(days=90)
    planter.plant(broken, manifest_edit=lambda m: m["dump"].update(size=1))  # does not match its dump
    run = _prune(cli_env, "--keep-days", "30", "--incomplete-grace", "0", "--yes")
    kept = sorted(k for k in planter.keys() if broken in k)
    assert (kept, f"keep         {broken}" in run.stdout) == (_objects(broken), True), str(run)


def test_the_backup_restore_latest_would_pick_is_kept(planter: Planter, cli_env: dict[str, str]) -> None:
    """The newest backup is unreadable: restore latest --allow-older restores the newest
    complete one, so prune keeps it, however old and whatever --keep-last says."""
    unreadable = helpers.backup_id_aged(days=40)
    planter.plant(unreadable, manifest=False)
    planter.put(helpers.key(unreadable, buckets.MANIFEST), b"{not json")
    restorable = helpers.backup_id_aged(days=50)
    planter.plant(restorable)
    expired = helpers.backup_id_aged(days=60)
    planter.plant(expired)
    _prune(cli_env, "--keep-days", "30", "--keep-last", "1", "--yes")
    assert sorted({k.rsplit("/", 1)[1].split(".")[0] for k in planter.keys()}) == sorted([unreadable, restorable])
