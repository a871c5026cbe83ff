"""Retention decisions (prune.decide) from the catalog's statuses, without a store: what
is kept, what goes, and why. (Deleting from a real store: tests/operator/test_prune.py.)"""

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_bom_backup.catalog import ARCHIVED, COMPLETE, INCOMPLETE, UNREADABLE, BackupStatus, classify_listing
from agent_bom_backup.errors import ConfigError
from agent_bom_backup.manifest import backup_id_for
from agent_bom_backup.prune import DAY, PruneDecision, PrunePlan, decide, validate_retention
from tests.unit.samples import COMPLETE_OBJECTS, CONFIG, NOW, entry

OBJECTS = {COMPLETE: COMPLETE_OBJECTS, ARCHIVED: COMPLETE_OBJECTS, UNREADABLE: COMPLETE_OBJECTS,
           INCOMPLETE: ("claim", "dump")}


def backup(days_old: float, state: str = COMPLETE) -> BackupStatus:
    """A backup that started ``days_old`` days before NOW, in ``state``."""
    backup_id = backup_id_for(NOW - timedelta(days=days_old))
    status = classify_listing(CONFIG, entry(backup_id, *OBJECTS[state]), NOW)
    if state in (ARCHIVED, UNREADABLE):
        status = replace(status, state=state, reason=f"{state} for the test")
    return status


def decisions(*statuses: BackupStatus, keep_days: float = 30, keep_last: int = 1,
              grace: float = DAY) -> list[tuple[bool, str]]:
    """(deleted?, reason) per backup, newest first."""
    return [(d.delete, d.reason) for d in decide(sorted(statuses, key=lambda s: s.age_seconds), keep_days, keep_last,
                                                 grace)]


def test_the_newest_complete_backup_is_kept_however_old() -> None:
    assert decisions(backup(400)) == [(False, "newest complete backup (never deleted)")]


def test_a_complete_backup_past_the_window_and_keep_last_is_deleted() -> None:
    assert decisions(backup(1), backup(31))[1] == (
        True, "older than 30 days and not among the 1 newest complete backups")


def test_a_complete_backup_inside_the_window_is_kept() -> None:
    assert decisions(backup(1), backup(29))[1] == (False, "younger than 30 days")


def test_keep_last_keeps_that_many_newest_whatever_their_age() -> None:
    kept = [delete for delete, _ in decisions(backup(100), backup(200), backup(300), keep_last=2)]
    assert kept == [False, False, True]


def test_the_reason_names_keep_last() -> None:
    assert decisions(backup(100), backup(200), keep_last=2)[1] == (False, "one of the 2 newest complete backups")


def test_an_unreadable_backup_is_never_deleted() -> None:
    assert decisions(backup(1), backup(400, UNREADABLE))[1] == (
        False, "unreadable, never deleted: unreadable for the test")


def test_an_archived_newest_backup_is_kept_beside_the_newest_complete_one() -> None:
    assert decisions(backup(400, ARCHIVED), backup(401)) == [
        (False, "newest backup, archived (never deleted)"), (False, "newest complete backup (never deleted)")]


def test_an_old_archived_backup_expires_like_a_complete_one() -> None:
    assert decisions(backup(1), backup(400, ARCHIVED))[1][0] is True


def test_an_incomplete_backup_inside_the_window_is_kept() -> None:
    assert decisions(backup(1), backup(2, INCOMPLETE))[1] == (False, "incomplete, younger than 30 days")


def test_an_incomplete_backup_younger_than_the_grace_may_still_be_running() -> None:
    assert decisions(backup(1, INCOMPLETE), keep_days=0, grace=2 * DAY) == [
        (False, "incomplete, younger than the 2d grace (may still be running)")]


def test_an_incomplete_backup_past_window_and_grace_is_deleted_naming_why() -> None:
    assert decisions(backup(1), backup(40, INCOMPLETE)) == [
        (False, "newest complete backup (never deleted)"),
        (True, "incomplete (no manifest: the backup failed or is still running) and older than 30d")]


def test_keep_days_zero_deletes_every_complete_backup_but_the_newest() -> None:
    assert [delete for delete, _ in decisions(backup(0.5), backup(0.7), backup(0.9), keep_days=0)] == [
        False, True, True]


@pytest.mark.parametrize(("keep_days", "keep_last", "grace", "message"), [
    (-1, 1, 0, "--keep-days must be 0 or more"),
    (1, 0, 0, "--keep-last must be at least 1"),
    (1, 1, -1, "--incomplete-grace must be 0 or more"),
], ids=["negative-days", "keep-last-zero", "negative-grace"])
def test_retention_settings_are_checked(keep_days: float, keep_last: int, grace: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_retention(keep_days, keep_last, grace)


def test_manifests_are_deleted_before_the_other_objects() -> None:
    doomed = backup(100)
    plan = PrunePlan("s3://b/p/", 30, 1, DAY, [PruneDecision(backup(1), False, ""), PruneDecision(doomed, True, "")])
    manifests, others = plan.doomed_objects()
    assert (manifests, sorted(others)) == ([doomed.objects["manifest"]], sorted(
        doomed.objects[kind] for kind in ("claim", "dump", "roles")))


# ------------------------------------------------------------------ properties
STATES = st.sampled_from([COMPLETE, COMPLETE, INCOMPLETE, UNREADABLE, ARCHIVED])
BACKUPS = st.lists(st.tuples(st.integers(min_value=0, max_value=400 * 24), STATES), min_size=1, max_size=12,
                   unique_by=lambda b: b[0])


def _statuses(drawn: list[tuple[int, str]]) -> list[BackupStatus]:
    return sorted((backup(hours / 24, state) for hours, state in drawn), key=lambda s: s.age_seconds)


@given(BACKUPS, st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=5))
def test_never_deleted_the_newest_complete_an_unreadable_or_a_young_backup(
        drawn: list[tuple[int, str]], keep_days: int, keep_last: int) -> None:
    statuses = _statuses(drawn)
    newest_complete = next((s for s in statuses if s.state == COMPLETE), None)
    deleted = [d.status for d in decide(statuses, keep_days, keep_last) if d.delete]
    assert [s for s in deleted
            if s is newest_complete or s.state == UNREADABLE or s.age_seconds < keep_days * DAY] == []


@given(BACKUPS, st.integers(min_value=0, max_value=60), st.integers(min_value=1, max_value=5))
def test_the_keep_last_newest_committed_backups_stay(drawn: list[tuple[int, str]], keep_days: int,
                                                      keep_last: int) -> None:
    statuses = _statuses(drawn)
    committed = [s for s in statuses if s.state in (COMPLETE, ARCHIVED)]
    kept = {id(d.status) for d in decide(statuses, keep_days, keep_last) if not d.delete}
    assert all(id(s) in kept for s in committed[:keep_last])


@given(BACKUPS)
def test_one_decision_per_backup_in_order(drawn: list[tuple[int, str]]) -> None:
    statuses = _statuses(drawn)
    assert [d.status for d in decide(statuses, 30, 1)] == statuses
