"""Object naming and the manifest format."""

from datetime import datetime, timezone

import pytest

from agent_bom_backup.errors import VerifyError
from agent_bom_backup.manifest import BackupKeys, Manifest, backup_id_for


def test_backup_id_uses_the_runbook_format_in_utc() -> None:
    moment = datetime(2026, 11, 25, 3, 0, 7, tzinfo=timezone.utc)
    assert backup_id_for(moment) == "agent-bom-20261125T030007Z"


def test_keys_sit_next_to_each_other() -> None:
    keys = BackupKeys("agent-bom/postgres/", "agent-bom-20261125T030007Z")
    assert (keys.dump, keys.roles, keys.manifest) == (
        "agent-bom/postgres/agent-bom-20261125T030007Z.dump",
        "agent-bom/postgres/agent-bom-20261125T030007Z.roles.sql",
        "agent-bom/postgres/agent-bom-20261125T030007Z.manifest.json",
    )


@pytest.mark.parametrize(
    "key", ["p/agent-bom-20261125T030007Z.dump", "p/agent-bom-20261125T030007Z.manifest.json"], ids=["dump", "manifest"]
)
def test_any_object_key_maps_back_to_its_backup(key: str) -> None:
    assert BackupKeys.from_any_key(key) == BackupKeys("p", "agent-bom-20261125T030007Z")


@pytest.mark.parametrize("key", ["p/other.dump", "p/agent-bom-2026.dump", "p/agent-bom-20261125T030007Z.txt"])
def test_foreign_keys_are_not_backups(key: str) -> None:
    assert BackupKeys.from_any_key(key) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [("{", "not valid JSON"), ('{"format": "x"}', "not an agent-bom backup manifest"),
     ('{"format": "agent-bom-backup-manifest", "format_version": 99}', "format version 99"),
     ('{"format": "agent-bom-backup-manifest", "format_version": 1}', "missing or has a malformed field")],
    ids=["not-json", "foreign", "future-version", "incomplete"],
)
def test_bad_manifests_are_verify_errors(text: str, message: str) -> None:
    with pytest.raises(VerifyError, match=message):
        Manifest.from_json(text)
