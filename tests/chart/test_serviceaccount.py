"""templates/serviceaccount.yaml: the backup ServiceAccount (IRSA and friends) and the own
ServiceAccounts of the restore drill, the in-cluster restore and the retention Job (each reads
or deletes backups, which the backup identity cannot)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import RUNBOOK_VALUES, SERVICEACCOUNT_TEMPLATE, backup_values, own_role, render_chart

DRILL = {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
         **own_role("agent-bom-restore-drill")}


def _accounts(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in render_chart(values, show_only=[SERVICEACCOUNT_TEMPLATE])}


class TestBackupServiceAccount:
    TEMPLATE = SERVICEACCOUNT_TEMPLATE
    NAME = "agent-bom-control-plane-backup"

    def test_default_values_render_nothing(self):
        assert render_chart(show_only=[self.TEMPLATE]) == []

    def test_common_annotations_merge_with_its_own(self):
        values = backup_values()
        values["commonAnnotations"] = {"owner": "platform", "eks.amazonaws.com/role-arn": "overridden?"}
        assert _accounts(values)[self.NAME]["metadata"]["annotations"] == {
            "owner": "platform", "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/agent-bom-backup"}

    @pytest.mark.parametrize(
        "annotations",
        [
            {"iam.gke.io/gcp-service-account": "agent-bom-backup@project.iam.gserviceaccount.com"},
            {"azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000000"},
        ],
        ids=["gke-workload-identity", "azure-workload-identity"],
    )
    def test_other_workload_identity_annotations_pass_through(self, annotations):
        values = backup_values(serviceAccount={"annotations": None})
        values["controlPlane"]["backup"]["serviceAccount"]["annotations"] = annotations
        assert _accounts(values)[self.NAME]["metadata"]["annotations"] == annotations

    def test_no_annotations_key_without_annotations(self):
        values = backup_values(serviceAccount={"annotations": None})
        assert "annotations" not in _accounts(values)[self.NAME]["metadata"]

    def test_api_token_not_automounted(self):
        assert _accounts(RUNBOOK_VALUES)[self.NAME]["automountServiceAccountToken"] is False

    def test_component_label(self):
        labels = _accounts(RUNBOOK_VALUES)[self.NAME]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "control-plane-backup"

    def test_existing_service_account_is_not_created(self):
        values = backup_values(serviceAccount={"create": False, "name": "platform-backup", "annotations": None})
        assert render_chart(values, show_only=[self.TEMPLATE]) == []


    def test_custom_name(self):
        values = backup_values(serviceAccount={"name": "backup-writer"})
        assert list(_accounts(values)) == ["backup-writer"]


class TestRestoreDrillServiceAccount:
    TEMPLATE = SERVICEACCOUNT_TEMPLATE
    NAME = "agent-bom-control-plane-restore-drill"

    def test_created_with_the_drill(self):
        assert self.NAME in _accounts(backup_values(restoreDrill=DRILL))

    def test_absent_without_the_drill(self):
        assert self.NAME not in _accounts(RUNBOOK_VALUES)

    def test_carries_its_own_annotations(self):
        drill = {**DRILL, "serviceAccount": {"annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/agent-bom-restore"}}}
        sa = _accounts(backup_values(restoreDrill=drill))[self.NAME]
        assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/agent-bom-restore"}

    def test_component_label(self):
        labels = _accounts(backup_values(restoreDrill=DRILL))[self.NAME]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "control-plane-restore-drill"

    def test_not_created_when_reusing_one(self):
        drill = {**DRILL, "serviceAccount": {"create": False, "name": "restore-reader"}}
        assert self.NAME not in _accounts(backup_values(restoreDrill=drill))


@pytest.mark.parametrize(
    ("overrides", "name", "component"),
    [
        ({"restore": {"enabled": True, "target": {"existingSecret": "t"}, **own_role("agent-bom-restore")}},
         "agent-bom-control-plane-restore", "control-plane-restore"),
        ({"retentionDays": 30, "retention": own_role("agent-bom-prune")}, "agent-bom-control-plane-retention",
         "control-plane-retention"),
    ],
    ids=["restore", "retention"],
)
class TestOwnServiceAccounts:
    TEMPLATE = SERVICEACCOUNT_TEMPLATE

    def test_created_with_its_component(self, overrides, name, component):
        assert _accounts(backup_values(**overrides))[name]["metadata"]["labels"]["app.kubernetes.io/component"] == component

    def test_absent_without_it(self, overrides, name, component):
        assert name not in _accounts(backup_values())

    def test_carries_its_own_annotations(self, overrides, name, component):
        key = "restore" if "restore" in overrides else "retention"
        role = f"arn:aws:iam::111122223333:role/agent-bom-{key}"
        values = backup_values(**overrides)
        values["controlPlane"]["backup"].setdefault(key, {})["serviceAccount"] = {"annotations": {"eks.amazonaws.com/role-arn": role}}
        assert _accounts(values)[name]["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}

    def test_api_token_not_automounted(self, overrides, name, component):
        assert _accounts(backup_values(**overrides))[name]["automountServiceAccountToken"] is False
