"""Client configuration: what a bucket/prefix is (:class:`StorageConfig`) and the one
factory for botocore S3 clients (:func:`make_client`), with its retry policy.

``botocore.session`` and ``botocore.config`` are imported when the first client is made,
not with this module (the backup makes it in a thread while it connects to the database).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..log import redact_url
from ..manifest import BackupKeys

SSE_MODES = ("none", "AES256", "aws:kms")
CHECKSUM_MODES = ("auto", "when_supported", "when_required")
#: host name suffixes of AWS's own S3 endpoints (commercial, China, dual-stack, isolated
#: partitions); every other endpoint, however configured, is an S3-compatible store
AWS_ENDPOINT_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".c2s.ic.gov", ".sc2s.sgov.gov",
                         ".cloud.adc-e.uk", ".csp.hci.ic.gov")
#: an AWS region name (us-east-1, eu-central-2, us-gov-west-1, cn-north-1, us-isob-east-1)
AWS_REGION_NAME = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
#: connections botocore keeps per client: the most parts in flight (--upload-concurrency
#: at most 32) or ranges of a download, and the requests beside them
MAX_POOL_CONNECTIONS = 40
#: the endpoint botocore uses when nothing names one
AWS_S3_ENDPOINT = "https://s3.amazonaws.com"

ProgressCallback = Callable[[int], None]


def is_aws_endpoint(url: str | None) -> bool:
    """Whether ``url`` is one of AWS's own S3 endpoints (by host name)."""
    host = (urlsplit(url).hostname or "") if url else ""
    return any(host.endswith(suffix) for suffix in AWS_ENDPOINT_SUFFIXES)


@dataclass(frozen=True)
class StorageConfig:
    bucket: str
    prefix: str = "agent-bom/postgres"
    region: str | None = None
    endpoint_url: str | None = None
    path_style: bool = False
    ca_bundle: str | None = None
    checksum_mode: str = "auto"
    verify_region: bool = True
    sse: str = "none"
    kms_key_id: str | None = None
    storage_class: str | None = None
    max_attempts: int = 5  # retries after the first attempt (botocore's ``max_attempts``)

    def validate(self) -> None:
        if not self.bucket:
            raise ConfigError("no bucket configured", hint="set --bucket or AGENT_BOM_BACKUP_BUCKET")
        if self.sse not in SSE_MODES:
            raise ConfigError(f"unknown server-side encryption {self.sse!r}", hint="use none, AES256 or aws:kms")
        if self.kms_key_id and self.sse != "aws:kms":
            raise ConfigError("a KMS key id is set but encryption is not aws:kms", hint="set --sse aws:kms")
        if self.checksum_mode not in CHECKSUM_MODES:
            raise ConfigError(f"unknown checksum mode {self.checksum_mode!r}", hint="use auto, when_supported or when_required")
        if self.ca_bundle and not os.path.isfile(self.ca_bundle):
            raise ConfigError(f"CA bundle {self.ca_bundle} does not exist", hint="mount it or fix the path")

    def checksum_mode_for(self, endpoint_url: str | None) -> str:
        """``auto`` is ``when_required`` for any endpoint that is not AWS's own (many
        S3-compatible stores reject the CRC headers and aws-chunked bodies recent botocore
        sends by default), wherever the endpoint came from: ``--endpoint-url``,
        ``AWS_ENDPOINT_URL(_S3)`` or ``endpoint_url`` in the AWS config file."""
        if self.checksum_mode != "auto":
            return self.checksum_mode
        return "when_supported" if is_aws_endpoint(endpoint_url) else "when_required"

    def keys(self, backup_id: str) -> BackupKeys:
        return BackupKeys(prefix=self.prefix.strip("/"), backup_id=backup_id)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put_extra_args(self, *, storage_class: bool = False) -> dict[str, str]:
        """Encryption arguments of a write; the storage class only for the dump
        (``storage_class=True``): an archived manifest or roles object could not be read."""
        args: dict[str, str] = {}
        if self.sse != "none":
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        if storage_class and self.storage_class:
            args["StorageClass"] = self.storage_class
        return args


def make_client(config: StorageConfig) -> Any:
    """The one factory for S3 clients.

    ``auto`` checksums and the default region depend on whether the endpoint botocore
    uses is AWS's own: ``--endpoint-url``, else the SDK's own ``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL`` / config-file ``endpoint_url``, else AWS. The client is built for
    the endpoint these name and checked against the one it resolved; only when they
    disagree (an endpoint from the config file) is it built again.
    """
    from botocore.config import Config
    from botocore.session import Session

    session = Session()
    named = config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")

    def build(endpoint: str) -> Any:
        """A client whose region default and ``auto`` checksums suit ``endpoint``."""
        custom = not is_aws_endpoint(endpoint)
        # S3-compatible stores often have no regions; SigV4 still needs a name to sign with
        region = config.region or session.get_config_variable("region") or ("us-east-1" if custom else None)
        checksum_mode = config.checksum_mode_for(endpoint)
        botocore_config = Config(
            region_name=region,
            s3={"addressing_style": "path" if config.path_style else "auto"},
            retries=_retries(config),
            request_checksum_calculation=checksum_mode,
            response_checksum_validation=checksum_mode,
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=MAX_POOL_CONNECTIONS,
            user_agent_extra="agent-bom-backup",
        )
        return session.create_client("s3", endpoint_url=config.endpoint_url or None, config=botocore_config,
                                     verify=config.ca_bundle or None)

    expected = named or AWS_S3_ENDPOINT
    client = build(expected)
    resolved = client.meta.endpoint_url
    if is_aws_endpoint(resolved) != is_aws_endpoint(expected):
        client = build(resolved)
    return client


def _retries(config: StorageConfig) -> dict[str, Any]:
    """botocore's standard retry mode; ``AWS_MAX_ATTEMPTS`` (total attempts, the SDKs'
    own variable) overrides the default of 1 + ``config.max_attempts``."""
    total = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if total.isdigit() and int(total) >= 1:
        return {"mode": "standard", "total_max_attempts": int(total)}
    return {"mode": "standard", "max_attempts": config.max_attempts}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); a clear error for anything else."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"not an s3:// URI: {redact_url(uri)!r}", hint="use s3://BUCKET/PREFIX/agent-bom-YYYYMMDDTHHMMSSZ.dump or 'latest'")
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    if not bucket or any(c in bucket for c in " @?#"):
        raise ConfigError(f"malformed S3 URI {redact_url(uri)!r}: no valid bucket name")
    return bucket, key
