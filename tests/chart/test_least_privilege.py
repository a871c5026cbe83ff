"""Least privilege enforced by the chart (issue 29): each pod reads only its own Secrets and
extras, the four identities stay apart, the restricted Pod Security Standard is a floor,
names never collide across releases, and NOTES states the object-storage egress in force."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm_render import (
    CRONJOB_TEMPLATE,
    HELM_TEST_TEMPLATE,
    RESTORE_DRILL_TEMPLATE,
    RESTORE_TEMPLATE,
    RETENTION_TEMPLATE,
    REPO,
    HelmError,
    backup_values,
    container,
    deep_merge,
    env_map,
    own_role,
    pod_spec,
    refusal,
    render_chart,
    render_notes,
)

MAINTENANCE_ENV = {"name": "AGENT_BOM_POSTGRES_MAINTENANCE_URL",
                   "valueFrom": {"secretKeyRef": {"name": "maint", "key": "AGENT_BOM_POSTGRES_MAINTENANCE_URL"}}}
RESTORE = {"enabled": True, "target": {"existingSecret": "restore-target"}, **own_role("agent-bom-restore")}
DRILL = {"enabled": True, "target": {"existingSecret": "drill-target", "database": "agent_bom_drill"},
         **own_role("agent-bom-restore-drill")}
RETENTION = own_role("agent-bom-prune")
#: every component on, the source from upstream's `env` entry, both CA bundles from Secrets
EVERYTHING = dict(env=[MAINTENANCE_ENV], restore=RESTORE, restoreDrill=DRILL, retentionDays=30, retention=RETENTION,
                  helmTest={"enabled": True}, database={"caBundle": {"secretName": "pg-ca"}},
                  destination={"caBundle": {"secretName": "s3-ca"}})
TEMPLATES = {"backup": CRONJOB_TEMPLATE, "restore": RESTORE_TEMPLATE, "restoreDrill": RESTORE_DRILL_TEMPLATE,
             "retention": RETENTION_TEMPLATE, "helmTest": HELM_TEST_TEMPLATE}
COMPONENTS = list(TEMPLATES)
PRODUCTION = Path(__file__).parent / "fixtures" / "agent-bom-eks-production-values.yaml"


def _values(**overrides: Any) -> dict[str, Any]:
    values = backup_values(**EVERYTHING)
    deep_merge(values["controlPlane"]["backup"], overrides)
    return values


def _doc(values: dict[str, Any], component: str) -> dict[str, Any]:
    (doc,) = render_chart(values, show_only=[TEMPLATES[component]])
    return doc


def secrets_read(doc: dict[str, Any]) -> set[str]:
    """Every Secret a pod can read: env secretKeyRefs, envFrom secretRefs, secret and projected volumes."""
    spec, main = pod_spec(doc), container(doc)
    names = {e["valueFrom"]["secretKeyRef"]["name"] for e in main.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    names |= {s["secretRef"]["name"] for s in main.get("envFrom", []) if "secretRef" in s}
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            names.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
    return names


class TestEachPodReadsOnlyItsSecrets:
    @pytest.mark.parametrize(("component", "expected"), [
        ("backup", {"maint", "pg-ca", "s3-ca"}),
        ("helmTest", {"maint", "pg-ca", "s3-ca"}),
        ("restore", {"restore-target", "pg-ca", "s3-ca"}),
        ("restoreDrill", {"drill-target", "pg-ca", "s3-ca"}),
        ("retention", {"s3-ca"}),
    ])
    def test_with_workload_identity(self, component, expected):
        assert secrets_read(_doc(_values(), component)) == expected

    @pytest.mark.parametrize(("component", "expected"), [
        ("backup", {"agent-bom-postgres", "backup-key"}),
        ("helmTest", {"agent-bom-postgres", "backup-key"}),
        ("restore", {"restore-target", "restore-key"}),
        ("restoreDrill", {"drill-target", "drill-key"}),
        ("retention", {"prune-key"}),
    ])
    def test_with_static_credentials(self, component, expected):
        values = backup_values(
            serviceAccount={"annotations": None},
            destination={"endpointUrl": "https://minio.example:9000",
                         "staticCredentials": {"enabled": True, "existingSecret": "backup-key"}},
            restore={**RESTORE, "staticCredentialsSecret": "restore-key", "serviceAccount": {}},
            restoreDrill={**DRILL, "staticCredentialsSecret": "drill-key", "serviceAccount": {}},
            retentionDays=30, retention={"staticCredentialsSecret": "prune-key"}, helmTest={"enabled": True})
        assert secrets_read(_doc(values, component)) == expected

    @pytest.mark.parametrize("component", ["restore", "restoreDrill"])
    def test_restore_and_drill_get_no_source_url(self, component):
        assert "AGENT_BOM_POSTGRES_URL" not in env_map(_doc(_values(), component))

    @pytest.mark.parametrize("component", ["restore", "restoreDrill"])
    def test_a_live_source_check_reads_its_own_secret(self, component):
        values = _values(**{component: {"liveSourceCheck": {"existingSecret": "live-check", "existingSecretKey": "URL"}}})
        assert env_map(_doc(values, component))["AGENT_BOM_POSTGRES_URL"] == {
            "secretKeyRef": {"name": "live-check", "key": "URL"}}

    @pytest.mark.parametrize("component", COMPONENTS)
    def test_the_maintenance_entry_reaches_no_pod_as_such(self, component):
        assert "AGENT_BOM_POSTGRES_MAINTENANCE_URL" not in env_map(_doc(_values(), component))

    def test_the_maintenance_entry_is_the_backups_source(self):
        assert env_map(_doc(_values(), "backup"))["AGENT_BOM_POSTGRES_URL"] == MAINTENANCE_ENV["valueFrom"]

    def test_retention_mounts_no_database_ca(self):
        assert "postgres-ca" not in {v["name"] for v in pod_spec(_doc(_values(), "retention"))["volumes"]}


class TestUpstreamProductionValues:
    """upstream's values file (controlPlane.postgresSecrets, the maintenance identity) with every
    component on, each under its own role: the maintenance Secret reaches the backup only."""

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def _docs() -> tuple[dict[str, Any], ...]:
        text = PRODUCTION.read_text()
        for placeholder, value in {"REPLACE_ME_ACCOUNT_ID": "123456789012", "REPLACE_ME_AGENT_BOM_BACKUP_ROLE": "agent-bom-backup",
                                   "REPLACE_ME_BUCKET_REGION": "us-east-1"}.items():
            text = text.replace(placeholder, value)
        values = yaml.safe_load(text)
        deep_merge(values["controlPlane"]["backup"], dict(restore=RESTORE, restoreDrill=DRILL, retentionDays=30,
                                                          retention=RETENTION, helmTest={"enabled": True}))
        return tuple(d for d in render_chart(values) if d["kind"] in ("CronJob", "Pod"))

    def test_the_backup_and_its_test_read_the_maintenance_secret(self):
        assert sorted(d["metadata"]["name"] for d in self._docs()
                      if "agent-bom-control-plane-maintenance" in secrets_read(d)) == [
            "agent-bom-control-plane-backup", "agent-bom-control-plane-backup-test"]

    def test_no_pod_reads_the_app_or_admin_identity(self):
        assert not {"agent-bom-control-plane-db", "agent-bom-control-plane-admin"} & set().union(
            *(secrets_read(d) for d in self._docs()))


class TestExtrasArePerComponent:
    @pytest.mark.parametrize("owner", COMPONENTS)
    @pytest.mark.parametrize("component", COMPONENTS)
    def test_extra_env(self, owner, component):
        extra = {"extraEnv": [{"name": "ONLY_HERE", "value": owner}]}
        values = _values(**(extra if owner == "backup" else {owner: extra}))
        assert ("ONLY_HERE" in env_map(_doc(values, component))) == (owner == component)

    @pytest.mark.parametrize("component", COMPONENTS)
    def test_upstream_env_reaches_the_backup_only(self, component):
        values = _values(env=[MAINTENANCE_ENV, {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}])
        assert ("HTTPS_PROXY" in env_map(_doc(values, component))) == (component == "backup")

    @pytest.mark.parametrize("owner", COMPONENTS)
    @pytest.mark.parametrize("component", COMPONENTS)
    def test_extra_env_from(self, owner, component):
        extra = {"extraEnvFrom": [{"configMapRef": {"name": "only-here"}}]}
        values = _values(**(extra if owner == "backup" else {owner: extra}))
        assert ("envFrom" in container(_doc(values, component))) == (owner == component)

    @pytest.mark.parametrize("owner", COMPONENTS)
    @pytest.mark.parametrize("component", COMPONENTS)
    def test_extra_volumes(self, owner, component):
        extra = {"extraVolumes": [{"name": "only-here", "emptyDir": {}}],
                 "extraVolumeMounts": [{"name": "only-here", "mountPath": "/var/run/only-here"}]}
        values = _values(**(extra if owner == "backup" else {owner: extra}))
        doc = _doc(values, component)
        present = ("only-here" in {v["name"] for v in pod_spec(doc)["volumes"]},
                   "only-here" in {m["name"] for m in container(doc)["volumeMounts"]})
        assert present == ((owner == component),) * 2


def _refused(**overrides: Any) -> list[str]:
    return refusal(_values(**overrides))


class TestSeparationIsRefused:
    def test_a_shared_service_account(self):
        assert _refused(restoreDrill={"serviceAccount": {"create": False, "name": "agent-bom-control-plane-backup"}}) == [
            "controlPlane.backup.restoreDrill.serviceAccount.name and controlPlane.backup.serviceAccount.name both "
            "name ServiceAccount agent-bom-control-plane-backup: give each component its own ServiceAccount and role "
            "(docs/runbook.md, Identities)"]

    def test_a_shared_irsa_role(self):
        backup_role = "arn:aws:iam::123456789012:role/agent-bom-backup"
        assert _refused(retention=own_role("agent-bom-backup")) == [
            'controlPlane.backup.retention.serviceAccount.annotations["eks.amazonaws.com/role-arn"] and '
            'controlPlane.backup.serviceAccount.annotations["eks.amazonaws.com/role-arn"] name the same role '
            f"{backup_role}: give each component its own role (docs/runbook.md, Identities)"]

    def test_restore_and_drill_sharing_a_role(self):
        problems = _refused(restoreDrill=own_role("agent-bom-restore"))
        assert [p.split(" name the same role")[0] for p in problems] == [
            'controlPlane.backup.restoreDrill.serviceAccount.annotations["eks.amazonaws.com/role-arn"] and '
            'controlPlane.backup.restore.serviceAccount.annotations["eks.amazonaws.com/role-arn"]']

    def test_a_shared_web_identity_role(self):
        role = "arn:aws:iam::123456789012:role/agent-bom-backup"
        values = backup_values(serviceAccount={"annotations": None}, webIdentity={"enabled": True, "roleArn": role},
                               restore={"enabled": True, "target": {"existingSecret": "t"}, "webIdentityRoleArn": role})
        assert refusal(values) == [
            "controlPlane.backup.restore.webIdentityRoleArn and controlPlane.backup.webIdentity.roleArn name the same "
            f"role {role}: give each component its own role (docs/runbook.md, Identities)"]

    @staticmethod
    def _static(**overrides: Any) -> dict[str, Any]:
        values = backup_values(serviceAccount={"annotations": None},
                               destination={"staticCredentials": {"enabled": True, "existingSecret": "backup-key"}},
                               restore={"enabled": True, "target": {"existingSecret": "t"}, "staticCredentialsSecret": "restore-key"})
        deep_merge(values["controlPlane"]["backup"], overrides)
        return values

    def test_a_shared_static_credentials_secret(self):
        assert refusal(self._static(restore={"staticCredentialsSecret": "backup-key"})) == [
            "controlPlane.backup.restore.staticCredentialsSecret and "
            "controlPlane.backup.destination.staticCredentials.existingSecret both name Secret backup-key: give each "
            "component credentials of its own (the backup's key writes only)"]

    def test_a_restore_without_its_own_static_credentials(self):
        assert refusal(self._static(restore={"staticCredentialsSecret": ""})) == [
            "controlPlane.backup.restore.staticCredentialsSecret must name a Secret with read credentials of its own "
            "when staticCredentials.enabled=true: the backup's key must not read backups"]

    def test_own_static_credentials_render(self):
        assert render_chart(self._static(), show_only=[RESTORE_TEMPLATE])

    @pytest.mark.parametrize(("component", "policy"), [
        ("restore", "restore-role-policy.json"), ("restoreDrill", "restore-role-policy.json"),
        ("retention", "prune-role-policy.json")])
    def test_irsa_on_the_backup_only(self, component, policy):
        assert _refused(**{component: {"serviceAccount": {"annotations": None}}}) == [
            f'controlPlane.backup.{component}.serviceAccount.annotations["eks.amazonaws.com/role-arn"] is required: '
            f"the backup uses IRSA, and without a role of its own the {component} would fall back to the node's role; "
            f"annotate it with a role carrying deploy/iam/{policy}"]

    def test_an_existing_service_account_is_trusted_to_carry_its_role(self):
        """The chart cannot see an existing ServiceAccount's annotations (or a Pod Identity association)."""
        values = _values(restoreDrill={"serviceAccount": {"create": False, "name": "drill", "annotations": None}})
        assert pod_spec(_doc(values, "restoreDrill"))["serviceAccountName"] == "drill"

    def test_a_restore_into_the_backups_source(self):
        assert _refused(restore={"target": {"existingSecret": "maint", "existingSecretKey": "AGENT_BOM_POSTGRES_MAINTENANCE_URL"}}) == [
            "controlPlane.backup.restore.target is the backup's source (Secret maint, key AGENT_BOM_POSTGRES_MAINTENANCE_URL): "
            "the backup's credential must not reach the restore Job; give the restore a Secret of its own (for a "
            "production restore, the database owner's URL)"]

    def test_a_drill_into_the_backups_source(self):
        values = backup_values(restoreDrill={**DRILL, "target": {"existingSecret": "agent-bom-postgres",
                                                                 "existingSecretKey": "AGENT_BOM_POSTGRES_URL",
                                                                 "database": "agent_bom"}})
        assert refusal(values) == [
            "controlPlane.backup.restoreDrill.target is the backup's source (Secret agent-bom-postgres, key "
            "AGENT_BOM_POSTGRES_URL): the drill cleans its target on every run; point it at a scratch database's Secret"]

    def test_another_key_of_the_source_secret_is_a_target_of_its_own(self):
        values = _values(restore={"target": {"existingSecret": "maint", "existingSecretKey": "RESTORE_URL"}})
        assert env_map(_doc(values, "restore"))["AGENT_BOM_RESTORE_POSTGRES_URL"] == {
            "secretKeyRef": {"name": "maint", "key": "RESTORE_URL"}}

    def test_a_live_source_check_with_the_backups_secret(self):
        assert _refused(restore={"liveSourceCheck": {"existingSecret": "maint"}}) == [
            "controlPlane.backup.restore.liveSourceCheck.existingSecret is the backup's source Secret maint: give the "
            "live-source check a low-privilege Secret of its own (a role that may only connect), or leave it empty to "
            "compare with the backup's recorded server identity"]

    @pytest.mark.parametrize("name", ["AGENT_BOM_POSTGRES_URL", "AGENT_BOM_POSTGRES_MAINTENANCE_URL"])
    def test_the_source_url_in_a_restores_extra_env(self, name):
        entry = {"name": name, "valueFrom": MAINTENANCE_ENV["valueFrom"]}
        assert _refused(restore={"extraEnv": [entry]}) == [
            f"controlPlane.backup.restore.extraEnv: {name} is the backup's source credential and reaches the backup "
            "only; for a live-source check set controlPlane.backup.restore.liveSourceCheck.existingSecret to a "
            "low-privilege Secret of its own"]

    def test_the_source_url_in_the_tests_extra_env(self):
        assert _refused(helmTest={"extraEnv": [MAINTENANCE_ENV]}) == [
            "controlPlane.backup.helmTest.extraEnv: AGENT_BOM_POSTGRES_MAINTENANCE_URL is the backup's source credential "
            "and reaches the backup only (the helm test already runs the backup's preflight with it); remove it"]

    def test_a_credential_inline_in_retentions_extra_env(self):
        assert _refused(retention={"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]}) == [
            "controlPlane.backup.retention.extraEnv: AWS_SECRET_ACCESS_KEY must not be set inline (it would be stored "
            "in the release); take it from a Secret (valueFrom.secretKeyRef)"]

    def test_an_approval_in_values(self):
        assert _refused(restore={"approval": "INC-1234"}) == [
            "controlPlane.backup.restore.approval: an approval is given when a person creates the restore Job, never in "
            "values (anyone allowed to create Jobs could use it); remove it and set AGENT_BOM_RESTORE_APPROVAL with "
            "kubectl set env at instantiation (docs/runbook.md, In-cluster restore)"]

    def test_no_safety_backup_in_values(self):
        assert _refused(restore={"noSafetyBackup": True}) == [
            "controlPlane.backup.restore.noSafetyBackup: skipping the safety backup is decided when a person creates the "
            "restore Job, never in values; remove it and set AGENT_BOM_RESTORE_NO_SAFETY_BACKUP=true with kubectl set "
            "env at instantiation (docs/runbook.md, In-cluster restore)"]

    def test_the_restore_template_carries_no_approval(self):
        env = env_map(_doc(_values(restore={"clean": True, "confirmTarget": "agent_bom"}), "restore"))
        assert not {"AGENT_BOM_RESTORE_APPROVAL", "AGENT_BOM_RESTORE_NO_SAFETY_BACKUP"} & set(env)


class TestRestrictedPodSecurityIsAFloor:
    @pytest.mark.parametrize(("overrides", "line"), [
        ({"containerSecurityContext": {"privileged": True}}, "controlPlane.backup.containerSecurityContext.privileged=true"),
        ({"containerSecurityContext": {"allowPrivilegeEscalation": True}},
         "controlPlane.backup.containerSecurityContext.allowPrivilegeEscalation must be false"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "controlPlane.backup.podSecurityContext.runAsNonRoot=false"),
        ({"containerSecurityContext": {"runAsNonRoot": False}},
         "controlPlane.backup.containerSecurityContext.runAsNonRoot=false"),
        ({"podSecurityContext": {"runAsUser": 0}}, "controlPlane.backup.podSecurityContext.runAsUser=0"),
        ({"containerSecurityContext": {"runAsUser": 0}}, "controlPlane.backup.containerSecurityContext.runAsUser=0"),
        ({"containerSecurityContext": {"capabilities": {"add": ["NET_RAW"]}}},
         'controlPlane.backup.containerSecurityContext.capabilities.add ["NET_RAW"]'),
        ({"containerSecurityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
         "controlPlane.backup.containerSecurityContext.capabilities.drop must include ALL"),
        ({"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}},
         "controlPlane.backup.podSecurityContext.seccompProfile.type=Unconfined"),
        ({"containerSecurityContext": {"seccompProfile": {"type": "Unconfined"}}},
         "controlPlane.backup.containerSecurityContext.seccompProfile.type=Unconfined"),
        ({"image": {"tag": "latest"}}, "controlPlane.backup.image.tag: latest is refused"),
    ], ids=lambda v: re.sub(r"\W+", "-", str(v))[:60] if isinstance(v, dict) else "")
    def test_is_refused_in_one_line(self, overrides, line):
        (problem,) = refusal(backup_values(**overrides))
        assert problem.startswith(line)

    @pytest.mark.parametrize(("overrides", "missing"), [
        ({"podSecurityContext": None}, ("/controlPlane/backup", "podSecurityContext")),
        ({"containerSecurityContext": None}, ("/controlPlane/backup", "containerSecurityContext")),
        ({"podSecurityContext": {"seccompProfile": None}}, ("/controlPlane/backup/podSecurityContext", "seccompProfile")),
        ({"containerSecurityContext": {"runAsNonRoot": None}},
         ("/controlPlane/backup/containerSecurityContext", "runAsNonRoot")),
    ], ids=["pod-context", "container-context", "pod-seccomp", "container-run-as-non-root"])
    def test_null_never_erases_a_hardening_default(self, overrides, missing):
        """A null deletes the key in Helm: the schema refuses it (the default cannot be
        switched off silently), naming the key."""
        where, key = missing
        with pytest.raises(HelmError, match=re.escape(f"at '{where}': missing property '{key}'")):
            render_chart(backup_values(**overrides))

    @pytest.mark.parametrize("component", COMPONENTS)
    def test_a_host_path_volume(self, component):
        volume = {"extraVolumes": [{"name": "host", "hostPath": {"path": "/"}}]}
        path = "controlPlane.backup" if component == "backup" else f"controlPlane.backup.{component}"
        assert _refused(**(volume if component == "backup" else {component: volume})) == [
            f"{path}.extraVolumes[0] (host) is a hostPath volume, which the restricted Pod Security Standard forbids; "
            "use a PersistentVolumeClaim, a Secret, a ConfigMap or an emptyDir"]

    @pytest.mark.parametrize("key", ["hostNetwork", "hostPID"])
    def test_host_namespaces_are_not_values(self, key):
        with pytest.raises(HelmError, match=f"additional properties '{key}' not allowed"):
            render_chart(backup_values(**{key: True}))

    def test_notes_recommend_a_digest_when_none_is_set(self):
        assert "pin it by digest (controlPlane.backup.image.digest=sha256:...)" in render_notes(backup_values())

    def test_notes_are_quiet_about_a_digest_when_set(self):
        assert "pin it by digest" not in render_notes(backup_values(image={"digest": "sha256:" + "0" * 64}))


def _names(release: str, **top: Any) -> set[str]:
    values = backup_values(restore=RESTORE, restoreDrill=DRILL, retentionDays=30, retention=RETENTION,
                           helmTest={"enabled": True}, networkPolicy={"enabled": True, "database": {"cidrs": ["10.0.0.0/8"]}},
                           prometheusRule={"enabled": True})
    return {d["metadata"]["name"] for d in render_chart({**values, **top}, name=release)}


class TestNamesCannotCollide:
    LONG = "agent-bom-production-eu-west-1-cluster-"

    def test_two_long_releases_share_no_name(self):
        assert _names(self.LONG + "a") & _names(self.LONG + "b") == set()

    def test_x_and_x_agent_bom_share_no_name(self):
        assert _names("x") & _names("x-agent-bom") == set()

    def test_short_names_are_unchanged(self):
        assert "agent-bom-control-plane-restore-drill" in _names("agent-bom")

    def test_a_release_containing_the_chart_name_is_used_alone(self):
        assert "agent-bom-eu-control-plane-backup" in _names("agent-bom-eu")

    def test_long_names_fit_cronjob_names(self):
        assert max(len(n) for n in _names(self.LONG + "a")) <= 57  # 52 for CronJobs, "-test" for the test pod

    def test_a_shortened_name_ends_in_a_hash_of_the_full_one(self):
        (name,) = [n for n in _names(self.LONG + "a") if n.endswith("-control-plane-restore-drill")]
        assert re.fullmatch(r"agent-bom-product-[0-9a-f]{6}-control-plane-restore-drill", name)

    def test_long_full_name_overrides_share_no_name(self):
        override = "backup-of-the-agent-bom-control-plane-in-production-eu-west-1-"
        assert _names("r", fullnameOverride=override[:62] + "a") & _names("r", fullnameOverride=override[:62] + "b") == set()

    def test_the_service_account_is_the_one_the_pod_runs_as(self):
        docs = render_chart(backup_values(restoreDrill=DRILL), name=self.LONG + "a")
        (account,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount" and "drill" in d["metadata"]["name"]]
        (cronjob,) = [d for d in docs if d["kind"] == "CronJob" and d["metadata"]["name"] == account]
        assert pod_spec(cronjob)["serviceAccountName"] == account


def _egress_notes(**policy: Any) -> str:
    network = {"enabled": True, "database": {"cidrs": ["10.20.0.0/16"]}}
    deep_merge(network, policy)
    return render_notes(backup_values(networkPolicy=network))


class TestNotesStateTheEgress:
    def test_the_default_cidrs_are_stated(self):
        assert "Egress:       object storage 0.0.0.0/0 (TCP 443); database 10.20.0.0/16; DNS" in _egress_notes()

    def test_the_default_is_warned_about(self):
        assert "WARNING: object-storage egress is open to every address (0.0.0.0/0):" in _egress_notes()

    def test_ipv6_anywhere_is_named_too(self):
        assert "open to every address (0.0.0.0/0, ::/0)" in _egress_notes(ipFamilies=["IPv4", "IPv6"])

    def test_narrowed_cidrs_are_stated(self):
        notes = _egress_notes(objectStorage={"cidrs": ["10.30.1.17/32", "10.30.2.17/32"]})
        assert "Egress:       object storage 10.30.1.17/32, 10.30.2.17/32 (TCP 443)" in notes

    def test_narrowed_cidrs_are_not_warned_about(self):
        assert "WARNING: object-storage egress" not in _egress_notes(objectStorage={"cidrs": ["10.30.1.17/32"]})

    def test_without_a_network_policy_egress_is_unrestricted(self):
        assert "Egress:       unrestricted (no NetworkPolicy)" in render_notes(backup_values())


class TestRunbookIdentities:
    """docs/runbook.md "Identities" lists the chart's four ServiceAccounts and existing policies."""

    @staticmethod
    def _rows() -> list[list[str]]:
        text = (REPO / "docs" / "runbook.md").read_text().split("\n## Identities\n", 1)[1].split("\n#", 1)[0]
        return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
                if line.startswith("| ") and not line.startswith("| identity")]

    def test_the_service_accounts_are_the_rendered_ones(self):
        docs = render_chart(_values())
        rendered = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount")
        assert sorted(re.match(r"`([^`]+)`", row[1]).group(1) for row in self._rows()) == rendered

    def test_each_policy_named_exists(self):
        policies = {re.match(r"`([^`]+)`", row[2]).group(1) for row in self._rows()}
        assert policies == {f"deploy/iam/{p.name}" for p in (REPO / "deploy" / "iam").glob("*-role-policy.json")}
