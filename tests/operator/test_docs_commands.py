"""Every shell command in docs/runbook.md is exercised.

The runbook's shell blocks are extracted and every command must appear in ``EXERCISES``:

* ``Runs()``: executed as written, block by block in document order, in one evolving
  environment (an operator's shell session: exports carry over) against a real
  PostgreSQL server, a real S3/KMS/IAM/STS/EKS endpoint (moto, reached by the AWS CLI
  through ``AWS_ENDPOINT_URL``) and a ``kubectl`` answering recorded JSON;
* ``Provided(value)``: an ``export`` of a placeholder (``<your-backup-bucket-region>``,
  ``staging-postgres``); the test sets the variable to its own server's value instead;
* ``Mirrored(test)``: needs a live cluster (helm against Kubernetes); the named test in
  this module does the same thing offline (``helm template`` with the same arguments).

A command added to the runbook without an entry here fails
``test_every_documented_command_is_exercised``; an entry whose command left the runbook
fails ``test_every_exercise_is_still_documented`` (both in
tests/unit/operator/test_runbook_exercises.py). Blocks preceded by
``<!-- file: NAME -->`` are written to the session's working directory first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
import yaml

from tests.operator.fakes.cluster import FakeCluster, cronjob_backing_up_to, fixture
from devstack import tools
from tests.support import buckets
from tests.support import postgres
from devstack.pgcluster import PgClusterPool
from devstack.s3server import MotoServer, dummy_aws_env
from devstack.seed import create_roles

RUNBOOK = tools.repo_root() / "docs" / "runbook.md"
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
DOCS_BUCKET = "agent-bom-prod-backups"
DOCS_PREFIX = "agent-bom/postgres"
REGION = "us-east-1"
BLOCK_TIMEOUT_S = 300
MANAGED_PASSWORD = "managed-admin-password"


# ----------------------------------------------------------------------------- extraction
@dataclass(frozen=True)
class Block:
    index: int
    line: int
    language: str
    body: str
    file_name: str | None
    section: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{self.index:02d}-{slug}-line{self.line}"


_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
_FILE_MARKER = re.compile(r"^\s*<!--\s*file:\s*(?P<name>[\w.-]+)\s*-->\s*$")


def code_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    section = "top"
    marker: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        file_match = _FILE_MARKER.match(line)
        if file_match:
            marker = file_match.group("name")
        fence = _FENCE.match(line)
        if fence:
            indent = len(fence.group("indent"))
            body: list[str] = []
            i += 1
            while not _FENCE.match(lines[i]) or lines[i].strip() != "```":
                body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
                i += 1
            blocks.append(Block(len(blocks), i - len(body), fence.group("lang"), "\n".join(body) + "\n",
                                marker, section))
            marker = None
        elif line.strip() and not file_match:
            marker = None
        i += 1
    return blocks


def commands(block: Block) -> list[str]:
    """The block's commands, continuation lines joined (text as written)."""
    found, current = [], ""
    for line in block.body.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line + "\n"
        if not line.rstrip().endswith("\\"):
            found.append(current)
            current = ""
    assert not current, f"block at line {block.line} ends inside a continued command"
    return found


def normalize(command: str) -> str:
    return " ".join(command.replace("\\\n", " ").split())


BLOCKS = code_blocks(RUNBOOK.read_text())
SHELL_BLOCKS = [b for b in BLOCKS if b.language in SHELL_LANGUAGES]


# ----------------------------------------------------------------------------- the mapping
@dataclass(frozen=True)
class Runs:
    """Executed as written."""


@dataclass(frozen=True)
class Provided:
    """An export of a placeholder; the test's ``Drill`` supplies the variable's value."""

    variable: str


@dataclass(frozen=True)
class Mirrored:
    """Needs a live cluster; the named test in this module does the same offline."""

    test: str


Exercise = Runs | Provided | Mirrored
RUNS = Runs()
IN_CLUSTER_RESTORE = (
    "kubectl -n agent-bom create job --from=cronjob/agent-bom-control-plane-restore restore-inc-1234 "
    "--dry-run=client -o yaml | kubectl set env --local -f - -o yaml BACKUP_URI=\"$BACKUP_URI\" "
    "AGENT_BOM_RESTORE_APPROVAL=INC-1234 AGENT_BOM_RESTORE_OPERATOR=\"$USER\" | kubectl -n agent-bom create -f -"
)
#: what an operator writes over the runbook's two placeholders
FILLED_IN = {"<account-id>": "123456789012", "<your-backup-bucket-region>": REGION}

EXERCISES: dict[str, Exercise] = {
    # prerequisites: bucket, KMS, lifecycle, IAM (aws CLI against moto)
    'export AWS_REGION="<your-backup-bucket-region>"': Provided("AWS_REGION"),
    'export BACKUP_BUCKET="agent-bom-prod-backups"': RUNS,
    'aws s3 mb "s3://$BACKUP_BUCKET" --region "$AWS_REGION"': RUNS,
    'aws s3api put-public-access-block --bucket "$BACKUP_BUCKET" --region "$AWS_REGION" '
    "--public-access-block-configuration "
    "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true": RUNS,
    'aws s3api put-bucket-versioning --bucket "$BACKUP_BUCKET" --region "$AWS_REGION" '
    "--versioning-configuration Status=Enabled": RUNS,
    'KMS_KEY_ID=$(aws kms create-key --region "$AWS_REGION" --description "agent-bom control-plane backups" '
    "--query KeyMetadata.KeyId --output text)": RUNS,
    'aws kms create-alias --region "$AWS_REGION" --alias-name alias/agent-bom-backups --target-key-id '
    '"$KMS_KEY_ID"': RUNS,
    'aws s3api put-bucket-encryption --bucket "$BACKUP_BUCKET" --region "$AWS_REGION" '
    "--server-side-encryption-configuration '{\"Rules\": [{\"ApplyServerSideEncryptionByDefault\": "
    '{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/agent-bom-backups"}, "BucketKeyEnabled": true}]}\'': RUNS,
    'aws s3api put-bucket-lifecycle-configuration --bucket "$BACKUP_BUCKET" --region "$AWS_REGION" '
    "--lifecycle-configuration file://lifecycle.json": RUNS,
    "aws iam create-policy --policy-name agent-bom-backup --policy-document "
    "file://deploy/iam/backup-role-policy.json": RUNS,
    "aws iam create-policy --policy-name agent-bom-restore --policy-document "
    "file://deploy/iam/restore-role-policy.json": RUNS,
    "aws iam create-policy --policy-name agent-bom-prune --policy-document "
    "file://deploy/iam/prune-role-policy.json": RUNS,
    "kubectl -n agent-bom create secret generic agent-bom-postgres "
    "--from-file=AGENT_BOM_POSTGRES_URL=./postgres-url": RUNS,
    'export AGENT_BOM_POSTGRES_URL="$(cat ./postgres-url)"': RUNS,
    'agent-bom-backup preflight --bucket "$BACKUP_BUCKET" --region "$AWS_REGION"': RUNS,
    # helm: needs a cluster
    "helm upgrade --install agent-bom-backup deploy/helm/agent-bom -n agent-bom --create-namespace -f values.yaml":
        Mirrored("test_helm_install_renders_the_documented_values"),
    "helm upgrade agent-bom-backup deploy/helm/agent-bom -n agent-bom --reuse-values "
    "--set controlPlane.backup.enabled=false": Mirrored("test_helm_disable_renders_no_backup_resources"),
    "helm upgrade agent-bom-backup deploy/helm/agent-bom -n agent-bom --reuse-values "
    "--set controlPlane.backup.prometheusRule.enabled=true": Mirrored("test_helm_prometheus_rule_renders"),
    # monitoring: pings and webhook from a Secret
    'export BACKUP_CHECK_UUID="<backup-check-uuid>"': RUNS,
    'export DRILL_CHECK_UUID="<drill-check-uuid>"': RUNS,
    'export RETENTION_CHECK_UUID="<retention-check-uuid>"': RUNS,
    'export SLACK_WEBHOOK_URL="https://hooks.slack.com/services/T000/B000/XXXXXXXX"': RUNS,
    'kubectl -n agent-bom create secret generic agent-bom-notify '
    '--from-literal=backupPingUrl="https://hc-ping.com/$BACKUP_CHECK_UUID" '
    '--from-literal=drillPingUrl="https://hc-ping.com/$DRILL_CHECK_UUID" '
    '--from-literal=retentionPingUrl="https://hc-ping.com/$RETENTION_CHECK_UUID"': RUNS,
    'kubectl -n agent-bom create secret generic agent-bom-notify --from-literal=webhookUrl="$SLACK_WEBHOOK_URL" '
    '--from-literal=backupPingUrl="https://hc-ping.com/$BACKUP_CHECK_UUID"': RUNS,
    "helm upgrade agent-bom-backup deploy/helm/agent-bom -n agent-bom --reuse-values "
    "--set controlPlane.backup.notify.existingSecret=agent-bom-notify": Mirrored("test_helm_notify_secret_renders"),
    # in-cluster restore: the chart's suspended restore CronJob, instantiated by hand
    "kubectl -n agent-bom create secret generic agent-bom-restore-target "
    "--from-file=AGENT_BOM_RESTORE_POSTGRES_URL=./restore-postgres-url": RUNS,
    "helm upgrade agent-bom-backup deploy/helm/agent-bom -n agent-bom --reuse-values "
    "--set controlPlane.backup.restore.enabled=true "
    "--set controlPlane.backup.restore.target.existingSecret=agent-bom-restore-target "
    "--set 'controlPlane.backup.restore.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn="
    "arn:aws:iam::<account-id>:role/agent-bom-restore'":
        Mirrored("test_helm_enables_the_in_cluster_restore"),
    IN_CLUSTER_RESTORE: Mirrored("test_in_cluster_restore_is_instantiated_as_documented"),
    "kubectl -n agent-bom logs -f job/restore-inc-1234": RUNS,
    # manual backup check
    'JOB="agent-bom-control-plane-backup-manual-$(date +%s)"': RUNS,
    'kubectl -n agent-bom create job --from=cronjob/agent-bom-control-plane-backup "$JOB"': RUNS,
    'kubectl -n agent-bom wait --for=condition=complete --timeout=30m "job/$JOB"': RUNS,
    'kubectl -n agent-bom logs "job/$JOB"': RUNS,
    'export AGENT_BOM_BACKUP_BUCKET="agent-bom-prod-backups"': RUNS,
    'export AGENT_BOM_BACKUP_PREFIX="agent-bom/postgres"': RUNS,
    'export AGENT_BOM_BACKUP_SSE="aws:kms"': RUNS,
    'export AGENT_BOM_BACKUP_KMS_KEY_ID="alias/agent-bom-backups"': RUNS,
    "agent-bom-backup backup": RUNS,
    'aws s3 ls "s3://agent-bom-prod-backups/agent-bom/postgres/" --region "$AWS_REGION" --recursive '
    "--human-readable --summarize": RUNS,
    "agent-bom-backup list": RUNS,
    "agent-bom-backup list --json": RUNS,
    "agent-bom-backup check --max-age 26h": RUNS,
    'export SCRATCH_POSTGRES_URL="postgresql://agent_bom_verify@scratch-postgres:5432/postgres"':
        Provided("SCRATCH_POSTGRES_URL"),
    "agent-bom-backup verify latest": RUNS,
    'AGENT_BOM_VERIFY_SCRATCH_URL="$SCRATCH_POSTGRES_URL" agent-bom-backup verify latest --deep': RUNS,
    "kubectl -n agent-bom get cronjob agent-bom-control-plane-backup": RUNS,
    "kubectl -n agent-bom get jobs -l app.kubernetes.io/component=control-plane-backup": RUNS,
    # restore drill
    'export BACKUP_URI="s3://agent-bom-prod-backups/agent-bom/postgres/agent-bom-YYYYMMDDTHHMMSSZ.dump"':
        Provided("BACKUP_URI"),
    'export RESTORE_POSTGRES_URL="postgresql://agent_bom:REDACTED@staging-postgres:5432/agent_bom"':
        Provided("RESTORE_POSTGRES_URL"),
    'deploy/ops/restore-postgres-backup.sh "$BACKUP_URI" "$RESTORE_POSTGRES_URL" "$AWS_REGION" --dry-run': RUNS,
    'deploy/ops/restore-postgres-backup.sh "$BACKUP_URI" "$RESTORE_POSTGRES_URL" "$AWS_REGION"': RUNS,
    'psql "$RESTORE_POSTGRES_URL" -c "select count(*) from audit_log;"': RUNS,
    'psql "$RESTORE_POSTGRES_URL" -c "select team_id, count(*) from audit_log group by team_id order by team_id;"':
        RUNS,
    'scripts/deploy/verify-eks-reference.sh --cluster-name corp-ai --region "$AWS_REGION" --namespace agent-bom':
        RUNS,
    # production restore
    'deploy/ops/restore-postgres-backup.sh "$BACKUP_URI" "$RESTORE_POSTGRES_URL" "$AWS_REGION" --clean '
    "--confirm-target agent_bom --approval INC-1234 --report restore-INC-1234.json": RUNS,
    # restore into a managed instance
    'export MANAGED_POSTGRES_URL="postgresql://dbadmin@agent-bom.cluster-abc123.us-east-1.rds.amazonaws.com:5432/'
    'agent_bom_restore?sslmode=verify-full&sslrootcert=./global-bundle.pem"': Provided("MANAGED_POSTGRES_URL"),
    'deploy/ops/restore-postgres-backup.sh "$BACKUP_URI" "$MANAGED_POSTGRES_URL" "$AWS_REGION" '
    "--create-missing-roles --dry-run": RUNS,
    'deploy/ops/restore-postgres-backup.sh "$BACKUP_URI" "$MANAGED_POSTGRES_URL" "$AWS_REGION" '
    "--create-missing-roles --report restore-managed.json": RUNS,
    # retention
    "agent-bom-backup prune --keep-days 35 --keep-last 7": RUNS,
    "agent-bom-backup prune --keep-days 35 --keep-last 7 --yes": RUNS,
    # encrypted backups (age): Debian's age-keygen and age, the job's CLI, pg_restore
    "age-keygen -o agent-bom-backup-identity.txt": RUNS,
    "age-keygen -y agent-bom-backup-identity.txt": RUNS,
    'AGENT_BOM_BACKUP_ENCRYPT_TO="$(age-keygen -y agent-bom-backup-identity.txt)" agent-bom-backup backup': RUNS,
    "agent-bom-backup check --max-age 26h --recipients": RUNS,
    'deploy/ops/restore-postgres-backup.sh latest "$RESTORE_POSTGRES_URL" "$AWS_REGION" --identity '
    "agent-bom-backup-identity.txt --clean --confirm-target agent_bom --approval INC-1234": RUNS,
    'export BACKUP_ID="agent-bom-YYYYMMDDTHHMMSSZ"': Provided("BACKUP_ID"),
    'aws s3 cp "s3://$BACKUP_BUCKET/agent-bom/postgres/$BACKUP_ID.dump" backup.dump.age --region "$AWS_REGION"': RUNS,
    "age -d -i agent-bom-backup-identity.txt -o backup.dump backup.dump.age": RUNS,
    "sha256sum backup.dump": RUNS,
    "pg_restore --list backup.dump": RUNS,
    'export BY_HAND_POSTGRES_URL="postgresql://agent_bom@staging-postgres:5432/agent_bom_by_hand"':
        Provided("BY_HAND_POSTGRES_URL"),
    'pg_restore --exit-on-error --dbname "$BY_HAND_POSTGRES_URL" backup.dump': RUNS,
}


def exercise_of(command: str) -> Exercise | None:
    return EXERCISES.get(normalize(command))


RUNNABLE_BLOCKS = [b for b in SHELL_BLOCKS if any(isinstance(exercise_of(c), Runs) for c in commands(b))]


# ----------------------------------------------------------------------------- the drill
@dataclass
class BlockResult:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


@dataclass
class Drill:
    """The operator's session: a working directory, an environment, the servers."""

    workdir: Path
    env: dict[str, str]
    provided: dict[str, Callable[[], str]]
    results: dict[str, BlockResult] = field(default_factory=dict)

    def run_block(self, block: Block) -> None:
        """Set the variables the block provides, then run its runnable commands (if any)."""
        lines = ["set -euo pipefail"]
        for command in commands(block):
            exercise = exercise_of(command)
            if isinstance(exercise, Provided):
                self.env[exercise.variable] = self.provided[exercise.variable]()
            elif isinstance(exercise, Runs):
                lines.append(command.rstrip("\n"))
        if len(lines) == 1:
            return
        state = self.workdir / ".env-state"
        lines.append(f'env -0 > "{state}"')
        result = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=self.workdir, env=self.env,
                                capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if result.returncode == 0:
            self.env = dict(item.split("=", 1) for item in state.read_text().split("\0") if "=" in item)
        self.results[block.id] = BlockResult(result.returncode, result.stdout, result.stderr)


def _delete_if_present(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - absent is fine: we only want a clean slate
        pass


def _aws_cli() -> str:
    aws = shutil.which("aws")
    assert aws, ("the runbook's aws commands need the AWS CLI on PATH: "
                 "pip install awscli (or your distribution's awscli package)")
    return aws


@pytest.fixture(scope="module")
def drill(s3: MotoServer, op_source: postgres.Database, pg_cluster_factory: PgClusterPool,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    _aws_cli()
    staging = pg_cluster_factory(15, fresh=True)
    with psycopg.connect(staging.admin_conninfo, autocommit=True) as conn:
        create_roles(conn)  # a staging server provisioned like production
    staging.create_database("agent_bom")

    aws_kwargs = {"endpoint_url": s3.endpoint_url, "region_name": REGION, **_moto_credentials()}
    _delete_if_present(lambda: s3.delete_bucket(DOCS_BUCKET))
    _delete_if_present(lambda: boto3.client("kms", **aws_kwargs).delete_alias(AliasName="alias/agent-bom-backups"))
    iam = boto3.client("iam", **aws_kwargs)
    account = boto3.client("sts", **aws_kwargs).get_caller_identity()["Account"]
    for name in ("agent-bom-backup", "agent-bom-restore", "agent-bom-prune"):
        _delete_if_present(lambda name=name: iam.delete_policy(PolicyArn=f"arn:aws:iam::{account}:policy/{name}"))
    eks = boto3.client("eks", **aws_kwargs)
    _delete_if_present(lambda: eks.delete_cluster(name="corp-ai"))
    cluster = eks.create_cluster(name="corp-ai", roleArn=f"arn:aws:iam::{account}:role/corp-ai-cluster",
                                 resourcesVpcConfig={"subnetIds": ["subnet-0a1b2c3d4e5f60718"]})["cluster"]

    workdir = tmp_path_factory.mktemp("runbook")
    for name in ("deploy", "scripts"):
        (workdir / name).symlink_to(tools.repo_root() / name)
    for block in BLOCKS:
        if block.file_name:
            (workdir / block.file_name).write_text(block.body)
    (workdir / "postgres-url").write_text(op_source.url + "\n")

    fake = FakeCluster(workdir / ".fake", {})
    fake.remove("aws")  # the real AWS CLI against moto
    kubeconfig = fixture("kubeconfig-minify.json")
    kubeconfig["clusters"][0]["cluster"]["server"] = cluster["endpoint"]
    fake.healthy(cronjob_backing_up_to(DOCS_BUCKET, s3.endpoint_url))
    fake.answer("kubectl", ["config", "view", "--minify"], data=kubeconfig)
    fake.answer("kubectl", ["create", "secret"], stdout="secret/agent-bom-postgres created\n")
    fake.answer("kubectl", ["create", "job"], stdout="job.batch/agent-bom-control-plane-backup-manual created\n")
    fake.answer("kubectl", ["wait", "--for=condition=complete"],
                stdout="job.batch/agent-bom-control-plane-backup-manual condition met\n")
    fake.answer("kubectl", ["logs"], stdout='{"level": "info", "message": "backup complete"}\n')
    fake.answer("kubectl", ["get", "cronjob", "agent-bom-control-plane-backup", "-o", "json"],
                data=cronjob_backing_up_to(DOCS_BUCKET, s3.endpoint_url))
    fake.answer("kubectl", ["get", "cronjob", "agent-bom-control-plane-backup"], stdout=(
        "NAME                             SCHEDULE    TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE   AGE\n"
        "agent-bom-control-plane-backup   0 3 * * *   <none>     False     0        5h              7d\n"))
    fake.answer("kubectl", ["get", "jobs", "-o", "json"], file="jobs-succeeded.json")
    fake.answer("kubectl", ["get", "jobs"], stdout=(
        "NAME                                      STATUS     COMPLETIONS   DURATION   AGE\n"
        "agent-bom-control-plane-backup-29550060   Complete   1/1           2m41s      5h\n"))
    # `-o json` lookups first: the table answers above only serve the runbook's plain gets
    fake.rules["kubectl"].sort(key=lambda rule: "json" not in rule["args"])
    fake.save()

    env = {
        "PATH": f"{fake.bin}:{tools.venv_bin_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "USER": "oncall",
        **dummy_aws_env(REGION),
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AGENT_BOM_BACKUP_ENDPOINT_URL": s3.endpoint_url,
        "AGENT_BOM_BACKUP_PATH_STYLE": "true",
        **fake.tool_env(),
    }
    for name in ("PYENV_ROOT", "PYENV_VERSION"):
        if name in os.environ:
            env[name] = os.environ[name]

    def newest_dump_uri() -> str:
        keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=DOCS_BUCKET, Prefix=DOCS_PREFIX + "/")
                .get("Contents", []) if o["Key"].endswith(".dump")]
        assert keys, "the runbook's backup step left no dump"
        return f"s3://{DOCS_BUCKET}/{max(keys)}"

    def managed_admin_url() -> str:
        """A managed instance's admin (LOGIN CREATEDB CREATEROLE, no BYPASSRLS) and a
        database it created, as the runbook's SQL block makes it."""
        staging.run_sql(f"CREATE ROLE dbadmin LOGIN CREATEDB CREATEROLE PASSWORD '{MANAGED_PASSWORD}'")
        with psycopg.connect(staging.url("postgres", "dbadmin", MANAGED_PASSWORD), autocommit=True) as conn:
            conn.execute("CREATE DATABASE agent_bom_restore")
        return staging.url("agent_bom_restore", "dbadmin", MANAGED_PASSWORD)

    def by_hand_database() -> str:
        """An empty database for the runbook's by-hand pg_restore of a decrypted dump."""
        staging.create_database("agent_bom_by_hand")
        return staging.superuser_url("agent_bom_by_hand")

    provided: dict[str, Callable[[], str]] = {
        "MANAGED_POSTGRES_URL": managed_admin_url,
        "AWS_REGION": lambda: REGION,
        "SCRATCH_POSTGRES_URL": lambda: staging.superuser_url("postgres"),
        "BACKUP_URI": newest_dump_uri,
        "RESTORE_POSTGRES_URL": lambda: staging.superuser_url("agent_bom"),
        "BACKUP_ID": lambda: newest_dump_uri().rsplit("/", 1)[1].removesuffix(".dump"),
        "BY_HAND_POSTGRES_URL": by_hand_database,
    }
    session = Drill(workdir, env, provided)
    for block in SHELL_BLOCKS:
        session.run_block(block)
    try:
        yield session
    finally:
        _delete_if_present(lambda: s3.delete_bucket(DOCS_BUCKET))
        _delete_if_present(lambda: eks.delete_cluster(name="corp-ai"))
        staging.destroy()


def _moto_credentials() -> dict[str, str]:
    env = dummy_aws_env(REGION)
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}


# ----------------------------------------------------------------------------- running them
@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE_BLOCKS, ids=[b.id for b in RUNNABLE_BLOCKS])
def test_documented_block_runs(drill: Drill, block: Block) -> None:
    result = drill.results[block.id]
    assert result.returncode == 0, f"runbook block at line {block.line}:\n{block.body}\n{result}"


def _output_of(drill: Drill, command_fragment: str) -> str:
    block = next(b for b in RUNNABLE_BLOCKS if command_fragment in b.body)
    return drill.results[block.id].stdout


@pytest.mark.slow
def test_runbook_tenant_query_matches_the_source(drill: Drill, op_source: postgres.Database) -> None:
    output = _output_of(drill, "group by team_id order by team_id")
    rows = dict(re.findall(r"^\s*(team-[a-z]+)\s*\|\s*(\d+)\s*$", output, flags=re.MULTILINE))
    assert {team: int(n) for team, n in rows.items()} == op_source.audit_rows


@pytest.mark.slow
def test_runbook_aws_ls_shows_the_backup_objects(drill: Drill) -> None:
    output = _output_of(drill, 'aws s3 ls "s3://agent-bom-prod-backups/agent-bom/postgres/"')
    assert sorted(re.findall(r"\.(dump|roles\.sql|manifest\.json)$", output, flags=re.MULTILINE)) == [
        "dump", "manifest.json", "roles.sql"]


@pytest.mark.slow
def test_runbook_by_hand_decryption_matches_the_manifest(drill: Drill, s3: MotoServer) -> None:
    """The 3 a.m. path's sha256sum prints the digest the manifest recorded for the plaintext."""
    output = _output_of(drill, "sha256sum backup.dump")
    printed = re.findall(r"^([0-9a-f]{64})\s+backup\.dump$", output, flags=re.MULTILINE)
    backup_id = drill.env["BACKUP_ID"]
    manifest = json.loads(buckets.get_object(s3.client(), DOCS_BUCKET, f"{DOCS_PREFIX}/{backup_id}.manifest.json"))
    assert (manifest["encryption"]["format"], printed) == ("age", [manifest["dump"]["plaintext_sha256"]])


@pytest.mark.slow
def test_runbook_by_hand_restore_brings_back_every_tenant(drill: Drill, op_source: postgres.Database) -> None:
    with psycopg.connect(drill.env["BY_HAND_POSTGRES_URL"]) as conn:
        rows = dict(conn.execute("SELECT team_id, count(*) FROM audit_log GROUP BY team_id").fetchall())
    assert rows == op_source.audit_rows


@pytest.mark.slow
def test_runbook_production_restore_writes_the_incident_report(drill: Drill) -> None:
    report = json.loads((drill.workdir / "restore-INC-1234.json").read_text())
    assert (report["status"], report["approval"], report["operator"]) == ("verified", "INC-1234", "oncall")


@pytest.mark.slow
def test_runbook_managed_restore_is_verified_as_the_admin(drill: Drill) -> None:
    report = json.loads((drill.workdir / "restore-managed.json").read_text())
    assert (report["status"], report["restore_role"], report["memberships_granted"]) == (
        "verified", "dbadmin", ["agent_bom_owner"])


@pytest.mark.slow
def test_runbook_smoke_checks_report_no_failure(drill: Drill) -> None:
    output = _output_of(drill, "scripts/deploy/verify-eks-reference.sh")
    assert output.splitlines()[-1] == "10 passed, 0 failed, 0 skipped"


# ----------------------------------------------------------------------------- the mirrors
def _helm_template(*args: str, values: str | None = None, tmp_path: Path) -> list[dict[str, Any]]:
    argv = [str(tools.helm_binary(4)), "template", "agent-bom-backup", str(tools.repo_root() / "deploy" / "helm" / "agent-bom"),
            "-n", "agent-bom"]
    if values is not None:
        (tmp_path / "values.yaml").write_text(values)
        argv += ["-f", str(tmp_path / "values.yaml")]
    result = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _documented_values(filled_in: bool = True) -> str:
    """The runbook's values.yaml, with its placeholders replaced as the runbook tells the reader to."""
    text = next(b.body for b in BLOCKS if b.file_name == "values.yaml")
    if filled_in:
        for placeholder, value in FILLED_IN.items():
            text = text.replace(placeholder, value)
    return text


def _kinds(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def test_helm_install_renders_the_documented_values(tmp_path: Path) -> None:
    """`helm upgrade --install agent-bom-backup deploy/helm/agent-bom -n agent-bom -f values.yaml`"""
    docs = _helm_template(values=_documented_values(), tmp_path=tmp_path)
    assert {("CronJob", "agent-bom-control-plane-backup"), ("ServiceAccount", "agent-bom-control-plane-backup")} \
        <= _kinds(docs)


def test_documented_values_as_written_are_refused_naming_both_placeholders(tmp_path: Path) -> None:
    (tmp_path / "values.yaml").write_text(_documented_values(filled_in=False))
    argv = [str(tools.helm_binary(4)), "template", "agent-bom", str(tools.repo_root() / "deploy" / "helm" / "agent-bom"),
            "-n", "agent-bom", "-f", str(tmp_path / "values.yaml")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    documented = next(b.body for b in BLOCKS if b.language == "text" and "still holds the placeholder" in b.body)
    assert [line for line in result.stderr.splitlines() if "placeholder" in line] == documented.splitlines()[1:]


def test_helm_disable_renders_no_backup_resources(tmp_path: Path) -> None:
    """`helm upgrade ... --reuse-values --set controlPlane.backup.enabled=false`"""
    docs = _helm_template("--set", "controlPlane.backup.enabled=false", values=_documented_values(), tmp_path=tmp_path)
    assert [k for k in _kinds(docs) if k[1].startswith("agent-bom-control-plane")] == []


def test_helm_prometheus_rule_renders(tmp_path: Path) -> None:
    """`helm upgrade ... --reuse-values --set controlPlane.backup.prometheusRule.enabled=true`"""
    docs = _helm_template("--set", "controlPlane.backup.prometheusRule.enabled=true", values=_documented_values(),
                          tmp_path=tmp_path)
    assert ("PrometheusRule", "agent-bom-control-plane-backup") in _kinds(docs)


def test_helm_notify_secret_renders(tmp_path: Path) -> None:
    """`helm upgrade ... --reuse-values --set controlPlane.backup.notify.existingSecret=agent-bom-notify`"""
    docs = _helm_template("--set", "controlPlane.backup.notify.existingSecret=agent-bom-notify",
                          values=_documented_values(), tmp_path=tmp_path)
    (cronjob,) = [d for d in docs if d["kind"] == "CronJob" and d["metadata"]["name"] == "agent-bom-control-plane-backup"]
    env = {e["name"]: e for e in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AGENT_BOM_BACKUP_PING_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "agent-bom-notify", "key": "backupPingUrl", "optional": True}



_RESTORE_SET = ["--set", "controlPlane.backup.restore.enabled=true",
                "--set", "controlPlane.backup.restore.target.existingSecret=agent-bom-restore-target",
                "--set", "controlPlane.backup.restore.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn="
                f"arn:aws:iam::{FILLED_IN['<account-id>']}:role/agent-bom-restore"]


def test_helm_enables_the_in_cluster_restore(tmp_path: Path) -> None:
    """`helm upgrade ... --reuse-values --set controlPlane.backup.restore.enabled=true --set ...target...`"""
    docs = _helm_template(*_RESTORE_SET, values=_documented_values(), tmp_path=tmp_path)
    (cronjob,) = [d for d in docs if d["metadata"]["name"] == "agent-bom-control-plane-restore" and d["kind"] == "CronJob"]
    assert cronjob["spec"]["suspend"] is True


def test_in_cluster_restore_is_instantiated_as_documented(tmp_path: Path) -> None:
    """The documented pipeline without a cluster: the Job `kubectl create job --from` builds from the
    rendered CronJob, through the documented `kubectl set env --local` run by the real kubectl
    (tests/image/test_restore_pod_spec.py runs such a Job's pod against real servers)."""
    docs = _helm_template(*_RESTORE_SET, values=_documented_values(), tmp_path=tmp_path)
    (cronjob,) = [d for d in docs if d["metadata"]["name"] == "agent-bom-control-plane-restore" and d["kind"] == "CronJob"]
    create, set_env, apply = (stage.strip() for stage in IN_CLUSTER_RESTORE.split("|"))
    assert (create.split()[6], apply) == ("restore-inc-1234", "kubectl -n agent-bom create -f -")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": create.split()[6]},
           "spec": cronjob["spec"]["jobTemplate"]["spec"]}
    uri = f"s3://{DOCS_BUCKET}/{DOCS_PREFIX}/agent-bom-20260309T030000Z.dump"
    result = subprocess.run(
        ["bash", "-c", set_env.replace("kubectl", str(tools.kubectl_binary()), 1)],
        input=yaml.safe_dump(job), capture_output=True, text=True, timeout=60,
        env={**os.environ, "BACKUP_URI": uri, "USER": "oncall"},
    )
    assert result.returncode == 0, result.stderr
    (pod_container,) = yaml.safe_load(result.stdout)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in pod_container["env"]}
    assert (pod_container["args"], env["BACKUP_URI"], env["AGENT_BOM_RESTORE_APPROVAL"], env["AGENT_BOM_RESTORE_OPERATOR"]) \
        == (["restore", "$(BACKUP_URI)"], uri, "INC-1234", "oncall")
