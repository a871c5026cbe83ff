"""templates/controlplane-retention-cronjob.yaml: `retentionDays` does what it says, by running
`agent-bom-backup prune` on a schedule under its own identity (tests/operator/test_retention_cronjob_run.py
runs its container environment against a real S3 endpoint)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import RETENTION_TEMPLATE, backup_values, container, deep_merge, env_map, own_role, pod_spec, render_chart


def _retention(**overrides: Any) -> dict[str, Any]:
    values = backup_values(retentionDays=30, retention=own_role("agent-bom-prune"))
    deep_merge(values["controlPlane"]["backup"], overrides)
    (doc,) = render_chart(values, show_only=[RETENTION_TEMPLATE])
    return doc


class TestRetentionCronJob:
    TEMPLATE = RETENTION_TEMPLATE

    def test_no_retention_job_without_retention_days(self):
        assert render_chart(backup_values(), show_only=[self.TEMPLATE]) == []

    def test_off_when_backups_are_disabled(self):
        assert render_chart(backup_values(enabled=False, retentionDays=30), show_only=[self.TEMPLATE]) == []

    @pytest.mark.parametrize(
        ("name", "expected"),
        [("AGENT_BOM_PRUNE_KEEP_LAST", "7"), ("AGENT_BOM_PRUNE_DRY_RUN", "false")],
        ids=["keep-last", "deletes"],
    )
    def test_prune_settings(self, name, expected):
        assert env_map(_retention())[name] == expected

    def test_keep_last_follows_value(self):
        assert env_map(_retention(retention={"keepLast": 14}))["AGENT_BOM_PRUNE_KEEP_LAST"] == "14"

    def test_schedule_and_time_zone(self):
        spec = _retention(timeZone="Europe/Berlin", retention={"schedule": "15 4 * * *"})["spec"]
        assert (spec["schedule"], spec["timeZone"]) == ("15 4 * * *", "Europe/Berlin")

    def test_suspend(self):
        assert _retention(retention={"suspend": True})["spec"]["suspend"] is True

    def test_needs_no_database(self):
        env = env_map(_retention())
        assert [n for n in env if "POSTGRES" in n or n.startswith("PG")] == []

    def test_scope_is_the_backup_prefix(self):
        env = env_map(_retention(destination={"prefix": "team/pg"}))
        assert (env["AGENT_BOM_BACKUP_BUCKET"], env["AGENT_BOM_BACKUP_PREFIX"]) == ("agent-bom-prod-backups", "team/pg")

    def test_config_errors_fail_the_job_at_once(self):
        rule = _retention()["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"][0]
        assert (rule["onExitCodes"]["containerName"], rule["onExitCodes"]["values"]) == ("retention", [2, 3, 7, 8])

    def test_web_identity_assumes_the_prune_role(self):
        doc = _retention(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::409613851297:role/agent-bom-backup"},
                         retention={"webIdentityRoleArn": "arn:aws:iam::409613851297:role/agent-bom-prune"})
        assert env_map(doc)["AWS_ROLE_ARN"] == "arn:aws:iam::409613851297:role/agent-bom-prune"

    def test_static_credentials_are_its_own(self):
        doc = _retention(destination={"staticCredentials": {"enabled": True, "existingSecret": "backup-creds"}},
                         retention={"staticCredentialsSecret": "prune-creds"})
        assert env_map(doc)["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == "prune-creds"

    def test_runs_as_the_cli(self):
        assert (container(_retention())["command"], pod_spec(_retention())["restartPolicy"]) == (["agent-bom-backup"], "Never")
