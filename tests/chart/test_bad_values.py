"""Bad input fails at `helm install` with a message naming the value (Helm 3 and Helm 4).

Two layers: values.schema.json (types, enums, patterns, unknown keys) and the chart's
`fail` checks (combinations). Schema messages differ between Helm majors, so the expected
patterns match the value's name and the reason in either wording.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.chart.helm_render import HELM_MAJORS, HelmError, backup_values, render_chart


def _without(path: str) -> dict[str, Any]:
    values = backup_values()
    node = values["controlPlane"]["backup"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    del node[leaf]
    return values


def _top_level(**extra: Any) -> dict[str, Any]:
    values = copy.deepcopy(backup_values())
    values.update(extra)
    return values


DRILL = {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"}}

BAD_VALUES = [
    # --- required values (fail) ---------------------------------------------------------
    ("missing-bucket", _without("destination.bucket"),
     r"controlPlane\.backup\.destination\.bucket is required"),
    ("empty-bucket", backup_values(destination={"bucket": ""}),
     r"controlPlane\.backup\.destination\.bucket is required"),
    ("missing-bucket-region", _without("destination.bucketRegion"),
     r"controlPlane\.backup\.destination\.bucketRegion is required"),
    ("empty-bucket-region", backup_values(destination={"bucketRegion": ""}),
     r"bucketRegion is required.*keep the bucket's region explicit"),
    ("blank-secret-name", backup_values(database={"existingSecret": ""}),
     r"controlPlane\.backup\.database\.existingSecret must name an existing Secret"),
    ("null-secret-name", backup_values(database={"existingSecret": None}),
     r"controlPlane\.backup\.database\.existingSecret must name an existing Secret"),
    ("blank-secret-key", backup_values(database={"existingSecretKey": ""}),
     r"controlPlane\.backup\.database\.existingSecretKey must name the key"),
    ("inline-url", backup_values(database={"url": "postgresql://agent_bom:secret@db:5432/agent_bom"}),
     r"controlPlane\.backup\.database\.url: an inline database URL is not supported"),
    ("inline-url-in-extra-env", backup_values(extraEnv=[{"name": "AGENT_BOM_POSTGRES_URL", "value": "postgresql://x"}]),
     r"controlPlane\.backup\.extraEnv: AGENT_BOM_POSTGRES_URL must not be set inline"),
    ("inline-secret-key-in-extra-env", backup_values(extraEnv=[{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]),
     r"extraEnv: AWS_SECRET_ACCESS_KEY must not be set inline"),
    # --- invalid combinations (fail) ----------------------------------------------------
    ("kms-key-with-sse-s3", backup_values(destination={"encryption": {"mode": "AES256"}}),
     r"encryption\.kmsKeyId is only used with mode aws:kms \(mode is AES256\)"),
    ("kms-key-with-encryption-off", backup_values(destination={"encryption": {"enabled": False}}),
     r"encryption\.kmsKeyId is set but encryption\.enabled=false"),
    ("static-credentials-without-secret", backup_values(destination={"staticCredentials": {"enabled": True}}),
     r"staticCredentials\.existingSecret must name an existing Secret"),
    ("static-credentials-without-keys", backup_values(destination={"staticCredentials": {
        "enabled": True, "existingSecret": "s3", "accessKeyIdKey": ""}}),
     r"staticCredentials\.accessKeyIdKey and secretAccessKeyKey must name keys"),
    ("static-credentials-and-web-identity", backup_values(
        destination={"staticCredentials": {"enabled": True, "existingSecret": "s3"}},
        webIdentity={"enabled": True, "roleArn": "arn:aws:iam::111122223333:role/r"}),
     r"staticCredentials and controlPlane\.backup\.webIdentity are alternatives"),
    ("web-identity-without-role", backup_values(webIdentity={"enabled": True}),
     r"controlPlane\.backup\.webIdentity\.roleArn is required"),
    ("object-store-ca-secret-and-configmap", backup_values(destination={"caBundle": {
        "secretName": "a", "configMapName": "b"}}),
     r"destination\.caBundle: set secretName or configMapName, not both"),
    ("postgres-ca-secret-and-configmap", backup_values(database={"caBundle": {"secretName": "a", "configMapName": "b"}}),
     r"database\.caBundle: set secretName or configMapName, not both"),
    ("existing-service-account-without-name", backup_values(serviceAccount={"create": False, "annotations": None}),
     r"serviceAccount\.name must name an existing ServiceAccount"),
    ("annotations-on-existing-service-account", backup_values(serviceAccount={"create": False, "name": "sa"}),
     r"serviceAccount\.annotations only apply to a ServiceAccount the chart creates"),
    ("network-policy-without-database", backup_values(networkPolicy={"enabled": True}),
     r"networkPolicy\.database\.cidrs is required"),
    ("drill-without-target-secret", backup_values(restoreDrill={"enabled": True, "target": {"database": "d"}}),
     r"restoreDrill\.target\.existingSecret must name an existing Secret"),
    ("drill-without-target-database", backup_values(restoreDrill={"enabled": True, "target": {"existingSecret": "s"}}),
     r"restoreDrill\.target\.database must name the scratch database"),
    ("drill-with-web-identity-without-role", backup_values(
        restoreDrill=DRILL, webIdentity={"enabled": True, "roleArn": "arn:aws:iam::111122223333:role/r"}),
     r"restoreDrill\.webIdentityRoleArn is required"),
    # --- schema: patterns, enums, types, unknown keys -----------------------------------
    ("schedule-four-fields", backup_values(schedule="0 3 * *"), r"schedule.*(?i:does not match pattern)"),
    ("schedule-prose", backup_values(schedule="every night"), r"schedule.*(?i:does not match pattern)"),
    ("schedule-cron-tz", backup_values(schedule="CRON_TZ=UTC 0 3 * * *"), r"schedule.*(?i:does not match pattern)"),
    ("kms-mode-typo", backup_values(destination={"encryption": {"mode": "kms"}}), r"(?i)mode.*(must be one of|value must be one of)"),
    ("kms-mode-lowercase-sse-s3", backup_values(destination={"encryption": {"mode": "aes256"}}),
     r"(?i)mode.*(must be one of|value must be one of)"),
    ("unknown-key-under-backup", backup_values(schedul="0 3 * * *"), r"(?i)additional propert.*schedul"),
    ("typo-in-destination", backup_values(destination={"bucketregion": "us-east-1"}), r"(?i)additional propert.*bucketregion"),
    ("typo-in-encryption", backup_values(destination={"encryption": {"kmsKeyID": "alias/k"}}), r"(?i)additional propert.*kmsKeyID"),
    ("unknown-top-level-key", _top_level(controlplane={"backup": {"enabled": True}}), r"(?i)additional propert.*controlplane"),
    ("enabled-as-string", backup_values(enabled="true"), r"(?i)enabled.*(expected: boolean|want boolean)"),
    ("schedule-as-number", backup_values(schedule=3), r"(?i)schedule.*(expected: string|want string)"),
    ("annotations-as-list", backup_values(serviceAccount={"annotations": ["eks.amazonaws.com/role-arn"]}),
     r"(?i)annotations.*(expected: object|want object)"),
    ("annotation-value-not-string", backup_values(serviceAccount={"annotations": {"a": True}}),
     r"(?i)annotations.*(expected: string|want string)"),
    ("bucket-with-scheme", backup_values(destination={"bucket": "s3://agent-bom-prod-backups"}),
     r"bucket.*(?i:does not match pattern)"),
    ("prefix-with-leading-slash", backup_values(destination={"prefix": "/agent-bom/postgres"}),
     r"prefix.*(?i:does not match pattern)"),
    ("prefix-with-trailing-slash", backup_values(destination={"prefix": "agent-bom/postgres/"}),
     r"prefix.*(?i:does not match pattern)"),
    ("region-with-space", backup_values(destination={"bucketRegion": "us east 1"}),
     r"bucketRegion.*(?i:does not match pattern)"),
    ("kms-key-id-garbage", backup_values(destination={"encryption": {"kmsKeyId": "my key"}}),
     r"kmsKeyId.*(?i:does not match pattern)"),
    ("endpoint-without-scheme", backup_values(destination={"endpointUrl": "minio:9000"}),
     r"endpointUrl.*(?i:does not match pattern)"),
    ("checksum-mode-unknown", backup_values(destination={"checksumMode": "always"}),
     r"(?i)checksumMode.*(must be one of|value must be one of)"),
    ("storage-class-typo", backup_values(destination={"storageClass": "STANDARD-IA"}),
     r"(?i)storageClass.*(must be one of|value must be one of)"),
    ("concurrency-allow", backup_values(concurrencyPolicy="Allow"),
     r"(?i)concurrencyPolicy.*(must be one of|value must be one of)"),
    ("negative-backoff", backup_values(backoffLimit=-1), r"(?i)backoffLimit.*(greater than or equal|minimum)"),
    ("starting-deadline-too-small", backup_values(startingDeadlineSeconds=5),
     r"(?i)startingDeadlineSeconds.*(greater than or equal|minimum)"),
    ("compression-unknown", backup_values(dump={"compression": "bzip2"}), r"compression.*(?i:does not match pattern)"),
    ("part-size-unitless-garbage", backup_values(upload={"partSize": "16 MB"}), r"partSize.*(?i:does not match pattern)"),
    ("concurrency-zero", backup_values(upload={"concurrency": 0}), r"(?i)concurrency.*(greater than or equal|minimum)"),
    ("role-arn-garbage", backup_values(webIdentity={"enabled": True, "roleArn": "agent-bom-backup"}),
     r"roleArn.*(?i:does not match pattern)"),
    ("token-expiry-below-kubernetes-minimum", backup_values(webIdentity={"expirationSeconds": 60}),
     r"(?i)expirationSeconds.*(greater than or equal|minimum)"),
    ("secret-name-not-dns", backup_values(database={"existingSecret": "Agent_Bom"}),
     r"existingSecret.*(?i:does not match pattern)"),
    ("ssl-mode-unknown", backup_values(database={"sslMode": "on"}), r"(?i)sslMode.*(must be one of|value must be one of)"),
    ("log-level-unknown", backup_values(logging={"level": "verbose"}), r"(?i)level.*(must be one of|value must be one of)"),
    ("image-digest-not-sha256", backup_values(image={"digest": "latest"}), r"digest.*(?i:does not match pattern)"),
    ("pull-policy-unknown", backup_values(image={"pullPolicy": "Sometimes"}), r"(?i)pullPolicy.*(must be one of|value must be one of)"),
    ("max-age-zero", backup_values(prometheusRule={"maxAgeHours": 0}), r"(?i)maxAgeHours.*(greater than or equal|minimum)"),
    ("network-policy-bad-cidr", backup_values(networkPolicy={"database": {"cidrs": ["10.0.0.0"]}}),
     r"(?i)cidrs.*does not match pattern"),
    ("drill-schedule-bad", backup_values(restoreDrill={"schedule": "weekly"}), r"schedule.*(?i:does not match pattern)"),
    ("resources-unknown-key", backup_values(resources={"request": {"cpu": "1"}}), r"(?i)additional propert.*request"),
]


class TestBadValues:
    """Each bad input fails rendering with its own message, on Helm 3 and Helm 4."""

    @pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
    @pytest.mark.parametrize(("values", "message"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES])
    def test_rendering_fails_with_a_helpful_message(self, values, message, helm_major):
        with pytest.raises(HelmError, match=message):
            render_chart(values, helm_major=helm_major)

    @pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
    def test_the_same_values_without_the_fault_render(self, helm_major):
        """Guards the table: the base values it starts from are good."""
        assert render_chart(backup_values(), helm_major=helm_major)
