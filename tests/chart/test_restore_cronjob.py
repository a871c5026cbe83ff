"""templates/controlplane-restore-cronjob.yaml: the in-cluster restore, a suspended CronJob to
instantiate with `kubectl create job --from=cronjob/...` (tests/image/test_restore_pod_spec.py
runs its pod spec in the image against a real PostgreSQL and S3 endpoint)."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from tests.chart.helm_render import CRONJOB_TEMPLATE, RESTORE_TEMPLATE, backup_values, container, env_map
from tests.chart.helm_render import mounts_by_name, own_role, pod_spec, render_chart, volumes_by_name

RESTORE = {"enabled": True, "target": {"existingSecret": "agent-bom-restore-target"}, **own_role("agent-bom-restore")}


@functools.lru_cache(maxsize=None)
def _cached(overrides_json: str) -> dict[str, Any]:
    overrides = json.loads(overrides_json)
    (doc,) = render_chart(backup_values(**overrides), show_only=[RESTORE_TEMPLATE])
    return doc


def _restore(**restore: Any) -> dict[str, Any]:
    """The rendered restore CronJob with restore values merged over RESTORE (and other backup keys)."""
    others = restore.pop("backup", {})
    return _cached(json.dumps({**others, "restore": {**RESTORE, **restore}}, sort_keys=True))


class TestRestoreCronJob:
    TEMPLATE = RESTORE_TEMPLATE

    def test_off_when_backups_are_disabled(self):
        assert render_chart(backup_values(enabled=False, restore=RESTORE), show_only=[self.TEMPLATE]) == []

    def test_never_scheduled(self):
        """31 February never comes: the controller never starts it, even if someone unsuspends it."""
        assert _restore()["spec"]["schedule"] == "0 0 31 2 *"

    def test_one_attempt(self):
        assert _restore()["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0

    def test_no_concurrent_restores(self):
        assert _restore()["spec"]["concurrencyPolicy"] == "Forbid"

    def test_annotation_says_how_to_instantiate_it(self):
        assert _restore()["metadata"]["annotations"]["agent-bom.io/instantiate"] == (
            "kubectl -n agent-bom create job --from=cronjob/agent-bom-control-plane-restore "
            "agent-bom-control-plane-restore-$(date +%s)")

    def test_name_stays_within_52_characters_for_long_releases(self):
        (doc,) = render_chart(backup_values(restore=RESTORE), show_only=[self.TEMPLATE], name="a" * 53)
        assert len(doc["metadata"]["name"]) == 52
        assert doc["metadata"]["name"].endswith("-control-plane-restore")

    def test_runbook_job_selector_does_not_match_it(self):
        assert _restore()["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"][
            "app.kubernetes.io/component"] != "control-plane-backup"


class TestRestoreEnvironment:
    TEMPLATE = RESTORE_TEMPLATE

    def test_the_pod_name_names_the_report(self):
        assert env_map(_restore())["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}

    def test_backup_uri_is_defined_before_the_argument_uses_it(self):
        names = [e["name"] for e in container(_restore())["env"]]
        assert names.index("BACKUP_URI") < names.index("AGENT_BOM_RESTORE_REPORT")

    def test_backup_uri_follows_value(self):
        uri = "s3://agent-bom-prod-backups/agent-bom/postgres/agent-bom-20260101T030000Z.dump"
        assert env_map(_restore(backupUri=uri))["BACKUP_URI"] == uri

    def test_the_backups_source_url_is_not_given(self):
        """The CLI recognises the source by the manifest's server identity (and refuses it without approval)."""
        assert "AGENT_BOM_POSTGRES_URL" not in env_map(_restore())

    def test_the_maintenance_identity_never_reaches_the_restore(self):
        values = backup_values(restore=RESTORE)
        values["controlPlane"]["postgresSecrets"] = {"enabled": True, "maintenanceSecretRef": {"name": "maint"}}
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        assert "maint" not in json.dumps(container(doc))

    def test_a_live_source_check_reads_its_own_low_privilege_secret(self):
        doc = _restore(liveSourceCheck={"existingSecret": "live-check"})
        assert env_map(doc)["AGENT_BOM_POSTGRES_URL"] == {
            "secretKeyRef": {"name": "live-check", "key": "AGENT_BOM_POSTGRES_URL"}}

    def test_target_key_follows_value(self):
        doc = _restore(target={"existingSecret": "t", "existingSecretKey": "url"})
        assert env_map(doc)["AGENT_BOM_RESTORE_POSTGRES_URL"] == {"secretKeyRef": {"name": "t", "key": "url"}}

    #: one render for the independent settings (each parameter below checks one of them)
    SETTINGS = {"clean": True, "confirmTarget": "agent_bom", "operator": "alice",
                "createMissingRoles": True, "noOwner": True, "noPrivileges": True, "jobs": 4, "dryRun": True,
                "terminateSessions": True}

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("AGENT_BOM_RESTORE_CLEAN", "true"),
            ("AGENT_BOM_RESTORE_CONFIRM_TARGET", "agent_bom"),
            ("AGENT_BOM_RESTORE_OPERATOR", "alice"),
            ("AGENT_BOM_RESTORE_CREATE_MISSING_ROLES", "true"),
            ("AGENT_BOM_RESTORE_NO_OWNER", "true"),
            ("AGENT_BOM_RESTORE_NO_PRIVILEGES", "true"),
            ("AGENT_BOM_RESTORE_JOBS", "4"),
            ("AGENT_BOM_RESTORE_DRY_RUN", "true"),
            ("AGENT_BOM_RESTORE_TERMINATE_SESSIONS", "true"),
        ],
        ids=["clean", "confirm-target", "operator", "create-missing-roles", "no-owner", "no-privileges",
             "jobs", "dry-run", "terminate-sessions"],
    )
    def test_value_reaches_env(self, name, expected):
        assert env_map(_restore(**self.SETTINGS))[name] == expected

    @pytest.mark.parametrize("name", [
        "AGENT_BOM_RESTORE_CLEAN", "AGENT_BOM_RESTORE_CONFIRM_TARGET", "AGENT_BOM_RESTORE_APPROVAL",
        "AGENT_BOM_RESTORE_CREATE_MISSING_ROLES", "AGENT_BOM_RESTORE_NO_OWNER", "AGENT_BOM_RESTORE_NO_PRIVILEGES",
        "AGENT_BOM_RESTORE_JOBS", "AGENT_BOM_RESTORE_DRY_RUN", "AGENT_BOM_RESTORE_NO_SAFETY_BACKUP",
        "AGENT_BOM_RESTORE_TERMINATE_SESSIONS",
    ])
    def test_cli_default_applies_when_unset(self, name):
        """Refusals stay on by default: nothing cleans, approves or skips a check unless asked."""
        assert name not in env_map(_restore())

    def test_safety_backup_goes_to_the_bucket_by_default(self):
        """The pod's files are gone with the pod: the go-back path must outlive the Job."""
        assert env_map(_restore())["AGENT_BOM_RESTORE_SAFETY_BACKUP_TO_BUCKET"] == "true"

    def test_safety_backup_to_bucket_can_be_turned_off(self):
        assert "AGENT_BOM_RESTORE_SAFETY_BACKUP_TO_BUCKET" not in env_map(_restore(safetyBackupToBucket=False))

    def test_operator_defaults_to_the_in_cluster_restore(self):
        assert env_map(_restore())["AGENT_BOM_RESTORE_OPERATOR"] == "in-cluster-restore"

    @pytest.mark.parametrize("name", ["AGENT_BOM_BACKUP_SSE", "AGENT_BOM_BACKUP_KMS_KEY_ID", "AGENT_BOM_BACKUP_COMPRESSION"])
    def test_no_backup_only_settings(self, name):
        assert name not in env_map(_restore())


class TestRestoreFiles:
    """The JSON report and the safety backup: in the pod's /tmp, or on a PersistentVolumeClaim."""

    TEMPLATE = RESTORE_TEMPLATE

    @pytest.mark.parametrize(
        ("claim", "report", "safety"),
        [
            ("", "/tmp/$(POD_NAME).report.json", "/tmp/safety-backups"),
            ("restore-files", "/var/lib/agent-bom/restore/$(POD_NAME).report.json",
             "/var/lib/agent-bom/restore/safety-backups"),
        ],
        ids=["emptydir", "claim"],
    )
    def test_paths(self, claim, report, safety):
        env = env_map(_restore(persistence={"existingClaim": claim}))
        assert (env["AGENT_BOM_RESTORE_REPORT"], env["AGENT_BOM_RESTORE_SAFETY_BACKUP_DIR"]) == (report, safety)

    def test_claim_is_mounted_read_write(self):
        doc = _restore(persistence={"existingClaim": "restore-files"})
        assert (volumes_by_name(doc)["restore-files"], mounts_by_name(doc)["restore-files"]) == (
            {"name": "restore-files", "persistentVolumeClaim": {"claimName": "restore-files"}},
            {"name": "restore-files", "mountPath": "/var/lib/agent-bom/restore"})

    def test_no_claim_by_default(self):
        assert "restore-files" not in volumes_by_name(_restore())

    def test_downloaded_dump_goes_to_the_scratch_volume(self):
        assert (env_map(_restore())["AGENT_BOM_BACKUP_SCRATCH_DIR"], volumes_by_name(_restore())["tmp"]["emptyDir"]) == (
            "/tmp", {"sizeLimit": "20Gi"})


class TestRestoreIdentity:
    TEMPLATE = RESTORE_TEMPLATE

    def test_own_service_account(self):
        assert pod_spec(_restore())["serviceAccountName"] == "agent-bom-control-plane-restore"

    def test_existing_service_account(self):
        doc = _restore(serviceAccount={"create": False, "name": "restore-reader"})
        assert pod_spec(doc)["serviceAccountName"] == "restore-reader"

    def test_web_identity_assumes_the_restore_role(self):
        doc = _restore(webIdentityRoleArn="arn:aws:iam::409613851297:role/agent-bom-restore",
                       backup={"webIdentity": {"enabled": True, "roleArn": "arn:aws:iam::409613851297:role/agent-bom-backup"}})
        assert env_map(doc)["AWS_ROLE_ARN"] == "arn:aws:iam::409613851297:role/agent-bom-restore"

    def test_static_credentials_secret_is_its_own(self):
        """Never the backup's (the chart refuses that: tests/chart/test_least_privilege.py)."""
        doc = _restore(staticCredentialsSecret="restore-creds",
                       backup={"destination": {"staticCredentials": {"enabled": True, "existingSecret": "backup-creds"}}})
        assert env_map(doc)["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"]["name"] == "restore-creds"

    def test_backup_cronjob_is_unchanged_by_the_restore(self):
        with_restore = render_chart(backup_values(restore=RESTORE), show_only=[CRONJOB_TEMPLATE])
        assert with_restore == render_chart(backup_values(), show_only=[CRONJOB_TEMPLATE])
