"""The memory budget of an upload: buffers in flight per part size, the largest part, the
dump size a small budget holds (said at start) and the refusal of one that holds no part,
and the buffers and the read-ahead that keep to it (parts.py). The real
uploader under a budget, with its RSS sampled: tests/e2e/test_memory_budget.py."""

from __future__ import annotations

import hashlib
import io
import threading
import time

import pytest

from agent_bom_backup import parts
from agent_bom_backup.errors import ConfigError, StorageError
from agent_bom_backup.parts import (
    MAX_OBJECT_SIZE,
    MAX_PARTS,
    PROCESS_RESERVE,
    GiB,
    MiB,
    PartBuffers,
    PartReader,
    PartSchedule,
    UploadPlan,
    fill_with,
    plan_upload,
)
from agent_bom_backup.resources import MemoryBudget

#: the chart's default memory limit, and 60 % of it
CHART_LIMIT = 2560 * MiB
CHART_BUDGET = MemoryBudget(int(CHART_LIMIT * 0.6), "chart default")


def budget(size: int) -> MemoryBudget:
    return MemoryBudget(size, "test")


def part_sizes(schedule: PartSchedule) -> list[int]:
    return sorted({schedule.size(n) for n in range(1, MAX_PARTS + 1)})


@pytest.mark.parametrize("limit", [CHART_BUDGET.limit, 2 * GiB, 8 * GiB, 1400 * MiB, int(GiB * 0.6)],
                         ids=["chart-default", "2GiB", "8GiB", "1400MiB", "60%-of-1GiB"])
@pytest.mark.parametrize("concurrency", [1, 4, 32], ids=lambda c: f"concurrency-{c}")
def test_buffers_in_flight_never_exceed_the_budget_at_any_part_size(limit: int, concurrency: int) -> None:
    plan = plan_upload(PartSchedule(), concurrency, budget(limit))
    worst = max(plan.buffers(size) * size for size in part_sizes(plan.schedule))
    assert worst + PROCESS_RESERVE <= limit


def test_a_small_test_schedule_keeps_to_its_budget_too() -> None:
    plan = plan_upload(PartSchedule(5 * MiB, 2), 4, budget(768 * MiB))
    assert max(plan.buffers(size) * size for size in part_sizes(plan.schedule)) <= plan.buffer_bytes


@pytest.mark.parametrize("limit", [CHART_BUDGET.limit, 2 * GiB, 1400 * MiB], ids=["chart-default", "2GiB", "1400MiB"])
def test_the_capped_schedule_still_reaches_5tib(limit: int) -> None:
    assert plan_upload(PartSchedule(), 4, budget(limit)).schedule.capacity() >= MAX_OBJECT_SIZE


def test_concurrency_falls_as_parts_grow() -> None:
    plan = plan_upload(PartSchedule(), 4, CHART_BUDGET)  # 1536 MiB: 1440 MiB for buffers
    assert [plan.buffers(size * MiB) for size in (8, 64, 256, 512, 1024)] == [5, 5, 5, 2, 1]


def test_the_chart_default_holds_every_part_of_the_default_schedule() -> None:
    plan = plan_upload(PartSchedule(), 4, CHART_BUDGET)
    assert plan.schedule.max_size == 1440 * MiB


def test_parts_stop_at_half_the_buffer_memory_when_that_still_reaches_5tib() -> None:
    plan = plan_upload(PartSchedule(), 4, budget(4 * GiB))  # half of 4 GiB - 96 MiB is 2000 MiB >= 1217 MiB
    assert (plan.schedule.max_size, plan.buffers(plan.schedule.max_size)) == (2000 * MiB, 2)


def test_parts_keep_their_size_below_the_cap() -> None:
    plan = plan_upload(PartSchedule(), 4, CHART_BUDGET)
    assert [plan.schedule.size(n) // MiB for n in (1, 901, 1801, 2701)] == [8, 16, 32, 64]


#: 60 % of the 1 GiB limit the 0.1.0 chart set: 518 MiB for buffers, below the 1217 MiB
#: parts a 5 TiB dump needs with the default schedule
SMALL_BUDGET = MemoryBudget(int(GiB * 0.6), "60% of the container's memory limit 1.0 GiB")


def test_a_budget_without_room_for_the_5tib_part_caps_the_parts() -> None:
    assert plan_upload(PartSchedule(), 4, SMALL_BUDGET).schedule.max_size == 518 * MiB


def test_a_budget_without_room_for_the_5tib_part_holds_a_smaller_dump() -> None:
    plan = plan_upload(PartSchedule(), 4, SMALL_BUDGET)
    assert plan.max_dump_size == plan.schedule.capacity() < MAX_OBJECT_SIZE


def test_the_smaller_ceiling_is_said_with_its_size() -> None:
    warning = plan_upload(PartSchedule(), 4, SMALL_BUDGET).ceiling_warning()
    assert warning is not None
    assert "holds upload parts of at most 518.0 MiB: dumps up to 2.7 TiB" in warning[0]


def test_the_smaller_ceiling_says_what_to_set() -> None:
    warning = plan_upload(PartSchedule(), 4, budget(GiB)).ceiling_warning()
    assert warning is not None
    assert "at least 1313MiB" in warning[1] and "at least 2189MiB" in warning[1]


def test_the_chart_default_says_nothing_of_a_ceiling() -> None:
    assert plan_upload(PartSchedule(), 4, CHART_BUDGET).ceiling_warning() is None


def test_the_suggested_budget_holds_5tib() -> None:
    assert plan_upload(PartSchedule(), 4, budget(1313 * MiB)).ceiling_warning() is None


def test_the_suggested_container_limit_holds_5tib() -> None:
    assert plan_upload(PartSchedule(), 4, budget(int(2189 * MiB * 0.6))).ceiling_warning() is None


def test_a_budget_that_cannot_hold_one_part_is_refused() -> None:
    with pytest.raises(ConfigError, match="less than one 8.0 MiB part"):
        plan_upload(PartSchedule(), 4, budget(100 * MiB))


def test_the_refusal_says_what_to_set() -> None:
    with pytest.raises(ConfigError) as refused:
        plan_upload(PartSchedule(), 4, budget(100 * MiB))
    assert refused.value.hint is not None
    assert "at least 104MiB" in refused.value.hint and "at least 174MiB" in refused.value.hint


def test_a_dump_past_the_ceiling_fails_naming_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "MAX_PARTS", 3)  # three 5 MiB parts stand for 10,000 capped ones
    plan = UploadPlan(PartSchedule(5 * MiB, 1).capped(5 * MiB), 1, budget(PROCESS_RESERVE + 20 * MiB))
    reader = PartReader(plan, fill_with(read=io.BytesIO(b"z" * (20 * MiB)).read))
    with pytest.raises(StorageError, match=r"that 3 parts of at most 5.0 MiB hold \(memory budget 116.0 MiB"):
        for part in reader:
            reader.buffers.give_back(part.data, part.size)


def test_a_schedule_that_cannot_reach_5tib_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot reach S3's 5 TiB object limit"):
        plan_upload(PartSchedule(8 * MiB, MAX_PARTS + 1), 4, budget(8 * GiB))


def test_a_first_part_larger_than_the_budget_is_refused() -> None:
    with pytest.raises(ConfigError, match="leaves"):
        plan_upload(PartSchedule(2 * GiB, 900), 4, CHART_BUDGET)


# ----------------------------------------------------------------------------- buffers
def small_plan(buffer_bytes: int, concurrency: int = 4) -> UploadPlan:
    return UploadPlan(PartSchedule(5 * MiB, 1), concurrency, budget(PROCESS_RESERVE + buffer_bytes))


def test_buffers_are_reused_for_parts_of_the_same_size() -> None:
    buffers = PartBuffers(small_plan(40 * MiB))
    first = buffers.take(8 * MiB)
    buffers.give_back(first, 8 * MiB)
    assert buffers.take(8 * MiB) is first


def test_a_free_buffer_of_a_smaller_size_is_dropped() -> None:
    buffers = PartBuffers(small_plan(40 * MiB))
    small = buffers.take(8 * MiB)
    buffers.give_back(small, 8 * MiB)
    assert len(buffers.take(16 * MiB)) == 16 * MiB and buffers.peak == 16 * MiB


def test_take_waits_while_the_buffers_are_in_use() -> None:
    buffers = PartBuffers(small_plan(16 * MiB))
    held = [buffers.take(8 * MiB), buffers.take(8 * MiB)]
    taken = threading.Event()
    waiter = threading.Thread(target=lambda: (buffers.take(8 * MiB), taken.set()), daemon=True)
    waiter.start()
    waiter.join(timeout=0.3)
    waited = not taken.is_set()
    buffers.give_back(held[0], 8 * MiB)
    waiter.join(timeout=30)
    assert (waited, taken.is_set(), buffers.peak) == (True, True, 16 * MiB)


def test_a_closed_pool_stops_a_waiting_reader() -> None:
    buffers = PartBuffers(small_plan(8 * MiB))
    buffers.take(8 * MiB)
    stopped = threading.Event()

    def wait() -> None:
        try:
            buffers.take(8 * MiB)
        except Exception:  # noqa: BLE001 - BuffersClosed is what the test waits for
            stopped.set()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    buffers.close()
    waiter.join(timeout=30)
    assert stopped.is_set()


# ----------------------------------------------------------------------------- the reader
def read_all(plan: UploadPlan, data: bytes) -> tuple[list[int], str, int]:
    reader = PartReader(plan, fill_with(read=io.BytesIO(data).read))
    sizes = []
    for part in reader:
        sizes.append(len(part.data))
        reader.buffers.give_back(part.data, part.size)
    return sizes, reader.hasher.hexdigest(), reader.total


def test_the_reader_cuts_the_stream_into_the_scheduled_parts() -> None:
    data = bytes(range(256)) * (100 * 1024)  # 25 MiB
    sizes, _, _ = read_all(small_plan(64 * MiB), data)
    assert sizes == [5 * MiB, 10 * MiB, len(data) - 15 * MiB]


def test_the_reader_hashes_what_it_read() -> None:
    data = bytes(range(256)) * (100 * 1024)
    _, digest, total = read_all(small_plan(64 * MiB), data)
    assert (digest, total) == (hashlib.sha256(data).hexdigest(), len(data))


def test_an_empty_stream_is_one_empty_part() -> None:
    sizes, digest, _ = read_all(small_plan(64 * MiB), b"")
    assert (sizes, digest) == ([0], hashlib.sha256(b"").hexdigest())


def test_a_stream_of_whole_parts_ends_after_its_last_full_part() -> None:
    sizes, _, _ = read_all(small_plan(64 * MiB), b"x" * (15 * MiB))
    assert sizes == [5 * MiB, 10 * MiB]


def test_the_reader_reads_ahead_only_as_far_as_the_buffers_allow() -> None:
    plan = UploadPlan(PartSchedule(5 * MiB, MAX_PARTS + 1), 2, budget(PROCESS_RESERVE + 20 * MiB))
    source = io.BytesIO(b"y" * (50 * MiB))
    reads: list[int] = []

    def read(size: int) -> bytes:
        data = source.read(size)
        reads.append(len(data))
        return data

    reader = PartReader(plan, fill_with(read=read))
    deadline = time.monotonic() + 30
    while len(reads) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room to read a fourth part, were the buffers not all taken
    ahead = len(reads)  # nothing consumed yet: as many parts as buffers (concurrency + 1)
    for part in reader:
        reader.buffers.give_back(part.data, part.size)
    assert (ahead, reader.total, reader.buffers.peak) == (3, 50 * MiB, 15 * MiB)
