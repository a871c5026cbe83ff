"""deploy/iam/ trust set-up: one role per job, each trusting exactly the ServiceAccount the chart
renders for that job (release agent-bom-backup, namespace agent-bom), in the IRSA trust policies,
the eksctl files and the Terraform; the Pod Identity trust policy trusts the EKS service only."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest
import yaml

from tests.chart.helm_render import REPO, backup_values, own_role, render_chart

IAM_DIR = REPO / "deploy" / "iam"
#: job -> (trust policy, the component label of its pods, permission policy)
JOBS = {
    "backup": ("backup-trust-policy.json", "control-plane-backup", "backup-role-policy.json"),
    "restore": ("restore-trust-policy.json", "control-plane-restore", "restore-role-policy.json"),
    "drill": ("drill-trust-policy.json", "control-plane-restore-drill", "restore-role-policy.json"),
    "retention": ("retention-trust-policy.json", "control-plane-retention", "prune-role-policy.json"),
}


@functools.lru_cache(maxsize=1)
def chart_service_accounts() -> dict[str, str]:
    """component label -> the ServiceAccount its pods run as, every job enabled."""
    values = backup_values(
        restore={"enabled": True, "target": {"existingSecret": "t"}, **own_role("agent-bom-restore")},
        restoreDrill={"enabled": True, "target": {"existingSecret": "s", "database": "drill"},
                      **own_role("agent-bom-restore-drill")},
        retention=own_role("agent-bom-prune"),
        retentionDays=30,
    )
    found = {}
    for doc in render_chart(values, name="agent-bom-backup", namespace="agent-bom"):
        if doc["kind"] == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
            found[template["metadata"]["labels"]["app.kubernetes.io/component"]] = \
                template["spec"]["serviceAccountName"]
    return found


def service_account(job: str) -> str:
    return chart_service_accounts()[JOBS[job][1]]


def trust(job: str) -> dict[str, Any]:
    (statement,) = json.loads((IAM_DIR / JOBS[job][0]).read_text())["Statement"]
    return statement


@pytest.mark.parametrize("job", JOBS)
def test_the_role_trusts_only_the_jobs_service_account(job: str) -> None:
    conditions = trust(job)["Condition"]["StringEquals"]
    (sub,) = [v for k, v in conditions.items() if k.endswith(":sub")]
    assert sub == f"system:serviceaccount:agent-bom:{service_account(job)}"


@pytest.mark.parametrize("job", JOBS)
def test_the_token_audience_is_sts(job: str) -> None:
    conditions = trust(job)["Condition"]["StringEquals"]
    assert [v for k, v in conditions.items() if k.endswith(":aud")] == ["sts.amazonaws.com"]


@pytest.mark.parametrize("job", JOBS)
def test_the_conditions_name_the_trusted_oidc_provider(job: str) -> None:
    statement = trust(job)
    provider = statement["Principal"]["Federated"].split(":oidc-provider/", 1)[1]
    assert ({k.rsplit(":", 1)[0] for k in statement["Condition"]["StringEquals"]},
            statement["Action"]) == ({provider}, "sts:AssumeRoleWithWebIdentity")


def test_the_four_jobs_have_four_service_accounts() -> None:
    assert len({service_account(job) for job in JOBS}) == 4


def test_pod_identity_trusts_the_eks_service_only() -> None:
    (statement,) = json.loads((IAM_DIR / "pod-identity-trust-policy.json").read_text())["Statement"]
    assert (statement["Principal"], sorted(statement["Action"])) == (
        {"Service": "pods.eks.amazonaws.com"}, ["sts:AssumeRole", "sts:TagSession"])


def _eksctl(name: str) -> dict[str, Any]:
    return yaml.safe_load((IAM_DIR / name).read_text())["iam"]


def test_eksctl_irsa_creates_roles_for_the_charts_service_accounts() -> None:
    accounts = _eksctl("eksctl-iamserviceaccounts.yaml")["serviceAccounts"]
    assert sorted((a["metadata"]["namespace"], a["metadata"]["name"], a["roleOnly"]) for a in accounts) == sorted(
        ("agent-bom", service_account(job), True) for job in JOBS)


def test_eksctl_pod_identity_associates_the_charts_service_accounts() -> None:
    associations = _eksctl("eksctl-pod-identity.yaml")["podIdentityAssociations"]
    assert sorted((a["namespace"], a["serviceAccountName"], a["createServiceAccount"]) for a in associations) == sorted(
        ("agent-bom", service_account(job), False) for job in JOBS)


def test_terraform_binds_each_job_to_its_service_account_and_policy() -> None:
    text = (IAM_DIR / "terraform" / "main.tf").read_text()
    found = dict(re.findall(r'^\s*(\w+)\s*=\s*\{\s*service_account\s*=\s*"([^"]+)"', text, re.MULTILINE))
    policies = dict(re.findall(r'^\s*(\w+)\s*=\s*\{\s*service_account\s*=\s*"[^"]+",\s*policy\s*=\s*"([^"]+)"',
                               text, re.MULTILINE))
    assert (found, policies) == ({job: service_account(job) for job in JOBS}, {job: JOBS[job][2] for job in JOBS})


def test_readme_lists_every_trust_policy() -> None:
    readme = (IAM_DIR / "README.md").read_text()
    assert [JOBS[job][0] for job in JOBS if f"`{JOBS[job][0]}`" not in readme] == []
