"""Client choice: the runbook's matching major, else the lowest newer one; never older."""

from pathlib import Path

import pytest

from agent_bom_backup.errors import ConfigError, PreflightError
from agent_bom_backup.pgclients import Compression, PgClient, select_dump_client, select_restore_client


def clients(*majors: int) -> list[PgClient]:
    return [PgClient(major=m, version=f"{m}.1", bin_dir=Path(f"/opt/pg/{m}/bin")) for m in majors]


@pytest.mark.parametrize(
    ("installed", "server", "chosen"),
    [((15, 17, 18), 15, 15), ((17, 18), 15, 17), ((17, 18), 16, 17), ((17, 18), 18, 18)],
    ids=["equal-major", "lowest-newer-for-15", "lowest-newer-for-16", "equal-18"],
)
def test_dump_client_choice(installed: tuple[int, ...], server: int, chosen: int) -> None:
    assert select_dump_client(clients(*installed), server).major == chosen


def test_server_newer_than_every_client_is_a_preflight_error() -> None:
    with pytest.raises(PreflightError, match="no pg_dump can dump a PostgreSQL 18 server"):
        select_dump_client(clients(15, 17), 18)


@pytest.mark.parametrize(
    ("installed", "archive", "target", "chosen"),
    [((15, 18), 15, 15, 15), ((17, 18), 15, 15, 17), ((15, 18), 18, 15, 18), ((15, 17), 15, 18, 17)],
    ids=["match", "lowest-reader", "only-newer-reader", "older-than-target"],
)
def test_restore_client_choice(installed: tuple[int, ...], archive: int, target: int, chosen: int) -> None:
    assert select_restore_client(clients(*installed), archive, target).major == chosen


def test_no_reader_for_a_newer_archive_is_a_preflight_error() -> None:
    with pytest.raises(PreflightError, match="written by pg_dump 18"):
        select_restore_client(clients(15), 18, 15)


@pytest.mark.parametrize(
    ("spec", "arg16", "arg15"),
    [("gzip", "--compress=gzip", "--compress=6"), ("gzip:1", "--compress=gzip:1", "--compress=1"),
     ("none", "--compress=0", "--compress=0")],
    ids=["gzip-default-level", "gzip-1", "none"],
)
def test_compression_argument_per_client(spec: str, arg16: str, arg15: str) -> None:
    compression = Compression.parse(spec)
    assert (compression.pg_dump_arg(16), compression.pg_dump_arg(15)) == (arg16, arg15)


def test_zstd_with_a_pg15_client_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pg_dump 15 cannot compress with zstd"):
        Compression.parse("zstd:1").pg_dump_arg(15)


@pytest.mark.parametrize("spec", ["brotli", "gzip:x", "none:3"], ids=["unknown", "bad-level", "level-on-none"])
def test_bad_compression_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        Compression.parse(spec)
