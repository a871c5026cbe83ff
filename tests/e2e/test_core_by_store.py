"""The end-to-end core against every S3 endpoint: moto, and Ceph RGW over http and https
(a real S3 implementation, with its own semantics: silent encryption answers, an empty
ETag from CompleteMultipartUpload, no If-None-Match on completion, location ``default``,
411 for aws-chunked uploads over https, errors without a message).

For each store, in order: a streamed backup whose parts grow (5 MiB first part, doubling
every part, a dump of ~17 MiB: three parts), ``list``, ``check``, ``verify`` and
``verify --deep``, a restore through the runbook's script, then ``prune`` once a newer
backup exists. RGW over https takes the CA with ``--ca-bundle`` and ``auto`` checksums.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from devstack.pgcluster import PgCluster
from devstack.seed import SeedSpec
from tests.e2e import helpers
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from tests.support.stores import STORE_NAMES, Store, store_for

MiB = 1024 * 1024
PART_OPTIONS = ("--compression", "none", "--part-size", "5MiB", "--part-growth-interval", "1")
#: ~17 MiB of audit_log rows (1 KiB payloads): with PART_OPTIONS three parts, 5 + 10 + the rest
BULK_SEED = SeedSpec(audit_rows_per_tenant=1500, payload_bytes=1024)


@pytest.fixture(scope="session")
def bulk_source(pg15: PgCluster) -> postgres.Database:
    return postgres.seeded_database(pg15, "core", BULK_SEED)


@dataclass
class Core:
    """One store's run through the core, built step by step by the fixtures below."""

    store: Store
    bucket: str
    backup: cli.Run
    key: str
    manifest: dict
    runs: dict[str, cli.Run] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def env(self, database_url: str | None = None, **extra: str) -> dict[str, str]:
        return self.store.job_env(self.bucket, database_url, **extra)

    def keys(self) -> list[str]:
        return buckets.object_keys(self.store.client(), self.bucket)


@pytest.fixture(scope="module", params=STORE_NAMES)
def core(request: pytest.FixtureRequest, bulk_source: postgres.Database) -> Iterator[Core]:
    store = store_for(request.param, request)
    with store.bucket("abb-core") as bucket:
        run = cli.backup(store.job_env(bucket, bulk_source.url), *PART_OPTIONS)
        assert run.returncode == 0, str(run)
        key = run.uri.removeprefix(f"s3://{bucket}/")
        manifest = buckets.read_manifest(store.client(), bucket, key)
        yield Core(store, bucket, run, key, manifest)


# ------------------------------------------------------------------ backup
def test_backup_streams_in_growing_parts(core: Core) -> None:
    # three parts of a fixed 5 MiB hold 15 MiB: a larger dump in three parts proves growth
    # (RGW 16 ignores HEAD ?partNumber=, so the sizes are inferred rather than read)
    dump = core.manifest["dump"]
    assert (dump["parts"], dump["size"] > 15 * MiB) == (3, True), dump


def test_backup_writes_dump_roles_manifest_and_claim(core: Core) -> None:
    dump = core.key
    assert core.keys() == sorted([*buckets.backup_keys(dump), buckets.claim_key(dump)])


def test_backup_leaves_no_multipart_upload_open(core: Core) -> None:
    assert buckets.open_uploads(core.store.client(), core.bucket) == []


def test_stored_dump_is_what_the_manifest_hashed(core: Core) -> None:
    data = buckets.get_object(core.store.client(), core.bucket, core.key)
    assert (len(data), buckets.sha256(data)) == (core.manifest["dump"]["size"], core.manifest["dump"]["sha256"])


# ------------------------------------------------------------------ operator commands
@pytest.fixture(scope="module")
def listed(core: Core) -> dict:
    run = cli.run_cli(["list", "--json"], core.env())
    assert run.returncode == 0, str(run)
    return dict(json.loads(run.stdout))


def test_list_shows_the_backup_complete(listed: dict, core: Core) -> None:
    assert [(b["uri"], b["complete"]) for b in listed["backups"]] == [(core.uri, True)]


def test_check_finds_a_fresh_backup(core: Core) -> None:
    run = cli.run_cli(["check", "--max-age", "1h"], core.env())
    assert (run.returncode, run.stdout.startswith("OK: newest complete backup")) == (0, True), str(run)


def test_verify_matches_the_manifest(core: Core) -> None:
    run = cli.run_cli(["verify", "latest"], core.env())
    assert (run.returncode, "MISMATCH" in run.stdout) == (0, False), str(run)


def test_verify_deep_restores_into_a_scratch_database(core: Core, pg15: PgCluster) -> None:
    run = cli.run_cli(["verify", core.uri, "--deep"], core.env(AGENT_BOM_VERIFY_SCRATCH_URL=pg15.superuser_url()))
    assert (run.returncode, "restore into" in run.stdout, "MISMATCH" in run.stdout) == (0, True, False), str(run)


# ------------------------------------------------------------------ restore through the runbook's script
@pytest.fixture(scope="module")
def restored(core: Core, pg15: PgCluster) -> tuple[cli.Run, str]:
    target = postgres.new_database(pg15, "core_restore")
    run = cli.restore_script(core.env(), core.uri, pg15.superuser_url(target), cli.DEFAULT_REGION)
    return run, target


def test_runbook_script_restores_and_verifies(restored: tuple[cli.Run, str]) -> None:
    run, _ = restored
    assert (run.returncode, "VERIFIED" in run.stdout) == (0, True), str(run)


def test_restored_tenant_distribution_is_the_source_one(
    restored: tuple[cli.Run, str], bulk_source: postgres.Database, pg15: PgCluster
) -> None:
    _, target = restored
    assert helpers.tenant_counts(pg15, target, "audit_log") == bulk_source.audit_rows


# ------------------------------------------------------------------ prune
@pytest.fixture(scope="module")
def pruned(core: Core, source15: postgres.Database, restored: tuple[cli.Run, str]) -> tuple[cli.Run, str, list[str]]:
    """A newer (small) backup, then prune keeping one: the core backup goes, claim included."""
    newer = cli.backup(core.env(source15.url))
    assert newer.returncode == 0, str(newer)
    run = cli.run_cli(["prune", "--keep-days", "0", "--keep-last", "1", "--incomplete-grace", "0s", "--yes"],
                      core.env())
    return run, newer.uri.removeprefix(f"s3://{core.bucket}/"), core.keys()


def test_prune_deletes_the_older_backup_with_its_claim(pruned: tuple[cli.Run, str, list[str]]) -> None:
    run, newer_key, left = pruned
    assert (run.returncode, left) == (0, sorted([*buckets.backup_keys(newer_key), buckets.claim_key(newer_key)])), str(run)
