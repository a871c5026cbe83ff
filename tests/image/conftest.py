"""Fixtures for tests that build and run the job image.

``job_image`` builds the image once per session with ``scripts/build-image.sh`` (cached:
a rebuild happens only when image/**, pyproject.toml or .dockerignore changed) and
returns its tag. ``container_engine`` runs containers with the same engine and settings
the build used (podman with ``--runtime runc`` and the containers.conf under
``.tools/podman/`` on machines without docker; docker where ``docker info`` works).

Environment:
  AGENT_BOM_BACKUP_IMAGE   use this already built image instead of building (CI builds
                           it with buildx); it must exist locally
  AGENT_BOM_BACKUP_ENGINE  podman or docker (default: docker when it works, else podman)

A build or engine failure fails the tests with the script's output; nothing here skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-image.sh"
BUILD_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 300
SCRATCH_DIR = "/tmp"


@dataclass(frozen=True)
class ContainerEngine:
    """A container CLI (podman or docker) with the options this machine needs."""

    name: str
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def __call__(
        self, *args: str, timeout: float = RUN_TIMEOUT_S, check: bool = False, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env={**os.environ, **self.env},
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join([*self.command, *args])} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def run_options(self, *, read_only: bool = True, scratch_size: str = "256m") -> list[str]:
        """``run`` options that mimic the chart's pod: read-only root, a writable /tmp only,
        no capabilities, no privilege escalation, host network (loopback servers)."""
        options = [
            "--rm",
            "--network", "host",
            "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "--tmpfs", f"{SCRATCH_DIR}:rw,size={scratch_size},mode=1777",
        ]
        if read_only:
            options.append("--read-only")
            if self.name == "podman":
                # podman adds writable tmpfs on /tmp, /var/tmp and /run otherwise.
                options.append("--read-only-tmpfs=false")
        return options

    def run(
        self,
        image: str,
        *command: str,
        env: dict[str, str] | None = None,
        extra_options: Sequence[str] = (),
        read_only: bool = True,
        timeout: float = RUN_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        """``<engine> run`` the image as the kubelet would (image's own user)."""
        options = self.run_options(read_only=read_only)
        for key, value in (env or {}).items():
            options += ["--env", f"{key}={value}"]
        return self("run", *options, *extra_options, image, *command, timeout=timeout)

    def inspect_image(self, image: str) -> dict:
        result = self("image", "inspect", image, check=True)
        data = json.loads(result.stdout)
        return data[0] if isinstance(data, list) else data

    def image_env(self, image: str) -> dict[str, str]:
        config = self.inspect_image(image).get("Config") or {}
        return dict(item.split("=", 1) for item in config.get("Env") or [])

    def image_labels(self, image: str) -> dict[str, str]:
        info = self.inspect_image(image)
        return (info.get("Config") or {}).get("Labels") or info.get("Labels") or {}

    def unique_name(self, prefix: str = "abb-test") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class JobImage:
    tag: str
    image_id: str
    engine: ContainerEngine


def _docker_works() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _engine_from_environment() -> ContainerEngine:
    name = os.environ.get("AGENT_BOM_BACKUP_ENGINE") or ("docker" if _docker_works() else "podman")
    if name == "docker":
        return ContainerEngine("docker", ("docker",))
    if name != "podman":
        pytest.fail(f"AGENT_BOM_BACKUP_ENGINE must be podman or docker, got {name!r}")
    conf = os.environ.get("CONTAINERS_CONF") or str(REPO_ROOT / ".tools" / "podman" / "containers.conf")
    return ContainerEngine("podman", ("podman", "--runtime", "runc"), {"CONTAINERS_CONF": conf})


def _checkout_tag() -> str:
    """A tag of this checkout's own: two checkouts on one machine (worktrees) that test
    different code never swap each other's image mid-run."""
    digest = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:8]
    return f"localhost/agent-bom-backup:dev-{digest}"


def _build() -> JobImage:
    if not BUILD_SCRIPT.exists():
        pytest.fail(f"{BUILD_SCRIPT} is missing")
    try:
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--tag", _checkout_tag()],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            cwd=REPO_ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scripts/build-image.sh did not finish within {BUILD_TIMEOUT_S} s:\n{exc.stderr}")
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-60:])
        pytest.fail(
            "scripts/build-image.sh failed (podman/docker could not be installed or the build "
            f"broke); exit {result.returncode}, last lines:\n{tail}"
        )
    info = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    engine_cmd = tuple(info["engine_cmd"].split())
    env = {"CONTAINERS_CONF": info["containers_conf"]} if info.get("containers_conf") else {}
    return JobImage(info["tag"], info["id"], ContainerEngine(info["engine"], engine_cmd, env))


@pytest.fixture(scope="session")
def job_image_build() -> JobImage:
    """The built (or given) job image: tag, image id and the engine that holds it."""
    given = os.environ.get("AGENT_BOM_BACKUP_IMAGE")
    if not given:
        return _build()
    engine = _engine_from_environment()
    result = engine("image", "inspect", "--format", "{{.Id}}", given)
    if result.returncode != 0:
        pytest.fail(f"AGENT_BOM_BACKUP_IMAGE={given} is not an image {engine.name} knows: {result.stderr.strip()}")
    return JobImage(given, result.stdout.strip(), engine)


@pytest.fixture(scope="session")
def job_image(job_image_build: JobImage) -> str:
    """Tag of the job image (built once per session by scripts/build-image.sh)."""
    return job_image_build.tag


@pytest.fixture(scope="session")
def container_engine(job_image_build: JobImage) -> ContainerEngine:
    """Runs containers with the engine and options the image was built with."""
    return job_image_build.engine
