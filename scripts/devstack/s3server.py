"""A real S3-compatible HTTP endpoint for tests: ``moto_server`` on 127.0.0.1.

moto keeps everything in memory (keep test objects modest) and serves every AWS API on
one port, so KMS keys for SSE-KMS are created through the same endpoint.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from devstack import tools
from devstack.pgcluster import free_port
from devstack.process import StartStop, start_logged, stop_process_group
from devstack.tls import ServesTls, write_server_tls

HOST = "127.0.0.1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
DEFAULT_REGION = "us-east-1"
START_TIMEOUT_S = 30


def dummy_aws_env(region: str = DEFAULT_REGION) -> dict[str, str]:
    """AWS variables with moto's dummy credentials; the shared config and credentials
    files point at nothing, so a developer's real profile is never read."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


#: variables removed from a test environment so no real identity is used
AWS_VARIABLES_TO_CLEAR = (
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
)


def abort_open_uploads(client: BaseClient, bucket: str) -> None:
    """Abort every open multipart upload in ``bucket`` (before deleting it)."""
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


class MotoServerError(RuntimeError):
    """moto_server did not start or answer; carries its log tail."""


class MotoServer(StartStop, ServesTls):
    """``moto_server -H 127.0.0.1 -p PORT`` as a subprocess; logs go to ``log_dir``.

    With ``tls=True`` it serves HTTPS with a certificate from a fresh test CA
    (:attr:`ca_file`), for CA-bundle tests.

    :data:`JOB_ENV` is what a job talking to moto sets (the test stores, the drill and the
    benchmark do): moto reads the whole object for every GET, ranged or not (8 MiB ranges
    of a 753 MB object took 40 s instead of ~1 s), so restores download in one stream and
    spend no range probe (a whole-object read of its own) beside it. The CLI knows no store
    by name; its range probe would find moto slow, a whole-object read later.
    """

    tls_error = MotoServerError
    JOB_ENV = {"AGENT_BOM_RESTORE_PARALLEL_DOWNLOAD_THRESHOLD": "off"}

    def __init__(self, log_dir: Path | str, port: int | None = None, *, tls: bool = False) -> None:
        self.log_dir = Path(log_dir)
        self.port = port if port is not None else free_port()
        self.tls = tls
        self.log_file = self.log_dir / "moto_server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{HOST}:{self.port}"

    def _tls_args(self) -> list[str]:
        cert_file, key_file = self.log_dir / "moto.crt", self.log_dir / "moto.key"
        self._ca_file = write_server_tls("agent-bom moto CA", self.log_dir / "moto-ca.crt", cert_file, key_file)
        return ["-c", str(cert_file), "-k", str(key_file)]

    # ------------------------------------------------------------ lifecycle
    def start(self) -> MotoServer:
        """Start the server and wait until it answers HTTP."""
        if self._process is not None:
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [str(tools.venv_executable("moto_server")), "-H", HOST, "-p", str(self.port)]
        if self.tls:
            argv += self._tls_args()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.log_dir),
               "PYTHONUNBUFFERED": "1", **dummy_aws_env()}
        self._process = start_logged(argv, env, self.log_file, self._answers, name="moto_server",
                                     timeout_s=START_TIMEOUT_S, error=MotoServerError)
        return self

    def _request(self, method: str, path: str, timeout: float = 5) -> bytes:
        request = urllib.request.Request(self.endpoint_url + path, method=method)
        context = None
        if self.tls:
            import ssl

            context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            return bytes(response.read())

    def _answers(self) -> bool:
        try:
            self._request("GET", "/moto-api/data.json", timeout=2)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False
        return True

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL). Idempotent."""
        process, self._process = self._process, None
        stop_process_group(process)

    # ------------------------------------------------------------ API helpers
    def reset(self) -> None:
        """Forget every bucket, object and key (``POST /moto-api/reset``)."""
        self._request("POST", "/moto-api/reset")

    def _client_kwargs(self, region: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": region,
        }
        if self.tls:
            kwargs["verify"] = str(self.ca_file)
        return kwargs

    def client(self, region: str = DEFAULT_REGION) -> BaseClient:
        """A boto3 S3 client for this server (dummy credentials, path-style addressing)."""
        config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"})
        return boto3.client("s3", config=config, **self._client_kwargs(region))

    def create_bucket(self, name: str, region: str = DEFAULT_REGION) -> str:
        """Create bucket ``name`` in ``region`` (LocationConstraint unless us-east-1)."""
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != DEFAULT_REGION:
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self.client(region).create_bucket(**kwargs)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete every object version, open multipart upload and then the bucket itself."""
        s3 = self.client()
        abort_open_uploads(s3, name)
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                s3.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})
        s3.delete_bucket(Bucket=name)

    def create_kms_key(self, region: str = DEFAULT_REGION, alias: str | None = None) -> str:
        """Create a symmetric KMS key through moto's KMS API; returns its key id.

        With ``alias`` (e.g. ``alias/agent-bom-backup``) the alias is created too."""
        kms = boto3.client("kms", **self._client_kwargs(region))
        key_id = str(kms.create_key(Description="agent-bom test key")["KeyMetadata"]["KeyId"])
        if alias:
            kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        return key_id
