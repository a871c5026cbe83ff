"""The S3 endpoints a test can point the CLI at, under one interface: moto (a mock that
speaks S3 over HTTP) and Ceph RGW (a real S3 implementation) over http and https.

``store_for(name, request)`` builds one from the session fixtures (``s3``, ``rgw``), so a
test parametrised with :data:`STORE_NAMES` starts only the servers it uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.client import BaseClient

from devstack.rgw import RgwServer
from devstack.s3server import MotoServer
from tests.support import buckets
from tests.support import cli

#: moto; Ceph RGW over plain http; Ceph RGW over https (self-signed CA via --ca-bundle)
STORE_NAMES = ("moto", "rgw-http", "rgw-https")


@dataclass(frozen=True)
class Store:
    """One S3 endpoint: where the CLI connects, how a test inspects the bucket."""

    name: str
    server: MotoServer | RgwServer
    endpoint_url: str
    ca_file: Path | None = None

    def client(self) -> BaseClient:
        """An S3 client for inspecting buckets (admin rights, same endpoint)."""
        if isinstance(self.server, RgwServer):
            return self.server.client(tls=self.ca_file is not None)
        return self.server.client()

    def job_env(self, bucket: str, database_url: str | None = None, **extra: str) -> dict[str, str]:
        """:func:`cli.job_env` for this endpoint (with the CA bundle over https, and moto's
        :data:`~devstack.s3server.MotoServer.JOB_ENV`)."""
        if isinstance(self.server, MotoServer):
            extra = {**MotoServer.JOB_ENV, **extra}
        if self.ca_file is not None:
            extra = {"AGENT_BOM_BACKUP_CA_BUNDLE": str(self.ca_file), **extra}
        return cli.job_env(self.endpoint_url, bucket, database_url, **extra)

    @contextlib.contextmanager
    def bucket(self, prefix: str) -> Iterator[str]:
        """A fresh bucket with a unique name, deleted with its objects afterwards."""
        with buckets.fresh_bucket(self.server, prefix) as name:
            yield name


def store_for(name: str, request: pytest.FixtureRequest) -> Store:
    """The store called ``name`` (one of :data:`STORE_NAMES`), from the session's servers."""
    if name == "moto":
        moto: MotoServer = request.getfixturevalue("s3")
        return Store(name, moto, moto.endpoint_url)
    rgw: RgwServer = request.getfixturevalue("rgw")
    if name == "rgw-http":
        return Store(name, rgw, rgw.endpoint_url)
    if name == "rgw-https":
        return Store(name, rgw, rgw.https_endpoint_url, rgw.ca_file)
    raise ValueError(f"unknown store {name!r}; choose one of {STORE_NAMES}")
