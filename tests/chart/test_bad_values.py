"""Bad input fails at `helm install` with one line per problem, naming the value and saying
what is expected; every problem is reported at once.

Two layers: values.schema.json (types, enums, ranges, unknown keys inside controlPlane.backup;
Helm words these itself, differently per major) and templates/_validate.tpl (formats,
placeholders, combinations, upstream keys: the chart's own sentences, identical on Helm 3 and 4).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests.chart.helm_render import (
    HELM_MAJORS,
    RUNBOOK_MINIMAL_VALUES,
    HelmError,
    backup_values,
    own_role,
    refusal,
    render_chart,
)

DRILL = {"enabled": True, "target": {"existingSecret": "scratch-db", "database": "agent_bom_drill"},
         **own_role("agent-bom-restore-drill")}
RESTORE = {"enabled": True, "target": {"existingSecret": "restore-target"}, **own_role("agent-bom-restore")}
RETENTION = own_role("agent-bom-prune")
ROLE = "arn:aws:iam::409613851297:role/r"


def _without(path: str) -> dict[str, Any]:
    values = backup_values()
    node = values["controlPlane"]["backup"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    del node[leaf]
    return values


def _with(values: dict[str, Any], **top: Any) -> dict[str, Any]:
    values = copy.deepcopy(values)
    for key, value in top.items():
        if key == "controlPlane":
            values["controlPlane"].update(value)
        else:
            values[key] = value
    return values


#: (id, values, the one line expected: a regular expression matched in full)
REFUSALS = [
    # --- required values ---------------------------------------------------------------
    ("missing-bucket", _without("destination.bucket"),
     r"controlPlane\.backup\.destination\.bucket is required when controlPlane\.backup\.enabled=true .*"),
    ("empty-bucket-region", backup_values(destination={"bucketRegion": ""}),
     r"controlPlane\.backup\.destination\.bucketRegion is required .*keep the bucket's region explicit.*"),
    ("blank-secret-name", backup_values(database={"existingSecret": ""}),
     r"controlPlane\.backup\.database\.existingSecret must name an existing Secret .*"),
    ("blank-secret-key", backup_values(database={"existingSecretKey": ""}),
     r"controlPlane\.backup\.database\.existingSecretKey must name the key .*"),
    ("inline-url", backup_values(database={"url": "postgresql://agent_bom:secret@db:5432/agent_bom"}),
     r"controlPlane\.backup\.database\.url: an inline database URL is not supported .*"),
    ("inline-url-in-extra-env", backup_values(extraEnv=[{"name": "AGENT_BOM_POSTGRES_URL", "value": "postgresql://x"}]),
     r"controlPlane\.backup\.extraEnv: AGENT_BOM_POSTGRES_URL must not be set inline .*"),
    ("inline-maintenance-url-in-env", backup_values(env=[{"name": "AGENT_BOM_POSTGRES_MAINTENANCE_URL", "value": "x"}]),
     r"controlPlane\.backup\.env: AGENT_BOM_POSTGRES_MAINTENANCE_URL must not be set inline .*"),
    ("inline-secret-key-in-extra-env", backup_values(extraEnv=[{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]),
     r"controlPlane\.backup\.extraEnv: AWS_SECRET_ACCESS_KEY must not be set inline .*"),
    ("url-secret-in-extra-env", backup_values(
        extraEnv=[{"name": "AGENT_BOM_POSTGRES_URL", "valueFrom": {"secretKeyRef": {"name": "a", "key": "b"}}}]),
     r"controlPlane\.backup\.extraEnv: AGENT_BOM_POSTGRES_URL is set by the chart; name its Secret in "
     r"controlPlane\.backup\.database\.existingSecret instead"),
    # --- combinations ----------------------------------------------------------------------
    ("kms-key-with-sse-s3", backup_values(destination={"encryption": {"mode": "AES256"}}),
     r"controlPlane\.backup\.destination\.encryption\.kmsKeyId is only used with mode aws:kms \(mode is AES256\).*"),
    ("kms-key-with-encryption-off", backup_values(destination={"encryption": {"enabled": False}}),
     r"controlPlane\.backup\.destination\.encryption\.kmsKeyId is set but encryption\.enabled=false.*"),
    ("static-credentials-without-secret", backup_values(destination={"staticCredentials": {"enabled": True}}),
     r"controlPlane\.backup\.destination\.staticCredentials\.existingSecret must name an existing Secret .*"),
    ("static-credentials-without-keys", backup_values(destination={"staticCredentials": {
        "enabled": True, "existingSecret": "s3", "accessKeyIdKey": ""}}),
     r"controlPlane\.backup\.destination\.staticCredentials\.accessKeyIdKey and secretAccessKeyKey must name keys.*"),
    ("static-credentials-and-web-identity", backup_values(
        destination={"staticCredentials": {"enabled": True, "existingSecret": "s3"}},
        webIdentity={"enabled": True, "roleArn": ROLE}),
     r"controlPlane\.backup\.destination\.staticCredentials and controlPlane\.backup\.webIdentity are alternatives.*"),
    ("web-identity-without-role", backup_values(webIdentity={"enabled": True}),
     r"controlPlane\.backup\.webIdentity\.roleArn is required when webIdentity\.enabled=true .*"),
    ("object-store-ca-secret-and-configmap", backup_values(destination={"caBundle": {
        "secretName": "a", "configMapName": "b"}}),
     r"controlPlane\.backup\.destination\.caBundle: set secretName or configMapName, not both"),
    ("existing-service-account-without-name", backup_values(serviceAccount={"create": False, "annotations": None}),
     r"controlPlane\.backup\.serviceAccount\.name must name an existing ServiceAccount .*"),
    ("annotations-on-existing-service-account", backup_values(serviceAccount={"create": False, "name": "sa"}),
     r"controlPlane\.backup\.serviceAccount\.annotations only apply to a ServiceAccount the chart creates.*"),
    ("annotations-with-service-account-name", backup_values(serviceAccountName="sa"),
     r"controlPlane\.backup\.serviceAccount\.annotations only apply to a ServiceAccount the chart creates, "
     r"and serviceAccountName names an existing one.*"),
    ("drill-with-web-identity-without-role", backup_values(restoreDrill=DRILL, webIdentity={"enabled": True, "roleArn": ROLE}),
     r"controlPlane\.backup\.restoreDrill\.webIdentityRoleArn is required when webIdentity\.enabled=true.*"),
    ("restore-without-target", backup_values(restore={"enabled": True, **own_role("agent-bom-restore")}),
     r"controlPlane\.backup\.restore\.target\.existingSecret must name an existing Secret .*"),
    ("restore-with-web-identity-without-role", backup_values(restore=RESTORE, webIdentity={"enabled": True, "roleArn": ROLE}),
     r"controlPlane\.backup\.restore\.webIdentityRoleArn is required when webIdentity\.enabled=true.*"),
    ("retention-with-web-identity-without-role", backup_values(retentionDays=30, retention=RETENTION,
                                                                              webIdentity={"enabled": True, "roleArn": ROLE}),
     r"controlPlane\.backup\.retention\.webIdentityRoleArn is required .*retention deletes backups.*"),
    ("retention-with-the-backups-static-key", backup_values(
        retentionDays=30, retention=RETENTION, destination={"staticCredentials": {"enabled": True, "existingSecret": "s3"}}),
     r"controlPlane\.backup\.retention\.staticCredentialsSecret must name a Secret with list and delete credentials.*"),
    ("maintenance-identity-without-secret", _with(backup_values(), controlPlane={"postgresSecrets": {"enabled": True}}),
     r"controlPlane\.postgresSecrets\.maintenanceSecretRef\.name must name the Secret holding "
     r"AGENT_BOM_POSTGRES_MAINTENANCE_URL .*"),
    ("maintenance-url-twice", _with(
        backup_values(env=[{"name": "AGENT_BOM_POSTGRES_MAINTENANCE_URL", "valueFrom": {"secretKeyRef": {"name": "m", "key": "k"}}}]),
        controlPlane={"postgresSecrets": {"enabled": True, "maintenanceSecretRef": {"name": "m"}}}),
     r"controlPlane\.backup\.env: AGENT_BOM_POSTGRES_MAINTENANCE_URL comes from controlPlane\.postgresSecrets\.maintenanceSecretRef.*"),
    # --- upstream agent-bom keys this chart replaces -------------------------------------------
    ("upstream-dump-image", backup_values(image={"dumpRepository": "postgres", "dumpTag": ""}),
     r"controlPlane\.backup\.image\.dumpRepository: this chart runs one container, the agent-bom-backup image .*"
     r"set controlPlane\.backup\.image\.repository / tag .*"),
    ("upstream-upload-resources", backup_values(resources={"upload": {"limits": {"cpu": "1"}}}),
     r"controlPlane\.backup\.resources\.upload: this chart runs one container; move its requests and limits to "
     r"controlPlane\.backup\.resources\.requests / limits"),
    ("upstream-extra-args", backup_values(destination={"extraArgs": ["--storage-class", "STANDARD_IA"]}),
     r"controlPlane\.backup\.destination\.extraArgs are aws s3 cp arguments, .*use destination\.storageClass.*"),
    ("upstream-endpoint-disagrees", backup_values(destination={"endpoint": "https://a.example", "endpointUrl": "https://b.example"}),
     r"controlPlane\.backup\.destination\.endpoint and endpointUrl differ: set one of them \(endpointUrl\)"),
    ("control-plane-disabled", _with(backup_values(), controlPlane={"enabled": False}),
     r"controlPlane\.enabled=false: the agent-bom chart renders no control plane with these values, so there is "
     r"no database to back up; .*"),
    ("top-level-near-miss", _with(backup_values(), controlplane={"backup": {"enabled": True}}),
     r"controlplane: unknown key; did you mean controlPlane\?"),
    ("control-plane-near-miss", _with(backup_values(), controlPlane={"Backup": {"enabled": True}}),
     r"controlPlane\.Backup: unknown key; did you mean controlPlane\.backup\?"),
    # --- formats: a sentence instead of a raw regular expression --------------------------------
    ("schedule-four-fields", backup_values(schedule="0 3 * *"),
     r'controlPlane\.backup\.schedule: "0 3 \* \*" is not a cron schedule: five fields .*'),
    ("schedule-cron-tz", backup_values(schedule="CRON_TZ=UTC 0 3 * * *"),
     r'controlPlane\.backup\.schedule: "CRON_TZ=UTC 0 3 \* \* \*" is not a cron schedule: .*not CRON_TZ'),
    ("drill-schedule-prose", backup_values(restoreDrill={"schedule": "weekly"}),
     r'controlPlane\.backup\.restoreDrill\.schedule: "weekly" is not a cron schedule: .*'),
    ("time-zone-offset", backup_values(timeZone="UTC+2 hours"),
     r'controlPlane\.backup\.timeZone: "UTC\+2 hours" is not an IANA time zone such as Etc/UTC or Europe/Berlin'),
    ("bucket-with-scheme", backup_values(destination={"bucket": "s3://agent-bom-prod-backups"}),
     r'controlPlane\.backup\.destination\.bucket: "s3://agent-bom-prod-backups" is not a bucket name: .*without s3://.*'),
    ("prefix-with-slashes", backup_values(destination={"prefix": "/agent-bom/postgres/"}),
     r'controlPlane\.backup\.destination\.prefix: "/agent-bom/postgres/" is not a key prefix without leading or '
     r"trailing '/' \(e\.g\. agent-bom/postgres\)"),
    ("region-not-aws", backup_values(destination={"bucketRegion": "europe-west1"}),
     r'controlPlane\.backup\.destination\.bucketRegion: "europe-west1" is not an AWS region such as us-east-1, '
     r".*\(any name is accepted with destination\.endpointUrl\)"),
    ("region-uppercase", backup_values(destination={"bucketRegion": "US-EAST-1"}),
     r'controlPlane\.backup\.destination\.bucketRegion: "US-EAST-1" is not an AWS region .*'),
    ("region-with-space-on-custom-endpoint", backup_values(destination={"bucketRegion": "us east", "endpointUrl": "https://s3.example"}),
     r'controlPlane\.backup\.destination\.bucketRegion: "us east" is not a region name .*'),
    ("kms-key-id-garbage", backup_values(destination={"encryption": {"kmsKeyId": "my key"}}),
     r'controlPlane\.backup\.destination\.encryption\.kmsKeyId: "my key" is not a KMS key: its id, its ARN, alias/NAME or an alias ARN'),
    ("endpoint-without-scheme", backup_values(destination={"endpointUrl": "minio:9000"}),
     r"controlPlane\.backup\.destination\.endpointUrl is malformed: an http:// or https:// URL without credentials .*"),
    ("endpoint-with-credentials", backup_values(destination={"endpointUrl": "https://key:secret@minio:9000"}),
     r"controlPlane\.backup\.destination\.endpointUrl is malformed: an http:// or https:// URL without credentials "
     r"\(e\.g\. https://minio\.example:9000\)"),
    ("role-arn-garbage", backup_values(webIdentity={"enabled": True, "roleArn": "agent-bom-backup"}),
     r'controlPlane\.backup\.webIdentity\.roleArn: "agent-bom-backup" is not an IAM role ARN .*'),
    ("irsa-annotation-not-an-arn", backup_values(serviceAccount={"annotations": {"eks.amazonaws.com/role-arn": "agent-bom-backup"}}),
     r'controlPlane\.backup\.serviceAccount\.annotations\["eks\.amazonaws\.com/role-arn"\]: "agent-bom-backup" is not an IAM role ARN .*'),
    ("secret-name-not-dns", backup_values(database={"existingSecret": "Agent_Bom"}),
     r'controlPlane\.backup\.database\.existingSecret: "Agent_Bom" is not a Kubernetes object name .*'),
    ("secret-key-with-slash", backup_values(database={"existingSecretKey": "db/url"}),
     r'controlPlane\.backup\.database\.existingSecretKey: "db/url" is not a Secret key .*'),
    ("image-repository-with-tag", backup_values(image={"repository": "ghcr.io/agent-bom/agent-bom-backup:0.2.0"}),
     r'controlPlane\.backup\.image\.repository: "ghcr\.io/agent-bom/agent-bom-backup:0\.2\.0" is not an image repository '
     r"without tag or digest .*"),
    ("image-digest-not-sha256", backup_values(image={"digest": "latest"}),
     r'controlPlane\.backup\.image\.digest: "latest" is not an image digest: sha256: and 64 hexadecimal digits'),
    ("compression-unknown", backup_values(dump={"compression": "bzip2"}),
     r'controlPlane\.backup\.dump\.compression: "bzip2" is not a compression: auto, none, .*'),
    ("part-size-with-space", backup_values(upload={"partSize": "16 MB"}),
     r'controlPlane\.backup\.upload\.partSize: "16 MB" is not a size such as 16MiB or 1GiB'),
    ("part-size-below-s3-minimum", backup_values(upload={"partSize": "4MiB"}),
     r'controlPlane\.backup\.upload\.partSize: "4MiB" is outside S3\'s part size limits: use 5MiB to 5GiB \(e\.g\. 16MiB\)'),
    ("part-size-above-s3-maximum", backup_values(upload={"partSize": "6GiB"}),
     r'controlPlane\.backup\.upload\.partSize: "6GiB" is outside S3\'s part size limits: .*'),
    ("session-setting-without-value", backup_values(dump={"sessionSettings": ["app.bypass_rls"]}),
     r'controlPlane\.backup\.dump\.sessionSettings\[0\]: "app\.bypass_rls" is not NAME=VALUE without spaces .*'),
    ("cidr-without-prefix-length", backup_values(networkPolicy={"database": {"cidrs": ["10.0.0.0"]}}),
     r'controlPlane\.backup\.networkPolicy\.database\.cidrs\[0\]: "10\.0\.0\.0" is not a CIDR: .*'),
    ("restore-uri-not-s3", backup_values(restore={**RESTORE, "backupUri": "agent-bom-20260101T000000Z.dump"}),
     r'controlPlane\.backup\.restore\.backupUri: "agent-bom-20260101T000000Z\.dump" is not latest, s3://.*'),
    # --- placeholders left in a file copied from the runbook or upstream's examples ---------------
    ("placeholder-bucket", backup_values(destination={"bucket": "REPLACE_ME_BUCKET"}),
     r'controlPlane\.backup\.destination\.bucket still holds the placeholder "REPLACE_ME_BUCKET": replace it with your real value'),
    ("placeholder-region", backup_values(destination={"bucketRegion": "REPLACE_ME_BUCKET_REGION"}),
     r'controlPlane\.backup\.destination\.bucketRegion still holds the placeholder "REPLACE_ME_BUCKET_REGION": .*'),
    ("placeholder-upstream-region", backup_values(destination={"bucketRegion": "", "region": "<region>"}),
     r'controlPlane\.backup\.destination\.region still holds the placeholder "<region>": .*'),
    ("placeholder-kms-key", backup_values(destination={"encryption": {"kmsKeyId": "arn:aws:kms:us-east-1:CHANGE_ME:key/x"}}),
     r'controlPlane\.backup\.destination\.encryption\.kmsKeyId still holds the placeholder "CHANGE_ME": .*'),
    ("placeholder-endpoint", backup_values(destination={"endpointUrl": "https://<account-id>.r2.cloudflarestorage.com"}),
     r'controlPlane\.backup\.destination\.endpointUrl still holds the placeholder "<account-id>": .*'),
    ("placeholder-web-identity-role", backup_values(webIdentity={"enabled": True, "roleArn": "arn:aws:iam::REPLACE_ME_ACCOUNT_ID:role/x"}),
     r'controlPlane\.backup\.webIdentity\.roleArn still holds the placeholder "REPLACE_ME_ACCOUNT_ID": .*'),
    ("placeholder-lowercase-changeme", backup_values(database={"existingSecret": "changeme"}),
     r'controlPlane\.backup\.database\.existingSecret still holds the placeholder "changeme": .*'),
    ("placeholder-in-a-list", backup_values(extraEnv=[{"name": "HTTPS_PROXY", "value": "http://<proxy-host>:3128"}]),
     r'controlPlane\.backup\.extraEnv\[0\]\.value still holds the placeholder "<proxy-host>": .*'),
    ("placeholder-maintenance-secret", _with(backup_values(), controlPlane={"postgresSecrets": {
        "enabled": True, "maintenanceSecretRef": {"name": "REPLACE_ME"}}}),
     r'controlPlane\.postgresSecrets\.maintenanceSecretRef\.name still holds the placeholder "REPLACE_ME": .*'),
    # --- what installs but fails at run time (issue 28) ----------------------------------
    ("aws-documentation-account", backup_values(serviceAccount={"annotations": {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/agent-bom-backup"}}),
     r'controlPlane\.backup\.serviceAccount\.annotations\["eks\.amazonaws\.com/role-arn"\] still holds the '
     r'placeholder "111122223333": replace it with your real value'),
    ("account-id-token", backup_values(destination={"bucketRegion": "auto",
                                                    "endpointUrl": "https://ACCOUNT_ID.r2.cloudflarestorage.com"}),
     r'controlPlane\.backup\.destination\.endpointUrl still holds the placeholder "ACCOUNT_ID": .*'),
    ("kms-key-in-another-region", backup_values(destination={"encryption": {
        "kmsKeyId": "arn:aws:kms:eu-west-1:409613851297:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}),
     r"controlPlane\.backup\.destination\.encryption\.kmsKeyId is a key in eu-west-1, but bucketRegion is "
     r"us-east-1: S3 encrypts only with a KMS key of the bucket's region; .*"),
    ("memory-below-one-part", backup_values(resources={"limits": {"memory": "64Mi"}}),
     r"controlPlane\.backup\.resources\.limits\.memory: 64Mi cannot hold one 8MiB upload part .*: set at least 174Mi .*"),
    ("memory-below-one-configured-part", backup_values(resources={"limits": {"memory": "256Mi"}},
                                                       upload={"partSize": "64MiB"}),
     r"controlPlane\.backup\.resources\.limits\.memory: 256Mi cannot hold one 64MiB upload part .*: set at least 267Mi .*"),
    ("memory-in-decimal-units", backup_values(resources={"limits": {"memory": "0.1G"}}),
     r"controlPlane\.backup\.resources\.limits\.memory: 0\.1G cannot hold one 8MiB upload part .*"),
    ("metrics-file-on-read-only-root", backup_values(metricsFile="/var/lib/metrics/backup.prom"),
     r"controlPlane\.backup\.metricsFile: /var/lib/metrics/backup\.prom is on the container's read-only root "
     r"filesystem: mount a volume there .*"),
    ("metrics-file-on-a-read-only-mount", backup_values(
        metricsFile="/metrics/backup.prom", extraVolumes=[{"name": "m", "emptyDir": {}}],
        extraVolumeMounts=[{"name": "m", "mountPath": "/metrics", "readOnly": True}]),
     r"controlPlane\.backup\.metricsFile: /metrics/backup\.prom is on the container's read-only root filesystem: .*"),
    ("upstream-top-level-service-account", _with(
        _without("serviceAccount.annotations"),
        serviceAccount={"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::409613851297:role/agent-bom"}}),
     r'serviceAccount\.annotations\["eks\.amazonaws\.com/role-arn"\] is upstream agent-bom\'s top-level '
     r"ServiceAccount and does not reach the backup's, which would run with no identity: .*"),
]


#: values near each run-time refusal that install (the rule does not over-reach)
RUN_TIME_ACCEPTED = [
    ("kms-key-in-the-bucket-region", backup_values(destination={"encryption": {
        "kmsKeyId": "arn:aws:kms:us-east-1:409613851297:key/1234abcd-12ab-34cd-56ef-1234567890ab"}})),
    ("memory-just-enough-for-one-part", backup_values(resources={"limits": {"memory": "174Mi"}})),
    ("memory-budget-set-explicitly", backup_values(resources={"limits": {"memory": "64Mi"}}, extraEnv=[
        {"name": "AGENT_BOM_BACKUP_MEMORY_BUDGET", "value": "512MiB"}])),
    ("metrics-file-under-tmp", backup_values(metricsFile="/tmp/backup.prom")),
    ("metrics-file-on-a-mounted-volume", backup_values(
        metricsFile="/metrics/backup.prom", extraVolumes=[{"name": "m", "emptyDir": {}}],
        extraVolumeMounts=[{"name": "m", "mountPath": "/metrics"}])),
    ("upstream-service-account-beside-the-backups-own", _with(
        backup_values(),
        serviceAccount={"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::409613851297:role/agent-bom"}})),
]


@pytest.mark.parametrize("values", [c[1] for c in RUN_TIME_ACCEPTED], ids=[c[0] for c in RUN_TIME_ACCEPTED])
def test_values_near_a_run_time_refusal_install(values):
    assert render_chart(values)


class TestRefusals:
    @pytest.mark.parametrize(("values", "line"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
    def test_refused_with_one_line_naming_the_value(self, values, line):
        problems = refusal(values)
        assert len(problems) == 1 and re.fullmatch(line, problems[0]), problems

    def test_the_runbooks_minimal_values_are_refused_naming_both_placeholders(self):
        assert refusal(RUNBOOK_MINIMAL_VALUES) == [
            'controlPlane.backup.destination.bucketRegion still holds the placeholder "<your-backup-bucket-region>": '
            "replace it with your real value",
            'controlPlane.backup.serviceAccount.annotations["eks.amazonaws.com/role-arn"] still holds the placeholder '
            '"<account-id>": replace it with your real value',
        ]

    def test_an_endpoint_with_credentials_is_not_echoed(self):
        assert "secret" not in " ".join(refusal(backup_values(destination={"endpointUrl": "https://key:secret@minio:9000"})))

    def test_every_problem_is_reported_at_once(self):
        values = backup_values(schedule="nightly", destination={"bucket": "", "prefix": "/x"}, image={"digest": "x"})
        assert [p.split(" ", 1)[0].rstrip(":") for p in refusal(values)] == [
            "controlPlane.backup.destination.bucket", "controlPlane.backup.schedule",
            "controlPlane.backup.image.digest", "controlPlane.backup.destination.prefix"]

    def test_helm_3_prints_the_same_lines(self):
        values = backup_values(schedule="nightly", destination={"bucketRegion": "<region>"})
        assert refusal(values, helm_major=3) == refusal(values)

    def test_the_same_values_without_the_fault_render(self):
        """Guards the table: the base values it starts from are good."""
        assert render_chart(backup_values())


ACCEPTED_REGIONS = [
    "us-east-1", "eu-west-1", "ap-southeast-7", "il-central-1", "mx-central-1", "us-gov-west-1", "us-gov-east-1",
    "cn-north-1", "cn-northwest-1", "us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1",
]


@pytest.mark.parametrize("region", ACCEPTED_REGIONS)
def test_region_of_every_aws_partition_is_accepted(region):
    assert render_chart(backup_values(destination={"bucketRegion": region}))


@pytest.mark.parametrize("region", ["auto", "us-central1", "default", "us-west-004"])
def test_any_region_name_is_accepted_with_a_custom_endpoint(region):
    assert render_chart(backup_values(destination={"bucketRegion": region, "endpointUrl": "https://s3.example"}))


def test_placeholders_outside_this_charts_values_are_ignored():
    """Keys of the rest of agent-bom are not this chart's: their placeholders are the other release's concern."""
    values = backup_values()
    values["scanner"] = {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::REPLACE_ME:role/x"}}}
    assert render_chart(values)


#: schema errors: Helm words them (differently per major); the patterns match either wording
SCHEMA_ERRORS = [
    ("kms-mode-typo", backup_values(destination={"encryption": {"mode": "kms"}}), r"(?i)mode.*(must be one of|value must be one of)"),
    ("unknown-key-under-backup", backup_values(schedul="0 3 * * *"), r"(?i)additional propert.*schedul"),
    ("typo-in-destination", backup_values(destination={"bucketregion": "us-east-1"}), r"(?i)additional propert.*bucketregion"),
    ("typo-in-restore", backup_values(restore={"backupURI": "latest"}), r"(?i)additional propert.*backupURI"),
    ("enabled-as-string", backup_values(enabled="true"), r"(?i)enabled.*(expected: boolean|want boolean)"),
    ("schedule-as-number", backup_values(schedule=3), r"(?i)schedule.*(expected: string|want string)"),
    ("annotation-value-not-string", backup_values(serviceAccount={"annotations": {"a": True}}),
     r"(?i)annotations.*(expected: string|want string)"),
    ("concurrency-allow", backup_values(concurrencyPolicy="Allow"), r"(?i)concurrencyPolicy.*(must be one of|value must be one of)"),
    ("negative-backoff", backup_values(backoffLimit=-1), r"(?i)backoffLimit.*(greater than or equal|minimum)"),
    ("grace-period-too-short", backup_values(terminationGracePeriodSeconds=5),
     r"(?i)terminationGracePeriodSeconds.*(greater than or equal|minimum)"),
    ("retention-zero-days", backup_values(retentionDays=0), r"(?i)retentionDays.*(greater than or equal|minimum)"),
    ("upload-concurrency-above-the-cli-maximum", backup_values(upload={"concurrency": 33}),
     r"(?i)concurrency.*(less than or equal|maximum)"),
    ("lock-wait-zero", backup_values(dump={"lockWaitTimeout": 0}), r"(?i)lockWaitTimeout.*(greater than or equal|minimum)"),
    ("ip-family-unknown", backup_values(networkPolicy={"ipFamilies": ["IPv5"]}), r"(?i)ipFamilies.*(must be one of|value must be one of)"),
    ("token-expiry-below-kubernetes-minimum", backup_values(webIdentity={"expirationSeconds": 60}),
     r"(?i)expirationSeconds.*(greater than or equal|minimum)"),
    # beside a $ref, draft-07 ignores minLength: the schema puts both under allOf
    ("ca-bundle-empty-key", backup_values(database={"caBundle": {"secretName": "db-ca", "key": ""}}),
     r"(?i)caBundle[./]key.*(length must be greater than or equal to 1|minLength: got 0)"),
    ("resources-unknown-key", backup_values(resources={"request": {"cpu": "1"}}), r"(?i)additional propert.*request"),
    # null deletes a key in Helm; every key with a default is required, so null never erases one
    ("helm-test-null", backup_values(helmTest=None), r"(helmTest is required|missing property 'helmTest')"),
    ("object-storage-ports-null", backup_values(networkPolicy={"objectStorage": {"ports": None}}),
     r"(ports is required|missing property 'ports')"),
    ("starting-deadline-null", backup_values(startingDeadlineSeconds=None),
     r"(startingDeadlineSeconds is required|missing property 'startingDeadlineSeconds')"),
]


def test_null_service_account_annotations_render_as_none():
    """The one kind of key with a default the schema lets be null: null and {} mean no annotations."""
    nulled = backup_values(serviceAccount={"annotations": None}, restoreDrill={"serviceAccount": {"annotations": None}})
    assert render_chart(nulled) == render_chart(_without("serviceAccount.annotations"))


class TestSchemaErrors:
    @pytest.mark.parametrize("helm_major", HELM_MAJORS, ids=lambda m: f"helm{m}")
    @pytest.mark.parametrize(("values", "message"), [c[1:] for c in SCHEMA_ERRORS], ids=[c[0] for c in SCHEMA_ERRORS])
    def test_rendering_fails_naming_the_value(self, values, message, helm_major):
        with pytest.raises(HelmError, match=message):
            render_chart(values, helm_major=helm_major)
