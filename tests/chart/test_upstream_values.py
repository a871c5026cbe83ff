"""Values written for the full agent-bom chart render this chart's backup path unchanged.

tests/chart/fixtures/agent-bom-eks-production-values.yaml is in the shape of upstream agent-bom's
production example (control plane with its Postgres identities, API, UI, ingress, external
secrets, scanner, monitor, network policy) with the runbook's backup block; the keys that
belong to the rest of agent-bom are accepted and ignored.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm_render import CRONJOB_TEMPLATE, container, env_map, pod_spec, refusal, render_chart

PRODUCTION = Path(__file__).parent / "fixtures" / "agent-bom-eks-production-values.yaml"
FILLED_IN = {
    "REPLACE_ME_ACCOUNT_ID": "123456789012",
    "REPLACE_ME_AGENT_BOM_BACKUP_ROLE": "agent-bom-backup",
    "REPLACE_ME_BUCKET_REGION": "us-east-1",
}


def _values(filled: bool) -> dict[str, Any]:
    text = PRODUCTION.read_text()
    if filled:
        for placeholder, value in FILLED_IN.items():
            text = text.replace(placeholder, value)
    return yaml.safe_load(text)


@functools.lru_cache(maxsize=1)
def _docs() -> tuple[dict[str, Any], ...]:
    return tuple(render_chart(_values(filled=True)))


def _cronjob() -> dict[str, Any]:
    (doc,) = [d for d in _docs() if d["kind"] == "CronJob"]
    return doc


class TestProductionValues:
    def test_renders_only_the_backup_components_objects(self):
        assert sorted((d["kind"], d["metadata"]["name"]) for d in _docs()) == [
            ("CronJob", "agent-bom-control-plane-backup"), ("ServiceAccount", "agent-bom-control-plane-backup")]

    def test_cronjob_is_in_the_release_namespace(self):
        assert _cronjob()["metadata"]["namespace"] == "agent-bom"

    def test_jobs_carry_the_runbooks_component_label(self):
        assert _cronjob()["spec"]["jobTemplate"]["metadata"]["labels"]["app.kubernetes.io/component"] == "control-plane-backup"

    def test_schedule_is_the_runbooks(self):
        assert _cronjob()["spec"]["schedule"] == "0 3 * * *"

    def test_backs_up_through_the_maintenance_identity(self):
        assert env_map(_cronjob())["AGENT_BOM_POSTGRES_URL"] == {"secretKeyRef": {
            "name": "agent-bom-control-plane-maintenance", "key": "AGENT_BOM_POSTGRES_MAINTENANCE_URL"}}

    def test_with_the_bypass_its_policies_honour(self):
        env = env_map(_cronjob())
        assert (env["AGENT_BOM_BACKUP_ENABLE_ROW_SECURITY"], env["AGENT_BOM_BACKUP_SESSION_SETTINGS"]) == ("true", "app.bypass_rls=1")

    def test_the_app_and_admin_identities_are_not_used(self):
        refs = str(container(_cronjob())["env"])
        assert "agent-bom-control-plane-db" not in refs
        assert "agent-bom-control-plane-admin" not in refs

    def test_service_account_carries_the_filled_in_role(self):
        (sa,) = [d for d in _docs() if d["kind"] == "ServiceAccount"]
        assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agent-bom-backup"}

    def test_pod_runs_as_that_service_account(self):
        assert pod_spec(_cronjob())["serviceAccountName"] == "agent-bom-control-plane-backup"

    def test_region_is_the_filled_in_one(self):
        assert env_map(_cronjob())["AWS_REGION"] == "us-east-1"

    def test_placeholders_left_in_are_refused_naming_each_one(self):
        assert refusal(_values(filled=False)) == [
            'controlPlane.backup.destination.bucketRegion still holds the placeholder "REPLACE_ME_BUCKET_REGION": '
            "replace it with your real value",
            'controlPlane.backup.serviceAccount.annotations["eks.amazonaws.com/role-arn"] still holds the placeholders '
            '"REPLACE_ME_ACCOUNT_ID", "REPLACE_ME_AGENT_BOM_BACKUP_ROLE": replace them with your real values',
        ]

    @pytest.mark.parametrize("placeholder", sorted(FILLED_IN))
    def test_each_placeholder_alone_is_refused(self, placeholder):
        values = yaml.safe_load(yaml.safe_dump(_values(filled=True)).replace(FILLED_IN[placeholder], placeholder, 1))
        assert [placeholder in line for line in refusal(values)] == [True]


class TestUpstreamDefaults:
    """Keys of upstream's controlPlane.backup defaults: honoured, or refused naming the replacement."""

    UPSTREAM_BACKUP = {
        "enabled": True, "schedule": "0 3 * * *", "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
        "suspend": False, "serviceAccountName": "", "serviceAccount": {"create": True, "name": "", "annotations": {}},
        "destination": {"bucket": "agent-bom-prod-backups", "prefix": "agent-bom/postgres", "bucketRegion": "",
                        "region": "us-east-1", "endpoint": "", "extraArgs": [],
                        "encryption": {"enabled": True, "mode": "AES256", "kmsKeyId": ""}},
        "retentionDays": 14, "env": [], "envFrom": [],
    }

    def test_upstream_defaults_without_its_two_containers_render(self):
        docs = render_chart({"controlPlane": {"enabled": True, "backup": self.UPSTREAM_BACKUP}})
        assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "CronJob") == [
            "agent-bom-control-plane-backup", "agent-bom-control-plane-retention"]

    def test_upstream_region_default_reaches_the_job(self):
        (doc,) = render_chart({"controlPlane": {"backup": self.UPSTREAM_BACKUP}}, show_only=[CRONJOB_TEMPLATE])
        assert env_map(doc)["AGENT_BOM_BACKUP_REGION"] == "us-east-1"

    def test_upstream_two_container_keys_are_refused_naming_the_replacement(self):
        backup = {**self.UPSTREAM_BACKUP,
                  "image": {"dumpRepository": "postgres", "dumpTag": "16-alpine", "uploadRepository": "amazon/aws-cli",
                            "uploadTag": "2.17.52", "pullPolicy": "IfNotPresent"},
                  "resources": {"dump": {"requests": {"cpu": "100m"}}, "upload": {"requests": {"cpu": "50m"}}}}
        problems = refusal({"controlPlane": {"backup": backup}})
        assert [p.split(":", 1)[0] for p in problems] == [
            f"controlPlane.backup.image.{k}" for k in ("dumpRepository", "dumpTag", "uploadRepository", "uploadTag")
        ] + ["controlPlane.backup.resources.dump", "controlPlane.backup.resources.upload"]


class TestUpstreamFullDefaults:
    """Upstream's full values.yaml as `helm show values` prints it, backup enabled: its
    controlPlane.enabled is false and its backup block carries the two-container keys. Exactly
    seven lines are refused (the chart README says which), and an override file that nulls the
    six keys and enables the control plane makes it render."""

    UPSTREAM = {
        "serviceAccount": {"create": True, "name": "agent-bom", "annotations": {}},
        "networkPolicy": {"enabled": True, "allowDns": True},
        "controlPlane": {"enabled": False, "api": {"enabled": True}, "backup": {
            **TestUpstreamDefaults.UPSTREAM_BACKUP,
            "image": {"dumpRepository": "postgres", "dumpTag": "16-alpine", "uploadRepository": "amazon/aws-cli",
                      "uploadTag": "2.17.52", "pullPolicy": "IfNotPresent"},
            "resources": {"dump": {"requests": {"memory": "256Mi"}}, "upload": {"requests": {"memory": "128Mi"}}}}},
    }
    OVERRIDE = {"controlPlane": {"enabled": True, "backup": {
        "image": {"dumpRepository": None, "dumpTag": None, "uploadRepository": None, "uploadTag": None},
        "resources": {"dump": None, "upload": None}}}}

    def test_seven_lines_are_refused(self):
        assert [p.split(":", 1)[0].split("=", 1)[0] for p in refusal(self.UPSTREAM)] == [
            "controlPlane.enabled"] + [f"controlPlane.backup.image.{k}" for k in (
                "dumpRepository", "dumpTag", "uploadRepository", "uploadTag")] + [
            "controlPlane.backup.resources.dump", "controlPlane.backup.resources.upload"]

    def test_the_documented_override_makes_it_render(self, tmp_path):
        upstream = tmp_path / "agent-bom-values.yaml"
        upstream.write_text(yaml.safe_dump(self.UPSTREAM))
        docs = render_chart(self.OVERRIDE, values_files=[upstream])
        assert "agent-bom-control-plane-backup" in [d["metadata"]["name"] for d in docs if d["kind"] == "CronJob"]
