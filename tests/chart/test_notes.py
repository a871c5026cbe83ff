"""templates/NOTES.txt: what was scheduled, where backups go, and the runbook's commands with
this release's names filled in (rendered by `helm install --dry-run=client`, Helm 4)."""

from __future__ import annotations

import functools

import pytest

from tests.chart.helm_render import RUNBOOK_MINIMAL_VALUES, backup_values, render_notes


@functools.lru_cache(maxsize=None)
def _runbook_notes() -> str:
    return render_notes(RUNBOOK_MINIMAL_VALUES)


class TestNotesEnabled:
    @pytest.mark.parametrize(
        "line",
        [
            "kubectl -n agent-bom get cronjob agent-bom-control-plane-backup",
            "kubectl -n agent-bom get jobs -l app.kubernetes.io/component=control-plane-backup",
            'export AWS_REGION="<your-backup-bucket-region>"',
            'aws s3 ls "s3://agent-bom-prod-backups/agent-bom/postgres/" \\',
            'export BACKUP_URI="s3://agent-bom-prod-backups/agent-bom/postgres/agent-bom-YYYYMMDDTHHMMSSZ.dump"',
            "deploy/ops/restore-postgres-backup.sh \\",
            'psql "$RESTORE_POSTGRES_URL" -c "select count(*) from audit_log;"',
            "scripts/deploy/verify-eks-reference.sh \\",
        ],
        ids=["get-cronjob", "get-jobs", "region", "s3-ls", "backup-uri", "restore-script", "psql-count", "verify"],
    )
    def test_runbook_command_is_printed(self, line):
        assert line in [s.strip() for s in _runbook_notes().splitlines()]

    def test_restore_positionals_are_the_runbooks(self):
        lines = [s.strip() for s in _runbook_notes().splitlines()]
        start = lines.index("deploy/ops/restore-postgres-backup.sh \\")
        assert lines[start + 1:start + 4] == ['"$BACKUP_URI" \\', '"$RESTORE_POSTGRES_URL" \\', '"$AWS_REGION"']

    def test_schedule_is_reported(self):
        assert 'Schedule:     "0 3 * * *"' in _runbook_notes()

    def test_destination_is_reported(self):
        assert "Destination:  s3://agent-bom-prod-backups/agent-bom/postgres/" in _runbook_notes()

    def test_encryption_is_reported(self):
        assert "Encryption:   aws:kms (alias/agent-bom-backups)" in _runbook_notes()

    def test_database_secret_is_named(self):
        assert "Secret agent-bom-postgres, key AGENT_BOM_POSTGRES_URL" in _runbook_notes()

    def test_no_password_in_the_example_restore_url(self):
        assert "REDACTED@" not in _runbook_notes()

    def test_names_follow_release_and_namespace(self):
        notes = render_notes(backup_values(), namespace="platform", name="cp")
        assert "kubectl -n platform get cronjob cp-agent-bom-control-plane-backup" in notes

    def test_endpoint_is_passed_to_aws_cli_for_s3_compatible_stores(self):
        notes = render_notes(backup_values(destination={"endpointUrl": "https://minio.example:9000"}))
        assert '--endpoint-url "https://minio.example:9000"' in notes

    def test_helm_test_command_only_when_enabled(self):
        assert "helm test agent-bom -n agent-bom" not in _runbook_notes()

    def test_helm_test_command_when_enabled(self):
        assert "helm test agent-bom -n agent-bom" in render_notes(backup_values(helmTest={"enabled": True}))

    def test_missing_alerting_is_called_out(self):
        assert "No alert is configured" in _runbook_notes()


class TestNotesDisabled:
    def test_says_backups_are_disabled(self):
        assert "backup is disabled" in render_notes({})

    def test_shows_how_to_enable(self):
        assert "--set controlPlane.backup.enabled=true" in render_notes({})
