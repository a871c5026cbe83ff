"""Smoke tests of the job image: user, read-only root, PostgreSQL clients, labels."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from devstack.jobimage import ContainerEngine, JobImage

pytestmark = pytest.mark.image

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_UID = 10001
SCRATCH_DIR = "/tmp"
# Paths the container runtime itself creates or mounts (not written by the image's code).
RUNTIME_MANAGED_PATHS = frozenset(
    {"/etc", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/etc/mtab",
     "/run", "/run/.containerenv", "/run/secrets", "/dev", "/proc", "/sys", SCRATCH_DIR}
)

PG_BIN_DIRS_ENV = "AGENT_BOM_BACKUP_PG_BIN_DIRS"
CLIENT_TOOLS = ("pg_dump", "pg_restore", "pg_dumpall", "psql")
REQUIRED_MAJORS = {17, 18}
VERSION_RE = re.compile(r"\(PostgreSQL\) (\d+)\.\d+")
# pg_dump checks --compress before it connects: a build with the algorithm gets as far
# as the (impossible) connection; one without it stops with "does not support".
NO_SERVER = "host=/nonexistent-agent-bom-socket-dir port=1 connect_timeout=1"


@pytest.fixture(scope="module")
def pg_bin_dirs(job_image: str, container_engine: ContainerEngine) -> list[str]:
    value = container_engine.image_env(job_image).get(PG_BIN_DIRS_ENV, "")
    assert value, f"{PG_BIN_DIRS_ENV} is not set in the image"
    return value.split(":")


@pytest.fixture(scope="module")
def client_versions(job_image: str, container_engine: ContainerEngine, pg_bin_dirs: list[str]) -> dict[str, dict[str, str]]:
    """``{bin_dir: {tool: "--version" output}}`` from one container run."""
    script = (
        'IFS=:; for dir in $AGENT_BOM_BACKUP_PG_BIN_DIRS; do for tool in ' + " ".join(CLIENT_TOOLS) + '; do '
        'printf "%s|%s|%s\\n" "$dir" "$tool" "$("$dir/$tool" --version 2>&1 || echo FAILED)"; done; done'
    )
    result = container_engine.run(job_image, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    versions: dict[str, dict[str, str]] = {}
    for line in result.stdout.splitlines():
        bin_dir, tool, output = line.split("|", 2)
        versions.setdefault(bin_dir, {})[tool] = output
    return versions


def _major(version_output: str) -> int:
    match = VERSION_RE.search(version_output)
    assert match, f"not a PostgreSQL version line: {version_output!r}"
    return int(match.group(1))


def test_image_exists(job_image_build: JobImage) -> None:
    result = job_image_build.engine("image", "inspect", "--format", "{{.Id}}", job_image_build.tag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().removeprefix("sha256:") == job_image_build.image_id.removeprefix("sha256:")


def test_image_user_is_numeric_non_root(job_image: str, container_engine: ContainerEngine) -> None:
    user = (container_engine.inspect_image(job_image).get("Config") or {}).get("User", "")
    assert user.split(":")[0] == str(JOB_UID), f"image USER is {user!r}"


def test_container_runs_as_uid_and_gid_10001(job_image: str, container_engine: ContainerEngine) -> None:
    result = container_engine.run(job_image, "id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"uid={JOB_UID}(") and f"gid={JOB_UID}(" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("name", "expected"),
    [("HOME", SCRATCH_DIR), ("TMPDIR", SCRATCH_DIR), ("PYTHONDONTWRITEBYTECODE", "1")],
    ids=["home", "tmpdir", "no-bytecode-writes"],
)
def test_environment_keeps_writes_in_scratch(job_image: str, container_engine: ContainerEngine, name: str, expected: str) -> None:
    assert container_engine.image_env(job_image).get(name) == expected


def test_cli_help_runs_with_read_only_root(job_image: str, container_engine: ContainerEngine) -> None:
    result = container_engine.run(job_image, "agent-bom-backup", "--help")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "backup" in result.stdout


def test_default_command_prints_cli_help(job_image: str, container_engine: ContainerEngine) -> None:
    result = container_engine.run(job_image)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "agent-bom-backup" in result.stdout


def test_cronjob_command_is_on_path(job_image: str, container_engine: ContainerEngine) -> None:
    """The chart runs ``command: ["agent-bom-backup"]`` without a shell or a path."""
    result = container_engine.run(job_image, "sh", "-c", "command -v agent-bom-backup")
    assert result.stdout.strip() == "/opt/venv/bin/agent-bom-backup", result.stderr


def test_pg_bin_dirs_cover_majors_17_and_18(client_versions: dict[str, dict[str, str]]) -> None:
    majors = [_major(tools["pg_dump"]) for tools in client_versions.values()]
    assert REQUIRED_MAJORS <= set(majors), client_versions
    assert len(majors) == len(set(majors)), f"two directories for one major: {client_versions}"


@pytest.mark.parametrize("tool", CLIENT_TOOLS)
def test_every_bin_dir_has_runnable_tool_of_its_major(client_versions: dict[str, dict[str, str]], tool: str) -> None:
    for bin_dir, tools in client_versions.items():
        assert _major(tools[tool]) == _major(tools["pg_dump"]), f"{bin_dir}/{tool}: {tools[tool]}"


@pytest.mark.parametrize("algorithm", ["zstd", "lz4"])
def test_pg_dump_17_supports_compression(
    job_image: str, container_engine: ContainerEngine, client_versions: dict[str, dict[str, str]], algorithm: str
) -> None:
    (bin_dir,) = [d for d, tools in client_versions.items() if _major(tools["pg_dump"]) == 17]
    result = container_engine.run(
        job_image, f"{bin_dir}/pg_dump", f"--compress={algorithm}:1", "--format=custom",
        "--file=/dev/null", f"--dbname={NO_SERVER}",
    )
    assert result.returncode != 0
    assert "does not support compression" not in result.stderr, result.stderr
    assert "connection to server" in result.stderr, result.stderr


def test_oci_labels(job_image: str, container_engine: ContainerEngine) -> None:
    labels = container_engine.image_labels(job_image)
    with open(REPO_ROOT / "pyproject.toml", "rb") as fh:
        version = tomllib.load(fh)["project"]["version"]
    expected = {
        "org.opencontainers.image.title": "agent-bom-backup",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.version": version,
    }
    assert {key: labels.get(key) for key in expected} == expected
    assert labels.get("org.opencontainers.image.source", "").startswith("https://")
    assert labels.get("org.opencontainers.image.description")


def test_no_compilers_pip_or_apt_lists(job_image: str, container_engine: ContainerEngine) -> None:
    script = (
        "for c in gcc cc c++ make pip pip3; do command -v $c; done; "
        "ls -A /var/lib/apt/lists 2>/dev/null | grep -v '^lock$' | grep -v '^partial$'; true"
    )
    result = container_engine.run(job_image, "sh", "-c", script)
    assert result.stdout.strip() == "", result.stdout


def test_nothing_written_outside_tmp(job_image: str, container_engine: ContainerEngine) -> None:
    """With a writable root, a run changes nothing but the runtime's own mount points."""
    name = container_engine.unique_name()
    options = [o for o in container_engine.run_options(read_only=False) if o != "--rm"]
    # ``backup`` without its configuration exits early with an error: enough to load the
    # CLI, its logging and boto3; the exit status is not the point here.
    script = (
        "agent-bom-backup --help >/dev/null; "
        "agent-bom-backup backup >/dev/null 2>&1; "
        "python3 -c 'import agent_bom_backup, boto3, psycopg'; "
        'IFS=:; for dir in $AGENT_BOM_BACKUP_PG_BIN_DIRS; do "$dir/pg_dump" --version; "$dir/psql" --version; done; '
        "echo scratch > /tmp/scratch-check"
    )
    result = container_engine(
        "run", "--name", name, *options, "--env", "AWS_EC2_METADATA_DISABLED=true",
        job_image, "sh", "-c", script,
    )
    try:
        assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        diff = container_engine("diff", name, check=True)
        changed = [line.split(None, 1)[1] for line in diff.stdout.splitlines() if line.strip()]
        outside = [
            path for path in changed
            if path not in RUNTIME_MANAGED_PATHS and not path.startswith(SCRATCH_DIR + "/")
        ]
        assert outside == [], f"written outside {SCRATCH_DIR}: {outside}"
    finally:
        container_engine("rm", "-f", name)
