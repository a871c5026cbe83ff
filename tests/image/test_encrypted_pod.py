"""The job image encrypts as the chart configures it (issue 30): the rendered CronJob pod with
``clientEncryption.recipients`` runs in the real image (pyrage installed from the image's
wheels) and leaves an age file that Debian's ``age`` decrypts into the archive the manifest hashed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.jobimage import ContainerEngine
from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.s3server import MotoServer
from tests.image.test_pod_spec import rendered_pod, run_pod, seeded_database
from tests.support import buckets

pytestmark = pytest.mark.image


def test_rendered_pod_with_recipients_stores_an_age_file_that_age_decrypts(
        s3: MotoServer, bucket: str, job_image: str, container_engine: ContainerEngine,
        pg_cluster_factory: PgClusterPool, tmp_path: Path) -> None:
    age, keygen = shutil.which("age"), shutil.which("age-keygen")
    assert age and keygen, "age is missing: run scripts/bootstrap.sh age"
    identity = tmp_path / "key.txt"
    subprocess.run([keygen, "-o", str(identity)], check=True, capture_output=True, timeout=30)
    recipient = subprocess.run([keygen, "-y", str(identity)], check=True, capture_output=True, text=True,
                               timeout=30).stdout.strip()
    pg: PgCluster = pg_cluster_factory(15)
    database, _ = seeded_database(pg)
    spec = rendered_pod(s3, bucket, job_image)
    env = spec["containers"][0]["env"]
    env.append({"name": "AGENT_BOM_BACKUP_ENCRYPT_TO", "value": recipient})  # as clientEncryption renders it
    run = run_pod(container_engine, spec, pg, database)
    assert run.returncode == 0, run.stderr[-3000:]
    [dump_key] = [k for k in buckets.object_keys(s3.client(), bucket) if k.endswith(".dump")]
    stored = tmp_path / "backup.dump.age"
    stored.write_bytes(buckets.get_object(s3.client(), bucket, dump_key))
    plain = tmp_path / "backup.dump"
    subprocess.run([age, "-d", "-i", str(identity), "-o", str(plain), str(stored)], check=True, capture_output=True,
                   timeout=120)
    # the image's pg_dump 17 writes zstd, which the host's pg_restore cannot read: the archive's
    # magic and the manifest's plaintext digest prove the decryption (pg_restore --list of an
    # age-decrypted dump runs in tests/e2e/test_encryption.py)
    manifest = buckets.read_manifest(s3.client(), bucket, dump_key)
    data = plain.read_bytes()
    assert (data[:5], buckets.sha256(data), manifest["encryption"]["recipients"]) == (
        b"PGDMP", manifest["dump"]["plaintext_sha256"], [recipient])
