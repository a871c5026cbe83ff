"""templates/controlplane-restore-drill-cronjob.yaml: restore the latest backup into a
scratch database on a schedule and verify it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import (
    CRONJOB_TEMPLATE,
    RESTORE_DRILL_TEMPLATE,
    backup_values,
    container,
    env_cases,
    env_map,
    own_role,
    pod_spec,
    render_chart,
    volumes_by_name,
)

DRILL = {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
         **own_role("agent-bom-restore-drill")}


def _drill(**drill_overrides: Any) -> dict[str, Any]:
    values = backup_values(restoreDrill=DRILL)
    values["controlPlane"]["backup"]["restoreDrill"].update(drill_overrides)
    (doc,) = render_chart(values, show_only=[RESTORE_DRILL_TEMPLATE])
    return doc


class TestRestoreDrillCronJob:
    TEMPLATE = RESTORE_DRILL_TEMPLATE

    def test_off_by_default(self):
        assert render_chart(backup_values(), show_only=[self.TEMPLATE]) == []

    def test_off_when_backups_are_disabled(self):
        assert render_chart(backup_values(enabled=False, restoreDrill=DRILL), show_only=[self.TEMPLATE]) == []

    def test_runbook_job_selector_matches_backups_only(self):
        """`kubectl get jobs -l app.kubernetes.io/component=control-plane-backup` shows backups only."""
        docs = render_chart(backup_values(restoreDrill=DRILL, helmTest={"enabled": True}, retentionDays=30,
                                          retention=own_role("agent-bom-prune"),
                                          restore={"enabled": True, "target": {"existingSecret": "t"},
                                                   **own_role("agent-bom-restore")}))
        matching = [
            d["metadata"]["name"] for d in docs if d["kind"] == "CronJob"
            and d["spec"]["jobTemplate"]["metadata"]["labels"]["app.kubernetes.io/component"] == "control-plane-backup"
        ]
        assert matching == ["agent-bom-control-plane-backup"]

    def test_schedule(self):
        assert _drill(schedule="0 7 * * 6")["spec"]["schedule"] == "0 7 * * 6"

    def test_concurrency_policy_is_forbid(self):
        assert _drill()["spec"]["concurrencyPolicy"] == "Forbid"

    def test_command_is_the_cli(self):
        assert container(_drill())["command"] == ["agent-bom-backup"]

    def test_target_url_comes_from_its_own_secret(self):
        assert env_map(_drill())["AGENT_BOM_RESTORE_POSTGRES_URL"] == {
            "secretKeyRef": {"name": "scratch-db", "key": "AGENT_BOM_RESTORE_POSTGRES_URL"}
        }

    def test_the_backups_source_url_is_not_given(self):
        """The CLI recognises the source by the manifest's server identity and refuses to clean it."""
        assert "AGENT_BOM_POSTGRES_URL" not in env_map(_drill())

    def test_a_live_source_check_reads_its_own_low_privilege_secret(self):
        assert env_map(_drill(liveSourceCheck={"existingSecret": "live-check", "existingSecretKey": "URL"}))[
            "AGENT_BOM_POSTGRES_URL"] == {"secretKeyRef": {"name": "live-check", "key": "URL"}}

    @env_cases(
        ("AGENT_BOM_RESTORE_CLEAN", "true"),
        ("AGENT_BOM_RESTORE_NO_SAFETY_BACKUP", "true"),
        ("AGENT_BOM_RESTORE_OPERATOR", "restore-drill"),
        ("AGENT_BOM_RESTORE_NO_OWNER", "true"),
        ("AGENT_BOM_RESTORE_NO_PRIVILEGES", "true"),
        ("AGENT_BOM_BACKUP_SCRATCH_DIR", "/tmp"),
        ("AGENT_BOM_BACKUP_BUCKET", "agent-bom-prod-backups"),
        ("AGENT_BOM_BACKUP_PREFIX", "agent-bom/postgres"),
        ("AWS_REGION", "us-east-1"),
    )
    def test_env_defaults(self, name, expected):
        assert env_map(_drill())[name] == expected

    @pytest.mark.parametrize(
        "name",
        ["AGENT_BOM_RESTORE_CREATE_MISSING_ROLES", "AGENT_BOM_RESTORE_JOBS", "AGENT_BOM_BACKUP_SSE",
         "AGENT_BOM_BACKUP_KMS_KEY_ID", "AGENT_BOM_RESTORE_APPROVAL"],
    )
    def test_env_absent_by_default(self, name):
        assert name not in env_map(_drill())

    @pytest.mark.parametrize(
        ("overrides", "name", "expected"),
        [
            ({"createMissingRoles": True}, "AGENT_BOM_RESTORE_CREATE_MISSING_ROLES", "true"),
            ({"jobs": 4}, "AGENT_BOM_RESTORE_JOBS", "4"),
        ],
        ids=["create-missing-roles", "jobs"],
    )
    def test_optional_env(self, overrides, name, expected):
        assert env_map(_drill(**overrides))[name] == expected

    @pytest.mark.parametrize("flag", ["noOwner", "noPrivileges"])
    def test_owner_and_privileges_restored_when_asked(self, flag):
        env_name = {"noOwner": "AGENT_BOM_RESTORE_NO_OWNER", "noPrivileges": "AGENT_BOM_RESTORE_NO_PRIVILEGES"}[flag]
        assert env_name not in env_map(_drill(**{flag: False}))

    def test_restore_failures_fail_the_job_at_once(self):
        rule = _drill()["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"][0]
        assert (rule["onExitCodes"]["containerName"], rule["onExitCodes"]["values"]) == ("restore-drill", [2, 3, 7, 8, 9, 11])

    def test_uses_its_own_service_account(self):
        assert pod_spec(_drill())["serviceAccountName"] == "agent-bom-control-plane-restore-drill"

    def test_scratch_size_limit(self):
        assert volumes_by_name(_drill())["tmp"]["emptyDir"]["sizeLimit"] == "20Gi"

    def test_resources_are_its_own(self):
        assert container(_drill())["resources"]["limits"]["memory"] == "2Gi"

    def test_web_identity_assumes_the_restore_role(self):
        values = backup_values(
            restoreDrill={**DRILL, "webIdentityRoleArn": "arn:aws:iam::111122223333:role/agent-bom-restore-drill"},
            webIdentity={"enabled": True, "roleArn": "arn:aws:iam::111122223333:role/agent-bom-backup"},
        )
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        assert env_map(doc)["AWS_ROLE_ARN"] == "arn:aws:iam::111122223333:role/agent-bom-restore-drill"

    def test_static_credentials_secret_is_its_own(self):
        """Never the backup's (the chart refuses that: tests/chart/test_least_privilege.py)."""
        values = backup_values(
            restoreDrill={**DRILL, "staticCredentialsSecret": "drill-creds"},
            destination={"staticCredentials": {"enabled": True, "existingSecret": "backup-creds"}},
        )
        (doc,) = render_chart(values, show_only=[self.TEMPLATE])
        assert env_map(doc)["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == "drill-creds"

    def test_backup_cronjob_is_unchanged_by_the_drill(self):
        with_drill = render_chart(backup_values(restoreDrill=DRILL), show_only=[CRONJOB_TEMPLATE])
        without = render_chart(backup_values(), show_only=[CRONJOB_TEMPLATE])
        assert with_drill == without
