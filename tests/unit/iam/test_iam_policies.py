"""deploy/iam/*.json: least-privilege policy documents, linted offline with parliament."""

from __future__ import annotations

import json
from typing import Any

import pytest
from parliament import analyze_policy_string

from tests.chart.helm_render import REPO

pytestmark = pytest.mark.unit

IAM_DIR = REPO / "deploy" / "iam"
POLICIES = sorted(IAM_DIR.glob("*-role-policy.json"))
BUCKET_ARN = "arn:aws:s3:::agent-bom-prod-backups"
OBJECTS_ARN = "arn:aws:s3:::agent-bom-prod-backups/agent-bom/postgres/*"


def _policy(name: str) -> dict[str, Any]:
    return json.loads((IAM_DIR / f"{name}-role-policy.json").read_text())


def _actions(name: str) -> set[str]:
    actions: set[str] = set()
    for statement in _policy(name)["Statement"]:
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)
    return actions


def _statement_for(name: str, action: str) -> dict[str, Any]:
    (statement,) = [
        s for s in _policy(name)["Statement"]
        if action == s["Action"] or (isinstance(s["Action"], list) and action in s["Action"])
    ]
    return statement


class TestParliament:
    def test_the_three_policies_exist(self):
        assert [p.name for p in POLICIES] == [
            "backup-role-policy.json", "prune-role-policy.json", "restore-role-policy.json",
        ]

    @pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
    def test_policy_has_no_findings(self, path):
        findings = analyze_policy_string(path.read_text(), include_community_auditors=True).findings
        assert [(f.issue, f.detail) for f in findings] == []

    def test_parliament_reports_a_mismatched_resource(self):
        """Guards the lint: an object action on a bucket ARN is a finding."""
        bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": BUCKET_ARN}]}
        assert [f.issue for f in analyze_policy_string(json.dumps(bad)).findings] == ["RESOURCE_MISMATCH"]


class TestBackupRole:
    def test_actions_are_exactly_write_list_locate_and_kms(self):
        assert _actions("backup") == {
            "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
            "s3:ListBucket", "s3:GetBucketLocation", "kms:GenerateDataKey", "kms:Decrypt",
        }

    @pytest.mark.parametrize("action", ["s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:*"])
    def test_cannot_read_or_delete(self, action):
        assert action not in _actions("backup")

    def test_writes_only_under_the_prefix(self):
        assert _statement_for("backup", "s3:PutObject")["Resource"] == OBJECTS_ARN

    def test_list_is_restricted_to_the_prefix(self):
        condition = _statement_for("backup", "s3:ListBucket")["Condition"]
        assert condition == {"StringLike": {"s3:prefix": ["agent-bom/postgres/", "agent-bom/postgres/*"]}}

    def test_kms_only_through_s3(self):
        condition = _statement_for("backup", "kms:GenerateDataKey")["Condition"]
        assert condition == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


class TestRestoreRole:
    def test_actions_are_exactly_read_list_locate_decrypt_and_the_safety_write(self):
        assert _actions("restore") == {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "kms:Decrypt",
                                       "s3:PutObject", "kms:GenerateDataKey"}

    def test_writes_only_safety_backups(self):
        assert _statement_for("restore", "s3:PutObject")["Resource"] == OBJECTS_ARN.removesuffix("*") + "safety/*"

    @pytest.mark.parametrize("action", ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl"])
    def test_cannot_delete_or_change_access(self, action):
        assert action not in _actions("restore")

    def test_reads_only_under_the_prefix(self):
        assert _statement_for("restore", "s3:GetObject")["Resource"] == OBJECTS_ARN


class TestPruneRole:
    def test_deletes_only_under_the_prefix(self):
        assert _statement_for("prune", "s3:DeleteObject")["Resource"] == OBJECTS_ARN

    def test_deletes_versions_for_versioned_buckets(self):
        assert "s3:DeleteObjectVersion" in _actions("prune")

    def test_reads_the_manifests_only(self):
        # prune classifies backups as restore does (the backup catalog reads manifests);
        # it never reads a dump or a roles object
        assert _statement_for("prune", "s3:GetObject")["Resource"] == \
            "arn:aws:s3:::agent-bom-prod-backups/agent-bom/postgres/*.manifest.json"

    def test_decrypts_only_through_s3(self):
        condition = _statement_for("prune", "kms:Decrypt")["Condition"]
        assert condition == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}

    def test_may_read_the_bucket_versioning_state(self):
        assert _statement_for("prune", "s3:GetBucketVersioning")["Resource"] == "arn:aws:s3:::agent-bom-prod-backups"

    def test_cannot_write(self):
        assert "s3:PutObject" not in _actions("prune")


def test_readme_explains_every_placeholder():
    readme = (IAM_DIR / "README.md").read_text()
    placeholders = ["agent-bom-prod-backups", "agent-bom/postgres", "us-east-1", "111122223333",
                    "1234abcd-12ab-34cd-56ef-1234567890ab"]
    assert [p for p in placeholders if f"`{p}`" not in readme] == []
