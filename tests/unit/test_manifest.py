"""Object naming and the manifest format."""

from datetime import datetime, timezone

import pytest

from agent_bom_backup.errors import VerifyError
from agent_bom_backup.manifest import BackupKeys, Manifest, backup_id_for
from tests.unit.samples import manifest_json


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


def _minimal(version: int, **extra: object) -> str:
    return manifest_json(version, roles=None, **extra)


def test_format_1_is_read() -> None:
    assert Manifest.from_json(_minimal(1)).format_version == 1


def test_format_1_has_no_sequence_state() -> None:
    assert Manifest.from_json(_minimal(1)).sequences is None


def test_format_1_was_inspected_with_postgresql_s_defaults() -> None:
    assert Manifest.from_json(_minimal(1)).inspection_settings == {}


def test_format_1_ignores_sequences_a_later_writer_would_not_put_there() -> None:
    assert Manifest.from_json(_minimal(1, sequences=[])).sequences is None


SEQUENCES = [{"schema": "public", "name": "s", "increment": -1, "last_value": 97, "is_called": True,
              "owned_by": "public.t.id"}]


def test_format_2_reads_the_sequence_state() -> None:
    manifest = Manifest.from_json(_minimal(2, sequences=SEQUENCES))
    assert manifest.sequences is not None and manifest.sequences[0].next_value == 96


def test_format_2_reads_the_inspection_settings() -> None:
    manifest = Manifest.from_json(_minimal(2, sequences=SEQUENCES, inspection_settings={"search_path": "pg_catalog"}))
    assert manifest.inspection_settings == {"search_path": "pg_catalog"}


@pytest.mark.parametrize("version", [1, 2])
def test_a_written_manifest_reads_back_the_same(version: int) -> None:
    manifest = Manifest.from_json(_minimal(version))
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_fields_of_a_newer_writer_are_ignored() -> None:
    text = _minimal(2, sequences=[], some_new_field=1)
    text = text.replace('"parts": 1}', '"parts": 1, "checksum_crc32": "x"}')
    assert Manifest.from_json(text).dump.size == 100


def test_a_sequence_never_called_starts_at_its_last_value() -> None:
    from agent_bom_backup.manifest import SequenceRecord

    assert SequenceRecord("public", "s", 1, 1, False).next_value == 1


def test_formats_1_and_2_record_no_client_encryption() -> None:
    assert [Manifest.from_json(_minimal(v)).encryption for v in (1, 2)] == [None, None]


def test_an_encryption_record_reads_back() -> None:
    text = _minimal(2, encryption={"format": "age", "recipients": ["age1abc", "ssh-ed25519 AAAA x"]})
    assert Manifest.from_json(Manifest.from_json(text).to_json()).encryption.recipients == ["age1abc", "ssh-ed25519 AAAA x"]


def test_an_encrypted_object_records_its_plaintext_digest() -> None:
    dump = {"key": "agent-bom/postgres/agent-bom-20261125T030007Z.dump", "size": 120, "sha256": "c" * 64,
            "parts": 1, "plaintext_size": 100, "plaintext_sha256": "p" * 64}
    assert Manifest.from_json(_minimal(2, dump=dump)).dump.plaintext_sha256 == "p" * 64
