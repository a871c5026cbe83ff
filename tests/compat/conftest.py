"""Shared helpers for the "works where users run it" tests."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support import tools
from tests.support.pgcluster import PgCluster
from tests.support.s3proxy import StrictS3Proxy
from tests.support.s3server import MotoServer
from tests.support.seed import SeedSpec, seed

CLI = str(tools.repo_root() / ".tools" / "venv" / "bin" / "agent-bom-backup")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> CliResult:
    result = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return CliResult(result.returncode, result.stdout, result.stderr)


@pytest.fixture
def seeded_db(pg15: PgCluster) -> Iterator[str]:
    """A freshly seeded database on the shared PostgreSQL 15 server; yields its name."""
    name = f"compat_{uuid.uuid4().hex[:8]}"
    pg15.run_sql(f"CREATE DATABASE {name}")
    with psycopg.connect(pg15.conninfo(name), autocommit=True) as conn:
        seed(conn, SeedSpec(audit_rows_per_tenant=50))
    yield name
    pg15.run_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def strict_proxy(s3: MotoServer) -> Iterator[StrictS3Proxy]:
    with StrictS3Proxy(upstream=s3.endpoint_url) as proxy:
        yield proxy


def job_env(pg: PgCluster, database: str, bucket: str, endpoint: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "AGENT_BOM_POSTGRES_URL": pg.superuser_url(database),
        "AGENT_BOM_BACKUP_BUCKET": bucket,
        "AGENT_BOM_BACKUP_REGION": "us-east-1",
        "AGENT_BOM_BACKUP_ENDPOINT_URL": endpoint,
        "AGENT_BOM_BACKUP_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


def scratch_database(pg: PgCluster) -> str:
    name = f"restore_{uuid.uuid4().hex[:8]}"
    pg.run_sql(f"CREATE DATABASE {name}")
    return name


def repo_path(*parts: str) -> Path:
    return tools.repo_root().joinpath(*parts)
