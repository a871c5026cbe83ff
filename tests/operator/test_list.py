"""`agent-bom-backup list`: backups under the prefix, newest first, complete or not and why."""

from __future__ import annotations

from typing import Any

from tests.operator import planting as helpers
from tests.operator.planting import Planter, by_id, list_json
from tests.support import buckets
from tests.support import cli


def _list(env: dict[str, str]) -> list[dict[str, Any]]:
    run = cli.run_cli(["list", "--json"], env)
    assert run.returncode == 0, str(run)
    return list_json(run)


def test_complete_backup_is_listed_complete(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=3)
    planter.plant(backup_id)
    entry = by_id(_list(cli_env), backup_id)
    assert (entry["complete"], entry["reason"]) == (True, None)


def test_entry_carries_uri_size_and_age(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=3)
    uri = planter.plant(backup_id)
    entry = by_id(_list(cli_env), backup_id)
    assert (entry["uri"], entry["size"], round(entry["age_seconds"] / 3600)) == (uri, len(planter.real.dump), 3)


def test_backups_are_newest_first(planter: Planter, cli_env: dict[str, str]) -> None:
    ids = [helpers.backup_id_aged(days=d) for d in (5, 1, 3)]
    for backup_id in ids:
        planter.plant(backup_id)
    assert [b["backup_id"] for b in _list(cli_env)] == sorted(ids, reverse=True)


def test_dump_without_manifest_is_incomplete(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id, manifest=False)
    entry = by_id(_list(cli_env), backup_id)
    assert (entry["complete"], entry["reason"].split(":")[0]) == (False, "no manifest")


def test_manifest_without_dump_is_incomplete(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id, dump=False)
    entry = by_id(_list(cli_env), backup_id)
    assert (entry["complete"], entry["reason"].split(":")[0]) == (False, "no dump object")


def test_manifest_naming_another_object_is_incomplete(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    other = helpers.key(helpers.backup_id_aged(days=9), buckets.DUMP)
    planter.plant(backup_id, manifest_edit=lambda m: m["dump"].update(key=other))
    entry = by_id(_list(cli_env), backup_id)
    assert (entry["complete"], entry["reason"]) == (False, f"manifest names another object: {other}")


def test_size_differing_from_manifest_is_incomplete(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id, dump_bytes=planter.real.dump[:-100])
    entry = by_id(_list(cli_env), backup_id)
    assert (entry["complete"], entry["reason"].split(":")[0]) == (False, "size differs from the manifest")


def test_unreadable_manifest_is_incomplete(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id, manifest=False)
    planter.put(helpers.key(backup_id, buckets.MANIFEST), b"{not json")
    entry = by_id(_list(cli_env), backup_id)
    assert (entry["complete"], entry["reason"].split(":")[0]) == (False, "manifest unreadable")


def test_objects_outside_the_naming_are_ignored(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.put(f"{cli.PREFIX}/notes.txt", b"hello")
    planter.put(f"{cli.PREFIX}/older/{helpers.backup_id_aged(days=1)}.dump", b"x")
    assert _list(cli_env) == []


def test_table_shows_the_reason_under_an_incomplete_backup(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id, manifest=False)
    lines = cli.run_cli(["list"], cli_env).stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith(backup_id))
    assert "INCOMPLETE" in lines[row]
    assert lines[row + 1].strip().startswith("-> no manifest")


def test_empty_prefix_says_so(cli_env: dict[str, str]) -> None:
    run = cli.run_cli(["list"], cli_env)
    assert run.returncode == 0, str(run)
    assert run.stdout.startswith("no backups under s3://")


def test_unreadable_manifest_is_in_the_unreadable_state(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id, manifest=False)
    planter.put(helpers.key(backup_id, buckets.MANIFEST), b"{not json")
    assert by_id(_list(cli_env), backup_id)["state"] == "unreadable"


def test_size_mismatch_is_in_the_unreadable_state(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id, dump_bytes=planter.real.dump[:-100])
    assert by_id(_list(cli_env), backup_id)["state"] == "unreadable"


def test_dump_without_manifest_is_in_the_incomplete_state(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id, manifest=False)
    assert by_id(_list(cli_env), backup_id)["state"] == "incomplete"


def test_claim_alone_is_a_backup_that_wrote_nothing(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(minutes=5)
    planter.put(helpers.key(backup_id, ".claim"), b"")
    entry = by_id(_list(cli_env), backup_id)
    assert (entry["state"], entry["reason"].split(":")[0]) == ("incomplete", "only its claim")


def test_glacier_dump_is_archived_with_how_to_restore_it(planter: Planter, cli_env: dict[str, str]) -> None:
    backup_id = helpers.backup_id_aged(hours=1)
    planter.plant(backup_id)
    planter.client.put_object(Bucket=planter.bucket, Key=helpers.key(backup_id, buckets.DUMP), Body=planter.real.dump,
                              StorageClass="GLACIER")
    entry = by_id(_list(cli_env), backup_id)
    assert entry["state"] == "archived"
    assert "aws s3api restore-object" in entry["reason"]


def test_table_summary_counts_each_state(planter: Planter, cli_env: dict[str, str]) -> None:
    planter.plant(helpers.backup_id_aged(hours=3))
    planter.plant(helpers.backup_id_aged(hours=1), manifest=False)
    last = cli.run_cli(["list"], cli_env).stdout.splitlines()[-1]
    assert last.endswith(": 1 complete, 1 incomplete")
