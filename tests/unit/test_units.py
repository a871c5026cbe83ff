"""Sizes and durations as people write and read them (options, list, check, prune)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_bom_backup.units import human_age, human_size, parse_duration, parse_size

MiB = 1024 * 1024


@pytest.mark.parametrize(("text", "size"), [
    ("8MiB", 8 * MiB), ("8m", 8 * MiB), ("8MB", 8_000_000), ("5 GiB", 5 * 1024**3), ("1024", 1024), ("17b", 17),
    ("2k", 2048), ("2kb", 2000), ("  64MiB  ", 64 * MiB),
], ids=lambda v: repr(v))
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["abc", "", "8 MiBs", "-8MiB", "8.5MiB", "MiB", "8TiB"])
def test_a_bad_size_is_a_value_error_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "b", "k", "KiB", "m", "MiB", "g", "GiB"]))
def test_binary_units_multiply_by_powers_of_1024(number: int, unit: str) -> None:
    power = {"": 0, "b": 0, "k": 1, "kib": 1, "m": 2, "mib": 2, "g": 3, "gib": 3}[unit.lower()]
    assert parse_size(f"{number}{unit}") == number * 1024**power


@pytest.mark.parametrize(("text", "seconds"), [
    ("26h", 93600.0), ("90m", 5400.0), ("2d", 172800.0), ("1w", 604800.0), ("45s", 45.0), ("45", 45.0), ("1.5h", 5400.0),
], ids=lambda v: repr(v))
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "26 hours", "-1h", "1y", "1h30m"])
def test_a_bad_duration_is_a_value_error_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (3660, "1h01m"), (86399, "23h59m"),
    (86400, "1d"), (86400 + 4 * 3600, "1d04h"), (-5, "0s"),
], ids=lambda v: repr(v))
def test_human_age(seconds: float, shown: str) -> None:
    assert human_age(seconds) == shown


SECONDS_PER = {"d": 86400, "h": 3600, "m": 60, "s": 1}


@given(st.integers(min_value=0, max_value=10**9))
def test_human_age_reads_back_to_the_age_truncated(seconds: int) -> None:
    """What ``human_age`` prints is the age cut to seconds (under a minute), minutes (under
    a day) or hours: never more than the age, and less than one such unit below it."""
    shown = sum(int(n) * SECONDS_PER[unit] for n, unit in re.findall(r"(\d+)([dhms])", human_age(seconds)))
    precision = 1 if seconds < 60 else 60 if seconds < 86400 else 3600
    assert shown <= seconds < shown + precision


@pytest.mark.parametrize(("size", "shown"), [
    (None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (8 * MiB, "8.0 MiB"),
    (5 * 1024**4, "5.0 TiB"), (3 * 1024**5, "3072.0 TiB"),
], ids=lambda v: repr(v))
def test_human_size(size: int | None, shown: str) -> None:
    assert human_size(size) == shown
