"""How each row of the failure-mode table (cases.py) is staged against the real servers.

A scenario provokes its fault and returns an :class:`Outcome`: the CLI run the row is
about, what the bucket held before, the restore target's digest before and after, and a
few case-specific facts (retries seen, time to exit, ...). The tests in
test_failure_modes.py assert the same three things of every outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.reliability import harness
from tests.reliability.cases import CASES_BY_ID, Case
from tests.reliability.iam import IamWorld
from tests.support import buckets
from tests.support import cli
from tests.support import postgres
from devstack.pgcluster import PgCluster, free_port
from devstack.rgw import RgwServer
from tests.support.s3proxy import Rule, S3Proxy
from devstack.s3server import MotoServer

#: the slowed proxy: each part upload waits this long, so pg_dump is mid-stream for seconds
SLOW_PART_S = 0.4
#: a part that never finishes by itself (released when the proxy is killed)
LARGE_DUMP = {"AGENT_BOM_BACKUP_COMPRESSION": "none", "AGENT_BOM_BACKUP_PART_SIZE": harness.PART,
              "AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY": "1"}
OLD_STAMP_KEY = f"{cli.PREFIX}/agent-bom-20000101T000000Z.dump"


@dataclass
class Outcome:
    case: Case
    run: cli.Run
    client: Any = None  # an S3 client that may inspect the bucket
    bucket: str | None = None
    keys_before: list[str] = field(default_factory=list)
    #: keys the run was meant to add (successful backups), claims aside
    expected_new_keys: list[str] = field(default_factory=list)
    #: claim objects (``<id>.claim``) the runs leave: one per backup id taken, kept after
    #: success and after a failure once the id was taken; none from a refused run
    expected_claims: int = 0
    expected_open_uploads: list[str] = field(default_factory=list)
    bucket_should_exist: bool = True
    target_before: str | None = None
    target_after: str | None = None
    facts: dict[str, bool] = field(default_factory=dict)
    #: the bucket right after the run (``seal``); later scenarios may share the bucket
    state: dict[str, Any] | None = None
    #: a restore's ``--safety-backup-dir`` (absent before the run; None: none was given)
    safety_dir: Path | None = None
    #: the status the restore's ``--report`` file records (None: no report written)
    recorded_status: str | None = None

    def seal(self) -> Outcome:
        self.state = self._bucket_state()
        return self

    def bucket_state(self) -> dict[str, Any]:
        assert self.state is not None, "outcome not sealed"
        return self.state

    def _bucket_state(self) -> dict[str, Any]:
        """Keys the run added, open multipart uploads, and new backups that look complete
        but are not (a dump without its manifest, or one that differs from it)."""
        if self.bucket is None:
            return {}
        try:
            keys = buckets.object_keys(self.client, self.bucket)
        except Exception as exc:  # noqa: BLE001 - a missing bucket is a state too
            if "NoSuchBucket" in str(exc):
                return {"bucket exists": False}
            raise
        added = sorted(set(keys) - set(self.keys_before))
        new = buckets.without_claims(added)
        problems = []
        for stem in sorted({_stem(k) for k in new} - {""}):
            dump = stem + buckets.DUMP
            manifest = buckets.manifest_key(dump)
            if dump not in keys or manifest not in keys:
                problems.append(f"{stem}: dump and manifest are not both there")
                continue
            recorded = json.loads(buckets.get_object(self.client, self.bucket, manifest))["dump"]
            data = buckets.get_object(self.client, self.bucket, dump)
            if (recorded["key"], recorded["size"], recorded["sha256"]) != (dump, len(data), buckets.sha256(data)):
                problems.append(f"{stem}: the dump differs from its manifest")
        return {
            "bucket exists": True,
            "new keys": new,
            "new claims": len(buckets.claims(added)),
            "open uploads": buckets.open_upload_keys(self.client, self.bucket),
            "incomplete or inconsistent backups": problems,
        }

    def expected_bucket_state(self) -> dict[str, Any]:
        if self.bucket is None:
            return {}
        if not self.bucket_should_exist:
            return {"bucket exists": False}
        return {
            "bucket exists": True,
            "new keys": sorted(self.expected_new_keys),
            "new claims": self.expected_claims,
            "open uploads": sorted(self.expected_open_uploads),
            "incomplete or inconsistent backups": [],
        }


def _stem(key: str) -> str:
    for suffix in (buckets.DUMP, buckets.ROLES, buckets.MANIFEST):
        if key.endswith(suffix):
            return key.removesuffix(suffix)
    return ""


class Stage:
    """Session resources for the scenarios, created on first use."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self._cleanups: list[Callable[[], None]] = []

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)

    @property
    def s3(self) -> MotoServer:
        return self.fixture("s3")

    @property
    def pg15(self) -> PgCluster:
        return self.fixture("pg15")

    def defer(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()

    def new_bucket(self, region: str = "us-east-1") -> str:
        name = self.s3.create_bucket(buckets.unique_bucket_name("abb-rel"), region=region)
        self.defer(lambda: self.s3.delete_bucket(name))
        return name

    def proxy(self) -> S3Proxy:
        proxy = S3Proxy(self.s3.endpoint_url).start()
        self.defer(proxy.kill)
        return proxy

    def tmp_dir(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.fixture("tmp_root")))
        path.chmod(0o755)
        return path

    def tmpfs(self, size: str) -> Path:
        """A small tmpfs (root only): a filesystem that really runs out of space."""
        path = self.tmp_dir("scratch")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): the scratch-disk cases need root")
        self.defer(lambda: subprocess.run(["umount", "-l", str(path)], check=False))
        return path

    def empty_target(self) -> str:
        name = postgres.new_database(self.pg15, "rel_target")
        self.defer(lambda: self.pg15.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return name


SCENARIOS: dict[str, Callable[[Stage], Outcome]] = {}


def scenario(case_id: str) -> Callable[[Callable[[Stage], Outcome]], Callable[[Stage], Outcome]]:
    assert case_id in CASES_BY_ID, f"no row {case_id!r} in cases.py"

    def register(func: Callable[[Stage], Outcome]) -> Callable[[Stage], Outcome]:
        SCENARIOS[case_id] = func
        return func

    return register


# ============================================================================ backups
def _backup_outcome(stage: Stage, case_id: str, bucket: str, run: cli.Run, keys_before: list[str],
                    **kwargs: Any) -> Outcome:
    return Outcome(CASES_BY_ID[case_id], run, stage.s3.client(), bucket, keys_before, **kwargs)


def _uri_key(run: cli.Run, bucket: str) -> str:
    return run.uri.removeprefix(f"s3://{bucket}/")



def _slow_large_backup(stage: Stage, bucket: str, proxy: S3Proxy, source_url: str | None = None) -> cli.Job:
    proxy.add(Rule(method="PUT", query_key="partNumber", delay_s=SLOW_PART_S))
    url = source_url or stage.fixture("large_source").url
    return cli.Job([cli.executable(), "backup"], cli.job_env(proxy.endpoint_url, bucket, url, **LARGE_DUMP))


@scenario("s3-endpoint-killed-mid-upload")
def _endpoint_killed(stage: Stage) -> Outcome:
    bucket, proxy = stage.new_bucket(), stage.proxy()
    job = _slow_large_backup(stage, bucket, proxy)
    proxy.wait_for(lambda: proxy.parts_uploaded() >= 2, what="two parts uploaded")
    proxy.kill()
    run = job.wait()
    open_uploads = buckets.open_upload_keys(stage.s3.client(), bucket)
    return _backup_outcome(
        stage, "s3-endpoint-killed-mid-upload", bucket, run, [], expected_open_uploads=open_uploads[:1],
        expected_claims=1,
        facts={
            "the endpoint died mid-upload": proxy.parts_uploaded() >= 2,
            "exactly one multipart upload is left open (it cannot be aborted)": len(open_uploads) == 1,
            "a warning names the lifecycle rule that removes it": any(
                "AbortIncompleteMultipartUpload" in r["message"] for r in run.log if r.get("level") == "warning"),
        },
    )


@scenario("s3-throttled-then-recovers")
def _throttled(stage: Stage) -> Outcome:
    bucket, proxy = stage.new_bucket(), stage.proxy()
    proxy.add(Rule(method="PUT", query_key="partNumber", status=503, code="SlowDown",
                   message="Please reduce your request rate.", after=1, remaining=2))
    proxy.add(Rule(method="POST", query_key="uploadId", status=500, code="InternalError",
                   message="We encountered an internal error. Please try again.", remaining=1))
    env = cli.job_env(proxy.endpoint_url, bucket, stage.fixture("large_source").url,
                      **{**LARGE_DUMP, "AGENT_BOM_BACKUP_UPLOAD_CONCURRENCY": "2"})
    run = cli.backup(env)
    parts = proxy.statuses(lambda r: r.is_part)
    completes = proxy.statuses(lambda r: r.method == "POST" and "uploadId" in r.query)
    key = _uri_key(run, bucket) if run.returncode == 0 else ""
    return _backup_outcome(
        stage, "s3-throttled-then-recovers", bucket, run, [],
        expected_new_keys=list(buckets.backup_keys(key)) if key else [], expected_claims=1,
        facts={
            "two part uploads were answered 503 SlowDown": parts.count(503) == 2,
            "every part was stored in the end (retried)": parts.count(200) == len(parts) - 2 and len(parts) > 4,
            "the completion was answered 500, then retried": completes == [500, 200],
        },
    )


@scenario("s3-errors-persist")
def _errors_persist(stage: Stage) -> Outcome:
    bucket, proxy = stage.new_bucket(), stage.proxy()
    proxy.add(Rule(method="PUT", query_key="partNumber", status=503, code="SlowDown",
                   message="Please reduce your request rate."))
    env = cli.job_env(proxy.endpoint_url, bucket, stage.fixture("small_source").url, AWS_MAX_ATTEMPTS="3")
    run = cli.backup(env)
    return _backup_outcome(
        stage, "s3-errors-persist", bucket, run, [], expected_claims=1,
        facts={
            "the part was tried AWS_MAX_ATTEMPTS=3 times": proxy.statuses(lambda r: r.is_part) == [503, 503, 503],
            "the multipart upload was aborted": proxy.statuses(
                lambda r: r.method == "DELETE" and "uploadId" in r.query) == [204],
        },
    )


@scenario("bucket-missing")
def _bucket_missing(stage: Stage) -> Outcome:
    bucket = buckets.unique_bucket_name("abb-missing")
    run = cli.backup(cli.job_env(stage.s3.endpoint_url, bucket, stage.fixture("small_source").url))
    return _backup_outcome(stage, "bucket-missing", bucket, run, [], bucket_should_exist=False)


@scenario("s3-denies-a-part-mid-upload")
def _part_denied(stage: Stage) -> Outcome:
    bucket, proxy = stage.new_bucket(), stage.proxy()
    proxy.add(Rule(method="PUT", query_key="partNumber", status=403, code="AccessDenied", message="Access Denied",
                   after=1))
    run = cli.backup(cli.job_env(proxy.endpoint_url, bucket, stage.fixture("large_source").url, **LARGE_DUMP))
    return _backup_outcome(stage, "s3-denies-a-part-mid-upload", bucket, run, [], expected_claims=1, facts={
        "one part was stored before the refusal": proxy.statuses(lambda r: r.is_part)[:2] == [200, 403],
        "the multipart upload was aborted": proxy.statuses(
            lambda r: r.method == "DELETE" and "uploadId" in r.query) == [204],
    })


@scenario("wrong-region")
def _wrong_region(stage: Stage) -> Outcome:
    bucket = stage.new_bucket(region="eu-west-1")
    run = cli.backup(cli.job_env(stage.s3.endpoint_url, bucket, stage.fixture("small_source").url,
                                     AGENT_BOM_BACKUP_REGION="us-east-1"))
    return _backup_outcome(stage, "wrong-region", bucket, run, [])


def _iam_backup(stage: Stage, case_id: str, user: str) -> Outcome:
    world: IamWorld = stage.fixture("iam_world")
    before = buckets.object_keys(world.admin, world.bucket)
    env = {**cli.job_env(world.endpoint_url, world.bucket, stage.fixture("small_source").url),
           **world.credentials(user)}
    run = cli.backup(env)
    return Outcome(CASES_BY_ID[case_id], run, world.admin, world.bucket, before)


@scenario("access-denied-no-permission")
def _access_denied_no_permission(stage: Stage) -> Outcome:
    return _iam_backup(stage, "access-denied-no-permission", "nobody")


@scenario("access-denied-read-only")
def _access_denied_read_only(stage: Stage) -> Outcome:
    return _iam_backup(stage, "access-denied-read-only", "restore")


# ---------------------------------------------------------------- a real S3 implementation: Ceph RGW
def _rgw_bucket(stage: Stage) -> str:
    rgw: RgwServer = stage.fixture("rgw")
    name = rgw.create_bucket(buckets.unique_bucket_name("abb-rel-rgw"))
    stage.defer(lambda: rgw.delete_bucket(name))
    return name


def _rgw_backup(stage: Stage, case_id: str, endpoint: str, run_env: dict[str, str], remedy: dict[str, str],
                **kwargs: Any) -> Outcome:
    """A backup on RGW with ``run_env`` added, then the row's remedy (``remedy`` added
    instead) in another bucket, which must back up."""
    rgw: RgwServer = stage.fixture("rgw")
    tls = endpoint.startswith("https")
    extra = {"AGENT_BOM_BACKUP_CA_BUNDLE": str(rgw.ca_file)} if tls else {}
    source = stage.fixture("small_source").url
    bucket, remedy_bucket = _rgw_bucket(stage), _rgw_bucket(stage)
    run = cli.backup(cli.job_env(endpoint, bucket, source, **extra, **run_env))
    fixed = cli.backup(cli.job_env(endpoint, remedy_bucket, source, **extra, **remedy))
    facts = kwargs.pop("facts", {})
    return Outcome(CASES_BY_ID[case_id], run, rgw.client(tls=tls), bucket, [], **kwargs,
                   facts={"the remedy the message names backs up": fixed.returncode == 0, **facts})


@scenario("encryption-not-confirmed")
def _encryption_not_confirmed(stage: Stage) -> Outcome:
    rgw: RgwServer = stage.fixture("rgw")
    outcome = _rgw_backup(stage, "encryption-not-confirmed", rgw.endpoint_url, {"AGENT_BOM_BACKUP_SSE": "AES256"},
                          {"AGENT_BOM_BACKUP_SSE": "aws:kms", "AGENT_BOM_BACKUP_KMS_KEY_ID": rgw.kms_key_id},
                          expected_claims=1)
    claims = buckets.claims(buckets.object_keys(outcome.client, str(outcome.bucket)))
    heads = [outcome.client.head_object(Bucket=outcome.bucket, Key=k) for k in claims]
    outcome.facts["the store kept the claim unencrypted, as its answer implied"] = bool(heads) and all(
        "ServerSideEncryption" not in h for h in heads)
    return outcome


@scenario("encryption-refused-over-http")
def _encryption_refused_over_http(stage: Stage) -> Outcome:
    rgw: RgwServer = stage.fixture("rgw")
    kms = {"AGENT_BOM_BACKUP_SSE": "aws:kms", "AGENT_BOM_BACKUP_KMS_KEY_ID": rgw.kms_key_id}
    with rgw.config("rgw_crypt_require_ssl", "true", restore="false"):
        outcome = _rgw_backup(stage, "encryption-refused-over-http", rgw.endpoint_url, kms, {})
        https = cli.backup(cli.job_env(rgw.https_endpoint_url, _rgw_bucket(stage), stage.fixture("small_source").url,
                                       AGENT_BOM_BACKUP_CA_BUNDLE=str(rgw.ca_file), **kms))
    outcome.facts["the same backup over https is encrypted and confirmed"] = https.returncode == 0
    return outcome


@scenario("checksum-trailers-refused")
def _checksum_trailers_refused(stage: Stage) -> Outcome:
    rgw: RgwServer = stage.fixture("rgw")
    return _rgw_backup(stage, "checksum-trailers-refused", rgw.https_endpoint_url,
                       {"AGENT_BOM_BACKUP_CHECKSUM_MODE": "when_supported"}, {"AGENT_BOM_BACKUP_CHECKSUM_MODE": "auto"})


@scenario("location-is-a-zonegroup")
def _location_is_a_zonegroup(stage: Stage) -> Outcome:
    rgw: RgwServer = stage.fixture("rgw")
    bucket = _rgw_bucket(stage)
    run = cli.backup(cli.job_env(rgw.endpoint_url, bucket, stage.fixture("small_source").url,
                                 AGENT_BOM_BACKUP_REGION="us-east-1"))
    key = _uri_key(run, bucket) if run.returncode == 0 else ""
    location = rgw.client().get_bucket_location(Bucket=bucket)["LocationConstraint"]
    return Outcome(
        CASES_BY_ID["location-is-a-zonegroup"], run, rgw.client(), bucket, [],
        expected_new_keys=list(buckets.backup_keys(key)) if key else [], expected_claims=1,
        facts={
            "the store reported the location default": location == "default",
            "the preflight logged that the location was not compared": any(
                "is not an AWS region name" in r["message"] for r in run.log),
        },
    )


@scenario("database-unreachable")
def _database_unreachable(stage: Stage) -> Outcome:
    bucket, source = stage.new_bucket(), stage.fixture("small_source")
    url = source.url.replace(f":{source.cluster.port}/", f":{free_port()}/")
    run = cli.backup(cli.job_env(stage.s3.endpoint_url, bucket, url))
    return _backup_outcome(stage, "database-unreachable", bucket, run, [])


@scenario("database-wrong-password")
def _database_wrong_password(stage: Stage) -> Outcome:
    bucket, source = stage.new_bucket(), stage.fixture("small_source")
    wrong = f"Wr0ng-{uuid.uuid4().hex[:12]}"
    run = cli.backup(cli.job_env(stage.s3.endpoint_url, bucket, source.cluster.url(source.name, password=wrong)))
    output = run.stdout + run.stderr
    return _backup_outcome(stage, "database-wrong-password", bucket, run, [], facts={
        "the wrong password appears nowhere in the output": wrong not in output,
    })


def _restricted_source(stage: Stage, prefix: str, statements: list[str]) -> tuple[str, str]:
    """A new database holding what ``statements`` create (``{role}`` names a new LOGIN role
    without BYPASSRLS); returns (its URL as that role, the role)."""
    name = postgres.new_database(stage.pg15, prefix)
    stage.defer(lambda: stage.pg15.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    role = postgres.unique_name("rel_reader")
    stage.pg15.run_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'reader-password'; "
                       + "; ".join(s.format(role=role) for s in statements), name)
    return stage.pg15.url(name, role, "reader-password"), role


@scenario("table-the-backup-role-may-not-read")
def _table_not_readable(stage: Stage) -> Outcome:
    url, _ = _restricted_source(stage, "rel_unread", [
        "CREATE TABLE tenants (id int)", "CREATE TABLE signing_keys (id int)", "GRANT SELECT ON tenants TO {role}"])
    bucket = stage.new_bucket()
    run = cli.backup(cli.job_env(stage.s3.endpoint_url, bucket, url))
    return _backup_outcome(stage, "table-the-backup-role-may-not-read", bucket, run, [], facts={
        "pg_dump never started": not [r for r in run.log if r.get("message") == "starting pg_dump"],
        "the table is named": "table public.signing_keys (owner postgres)" in run.error_message,
    })


@scenario("row-security-hides-rows")
def _row_security_hides_rows(stage: Stage) -> Outcome:
    url, _ = _restricted_source(stage, "rel_hidden", [
        "CREATE TABLE events (id int)", "INSERT INTO events SELECT g FROM generate_series(1, 1000) g",
        "ALTER TABLE events ENABLE ROW LEVEL SECURITY", "GRANT SELECT ON events TO {role}",
        "CREATE POLICY bypass ON events FOR SELECT TO {role} USING "
        "(current_setting('app.bypass_rls', true) = 'on' AND id % 20 <> 0)"])
    bucket = stage.new_bucket()
    run = cli.backup(cli.job_env(stage.s3.endpoint_url, bucket, url), "--enable-row-security",
                     "--session-setting", "app.bypass_rls=on")
    return _backup_outcome(stage, "row-security-hides-rows", bucket, run, [], expected_claims=1, facts={
        "the shortfall is counted": "public.events (950 rows seen, 1000 live)" in run.error_message,
    })


@scenario("database-restarted-mid-dump")
def _database_restarted(stage: Stage) -> Outcome:
    cluster: PgCluster = stage.fixture("pg_cluster_factory")(15, fresh=True)
    stage.defer(cluster.stop)
    name = postgres.seeded_database(cluster, "rel_restart", harness.SMALL_SEED).name
    harness.add_blobs(cluster, name)
    bucket, proxy = stage.new_bucket(), stage.proxy()
    job = _slow_large_backup(stage, bucket, proxy, cluster.superuser_url(name))
    proxy.wait_for(lambda: proxy.parts_uploaded() >= 2, what="two parts uploaded")
    cluster.stop()
    cluster.start()
    restarted_while_running = job.running()
    run = job.wait()
    return _backup_outcome(stage, "database-restarted-mid-dump", bucket, run, [], expected_claims=1, facts={
        "the server restarted while the job was running": restarted_while_running,
    })


@scenario("pg-dump-killed")
def _pg_dump_killed(stage: Stage) -> Outcome:
    bucket, proxy = stage.new_bucket(), stage.proxy()
    job = _slow_large_backup(stage, bucket, proxy)
    proxy.wait_for(lambda: proxy.parts_uploaded() >= 2, what="two parts uploaded")
    pids = job.children("pg_dump")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    run = job.wait()
    return _backup_outcome(stage, "pg-dump-killed", bucket, run, [], expected_claims=1, facts={
        "pg_dump was killed mid-stream": len(pids) == 1,
    })


def _failing_client_backup(stage: Stage, case_id: str, program: str, script: str, **kwargs: Any) -> Outcome:
    """A backup of the small source whose ``program`` is ``script`` (harness.failing_clients)."""
    bin_dir = harness.failing_clients(stage.tmp_dir("clients"), **{program: script})
    bucket = stage.new_bucket()
    run = cli.backup(cli.job_env(stage.s3.endpoint_url, bucket, stage.fixture("small_source").url),
                     "--pg-bin-dir", str(bin_dir))
    facts = {f"the failing {program} ran": (bin_dir / f"{program}.ran").exists()}
    return _backup_outcome(stage, case_id, bucket, run, [], facts=facts, **kwargs)


@scenario("pg-dump-fails-after-the-archive")
def _pg_dump_fails_at_end(stage: Stage) -> Outcome:
    outcome = _failing_client_backup(stage, "pg-dump-fails-after-the-archive", "pg_dump",
                                     harness.PG_DUMP_FAILS_AT_END, expected_claims=1)
    outcome.facts = {"the real pg_dump wrote the whole archive first": outcome.facts.pop("the failing pg_dump ran")}
    return outcome


@scenario("pg-dumpall-fails")
def _pg_dumpall_fails(stage: Stage) -> Outcome:
    return _failing_client_backup(stage, "pg-dumpall-fails", "pg_dumpall", harness.PG_DUMPALL_FAILS)


@scenario("sigterm-mid-upload")
def _sigterm(stage: Stage) -> Outcome:
    bucket, proxy = stage.new_bucket(), stage.proxy()
    hung = proxy.add(Rule(method="PUT", query_key="partNumber", hold=threading.Event(), after=1))
    source = stage.fixture("large_source")
    job = cli.Job([cli.executable(), "backup"], cli.job_env(proxy.endpoint_url, bucket, source.url, **LARGE_DUMP))
    assert hung.arrived.wait(60), "the second part never reached the proxy"
    sent = time.monotonic()
    job.signal(signal.SIGTERM)
    run = job.wait(timeout=60)
    seconds = time.monotonic() - sent
    return _backup_outcome(stage, "sigterm-mid-upload", bucket, run, [], expected_claims=1, facts={
        f"exited within 15 s of SIGTERM (took {seconds:.1f} s) with a part still hanging": seconds < 15,
        "no pg_dump left running": not [c for c in cli.processes_with(source.name).values() if "pg_dump" in c],
    })


def _start_at_next_second(offset: float = 0.1) -> None:
    now = time.time()
    time.sleep(1 - (now % 1) + offset)


@scenario("concurrent-backups-same-second")
def _concurrent_same_second(stage: Stage) -> Outcome:
    source = stage.fixture("small_source")
    for _attempt in range(3):
        bucket, proxy = stage.new_bucket(), stage.proxy()
        # slowed parts: both runs pass the "id used?" pre-check; the claim decides
        proxy.add(Rule(method="PUT", query_key="partNumber", delay_s=0.5))
        envs = [cli.job_env(proxy.endpoint_url, bucket, source.url, AGENT_BOM_BACKUP_COMPRESSION=c)
                for c in ("gzip:1", "none")]  # different bytes, as two runs of a live database would be
        _start_at_next_second()
        jobs = [cli.Job([cli.executable(), "backup"], env) for env in envs]
        runs = [job.wait() for job in jobs]
        moved = [r for r in runs if any("was taken by another run" in line["message"] for line in r.log)]
        if not moved:
            continue  # the runs started in different seconds: try again
        other = next(r for r in runs if r is not moved[0])
        keys = [_uri_key(r, bucket) for r in (other, moved[0]) if r.returncode == 0]
        stamps = [k.rsplit("/", 1)[-1].removesuffix(buckets.DUMP) for k in keys]
        started = [json.loads(buckets.get_object(stage.s3.client(), bucket, buckets.manifest_key(k)))["started_at"]
                   for k in keys]
        return _backup_outcome(
            stage, "concurrent-backups-same-second", bucket, moved[0], [],
            expected_new_keys=[k for key in keys for k in list(buckets.backup_keys(key))],
            expected_claims=2,  # one per backup id taken
            facts={
                "both runs completed a backup": len(keys) == 2,
                "the run that lost the claim took the next second": len(stamps) == 2
                and _next_second(stamps[0]) == stamps[1],
                "both started in the first run's second (the manifests record it)":
                len(started) == 2 and started[0][:19] == started[1][:19],
            },
        )
    raise AssertionError("three times the two runs started in different seconds")


def _next_second(backup_id: str) -> str:
    from datetime import datetime, timedelta

    moment = datetime.strptime(backup_id.removeprefix("agent-bom-"), "%Y%m%dT%H%M%SZ")
    return "agent-bom-" + (moment + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")


@scenario("claim-replaced-mid-upload")
def _claim_replaced(stage: Stage) -> Outcome:
    bucket, proxy, client = stage.new_bucket(), stage.proxy(), stage.s3.client()
    job = _slow_large_backup(stage, bucket, proxy)
    proxy.wait_for(lambda: proxy.parts_uploaded() >= 1, what="a part uploaded")
    (claim,) = buckets.claims(buckets.object_keys(client, bucket))
    # what a store ignoring If-None-Match lets a second run of the same second do
    client.put_object(Bucket=bucket, Key=claim, Body=b'{"token": "the other run"}')
    replaced_while_running = job.running()
    run = job.wait()
    return _backup_outcome(
        stage, "claim-replaced-mid-upload", bucket, run, [], expected_claims=1,
        facts={
            "the claim was replaced while the run was uploading": replaced_while_running,
            "the other run's claim was left as it was": buckets.get_object(client, bucket, claim) == b'{"token": "the other run"}',
            "the multipart upload was aborted": proxy.statuses(
                lambda r: r.method == "DELETE" and "uploadId" in r.query) == [204],
        },
    )


@scenario("concurrent-backups-different-seconds")
def _concurrent_different_seconds(stage: Stage) -> Outcome:
    source = stage.fixture("small_source")
    bucket, proxy = stage.new_bucket(), stage.proxy()
    proxy.add(Rule(method="PUT", query_key="partNumber", delay_s=1.5))
    env = cli.job_env(proxy.endpoint_url, bucket, source.url)
    _start_at_next_second()
    first = cli.Job([cli.executable(), "backup"], env)
    _start_at_next_second()
    overlapped = first.running()
    second = cli.Job([cli.executable(), "backup"], env)
    runs = [first.wait(), second.wait()]
    keys = [_uri_key(r, bucket) for r in runs if r.returncode == 0]
    return _backup_outcome(
        stage, "concurrent-backups-different-seconds", bucket, runs[1], [],
        expected_new_keys=[k for key in keys for k in list(buckets.backup_keys(key))], expected_claims=2,
        facts={
            "the runs overlapped": overlapped,
            "the first run completed too": runs[0].returncode == 0,
            "two different backups were written": len(set(keys)) == 2,
        },
    )


# ============================================================================ restores
def _copy_backup(stage: Stage, parts: tuple[str, ...] = ("dump", "roles", "manifest")) -> tuple[str, Any]:
    """A new bucket holding some of the good backup's objects, under the same keys."""
    bucket, client = stage.new_bucket(), stage.s3.client()
    cli.copy_backup(client, stage.fixture("good_backup"), bucket, parts)
    return bucket, client


def _restore(stage: Stage, case_id: str, uri: str, *args: str, bucket: str | None = None,
             target: tuple[PgCluster, str] | None = None, endpoint: str | None = None,
             env_extra: dict[str, str] | None = None, client: Any = None, url: str | None = None,
             report: bool = True, facts: Callable[[cli.Run], dict[str, bool]] | None = None) -> Outcome:
    """Run a restore of ``uri`` into ``target`` (default: a new empty database; ``url``
    connects as another role) and record the target's digest and the bucket's keys
    before and after. With ``report`` the run writes a report that must record the outcome."""
    cluster, database = target or (stage.pg15, stage.empty_target())
    client = client or stage.s3.client()
    keys_before = buckets.object_keys(client, bucket) if bucket else []
    report_path = stage.tmp_dir("report") / "report.json"
    env = {**cli.job_env(endpoint or stage.s3.endpoint_url, bucket or "unused-bucket"), **(env_extra or {})}
    before = harness.database_digest(cluster, database)
    report_args = ("--report", str(report_path)) if report else ()
    safety_dir = None
    if "--no-safety-backup" not in args and "--safety-backup-dir" not in args:
        safety_dir = stage.tmp_dir("safety") / "safety-backups"  # absent: a run that writes one creates it
        report_args += ("--safety-backup-dir", str(safety_dir))
    run = cli.restore(env, uri, url or cluster.superuser_url(database), *report_args, *args)
    after = harness.database_digest(cluster, database)
    recorded = json.loads(report_path.read_text()) if report_path.exists() else {}
    case = CASES_BY_ID[case_id]
    recorded_facts = {
        "the restore report records the failure and its exit code": (
            recorded.get("status") in ("failed", "refused", "failed-after-changes")
            and recorded.get("exit_code") == case.exit_code),
    } if report else {}
    return Outcome(
        case, run, client, bucket, keys_before, target_before=before, target_after=after,
        facts={**recorded_facts, **(facts(run) if facts else {})}, safety_dir=safety_dir,
        recorded_status=recorded.get("status"),
    )


def _good_uri(stage: Stage, bucket: str) -> str:
    return stage.fixture("good_backup").uri_in(bucket)


@scenario("restore-truncated-object")
def _restore_truncated(stage: Stage) -> Outcome:
    bucket, client = _copy_backup(stage)
    key = stage.fixture("good_backup").key
    data = buckets.get_object(client, bucket, key)
    client.put_object(Bucket=bucket, Key=key, Body=data[: len(data) // 2])
    return _restore(stage, "restore-truncated-object", _good_uri(stage, bucket), bucket=bucket)


@scenario("restore-corrupted-byte")
def _restore_corrupted(stage: Stage) -> Outcome:
    bucket, client = _copy_backup(stage)
    key = stage.fixture("good_backup").key
    data = bytearray(buckets.get_object(client, bucket, key))
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    return _restore(stage, "restore-corrupted-byte", _good_uri(stage, bucket), bucket=bucket)


@scenario("restore-roles-object-not-pg-dumpall")
def _restore_roles_object_tampered(stage: Stage) -> Outcome:
    good = stage.fixture("good_backup")
    bucket, client = _copy_backup(stage)
    roles = buckets.get_object(client, bucket, good.keys[1]).decode()
    grant = next(line for line in roles.splitlines() if line.startswith("GRANT "))
    roles = roles.replace(grant, grant + " CREATE ROLE backdoor LOGIN PASSWORD 'letmein';").encode()
    manifest = json.loads(buckets.get_object(client, bucket, good.keys[2]))
    manifest["roles"].update(size=len(roles), sha256=buckets.sha256(roles))
    client.put_object(Bucket=bucket, Key=good.keys[1], Body=roles)
    client.put_object(Bucket=bucket, Key=good.keys[2], Body=json.dumps(manifest).encode())
    return _restore(stage, "restore-roles-object-not-pg-dumpall", _good_uri(stage, bucket), "--create-missing-roles",
                    bucket=bucket)


@scenario("restore-missing-manifest")
def _restore_missing_manifest(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage, ("dump", "roles"))
    return _restore(stage, "restore-missing-manifest", _good_uri(stage, bucket), bucket=bucket)


@scenario("restore-foreign-manifest")
def _restore_foreign_manifest(stage: Stage) -> Outcome:
    good = stage.fixture("good_backup")
    bucket, client = _copy_backup(stage)
    # the good backup's dump and manifest, copied under another backup's name
    for source_key, target_key in zip((good.keys[0], good.keys[2]), (OLD_STAMP_KEY, buckets.manifest_key(OLD_STAMP_KEY))):
        client.copy_object(Bucket=bucket, Key=target_key, CopySource={"Bucket": good.bucket, "Key": source_key})
    return _restore(stage, "restore-foreign-manifest", f"s3://{bucket}/{OLD_STAMP_KEY}", bucket=bucket)


@scenario("restore-newer-major")
def _restore_newer_major(stage: Stage) -> Outcome:
    good18 = stage.fixture("good_backup18")
    pg15_bin = str(stage.pg15.bin_dir)
    return _restore(stage, "restore-newer-major", good18.uri_in(good18.bucket), "--pg-bin-dir", pg15_bin,
                    "--only-pg-bin-dirs", bucket=good18.bucket)


@scenario("restore-nonexistent-uri")
def _restore_nonexistent(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    return _restore(stage, "restore-nonexistent-uri", f"s3://{bucket}/{OLD_STAMP_KEY}", bucket=bucket)


#: rows whose restore is given a URI that names no readable backup (no bucket of the stage)
URIS_OF_NOTHING = {
    "restore-nonexistent-bucket": f"s3://{buckets.unique_bucket_name('abb-missing')}/{OLD_STAMP_KEY}",
    "restore-malformed-uri-single-slash": "s3:/x",
    "restore-malformed-uri-http": f"https://s3.amazonaws.example/bucket/{OLD_STAMP_KEY}",
    "restore-malformed-uri-no-bucket": "s3://",
}


def _restore_of(case_id: str, uri: str) -> Callable[[Stage], Outcome]:
    return lambda stage: _restore(stage, case_id, uri)


for _case_id, _uri in URIS_OF_NOTHING.items():
    scenario(_case_id)(_restore_of(_case_id, _uri))


@scenario("restore-not-a-backup")
def _restore_not_a_backup(stage: Stage) -> Outcome:
    bucket, client = _copy_backup(stage)
    client.put_object(Bucket=bucket, Key="not-a-backup.txt", Body=b"hello")
    return _restore(stage, "restore-not-a-backup", f"s3://{bucket}/not-a-backup.txt", bucket=bucket)


@scenario("restore-access-denied")
def _restore_access_denied(stage: Stage) -> Outcome:
    world: IamWorld = stage.fixture("iam_world")
    good = stage.fixture("good_backup")
    admin = world.admin
    for key in good.keys:  # the good backup, copied into the IAM-enforcing server's bucket
        body = buckets.get_object(stage.s3.client(), good.bucket, key)
        admin.put_object(Bucket=world.bucket, Key=key, Body=body)
    return _restore(stage, "restore-access-denied", good.uri_in(world.bucket), bucket=world.bucket,
                    endpoint=world.endpoint_url, env_extra=world.credentials("backup"), client=admin)


@scenario("restore-target-not-empty")
def _restore_not_empty(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    target = postgres.seeded_database(stage.pg15, "rel_busy", harness.SMALL_SEED).name
    stage.defer(lambda: stage.pg15.run_sql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
    return _restore(stage, "restore-target-not-empty", _good_uri(stage, bucket), bucket=bucket,
                    target=(stage.pg15, target))


def _restore_with_a_session(stage: Stage, case_id: str, *args: str) -> Outcome:
    """A restore while a superuser's psql-like session stays connected to the target."""
    bucket, _ = _copy_backup(stage)
    target = stage.empty_target()
    with psycopg.connect(stage.pg15.conninfo(target), autocommit=True, application_name="psql") as held:
        outcome = _restore(stage, case_id, _good_uri(stage, bucket), *args, bucket=bucket,
                           target=(stage.pg15, target))
        held_pid = held.info.backend_pid
        outcome.facts["the session was left alone"] = held.execute("SELECT pg_backend_pid()").fetchone()[0] == held_pid
    return outcome


@scenario("restore-target-has-sessions")
def _restore_target_has_sessions(stage: Stage) -> Outcome:
    return _restore_with_a_session(stage, "restore-target-has-sessions")


@scenario("restore-session-revoke-cannot-stop")
def _restore_session_revoke_cannot_stop(stage: Stage) -> Outcome:
    return _restore_with_a_session(stage, "restore-session-revoke-cannot-stop", "--terminate-sessions")


@scenario("restore-live-source-without-approval")
def _restore_live(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    source = stage.fixture("small_source")  # the good backup's source
    return _restore(stage, "restore-live-source-without-approval", _good_uri(stage, bucket),
                    "--clean", "--confirm-target", source.name, "--no-safety-backup", bucket=bucket,
                    target=(source.cluster, source.name), env_extra={"AGENT_BOM_POSTGRES_URL": source.url})


def _other_database(stage: Stage) -> str:
    """A non-empty database that is not the good backup's source (other tenants' data)."""
    name = postgres.seeded_database(stage.pg15, "rel_other", harness.OTHER_SEED).name
    stage.defer(lambda: stage.pg15.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return name


@scenario("restore-over-the-backups-source")
def _restore_over_the_source(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    source = stage.fixture("small_source")  # the good backup's source; no AGENT_BOM_POSTGRES_URL
    return _restore(stage, "restore-over-the-backups-source", _good_uri(stage, bucket),
                    "--clean", "--confirm-target", source.name, bucket=bucket, target=(source.cluster, source.name))


@scenario("restore-target-is-the-jobs-database")
def _restore_target_is_the_jobs_database(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    target = _other_database(stage)
    return _restore(stage, "restore-target-is-the-jobs-database", _good_uri(stage, bucket),
                    "--clean", "--confirm-target", target, bucket=bucket, target=(stage.pg15, target),
                    env_extra={"AGENT_BOM_POSTGRES_URL": stage.pg15.superuser_url(target)})


@scenario("restore-clean-without-confirm-target")
def _restore_clean_without_confirm(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    target = _other_database(stage)
    return _restore(stage, "restore-clean-without-confirm-target", _good_uri(stage, bucket), "--clean",
                    bucket=bucket, target=(stage.pg15, target))


@scenario("restore-clean-confirms-another-database")
def _restore_clean_confirms_another(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    target = _other_database(stage)
    return _restore(stage, "restore-clean-confirms-another-database", _good_uri(stage, bucket),
                    "--clean", "--confirm-target", "agent_bom", bucket=bucket, target=(stage.pg15, target))


@scenario("restore-manifest-of-another-backup")
def _restore_manifest_of_another_backup(stage: Stage) -> Outcome:
    good, other = stage.fixture("good_backup"), stage.fixture("good_backup18")
    bucket, client = _copy_backup(stage, ("dump", "roles"))
    manifest = buckets.get_object(client, other.bucket, buckets.manifest_key(other.key))
    buckets.put_object(client, bucket, buckets.manifest_key(good.key), manifest)
    return _restore(stage, "restore-manifest-of-another-backup", _good_uri(stage, bucket), bucket=bucket)


@scenario("restore-extension-missing-on-target")
def _restore_extension_missing(stage: Stage) -> Outcome:
    """A PostgreSQL 15 database using pgcrypto, restored into PostgreSQL 18 (embedded: no pgcrypto)."""
    source = postgres.new_database(stage.pg15, "rel_crypto")
    stage.pg15.run_sql("CREATE EXTENSION pgcrypto; CREATE TABLE secrets AS "
                       "SELECT g AS id, digest(g::text, 'sha256') AS hash FROM generate_series(1, 10) g", source)
    bucket = stage.new_bucket()
    backup = cli.take_backup(stage.s3, bucket, stage.pg15.superuser_url(source))
    pg18: PgCluster = stage.fixture("pg18")
    target = postgres.new_database(pg18, "rel_target")
    return _restore(stage, "restore-extension-missing-on-target", backup.uri, bucket=bucket, target=(pg18, target))


NEWER_KEY = f"{cli.PREFIX}/agent-bom-29991231T235959Z"


@scenario("restore-latest-newest-unreadable")
def _restore_latest_unreadable(stage: Stage) -> Outcome:
    good = stage.fixture("good_backup")
    bucket, client = _copy_backup(stage)
    for suffix, source_key in ((buckets.DUMP, good.keys[0]), (buckets.ROLES, good.keys[1])):
        client.copy_object(Bucket=bucket, Key=NEWER_KEY + suffix, CopySource={"Bucket": good.bucket, "Key": source_key})
    client.put_object(Bucket=bucket, Key=NEWER_KEY + buckets.MANIFEST, Body=b"{not json")
    return _restore(stage, "restore-latest-newest-unreadable", "latest", bucket=bucket, facts=lambda run: {
        "nothing was restored (no fall back to the older backup)": "restoring backup" not in run.stderr,
    })


def _login_role(cluster: PgCluster, owns: str) -> str:
    """A new LOGIN role that owns database ``owns`` and nothing else; returns its URL."""
    role = postgres.unique_name("rel_dbowner")
    cluster.run_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'owner-password'; ALTER DATABASE \"{owns}\" OWNER TO {role}")
    return cluster.url(owns, role, "owner-password")


@scenario("restore-role-cannot-create-roles")
def _restore_cannot_create_roles(stage: Stage) -> Outcome:
    from devstack.seed import SeedRoles, SeedSpec

    roles = SeedRoles.suffixed(postgres.unique_name("rel").split("_", 1)[1])
    source = postgres.seeded_database(stage.fixture("pg18"), "rel_roles18",
                                 SeedSpec(**{**harness.SMALL_SEED.__dict__, "roles": roles}))
    bucket = stage.new_bucket()
    backup = cli.take_backup(stage.s3, bucket, source.url)
    database = stage.empty_target()
    return _restore(stage, "restore-role-cannot-create-roles", backup.uri, "--create-missing-roles", bucket=bucket,
                    target=(stage.pg15, database), url=_login_role(stage.pg15, database))


@scenario("restore-role-cannot-act-as-owner")
def _restore_cannot_act_as_owner(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    database = stage.empty_target()
    return _restore(stage, "restore-role-cannot-act-as-owner", _good_uri(stage, bucket), "--create-missing-roles",
                    bucket=bucket, target=(stage.pg15, database), url=_login_role(stage.pg15, database))


@scenario("restore-fails-after-the-wipe")
def _restore_fails_after_the_wipe(stage: Stage) -> Outcome:
    import shlex

    good = stage.fixture("good_backup")
    bucket, client = _copy_backup(stage)
    manifest = json.loads(buckets.get_object(client, bucket, good.keys[2]))
    audit = next(t for t in manifest["tables"] if t["name"] == "audit_log")
    audit["rows"] += 1
    audit["tenants"][next(iter(audit["tenants"]))] += 1
    client.put_object(Bucket=bucket, Key=good.keys[2], Body=json.dumps(manifest).encode())
    target = postgres.seeded_database(stage.pg15, "rel_replaced", harness.OTHER_SEED).name
    stage.defer(lambda: stage.pg15.run_sql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
    outcome = _restore(stage, "restore-fails-after-the-wipe", _good_uri(stage, bucket), "--clean", "--confirm-target",
                       target, "--safety-backup-dir", str(stage.tmp_dir("safety")), bucket=bucket,
                       target=(stage.pg15, target))
    command = outcome.run.error_message.split("restore the safety dump: ", 1)[-1].rsplit(" (password", 1)[0]
    back = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=120,
                          env={**cli.base_env(), "PGPASSWORD": stage.pg15.superuser_password})
    outcome.facts["the target was changed (and the message says so)"] = outcome.target_after != outcome.target_before
    outcome.facts["the named go-back command brings the target back exactly"] = (
        back.returncode == 0 and harness.database_digest(stage.pg15, target) == outcome.target_before)
    return outcome


@scenario("restore-scratch-dir-missing")
def _restore_scratch_dir_missing(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    return _restore(stage, "restore-scratch-dir-missing", _good_uri(stage, bucket), "--scratch-dir",
                    str(stage.tmp_dir("scratch") / "not-mounted"), bucket=bucket)


@scenario("restore-report-unwritable")
def _restore_report_unwritable(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    blocker = stage.tmp_dir("report") / "a-file"
    blocker.write_text("a file where a directory should be")
    return _restore(stage, "restore-report-unwritable", _good_uri(stage, bucket), "--report",
                    str(blocker / "report.json"), bucket=bucket, report=False, facts=lambda run: {
                        "nothing was downloaded (the check comes first)": "downloading" not in run.stderr
                        and "restoring backup" not in run.stderr,
                    })


def _backup_refused_by_its_configuration(stage: Stage, case_id: str, **env: str) -> Outcome:
    """A backup whose ``env`` setting is refused before the database or the bucket is asked."""
    bucket = stage.new_bucket()
    run = cli.backup(cli.job_env(stage.s3.endpoint_url, bucket, stage.fixture("small_source").url, **env))
    return _backup_outcome(stage, case_id, bucket, run, [], facts={
        "no multipart upload was started": buckets.open_uploads(stage.s3.client(), bucket) == [],
        "the database was not asked": not any("database reachable" in str(r["message"]) for r in run.log),
    })


@scenario("backup-bad-part-size")
def _backup_bad_part_size(stage: Stage) -> Outcome:
    return _backup_refused_by_its_configuration(stage, "backup-bad-part-size", AGENT_BOM_BACKUP_PART_SIZE="abc")


@scenario("backup-memory-budget-holds-no-part")
def _backup_memory_budget_holds_no_part(stage: Stage) -> Outcome:
    return _backup_refused_by_its_configuration(stage, "backup-memory-budget-holds-no-part",
                                               AGENT_BOM_BACKUP_MEMORY_BUDGET="100MiB")


@scenario("restore-scratch-too-small")
def _restore_scratch_too_small(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    scratch = stage.tmpfs("1m")
    return _restore(stage, "restore-scratch-too-small", _good_uri(stage, bucket), "--scratch-dir", str(scratch),
                    bucket=bucket)


@scenario("restore-scratch-fills-during-download")
def _restore_scratch_fills(stage: Stage) -> Outcome:
    bucket, _ = _copy_backup(stage)
    scratch = stage.tmpfs("20m")  # passes the free-space check (dump + 16 MiB headroom)
    proxy = stage.proxy()
    download = proxy.add(Rule(method="GET", path_suffix=".dump", hold=threading.Event()))

    def fill_when_download_starts() -> None:
        if download.arrived.wait(60):
            with contextlib.suppress(OSError), open(scratch / "filler", "wb") as handle:
                while True:
                    handle.write(b"\0" * 65536)
        assert download.hold is not None
        download.hold.set()

    filler = threading.Thread(target=fill_when_download_starts, daemon=True)
    filler.start()
    outcome = _restore(stage, "restore-scratch-fills-during-download", _good_uri(stage, bucket),
                       "--scratch-dir", str(scratch), bucket=bucket, endpoint=proxy.endpoint_url)
    filler.join(timeout=10)
    outcome.facts["the partial download was deleted"] = sorted(os.listdir(scratch)) == ["filler"]
    return outcome


@contextlib.contextmanager
def staged(request: pytest.FixtureRequest) -> Iterator[Callable[[Case], Outcome]]:
    """A memoised ``outcome(case)`` for the session: each scenario runs once."""
    stage = Stage(request)
    cache: dict[str, Outcome | BaseException] = {}

    def outcome(case: Case) -> Outcome:
        if case.id not in cache:
            try:
                cache[case.id] = SCENARIOS[case.id](stage).seal()
            except (Exception, pytest.skip.Exception) as exc:  # staged once, reported by every test of the row
                cache[case.id] = exc
        result = cache[case.id]
        if isinstance(result, BaseException):
            raise result
        return result

    try:
        yield outcome
    finally:
        stage.close()
