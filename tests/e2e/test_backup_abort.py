"""Every way a backup can fail leaves nothing behind: no object, no open multipart upload,
no pg_dump still running, and exactly one clear error line with the documented exit code.
The one exception is the small claim object that took the backup id (``<id>.claim``):
written before the upload and never deleted by the backup role, it makes a failed run an
incomplete entry in ``list`` (prune removes it), never a backup."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import faults
from tests.support import cli
from devstack.pgcluster import PgCluster, free_port
from tests.support.s3proxy import Rule, S3Proxy
from devstack.s3server import MotoServer

PG_DUMP_FAILS_AT_END = """#!/bin/sh
case " $* " in *" --version "*) exec @REAL@ "$@" ;; esac
@REAL@ "$@" || exit
echo "pg_dump: error: simulated failure after the whole archive was written" >&2
exit 1
"""
PG_DUMP_DIES_MID_STREAM = """#!/bin/sh
case " $* " in *" --version "*) exec @REAL@ "$@" ;; esac
@REAL@ "$@" | head -c 4096
kill -KILL $$
"""
PG_DUMPALL_FAILS = """#!/bin/sh
case " $* " in *" --version "*) exec @REAL@ "$@" ;; esac
echo "pg_dumpall: error: simulated failure" >&2
exit 1
"""
# passes the first STALL_AFTER bytes on, then stalls like a dump stuck on a huge table
PG_DUMP_STALLS = """#!/usr/bin/python3
import os, subprocess, sys, time
REAL = "@REAL@"
if "--version" in sys.argv:
    os.execv(REAL, [REAL, *sys.argv[1:]])
STALL_AFTER = 6 * 1024 * 1024
proc = subprocess.Popen([REAL, *sys.argv[1:]], stdout=subprocess.PIPE)
sent = 0
while sent < STALL_AFTER:
    chunk = proc.stdout.read(min(65536, STALL_AFTER - sent))
    if not chunk:
        break
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    sent += len(chunk)
if sent < STALL_AFTER:  # the real program ended early (a capability probe): pass its status on
    sys.exit(proc.wait())
time.sleep(300)
"""


@dataclass(frozen=True)
class Outcome:
    run: cli.Run
    objects: list[str]  # everything but claims
    uploads: list[dict]
    claims: list[str]


def _backup_into_fresh_bucket(s3: MotoServer, database_url: str, *args: str, **env: str) -> Outcome:
    with cli.fresh_bucket(s3, "abb-abort") as bucket:
        run = cli.backup(cli.job_env(s3.endpoint_url, bucket, database_url, **env), *args)
        return _outcome(s3, bucket, run)


def _outcome(s3: MotoServer, bucket: str, run: cli.Run) -> Outcome:
    """``run`` and what it left in ``bucket``."""
    client = s3.client()
    keys = cli.object_keys(client, bucket)
    return Outcome(run, cli.without_claims(keys), cli.open_uploads(client, bucket), cli.claims(keys))


# ------------------------------------------------------------------ pg_dump / pg_dumpall fail
FAILING_CLIENTS = {
    "pg_dump-exits-1-after-a-complete-archive": ({"pg_dump": PG_DUMP_FAILS_AT_END}, "pg_dump exited with code 1"),
    "pg_dump-killed-mid-stream": ({"pg_dump": PG_DUMP_DIES_MID_STREAM}, "pg_dump was killed by signal 9"),
    "pg_dumpall-fails": ({"pg_dumpall": PG_DUMPALL_FAILS}, "pg_dumpall --globals-only failed"),
}
#: pg_dumpall runs before the backup id is claimed, pg_dump after
CLAIMS_LEFT = {"pg_dump-exits-1-after-a-complete-archive": 1, "pg_dump-killed-mid-stream": 1, "pg_dumpall-fails": 0}


@pytest.fixture(scope="module", params=list(FAILING_CLIENTS), ids=list(FAILING_CLIENTS))
def failed_dump(request: pytest.FixtureRequest, s3: MotoServer, source15: cli.Database,
                tmp_root: Path) -> tuple[Outcome, str]:
    scripts, message = FAILING_CLIENTS[request.param]
    bin_dir = faults.client_dir(tmp_root / cli.unique_name("clients"), **scripts)
    return _backup_into_fresh_bucket(s3, source15.url, "--pg-bin-dir", str(bin_dir)), message


def test_failed_client_exits_with_the_dump_code(failed_dump: tuple[Outcome, str]) -> None:
    outcome, _ = failed_dump
    assert outcome.run.returncode == 5, str(outcome.run)


def test_failed_client_logs_one_error_naming_it(failed_dump: tuple[Outcome, str]) -> None:
    outcome, message = failed_dump
    assert [e["message"].startswith(message) for e in outcome.run.errors] == [True], str(outcome.run)


def test_failed_client_leaves_no_object(failed_dump: tuple[Outcome, str]) -> None:
    outcome, _ = failed_dump
    assert outcome.objects == []


def test_failed_client_leaves_only_the_claim_once_the_id_was_taken(
    failed_dump: tuple[Outcome, str], request: pytest.FixtureRequest
) -> None:
    outcome, _ = failed_dump
    case = request.node.callspec.params["failed_dump"]
    assert len(outcome.claims) == CLAIMS_LEFT[case]


def test_failed_client_leaves_no_multipart_upload(failed_dump: tuple[Outcome, str]) -> None:
    outcome, _ = failed_dump
    assert outcome.uploads == []


# ------------------------------------------------------------------ unreachable database
@pytest.fixture(scope="module")
def unreachable_db(s3: MotoServer) -> Outcome:
    return _backup_into_fresh_bucket(s3, f"postgresql://postgres:secret@127.0.0.1:{free_port()}/agent_bom")


def test_unreachable_database_exits_with_the_preflight_code(unreachable_db: Outcome) -> None:
    assert unreachable_db.run.returncode == 4, str(unreachable_db.run)


def test_unreachable_database_logs_one_error_naming_the_server(unreachable_db: Outcome) -> None:
    assert [e["message"].startswith("cannot connect to postgresql://postgres@127.0.0.1:")
            for e in unreachable_db.run.errors] == [True], str(unreachable_db.run)


def test_unreachable_database_leaves_nothing(unreachable_db: Outcome) -> None:
    assert (unreachable_db.objects, unreachable_db.uploads) == ([], [])


# ------------------------------------------------------------------ missing bucket
def test_missing_bucket_fails_preflight_with_one_error(s3: MotoServer, source15: cli.Database) -> None:
    bucket = "abb-missing-bucket-that-does-not-exist"
    run = cli.backup(cli.job_env(s3.endpoint_url, bucket, source15.url))
    assert (run.returncode, [e["message"].startswith(f"bucket {bucket} does not exist") for e in run.errors]) == (
        4, [True]), str(run)


# ------------------------------------------------------------------ S3 error mid-upload
@pytest.fixture(scope="module")
def bulk_source(pg15: PgCluster) -> cli.Database:
    """~10 MiB of row data: more than one 5 MiB part when dumped uncompressed."""
    return cli.blob_database(pg15, "bulk", 10)


@pytest.fixture(scope="module")
def storage_failure(s3: MotoServer, bulk_source: cli.Database) -> tuple[Outcome, list[int]]:
    """The store refuses the second part (403); returns the outcome and the parts stored."""
    with cli.fresh_bucket(s3, "abb-s3err") as bucket:
        refuse_second_part = Rule(method="PUT", query_key="partNumber", status=403, after=1)
        with S3Proxy(s3.endpoint_url, strict=True, rules=[refuse_second_part]) as proxy:
            env = cli.job_env(proxy.endpoint_url, bucket, bulk_source.url)
            run = cli.backup(env, "--compression", "none", "--part-size", "5MiB", "--upload-concurrency", "1")
        return _outcome(s3, bucket, run), proxy.part_sizes()


def test_storage_error_mid_upload_came_after_a_stored_part(storage_failure: tuple[Outcome, list[int]]) -> None:
    _, stored_parts = storage_failure
    assert stored_parts == [5 * 1024 * 1024]


def test_storage_error_mid_upload_exits_with_the_storage_code(storage_failure: tuple[Outcome, list[int]]) -> None:
    outcome, _ = storage_failure
    assert outcome.run.returncode == 6, str(outcome.run)


def test_storage_error_mid_upload_logs_one_error(storage_failure: tuple[Outcome, list[int]]) -> None:
    outcome, _ = storage_failure
    assert [e["message"].startswith("uploading failed for s3://") for e in outcome.run.errors] == [True], \
        str(outcome.run)


def test_storage_error_mid_upload_aborts_the_multipart_upload(storage_failure: tuple[Outcome, list[int]]) -> None:
    outcome, _ = storage_failure
    assert (outcome.objects, outcome.uploads) == ([], [])


# ------------------------------------------------------------------ SIGTERM mid-upload
def _pids_with(text: str) -> list[int]:
    return list(cli.processes_with(text))


def _uploaded_parts(s3: MotoServer, bucket: str) -> int:
    uploads = cli.open_uploads(s3.client(), bucket)
    if not uploads:
        return 0
    parts = s3.client().list_parts(Bucket=bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"])
    return len(parts.get("Parts", []))


def _poll(check: Callable[[], Any], until: Callable[[Any], bool], timeout_s: float) -> Any:
    """``check()`` every 50 ms until ``until(value)`` or the timeout; returns the last value."""
    deadline = time.monotonic() + timeout_s
    value = check()
    while not until(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = check()
    return value


@dataclass(frozen=True)
class Terminated:
    outcome: Outcome
    parts_before_sigterm: int
    dumps_left: list[int]


@pytest.fixture(scope="module")
def sigterm(s3: MotoServer, bulk_source: cli.Database, tmp_root: Path) -> Iterator[Terminated]:
    """SIGTERM to the CLI once a part is stored, while pg_dump stalls (the Job's deadline)."""
    bin_dir = faults.client_dir(tmp_root / cli.unique_name("clients"), pg_dump=PG_DUMP_STALLS)
    dump_marker = f"dbname={bulk_source.name}"
    with cli.fresh_bucket(s3, "abb-sigterm") as bucket:
        job = cli.Job([cli.executable(), "backup", "--pg-bin-dir", str(bin_dir), "--compression", "none",
                       "--part-size", "5MiB"], cli.job_env(s3.endpoint_url, bucket, bulk_source.url))
        try:
            parts = _poll(lambda: _uploaded_parts(s3, bucket), lambda n: n > 0, 60)
            job.signal(signal.SIGTERM)
            run = job.wait(timeout=60)
            dumps_left = _poll(lambda: _pids_with(dump_marker), lambda pids: not pids, 10)
            yield Terminated(_outcome(s3, bucket, run), parts, dumps_left)
        finally:
            job.kill()
            for pid in _pids_with(dump_marker):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_arrived_mid_upload(sigterm: Terminated) -> None:
    assert sigterm.parts_before_sigterm >= 1


def test_sigterm_exits_with_the_interrupted_code(sigterm: Terminated) -> None:
    assert sigterm.outcome.run.returncode == 143, str(sigterm.outcome.run)


def test_sigterm_logs_one_error(sigterm: Terminated) -> None:
    assert [e["message"].startswith("received SIGTERM") for e in sigterm.outcome.run.errors] == [True], \
        str(sigterm.outcome.run)


def test_sigterm_aborts_the_multipart_upload(sigterm: Terminated) -> None:
    assert (sigterm.outcome.objects, sigterm.outcome.uploads) == ([], [])


def test_sigterm_leaves_no_pg_dump_running(sigterm: Terminated) -> None:
    assert sigterm.dumps_left == []
