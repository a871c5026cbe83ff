"""Every pod the chart renders passes the Kubernetes "restricted" Pod Security Standard by
default (checked field by field, as the admission controller does)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm_render import (
    CRONJOB_TEMPLATE,
    HELM_TEST_TEMPLATE,
    RESTORE_DRILL_TEMPLATE,
    RESTORE_TEMPLATE,
    RETENTION_TEMPLATE,
    backup_values,
    own_role,
    pod_spec,
    render_chart,
)

ALL_PODS = backup_values(
    restoreDrill={"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
                  "webIdentityRoleArn": "arn:aws:iam::111122223333:role/agent-bom-restore-drill"},
    restore={"enabled": True, "target": {"existingSecret": "restore-target"}, "persistence": {"existingClaim": "reports"},
             "webIdentityRoleArn": "arn:aws:iam::111122223333:role/agent-bom-restore"},
    retentionDays=30,
    retention={"webIdentityRoleArn": "arn:aws:iam::111122223333:role/agent-bom-prune"},
    helmTest={"enabled": True},
    webIdentity={"enabled": True, "roleArn": "arn:aws:iam::111122223333:role/agent-bom-backup"},
    database={"caBundle": {"secretName": "pg-ca"}},
    destination={"caBundle": {"configMapName": "s3-ca"}},
)

POD_TEMPLATES = [CRONJOB_TEMPLATE, RESTORE_TEMPLATE, RESTORE_DRILL_TEMPLATE, RETENTION_TEMPLATE, HELM_TEST_TEMPLATE]
POD_IDS = ["backup", "restore", "restore-drill", "retention", "helm-test"]
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}


def _pod(template: str) -> dict[str, Any]:
    (doc,) = render_chart(ALL_PODS, show_only=[template])
    return pod_spec(doc)


def _effective(spec: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A container's securityContext field, falling back to the pod's (PSS semantics)."""
    return container.get("securityContext", {}).get(key, spec.get("securityContext", {}).get(key))


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("initContainers", []) + spec["containers"]


@pytest.mark.parametrize("template", POD_TEMPLATES, ids=POD_IDS)
class TestRestrictedPodSecurityStandard:
    def test_runs_as_non_root(self, template):
        spec = _pod(template)
        assert all(_effective(spec, c, "runAsNonRoot") is True for c in _containers(spec))

    def test_user_id_is_not_root(self, template):
        spec = _pod(template)
        assert all(_effective(spec, c, "runAsUser") not in (0, None) for c in _containers(spec))

    def test_uid_gid_and_fsgroup_are_10001(self, template):
        security = _pod(template)["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (10001, 10001, 10001)

    def test_privilege_escalation_is_disallowed(self, template):
        spec = _pod(template)
        assert all(c["securityContext"]["allowPrivilegeEscalation"] is False for c in _containers(spec))

    def test_all_capabilities_are_dropped(self, template):
        spec = _pod(template)
        assert all(c["securityContext"]["capabilities"] == {"drop": ["ALL"]} for c in _containers(spec))

    def test_seccomp_is_runtime_default(self, template):
        spec = _pod(template)
        assert all(_effective(spec, c, "seccompProfile") == {"type": "RuntimeDefault"} for c in _containers(spec))

    def test_root_filesystem_is_read_only(self, template):
        spec = _pod(template)
        assert all(c["securityContext"]["readOnlyRootFilesystem"] is True for c in _containers(spec))

    def test_not_privileged(self, template):
        spec = _pod(template)
        assert all(c["securityContext"].get("privileged", False) is False for c in _containers(spec))

    def test_only_restricted_volume_types(self, template):
        volumes = _pod(template)["volumes"]
        assert {key for v in volumes for key in v if key != "name"} <= RESTRICTED_VOLUME_TYPES

    def test_no_host_namespaces(self, template):
        spec = _pod(template)
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(spec)

    def test_no_host_ports(self, template):
        spec = _pod(template)
        assert not [p for c in _containers(spec) for p in c.get("ports", []) if "hostPort" in p]

    def test_resources_have_requests_and_limits(self, template):
        spec = _pod(template)
        assert all({"requests", "limits"} <= set(c["resources"]) for c in _containers(spec))

    def test_scratch_emptydir_is_size_limited(self, template):
        volumes = {v["name"]: v for v in _pod(template)["volumes"]}
        assert volumes["tmp"]["emptyDir"]["sizeLimit"]

    def test_ca_bundles_and_tokens_are_mounted_read_only(self, template):
        mounts = _pod(template)["containers"][0]["volumeMounts"]
        assert all(m.get("readOnly") is True for m in mounts if m["name"] not in ("tmp", "restore-files"))

    def test_api_token_is_not_automounted(self, template):
        assert _pod(template)["automountServiceAccountToken"] is False


STATIC_CREDENTIALS = backup_values(
    restoreDrill={"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
                  "staticCredentialsSecret": "drill-creds", **own_role("agent-bom-restore-drill")},
    restore={"enabled": True, "target": {"existingSecret": "restore-target"}, "staticCredentialsSecret": "restore-creds",
             **own_role("agent-bom-restore")},
    retentionDays=30,
    retention={"staticCredentialsSecret": "prune-creds", **own_role("agent-bom-prune")},
    helmTest={"enabled": True},
    destination={"staticCredentials": {"enabled": True, "existingSecret": "s3-creds", "sessionTokenKey": "token"}},
)
SECRET_ENV = {
    "AGENT_BOM_POSTGRES_URL", "AGENT_BOM_RESTORE_POSTGRES_URL",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
}


@pytest.mark.parametrize("template", POD_TEMPLATES, ids=POD_IDS)
class TestSecretsOnlyByReference:
    def _env(self, template: str) -> dict[str, dict[str, Any]]:
        (doc,) = render_chart(STATIC_CREDENTIALS, show_only=[template])
        return {e["name"]: e for e in pod_spec(doc)["containers"][0]["env"]}

    def test_secret_variables_come_from_secret_key_refs(self, template):
        env = self._env(template)
        assert all(set(env[n]) == {"name", "valueFrom"} and "secretKeyRef" in env[n]["valueFrom"]
                   for n in SECRET_ENV & set(env))

    def test_the_credentials_are_wired(self, template):
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(self._env(template))

    def test_the_source_url_is_wired_where_the_source_is_dumped(self, template):
        """The backup and its helm test only: the restore and the drill compare with the manifest's
        server identity, the retention Job lists and deletes objects."""
        assert ("AGENT_BOM_POSTGRES_URL" in self._env(template)) is (template in (CRONJOB_TEMPLATE, HELM_TEST_TEMPLATE))


def test_chart_renders_no_secret_object():
    """Secrets are referenced, never created from values."""
    assert [d["kind"] for d in render_chart(STATIC_CREDENTIALS) if d["kind"] == "Secret"] == []
