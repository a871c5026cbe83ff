"""The memory budget holds at every dump size (issue 18, item 4).

A 2 GiB synthetic dump streams through the real uploader (tests/e2e/stream_upload.py)
into Ceph RGW with a 5 MiB first part doubling every 2 parts, so parts grow past 320 MiB
within seconds, under a 640 MiB budget: 544 MiB for buffers (the rest is the process),
so parts stop at 544 MiB and concurrency falls to one part at a time. The uploader
process's memory is sampled from /proc while it runs; without the budget, 5 buffers of
640 MiB would be 3.2 GiB. What the real CLI says at start of a budget (a smaller dump
ceiling, or a refusal when not even one part fits) runs the CLI itself. The arithmetic:
tests/unit/test_upload_plan.py.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import tools
from devstack.podrun import quantity
from devstack.rgw import RgwServer
from tests.support import buckets
from tests.support import cli

MiB = 1024 * 1024
GiB = 1024 * MiB
BUDGET = 640 * MiB
DUMP_BYTES = 2048 * MiB
#: what the budget leaves for buffers (parts.PROCESS_RESERVE is 96 MiB): the largest part
LARGEST_PART = 544 * MiB
FIRST_PART = 5 * MiB
GROWTH_INTERVAL = 2
CHILD = Path(__file__).with_name("stream_upload.py")
KEY = "agent-bom/postgres/agent-bom-20260101T000000Z.dump"


@dataclass(frozen=True)
class Streamed:
    outcome: dict[str, Any]
    #: the kernel's high-water mark of the process's resident memory (VmHWM), last seen
    peak_rss: int
    samples: int
    object_size: int


def _status(pid: int) -> dict[str, int]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


@pytest.fixture(scope="module")
def streamed(rgw: RgwServer) -> Iterator[Streamed]:
    with buckets.fresh_bucket(rgw, "abb-budget") as bucket:
        argv = [sys.executable, str(CHILD), rgw.endpoint_url, bucket, KEY, str(DUMP_BYTES), str(BUDGET),
                str(FIRST_PART), str(GROWTH_INTERVAL)]
        child = subprocess.Popen(argv, env=cli.base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak, samples = 0, 0
        while child.poll() is None:
            status = _status(child.pid)
            if status:
                peak, samples = max(peak, status.get("VmHWM", 0), status.get("VmRSS", 0)), samples + 1
            time.sleep(0.02)
        stdout, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr[-3000:]
        size = rgw.client().head_object(Bucket=bucket, Key=KEY)["ContentLength"]
        yield Streamed(json.loads(stdout.strip().splitlines()[-1]), peak, samples, size)
    rgw.collect_garbage()


def test_peak_memory_stays_within_the_budget(streamed: Streamed) -> None:
    assert 0 < streamed.peak_rss <= BUDGET, f"peak RSS {streamed.peak_rss / MiB:.0f} MiB over {streamed.samples} samples"


def test_the_process_own_peak_stays_within_the_budget(streamed: Streamed) -> None:
    assert streamed.outcome["max_rss"] <= BUDGET


def test_parts_grew_to_what_the_budget_holds(streamed: Streamed) -> None:
    assert streamed.outcome["largest_part"] == LARGEST_PART


def test_the_largest_part_was_held_in_memory(streamed: Streamed) -> None:
    """Guards the sampling: the memory seen includes the largest part's buffer."""
    assert streamed.peak_rss >= LARGEST_PART


def test_buffers_never_held_more_than_the_plan_allows(streamed: Streamed) -> None:
    assert streamed.outcome["buffer_peak"] <= streamed.outcome["buffer_bytes"] < BUDGET


def test_the_whole_stream_was_stored(streamed: Streamed) -> None:
    assert (streamed.outcome["size"], streamed.object_size) == (DUMP_BYTES, DUMP_BYTES)


def test_the_stream_hashed_is_the_stream_read(streamed: Streamed) -> None:
    digest = hashlib.sha256()
    zeros = bytes(64 * MiB)
    for _ in range(DUMP_BYTES // len(zeros)):
        digest.update(zeros)
    assert streamed.outcome["sha256"] == digest.hexdigest()


# ----------------------------------------------------------------------------- at start
def _started(**env: str) -> cli.Run:
    """The CLI with a budget, a database nobody listens on and a bucket on no endpoint:
    the budget is judged before either is asked (exit 3), else the database is (exit 4)."""
    job = cli.job_env("http://127.0.0.1:9", "abb-never", "postgresql://nobody@127.0.0.1:9/none", **env)
    return cli.backup(job)


def _ceiling_warnings(run: cli.Run) -> list[dict[str, object]]:
    return [r for r in run.log if r.get("level") == "warning" and "holds upload parts of at most" in str(r["message"])]


def test_a_budget_below_the_5tib_parts_goes_on_to_the_database() -> None:
    run = _started(AGENT_BOM_BACKUP_MEMORY_BUDGET="1GiB")
    assert run.returncode == 4, str(run)
    assert run.error_message.startswith("cannot connect to"), str(run)


def test_a_budget_below_the_5tib_parts_says_how_large_a_dump_it_holds() -> None:
    (warning,) = _ceiling_warnings(_started(AGENT_BOM_BACKUP_MEMORY_BUDGET="1GiB"))
    assert "parts of at most 928.0 MiB: dumps up to 4.1 TiB" in str(warning["message"]), warning
    assert "AGENT_BOM_BACKUP_MEMORY_BUDGET" in str(warning["hint"]) and "1313MiB" in str(warning["hint"]), warning


def test_the_refusal_of_a_budget_without_room_for_one_part_names_the_sizes() -> None:
    """Its exit code and line: the failure-mode row backup-memory-budget-holds-no-part."""
    run = _started(AGENT_BOM_BACKUP_MEMORY_BUDGET="100MiB")
    hint = run.errors[0].get("hint", "") + run.errors[0]["message"]
    assert "AGENT_BOM_BACKUP_MEMORY_BUDGET" in hint and "104MiB" in hint, str(run)


def test_the_container_memory_limit_sets_the_budget() -> None:
    (warning,) = _ceiling_warnings(_started(AGENT_BOM_BACKUP_MEMORY_LIMIT=str(GiB)))
    assert "60% of the container's memory limit 1.0 GiB" in str(warning["message"]), warning


def test_a_limit_that_holds_the_5tib_part_says_nothing_of_a_ceiling() -> None:
    run = _started(AGENT_BOM_BACKUP_MEMORY_LIMIT=str(2560 * MiB))
    assert (run.returncode, _ceiling_warnings(run)) == (4, []), str(run)


def test_the_chart_default_limit_holds_5tib() -> None:
    values = yaml.safe_load((tools.repo_root() / "deploy" / "helm" / "agent-bom" / "values.yaml").read_text())
    limit = values["controlPlane"]["backup"]["resources"]["limits"]["memory"]
    run = _started(AGENT_BOM_BACKUP_MEMORY_LIMIT=str(int(quantity(limit))))
    assert (run.returncode, _ceiling_warnings(run)) == (4, []), str(run)
