"""The CLI as users install it on a workstation (`pipx install agent-bom-backup`): the
sdist and wheel built by scripts/release.py (what the release workflow publishes to PyPI),
`twine check`, then the wheel installed into an empty venv from the file alone and run
against the devstack (moto S3 + a real PostgreSQL 15 server): `--version`, `list`, and a
restore that finds the host's PostgreSQL clients by itself.

No registry at test time: the empty venv gets the wheel's dependencies from
.tools/wheelhouse (`scripts/bootstrap.sh python` downloads them) with `pip install --no-index`,
and the build uses the installed setuptools (`--no-isolation`)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import release
from devstack import tools
from devstack.pgcluster import PgCluster
from devstack.s3server import MotoServer
from tests.e2e.helpers import table_counts
from tests.support import buckets
from tests.support import cli
from tests.support import postgres

pytestmark = pytest.mark.e2e

VERSION = release.release_version()


def wheelhouse() -> Path:
    path = tools.tools_dir() / "wheelhouse"
    if not any(path.glob("*.whl")):
        raise tools.MissingToolError("the wheels of the CLI's dependencies", path, "python")
    return path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    sdist, wheel = release.build_python(VERSION, tmp_path_factory.mktemp("dist") / "python", isolation=False)
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def venv(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv (the base interpreter's, not the suite's) with only the wheel installed."""
    path = tmp_path_factory.mktemp("workstation") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-index", "--find-links", str(wheelhouse()), str(dist["wheel"])],
                   check=True, timeout=300)
    return path / "bin"


def workstation_env(s3: MotoServer, bucket: str, **extra: str) -> dict[str, str]:
    """The job's storage settings, with PATH holding the new venv's bin and the system only."""
    return cli.job_env(s3.endpoint_url, bucket, **extra) | {"PATH": cli.SYSTEM_PATH}


@pytest.fixture(scope="module")
def backup(s3: MotoServer, pg15: PgCluster) -> Iterator[tuple[postgres.Database, cli.Backup]]:
    source = postgres.seeded_database(pg15, "wheelsrc")
    with buckets.fresh_bucket(s3, "abb-wheel") as bucket:
        yield source, cli.take_backup(s3, bucket, source.url)


def test_twine_check_strict_passes(dist: dict[str, Path]) -> None:
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(dist["sdist"]), str(dist["wheel"])],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_sdist_builds_the_wheel_and_carries_the_license(dist: dict[str, Path]) -> None:
    import tarfile

    with tarfile.open(dist["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "LICENSE", "image/src/agent_bom_backup/cli.py"} <= names


def test_the_wheel_holds_the_package_and_nothing_of_the_repository(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
    assert tops == {"agent_bom_backup", f"agent_bom_backup-{VERSION}.dist-info"}


def test_the_installed_cli_is_the_wheel_not_the_checkout(venv: Path) -> None:
    found = subprocess.run([str(venv / "python"), "-c", "import agent_bom_backup; print(agent_bom_backup.__file__)"],
                           capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert Path(found).is_relative_to(venv.parent)


def test_version_is_the_release_version(venv: Path) -> None:
    result = subprocess.run([str(venv / "agent-bom-backup"), "--version"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, f"agent-bom-backup, version {VERSION}")


def test_list_shows_the_backup_as_complete(venv: Path, s3: MotoServer,
                                           backup: tuple[postgres.Database, cli.Backup]) -> None:
    _, taken = backup
    result = cli.run([venv / "agent-bom-backup", "list"], workstation_env(s3, taken.bucket))
    assert result.returncode == 0 and taken.key.rsplit("/", 1)[-1] in result.stdout and "complete" in result.stdout, \
        str(result)


def test_restore_with_the_host_clients_restores_every_row(venv: Path, s3: MotoServer, pg15: PgCluster,
                                                          backup: tuple[postgres.Database, cli.Backup]) -> None:
    source, taken = backup
    target = postgres.new_database(pg15, "wheelrestore")
    env = workstation_env(s3, taken.bucket, AGENT_BOM_RESTORE_POSTGRES_URL=pg15.superuser_url(target))
    result = cli.run([venv / "agent-bom-backup", "restore", taken.uri], env)
    assert result.returncode == 0, str(result)
    assert table_counts(pg15, target) == table_counts(pg15, source.name)


def test_without_matching_clients_the_error_names_the_package_to_install(
        venv: Path, s3: MotoServer, pg15: PgCluster, backup: tuple[postgres.Database, cli.Backup], tmp_path: Path) -> None:
    _, taken = backup
    target = postgres.new_database(pg15, "wheelnoclients")
    env = workstation_env(s3, taken.bucket, AGENT_BOM_RESTORE_POSTGRES_URL=pg15.superuser_url(target))
    result = cli.run([venv / "agent-bom-backup", "restore", "--only-pg-bin-dirs", "--pg-bin-dir", str(tmp_path),
                      taken.uri], env)
    assert (result.returncode, "postgresql-client-15" in result.error_message) == (4, True), str(result)
