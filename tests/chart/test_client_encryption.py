"""Client-side encryption in the chart (issue 30): age recipients (public keys) reach the
backup job; the identity (secret key) reaches the restore and drill pods as a read-only file
from a Secret, and never the backup pod."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.chart import HelmError
from tests.chart.helm_render import (
    CRONJOB_TEMPLATE,
    RESTORE_DRILL_TEMPLATE,
    RESTORE_TEMPLATE,
    backup_values,
    env_map,
    mounts_by_name,
    refusal,
    render_chart,
    volumes_by_name,
)

OPS = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
ESCROW = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN escrow@example"
IDENTITY_SECRET = "agent-bom-age-identity"
DRILL = {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
         "encryption": {"existingSecret": IDENTITY_SECRET}}
RESTORE = {"enabled": True, "target": {"existingSecret": "restore-db"}, "encryption": {"existingSecret": IDENTITY_SECRET}}


def _only(template: str, **values: Any) -> dict[str, Any]:
    (doc,) = render_chart(backup_values(**values), show_only=[template])
    return doc


class TestBackupCronJob:
    TEMPLATE = CRONJOB_TEMPLATE

    def test_no_client_encryption_by_default(self):
        assert "AGENT_BOM_BACKUP_ENCRYPT_TO" not in env_map(_only(self.TEMPLATE))

    def test_recipients_reach_the_job_one_per_line(self):
        doc = _only(self.TEMPLATE, clientEncryption={"recipients": [OPS, ESCROW]})
        assert env_map(doc)["AGENT_BOM_BACKUP_ENCRYPT_TO"] == f"{OPS}\n{ESCROW}"

    def test_recipients_from_a_config_map(self):
        doc = _only(self.TEMPLATE, clientEncryption={"recipientsConfigMap": "backup-recipients"})
        assert env_map(doc)["AGENT_BOM_BACKUP_ENCRYPT_TO"] == {
            "configMapKeyRef": {"name": "backup-recipients", "key": "recipients"}}

    def test_combines_with_server_side_encryption(self):
        env = env_map(_only(self.TEMPLATE, clientEncryption={"recipients": [OPS]}))
        assert (env["AGENT_BOM_BACKUP_SSE"], env["AGENT_BOM_BACKUP_ENCRYPT_TO"]) == ("aws:kms", OPS)

    def test_the_backup_pod_never_mounts_an_identity(self):
        """Even with identities configured for the restore and the drill, the backup pod gets
        public keys only: no identity variable, no volume from the identity Secret."""
        doc = _only(self.TEMPLATE, clientEncryption={"recipients": [OPS]}, restore=RESTORE, restoreDrill=DRILL)
        secrets = [v["secret"]["secretName"] for v in volumes_by_name(doc).values() if "secret" in v]
        assert ("AGENT_BOM_RESTORE_IDENTITY_FILE" in env_map(doc), IDENTITY_SECRET in secrets,
                "age-identity" in mounts_by_name(doc)) == (False, False, False)


class TestRestoreCronJob:
    TEMPLATE = RESTORE_TEMPLATE

    def test_no_identity_by_default(self):
        doc = _only(self.TEMPLATE, restore={"enabled": True, "target": {"existingSecret": "restore-db"}})
        assert ("age-identity" in volumes_by_name(doc), "AGENT_BOM_RESTORE_IDENTITY_FILE" in env_map(doc)) == (False, False)

    def test_identity_secret_is_a_volume(self):
        volume = volumes_by_name(_only(self.TEMPLATE, restore=RESTORE))["age-identity"]
        assert volume["secret"] == {"secretName": IDENTITY_SECRET, "defaultMode": 0o440,
                                    "items": [{"key": "identity.txt", "path": "identity.txt"}]}

    def test_identity_is_mounted_read_only(self):
        assert mounts_by_name(_only(self.TEMPLATE, restore=RESTORE))["age-identity"]["readOnly"] is True

    def test_identity_file_variable_names_the_mounted_file(self):
        doc = _only(self.TEMPLATE, restore=RESTORE)
        mount = mounts_by_name(doc)["age-identity"]["mountPath"]
        assert env_map(doc)["AGENT_BOM_RESTORE_IDENTITY_FILE"] == f"{mount}/identity.txt"

    def test_identity_key_is_configurable(self):
        restore = {**RESTORE, "encryption": {"existingSecret": IDENTITY_SECRET, "existingSecretKey": "key.txt"}}
        volume = volumes_by_name(_only(self.TEMPLATE, restore=restore))["age-identity"]
        assert volume["secret"]["items"] == [{"key": "key.txt", "path": "identity.txt"}]


class TestRestoreDrillCronJob:
    TEMPLATE = RESTORE_DRILL_TEMPLATE

    def test_identity_file_variable_is_set(self):
        doc = _only(self.TEMPLATE, clientEncryption={"recipients": [OPS]}, restoreDrill=DRILL)
        assert env_map(doc)["AGENT_BOM_RESTORE_IDENTITY_FILE"].endswith("/identity.txt")

    def test_identity_secret_is_a_volume(self):
        doc = _only(self.TEMPLATE, clientEncryption={"recipients": [OPS]}, restoreDrill=DRILL)
        assert volumes_by_name(doc)["age-identity"]["secret"]["secretName"] == IDENTITY_SECRET

    def test_a_drill_of_encrypted_backups_without_an_identity_is_refused(self):
        drill = {k: v for k, v in DRILL.items() if k != "encryption"}
        lines = refusal(backup_values(clientEncryption={"recipients": [OPS]}, restoreDrill=drill))
        assert [line for line in lines if "restoreDrill.encryption.existingSecret" in line] == lines


def test_recipients_and_a_config_map_together_are_refused():
    assert refusal(backup_values(clientEncryption={"recipients": [OPS], "recipientsConfigMap": "r"})) == [
        "controlPlane.backup.clientEncryption: set recipients or recipientsConfigMap, not both"]


@pytest.mark.parametrize("recipient", ["age1notavalidkey", OPS.upper(), "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "gpg:0xDEADBEEF"],
                         ids=["short", "upper-case", "ssh-dss", "gpg"])
def test_a_malformed_recipient_is_refused_at_install_naming_it(recipient):
    assert refusal(backup_values(clientEncryption={"recipients": [OPS, recipient]})) == [
        f"controlPlane.backup.clientEncryption.recipients[1]: {json.dumps(recipient)} is not an age recipient: an X25519 "
        "public key (age1 and 58 lower-case bech32 characters, as `age-keygen -y` prints it) or an SSH "
        "ssh-ed25519/ssh-rsa public key line"]


def test_a_secret_key_as_recipient_is_refused_without_echoing_it():
    secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    lines = refusal(backup_values(clientEncryption={"recipients": [secret]}))
    assert (len(lines), "is a secret key" in lines[0], secret in "".join(lines)) == (1, True, False)


def test_a_recipient_that_is_not_a_string_is_refused_by_the_schema():
    with pytest.raises(HelmError, match=r"(?i)recipients"):
        render_chart(backup_values(clientEncryption={"recipients": [42]}))
