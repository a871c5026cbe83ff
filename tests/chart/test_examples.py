"""examples/*.yaml: the EKS, GKE and MinIO values files render what they promise
(test_render_matrix.py and test_chart_lint.py render, validate and lint each of them)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import CRONJOB_TEMPLATE, REPO, SERVICEACCOUNT_TEMPLATE, env_cases, env_map, render_chart

EXAMPLES = REPO / "examples"


def _env(example: str) -> dict[str, Any]:
    (doc,) = render_chart(values_files=[EXAMPLES / f"{example}.yaml"], show_only=[CRONJOB_TEMPLATE])
    return env_map(doc)


class TestEksIrsaKms:
    def test_service_account_has_the_irsa_role(self):
        (sa,) = render_chart(values_files=[EXAMPLES / "eks-irsa-kms.yaml"], show_only=[SERVICEACCOUNT_TEMPLATE])
        assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")

    @env_cases(("AGENT_BOM_BACKUP_SSE", "aws:kms"), ("AGENT_BOM_BACKUP_KMS_KEY_ID", "alias/agent-bom-backups"),
               ("PGSSLMODE", "verify-full"))
    def test_env(self, name, expected):
        assert _env("eks-irsa-kms")[name] == expected

    def test_no_static_credentials(self):
        assert "AWS_ACCESS_KEY_ID" not in _env("eks-irsa-kms")


class TestGkeHmac:
    @env_cases(("AGENT_BOM_BACKUP_ENDPOINT_URL", "https://storage.googleapis.com"), ("AGENT_BOM_BACKUP_SSE", "none"),
               ("AGENT_BOM_BACKUP_CHECKSUM_MODE", "when_required"), ("AGENT_BOM_BACKUP_PATH_STYLE", "true"))
    def test_env(self, name, expected):
        assert _env("gke-hmac")[name] == expected

    def test_hmac_key_from_a_secret(self):
        assert _env("gke-hmac")["AWS_SECRET_ACCESS_KEY"] == {
            "secretKeyRef": {"name": "agent-bom-backup-gcs-hmac", "key": "AWS_SECRET_ACCESS_KEY"}
        }


class TestMinio:
    @env_cases(
        ("AGENT_BOM_BACKUP_ENDPOINT_URL", "https://minio.minio.svc.cluster.local:9000"),
        ("AGENT_BOM_BACKUP_PATH_STYLE", "true"),
        ("AGENT_BOM_BACKUP_CHECKSUM_MODE", "when_required"),
        ("AGENT_BOM_BACKUP_SSE", "none"),
        ("AGENT_BOM_BACKUP_CA_BUNDLE", "/etc/agent-bom/object-store-ca/ca.crt"),
    )
    def test_env(self, name, expected):
        assert _env("minio")[name] == expected

    def test_no_kms_key(self):
        assert "AGENT_BOM_BACKUP_KMS_KEY_ID" not in _env("minio")

    def test_static_credentials_from_a_secret(self):
        assert _env("minio")["AWS_ACCESS_KEY_ID"] == {
            "secretKeyRef": {"name": "agent-bom-backup-minio", "key": "AWS_ACCESS_KEY_ID"}
        }


VALUES_FILES = sorted([*EXAMPLES.glob("*.yaml"), *(REPO / "deploy" / "helm" / "agent-bom" / "ci").glob("*.yaml")])


def _database(path) -> dict:
    import yaml

    return ((yaml.safe_load(path.read_text()) or {}).get("controlPlane", {}).get("backup", {}).get("database") or {})


@pytest.mark.parametrize("path", [p for p in VALUES_FILES if _database(p).get("sslMode") == "verify-full"],
                         ids=lambda p: p.name)
def test_values_that_verify_the_server_bring_its_ca_bundle(path):
    ca = _database(path).get("caBundle") or {}
    assert ca.get("secretName") or ca.get("configMapName")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_no_documentation_account_or_token_in_an_example(path):
    assert [t for t in ("111122223333", "ACCOUNT_ID", "REPLACE_ME", "CHANGE_ME") if t in path.read_text()] == []
