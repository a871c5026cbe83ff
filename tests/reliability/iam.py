"""A moto server that enforces IAM, with one user per role of deploy/iam/.

moto checks every S3 request's Action and Resource against the caller's policies once
authentication is switched on (``POST /moto-api/reset-auth`` with the number of requests
to let through unchecked: 0). It does not evaluate Conditions (``s3:prefix``,
``kms:ViaService``) nor KMS key policies, and S3 does not call KMS with the caller's
identity: those parts of the documents are covered by parliament's lint only.

Placeholders in the documents are replaced as an operator would: the runbook's bucket
name by the test bucket; the prefix stays ``agent-bom/postgres``.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from devstack import tools
from devstack.s3server import DEFAULT_REGION, MotoServer

IAM_DIR = tools.repo_root() / "deploy" / "iam"
POLICY_FILES = {
    "backup": IAM_DIR / "backup-role-policy.json",
    "restore": IAM_DIR / "restore-role-policy.json",
    "prune": IAM_DIR / "prune-role-policy.json",
}
PLACEHOLDER_BUCKET = "agent-bom-prod-backups"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def policy_document(role: str, bucket: str) -> str:
    """The role's policy with the bucket placeholder filled in."""
    text = POLICY_FILES[role].read_text()
    assert PLACEHOLDER_BUCKET in text, f"{POLICY_FILES[role]} no longer names the placeholder bucket"
    return text.replace(PLACEHOLDER_BUCKET, bucket)


@dataclass
class IamWorld:
    """A dedicated moto server with IAM enforcement on, a bucket, and users ``backup``,
    ``restore``, ``prune`` (the documents), ``nobody`` (no policy) and ``admin`` (``*``,
    for setting up and inspecting)."""

    server: MotoServer
    bucket: str = field(default_factory=lambda: f"abb-iam-{uuid.uuid4().hex[:16]}")
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def setup(self) -> IamWorld:
        self.server.client().create_bucket(Bucket=self.bucket)
        iam = boto3.client("iam", endpoint_url=self.endpoint_url, region_name=DEFAULT_REGION,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        documents = {role: policy_document(role, self.bucket) for role in POLICY_FILES}
        documents["admin"] = json.dumps(ADMIN_POLICY)
        for user in [*documents, "nobody"]:
            iam.create_user(UserName=f"agent-bom-{user}")
            if user in documents:
                iam.put_user_policy(UserName=f"agent-bom-{user}", PolicyName=user, PolicyDocument=documents[user])
            key = iam.create_access_key(UserName=f"agent-bom-{user}")["AccessKey"]
            self.keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        self.enforce()
        return self

    def enforce(self) -> None:
        """From now on moto authenticates and authorises every request."""
        request = urllib.request.Request(self.endpoint_url + "/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            response.read()

    def credentials(self, user: str) -> dict[str, str]:
        """Environment variables carrying ``user``'s access key."""
        key_id, secret = self.keys[user]
        return {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}

    def client(self, user: str) -> BaseClient:
        key_id, secret = self.keys[user]
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=DEFAULT_REGION,
            aws_access_key_id=key_id, aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 1}),
        )

    @property
    def admin(self) -> BaseClient:
        return self.client("admin")


def start_iam_world(log_dir: Path) -> IamWorld:
    return IamWorld(MotoServer(log_dir).start()).setup()


def error_code(call: Any) -> str:
    """Run ``call`` and return the S3 error code it fails with ('' when it succeeds)."""
    from botocore.exceptions import ClientError

    try:
        response = call()
    except ClientError as exc:
        return str(exc.response.get("Error", {}).get("Code", ""))
    errors = response.get("Errors") if isinstance(response, dict) else None
    return str(errors[0]["Code"]) if errors else ""
