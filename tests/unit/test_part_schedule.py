"""The multipart part-size schedule: no size ceiling below S3's 5 TiB, bounded memory."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_bom_backup.errors import ConfigError
from agent_bom_backup.parts import (
    DEFAULT_CONCURRENCY,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    GiB,
    MiB,
    PartSchedule,
)

STARTS = [MIN_PART_SIZE, 8 * MiB, 16 * MiB, 64 * MiB, 1024 * MiB]


def summed_capacity(schedule: PartSchedule, parts: int = MAX_PARTS) -> int:
    """The capacity by adding every part: what the tier arithmetic must equal."""
    return sum(schedule.size(n) for n in range(1, parts + 1))


@pytest.mark.parametrize("initial", STARTS, ids=lambda b: f"{b // MiB}MiB")
def test_ten_thousand_parts_reach_the_5tib_object_limit(initial: int) -> None:
    assert PartSchedule(initial).capacity(MAX_PARTS) >= MAX_OBJECT_SIZE


@pytest.mark.parametrize("initial", STARTS, ids=lambda b: f"{b // MiB}MiB")
def test_no_part_exceeds_the_5gib_part_limit(initial: int) -> None:
    schedule = PartSchedule(initial)
    assert max(schedule.size(n) for n in range(1, MAX_PARTS + 1)) <= MAX_PART_SIZE


def test_fixed_8mib_parts_would_cap_at_78gib() -> None:
    # the trap the schedule avoids: boto3's default fixed part size
    assert PartSchedule(8 * MiB, growth_interval=MAX_PARTS + 1).capacity() < 80 * 1024**3


def test_parts_double_every_growth_interval() -> None:
    schedule = PartSchedule(8 * MiB, growth_interval=900)
    assert [schedule.size(n) // MiB for n in (1, 900, 901, 1800, 1801)] == [8, 8, 16, 16, 32]


def test_a_one_gib_backup_keeps_the_initial_part_size() -> None:
    schedule = PartSchedule()
    parts_for_1gib = 1024 // 8
    assert schedule.size(parts_for_1gib) == 8 * MiB


def test_parts_stop_growing_at_the_cap() -> None:
    schedule = PartSchedule(8 * MiB, growth_interval=1).capped(100 * MiB)
    assert [schedule.size(n) // MiB for n in range(1, 8)] == [8, 16, 32, 64, 100, 100, 100]


@pytest.mark.parametrize("schedule", [
    PartSchedule(),
    PartSchedule(5 * MiB, 2),
    PartSchedule(8 * MiB, 900, max_size=1500 * MiB),
    PartSchedule(64 * MiB, 7, max_size=100 * MiB),
    PartSchedule(8 * MiB, MAX_PARTS + 1),
], ids=["default", "5MiB-every-2", "capped-1500MiB", "capped-below-growth", "never-grows"])
@pytest.mark.parametrize("parts", [1, 899, 900, 901, MAX_PARTS], ids=lambda n: f"{n}-parts")
def test_capacity_is_the_sum_of_the_part_sizes(schedule: PartSchedule, parts: int) -> None:
    assert schedule.capacity(parts) == summed_capacity(schedule, parts)


def test_the_default_schedule_needs_parts_of_1217mib_to_reach_5tib() -> None:
    # docs/limits.md: with parts capped below this, 10,000 parts hold less than 5 TiB
    assert PartSchedule().smallest_cap_reaching() == 1217 * MiB


@pytest.mark.parametrize("schedule", [PartSchedule(), PartSchedule(5 * MiB, 2), PartSchedule(16 * MiB, 500)],
                         ids=["default", "5MiB-every-2", "16MiB-every-500"])
def test_the_smallest_cap_is_the_smallest_that_reaches_5tib(schedule: PartSchedule) -> None:
    cap = schedule.smallest_cap_reaching()
    assert cap is not None
    assert schedule.capped(cap).capacity() >= MAX_OBJECT_SIZE
    assert schedule.capped(cap - MiB).capacity() < MAX_OBJECT_SIZE


def test_no_cap_reaches_5tib_when_parts_never_grow() -> None:
    assert PartSchedule(8 * MiB, MAX_PARTS + 1).smallest_cap_reaching() is None


def test_a_large_first_part_is_its_own_smallest_cap() -> None:
    # 10,000 parts of 1 GiB hold ~9.8 TiB: parts never need to be larger than the first
    assert PartSchedule(GiB, MAX_PARTS + 1).smallest_cap_reaching() == GiB


def test_parts_of_a_100gb_backup_are_64mib_with_defaults() -> None:
    # docs/limits.md: at most (concurrency + 1) of these in flight, within the memory budget
    schedule = PartSchedule()
    total, part = 0, 0
    while total < 100 * 10**9:
        part += 1
        total += schedule.size(part)
    assert schedule.size(part) * (DEFAULT_CONCURRENCY + 1) == 320 * MiB


@pytest.mark.parametrize("initial", [0, MIN_PART_SIZE - 1, MAX_PART_SIZE + 1], ids=["zero", "below-5MiB", "above-5GiB"])
def test_part_size_outside_s3_limits_is_a_config_error(initial: int) -> None:
    with pytest.raises(ConfigError, match="outside S3's limits"):
        PartSchedule(initial).validate()


@given(st.integers(min_value=MIN_PART_SIZE, max_value=MAX_PART_SIZE), st.integers(min_value=1, max_value=5000),
       st.integers(min_value=1, max_value=MAX_PARTS - 1))
def test_parts_never_shrink_and_stay_within_s3_s_limits(initial: int, growth_interval: int, part: int) -> None:
    schedule = PartSchedule(initial, growth_interval)
    assert MIN_PART_SIZE <= schedule.size(part) <= schedule.size(part + 1) <= MAX_PART_SIZE
