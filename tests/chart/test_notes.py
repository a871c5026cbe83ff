"""templates/NOTES.txt, for a packaged chart: what was scheduled, where backups go, how to run
and watch a backup now, pause vs remove, how to restore in the cluster, with this release's
names filled in and no path of this repository (rendered by `helm install --dry-run=client`)."""

from __future__ import annotations

import re

import pytest

from tests.chart.helm_render import RUNBOOK_VALUES, backup_values, own_role, render_notes

RESTORE = {"enabled": True, "target": {"existingSecret": "restore-target"}, **own_role("agent-bom-restore")}


def _lines(notes: str) -> list[str]:
    return [line.strip() for line in notes.splitlines()]


def _runbook() -> str:
    return render_notes(RUNBOOK_VALUES)


class TestNotesEnabled:
    @pytest.mark.parametrize(
        "line",
        [
            "kubectl -n agent-bom get cronjob agent-bom-control-plane-backup",
            "kubectl -n agent-bom get jobs -l app.kubernetes.io/component=control-plane-backup",
            'export AWS_REGION="us-east-1"',
            'aws s3 ls "s3://agent-bom-prod-backups/agent-bom/postgres/" \\',
        ],
        ids=["get-cronjob", "get-jobs", "region", "s3-ls"],
    )
    def test_runbook_command_is_printed(self, line):
        assert line in _lines(_runbook())

    def test_manual_run_names_the_job_once_in_a_variable(self):
        lines = _lines(_runbook())
        start = lines.index('JOB="agent-bom-control-plane-backup-manual-$(date +%s)"')
        assert lines[start + 1] == 'kubectl -n agent-bom create job --from=cronjob/agent-bom-control-plane-backup "$JOB"'

    def test_logs_follow_the_job_just_created(self):
        assert 'kubectl -n agent-bom logs -f "job/$JOB"' in _lines(_runbook())

    def test_no_placeholder_job_name_to_replace_by_hand(self):
        assert "JOB_NAME" not in render_notes(backup_values(restore=RESTORE))

    @pytest.mark.parametrize("command", ["list", "check"])
    def test_complete_backups_are_confirmed_with_the_cli(self, command):
        assert any(line.startswith(f"agent-bom-backup {command} --bucket agent-bom-prod-backups "
                                   "--prefix agent-bom/postgres --region us-east-1") for line in _lines(_runbook()))

    def test_container_restore_example_carries_credentials(self):
        notes = _runbook()
        assert ("-e AWS_PROFILE" in notes, '-v "$HOME/.aws:/tmp/.aws:ro"' in notes, "-e PGPASSWORD" in notes) == (
            True, True, True)

    def test_how_to_watch_it(self):
        assert "kubectl -n agent-bom get jobs -l app.kubernetes.io/component=control-plane-backup --watch" in _lines(_runbook())

    def test_no_path_of_this_repository(self):
        assert re.findall(r"\b(deploy|scripts)/[\w./-]+", _runbook()) == []

    def test_schedule_is_reported(self):
        assert 'Schedule:     "0 3 * * *"' in _runbook()

    def test_destination_is_reported(self):
        assert "Destination:  s3://agent-bom-prod-backups/agent-bom/postgres/ (region us-east-1)" in _runbook()

    def test_customer_key_is_reported(self):
        assert "Encryption:   aws:kms (alias/agent-bom-backups)" in _runbook()

    def test_no_kms_warning_with_a_customer_key(self):
        assert "aws/s3" not in _runbook()

    def test_sse_kms_without_a_key_is_the_aws_managed_key(self):
        notes = render_notes(backup_values(destination={"encryption": {"kmsKeyId": ""}}))
        assert "Encryption:   aws:kms with the AWS-managed key aws/s3" in notes

    def test_sse_kms_without_a_key_warns(self):
        notes = render_notes(backup_values(destination={"encryption": {"kmsKeyId": ""}}))
        assert "WARNING: SSE-KMS without controlPlane.backup.destination.encryption.kmsKeyId encrypts with the" in notes

    def test_database_secret_is_named(self):
        assert "Secret agent-bom-postgres, key AGENT_BOM_POSTGRES_URL" in _runbook()

    def test_maintenance_identity_is_named(self):
        values = backup_values()
        values["controlPlane"]["postgresSecrets"] = {"enabled": True, "maintenanceSecretRef": {"name": "maint"}}
        assert "Secret maint, key AGENT_BOM_POSTGRES_MAINTENANCE_URL (maintenance identity" in render_notes(values)

    def test_suspended_cronjob_is_called_out(self):
        assert "(SUSPENDED: paused" in render_notes(backup_values(suspend=True))

    def test_pause_and_remove_are_explained(self):
        assert "--set controlPlane.backup.enabled=false deletes the" in _runbook()

    def test_names_follow_release_and_namespace(self):
        notes = render_notes(backup_values(), namespace="platform", name="cp")
        assert "kubectl -n platform get cronjob cp-agent-bom-control-plane-backup" in notes

    def test_endpoint_is_passed_to_aws_cli_for_s3_compatible_stores(self):
        notes = render_notes(backup_values(destination={"endpointUrl": "https://minio.example:9000"}))
        assert '--endpoint-url "https://minio.example:9000"' in notes

    def test_helm_test_command_only_when_enabled(self):
        assert "helm test agent-bom -n agent-bom" not in _runbook()

    def test_helm_test_command_when_enabled(self):
        assert "helm test agent-bom -n agent-bom" in render_notes(backup_values(helmTest={"enabled": True}))

    def test_missing_alerting_is_called_out(self):
        assert "No alert is configured" in _runbook()

    def test_without_in_cluster_restore_says_how_to_enable_it(self):
        assert "set controlPlane.backup.restore.enabled=true" in _runbook()


class TestNotesIdentities:
    def test_the_backups_service_account_shows_its_role(self):
        assert ("backup:       agent-bom-control-plane-backup: IRSA role "
                "arn:aws:iam::123456789012:role/agent-bom-backup") in _lines(_runbook())

    def test_an_enabled_job_without_identity_is_warned_about(self):
        """Reachable when the backup has no IRSA role either (with one, the chart refuses a
        restore without a role of its own: test_least_privilege)."""
        restore = {key: value for key, value in RESTORE.items() if key != "serviceAccount"}
        notes = render_notes(backup_values(serviceAccount={"annotations": None}, restore=restore))
        assert ("restore:      agent-bom-control-plane-restore: NONE visible" in _lines(notes),
                "WARNING: the restore Job's ServiceAccount agent-bom-control-plane-restore has no identity" in notes) == (
            True, True)

    def test_a_job_with_its_own_role_is_not_warned_about(self):
        restore = {**RESTORE, "serviceAccount": {"annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agent-bom-restore"}}}
        assert "WARNING: the restore Job" not in render_notes(backup_values(restore=restore))

    def test_the_backup_without_identity_is_warned_about(self):
        assert "WARNING: the backup Job's ServiceAccount" in render_notes(backup_values(serviceAccount={"annotations": None}))

    def test_an_existing_service_account_is_not_second_guessed(self):
        notes = render_notes(backup_values(serviceAccountName="platform-backup", serviceAccount={"annotations": None}))
        assert ("platform-backup: an existing ServiceAccount" in notes, "WARNING: the backup Job" in notes) == (True, False)

    def test_retention_gets_its_own_line(self):
        notes = render_notes(backup_values(retentionDays=30, retention={"serviceAccount": {"annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agent-bom-prune"}}}))
        assert ("retention:    agent-bom-control-plane-retention: IRSA role "
                "arn:aws:iam::123456789012:role/agent-bom-prune") in _lines(notes)


class TestNotesRestore:
    def _notes(self, **restore) -> str:
        return render_notes(backup_values(restore={**RESTORE, **restore}))

    def test_instantiation_command(self):
        lines = _lines(self._notes())
        start = lines.index('JOB="agent-bom-control-plane-restore-$(date +%s)"')
        assert lines[start + 1:start + 3] == [
            'kubectl -n agent-bom create job --from=cronjob/agent-bom-control-plane-restore "$JOB"',
            'kubectl -n agent-bom logs -f "job/$JOB"        # the restore report']

    def test_override_at_instantiation_with_kubectl_set_env(self):
        assert "| kubectl set env --local -f - -o yaml \\" in _lines(self._notes())

    def test_report_lost_without_a_claim(self):
        assert "set controlPlane.backup.restore.persistence.existingClaim to keep reports" in self._notes()

    def test_no_report_warning_with_a_claim(self):
        assert "existingClaim to keep" not in self._notes(persistence={"existingClaim": "reports"})


class TestNotesDisabled:
    def test_says_backups_are_disabled(self):
        assert "backup is disabled" in render_notes({})

    def test_shows_how_to_enable_from_the_registry(self):
        assert "oci://ghcr.io/agent-bom/charts/agent-bom --version 0.2.0" in render_notes({})
