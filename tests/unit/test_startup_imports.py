"""The backup's start-up does not pay for what it does not use yet (issue 18, item 2):
importing the CLI and the backup operation loads neither boto3 (never used) nor botocore's
session and client machinery (~0.15 s; storage.make_client imports it when the S3 client
is made, which the backup does in a thread once pg_dump runs)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = ("import json, sys\nimport agent_bom_backup.cli, agent_bom_backup.backup, agent_bom_backup.restore\n"
         "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 's3transfer') "
         "or m in ('botocore.session', 'botocore.client', 'botocore.config'))))")


@pytest.fixture(scope="module")
def loaded() -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def test_importing_the_cli_loads_no_s3_client_machinery(loaded: list[str]) -> None:
    assert loaded == []


def test_making_a_client_loads_botocore_but_not_boto3() -> None:
    code = ("import sys\nfrom agent_bom_backup.storage import StorageConfig, make_client\n"
            "make_client(StorageConfig(bucket='b', endpoint_url='http://127.0.0.1:9', region='us-east-1'))\n"
            "print('botocore.session' in sys.modules, 'boto3' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["True", "False"]
