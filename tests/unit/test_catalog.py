"""The backup catalog's classification: what the listing alone says of a backup, what a
manifest that does not describe its objects makes of it, and check's verdict. (Reading
manifests from a real store: tests/operator/test_list.py.)"""

import pytest

from agent_bom_backup.catalog import (
    ARCHIVED,
    COMPLETE,
    INCOMPLETE,
    REASON_CLAIM_ONLY,
    REASON_NO_DUMP,
    REASON_NO_MANIFEST,
    CheckResult,
    classify_listing,
    manifest_mismatch,
)
from tests.unit.samples import BACKUP_ID, COMPLETE_OBJECTS, CONFIG, NOW, entry, manifest

KEYS = CONFIG.keys(BACKUP_ID)


def classify(*kinds: str, **options: object):
    return classify_listing(CONFIG, entry(BACKUP_ID, *kinds, **options), NOW)


@pytest.mark.parametrize("kinds", [COMPLETE_OBJECTS, ("dump", "roles", "manifest"), ("dump", "manifest")],
                         ids=["with-claim", "format-1-without-claim", "without-roles"])
def test_dump_and_manifest_listed_is_complete(kinds: tuple[str, ...]) -> None:
    assert classify(*kinds).state == COMPLETE


@pytest.mark.parametrize(("kinds", "reason"), [
    (("claim",), REASON_CLAIM_ONLY),
    (("claim", "dump"), REASON_NO_MANIFEST),
    (("claim", "dump", "roles"), REASON_NO_MANIFEST),
    (("manifest", "roles"), REASON_NO_DUMP),
    (("roles",), REASON_NO_DUMP),
], ids=["claim-only", "dump-without-manifest", "dump-and-roles-without-manifest", "manifest-without-dump",
        "roles-only"])
def test_what_a_run_left_unfinished_is_incomplete_and_says_why(kinds: tuple[str, ...], reason: str) -> None:
    status = classify(*kinds)
    assert (status.state, status.reason) == (INCOMPLETE, reason)


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_a_dump_in_an_archival_class_is_archived(storage_class: str) -> None:
    assert classify(*COMPLETE_OBJECTS, storage_class=storage_class).state == ARCHIVED


def test_an_archived_backup_says_how_to_restore_it_from_the_archive() -> None:
    status = classify(*COMPLETE_OBJECTS, storage_class="GLACIER")
    assert status.reason == (
        f"{BACKUP_ID}.dump is in GLACIER: restore it from the archive first (aws s3api restore-object --bucket "
        f"agent-bom-prod-backups --key {KEYS.dump} --restore-request Days=2), then retry")


@pytest.mark.parametrize("storage_class", ["STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", None])
def test_an_instantly_readable_class_is_not_archived(storage_class: str | None) -> None:
    assert classify(*COMPLETE_OBJECTS, storage_class=storage_class).state == COMPLETE


def test_an_incomplete_backup_in_glacier_stays_incomplete() -> None:
    assert classify("claim", "dump", storage_class="GLACIER").state == INCOMPLETE


def test_age_is_measured_from_the_stamp_in_the_name() -> None:
    assert classify(*COMPLETE_OBJECTS).age_seconds == 3 * 86400 + 6 * 3600


def test_size_is_the_dump_s() -> None:
    assert classify(*COMPLETE_OBJECTS, size=4242).size == 4242


def test_size_is_unknown_without_a_dump() -> None:
    assert classify("claim").size is None


def test_listed_objects_are_recorded_by_kind() -> None:
    assert classify("claim", "dump").objects == {"claim": KEYS.claim, "dump": KEYS.dump}


def test_uri_names_the_dump_in_the_bucket() -> None:
    assert classify("claim").uri == f"s3://agent-bom-prod-backups/{KEYS.dump}"


# ------------------------------------------------------------------ a manifest against its listing
def test_a_manifest_describing_its_objects_matches() -> None:
    assert manifest_mismatch(manifest(), KEYS, entry(BACKUP_ID, *COMPLETE_OBJECTS)) is None


def test_a_manifest_naming_another_dump_is_a_mismatch() -> None:
    other = manifest(dump={"key": "agent-bom/postgres/agent-bom-20000101T000000Z.dump", "size": 100, "sha256": "0"})
    assert manifest_mismatch(other, KEYS, None) == (
        "manifest names another object: agent-bom/postgres/agent-bom-20000101T000000Z.dump")


def test_a_dump_of_another_size_is_a_mismatch() -> None:
    assert manifest_mismatch(manifest(), KEYS, entry(BACKUP_ID, *COMPLETE_OBJECTS, size=50)) == (
        "size differs from the manifest: the dump is 50 bytes, the manifest says 100 (truncated or replaced)")


def test_a_missing_roles_object_is_a_mismatch() -> None:
    assert manifest_mismatch(manifest(), KEYS, entry(BACKUP_ID, "dump", "manifest")) == (
        "the roles object named by the manifest is missing")


def test_a_roles_object_of_another_size_is_a_mismatch() -> None:
    listed = entry(BACKUP_ID, *COMPLETE_OBJECTS, sizes={"roles": 11})
    assert manifest_mismatch(manifest(), KEYS, listed) == (
        "size differs from the manifest: the roles object is 11 bytes, the manifest says 10")


def test_a_format_1_manifest_without_roles_needs_no_roles_object() -> None:
    assert manifest_mismatch(manifest(1, roles=None), KEYS, entry(BACKUP_ID, "dump", "manifest")) is None


# ------------------------------------------------------------------ check
LOCATION = "s3://agent-bom-prod-backups/agent-bom/postgres/"


def check(newest_age: float | None, *, max_age: float = 26 * 3600, newer_incomplete: int = 0) -> CheckResult:
    newest = None
    if newest_age is not None:
        newest = classify(*COMPLETE_OBJECTS)
        newest.age_seconds = newest_age
    return CheckResult(LOCATION, max_age, newest, newer_incomplete)


def test_a_backup_younger_than_the_limit_is_ok() -> None:
    assert check(25 * 3600).ok


def test_a_backup_exactly_at_the_limit_is_ok() -> None:
    assert check(26 * 3600).ok


def test_a_backup_older_than_the_limit_is_stale() -> None:
    assert check(26 * 3600 + 1).line().startswith(f"STALE: newest complete backup {BACKUP_ID} is 1d02h old, "
                                                  "older than the limit of 1d02h")


def test_no_backup_is_stale() -> None:
    assert check(None).line() == f"STALE: no complete backup under {LOCATION} (limit 1d02h)"


def test_newer_incomplete_runs_are_mentioned() -> None:
    assert "; 2 newer incomplete backup(s): the latest run(s) failed or are still running" in check(
        3600, newer_incomplete=2).line()
