"""The job image on this machine: build it with ``scripts/build-image.sh`` and run it with
the engine (podman or docker) and options the build used.

``build_job_image()`` builds under a tag of this checkout's own (cached: the script skips
the build while image/**, pyproject.toml and .dockerignore are unchanged);
``given_job_image(tag)`` takes an image someone else built (CI builds it with buildx).
The test fixtures ``job_image_build``/``job_image``/``container_engine`` wrap these.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from devstack import tools

BUILD_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 300
SCRATCH_DIR = "/tmp"


class JobImageError(RuntimeError):
    """The image could not be built, or the given one is not there; says what to do."""


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

    def executable(self, directory: Path, run_options: Sequence[str] = ()) -> Path:
        """A one-file command that runs this engine with its options and environment, for
        programs that take a single engine executable (the restore wrapper's
        ``AGENT_BOM_BACKUP_CONTAINER_ENGINE``): podman here needs ``--runtime runc``.
        ``run_options`` are added to every ``run`` (e.g. ``--pidfile F`` to find the
        container's processes)."""
        path = Path(directory) / f"{self.name}-engine"
        exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in self.env.items())
        engine = shlex.join(self.command)
        body = f"#!/bin/sh\n{exports}"
        if run_options:
            body += f'if [ "$1" = run ]; then shift; exec {engine} run {shlex.join(run_options)} "$@"; fi\n'
        path.write_text(f'{body}exec {engine} "$@"\n')
        path.chmod(0o755)
        return path


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


def engine_from_environment() -> ContainerEngine:
    """``$AGENT_BOM_BACKUP_ENGINE`` (podman or docker; default docker when it works, else
    podman with ``--runtime runc`` and the build script's containers.conf)."""
    name = os.environ.get("AGENT_BOM_BACKUP_ENGINE") or ("docker" if _docker_works() else "podman")
    if name == "docker":
        return ContainerEngine("docker", ("docker",))
    if name != "podman":
        raise JobImageError(f"AGENT_BOM_BACKUP_ENGINE must be podman or docker, got {name!r}")
    conf = os.environ.get("CONTAINERS_CONF") or str(tools.repo_root() / ".tools" / "podman" / "containers.conf")
    return ContainerEngine("podman", ("podman", "--runtime", "runc"), {"CONTAINERS_CONF": conf})


def checkout_tag() -> str:
    """A tag of this checkout's own: two checkouts on one machine (worktrees) that test
    different code never swap each other's image mid-run."""
    digest = hashlib.sha256(str(tools.repo_root()).encode()).hexdigest()[:8]
    return f"localhost/agent-bom-backup:dev-{digest}"


def build_job_image(tag: str | None = None) -> JobImage:
    """Build (or reuse, when its inputs are unchanged) the job image under ``tag``."""
    script = tools.repo_root() / "scripts" / "build-image.sh"
    if not script.exists():
        raise JobImageError(f"{script} is missing")
    try:
        result = subprocess.run(
            ["bash", str(script), "--tag", tag or checkout_tag()],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, cwd=tools.repo_root(),
        )
    except subprocess.TimeoutExpired as exc:
        raise JobImageError(f"scripts/build-image.sh did not finish within {BUILD_TIMEOUT_S} s:\n{exc.stderr}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-60:])
        raise JobImageError(
            "scripts/build-image.sh failed (podman/docker could not be installed or the build "
            f"broke); exit {result.returncode}, last lines:\n{tail}"
        )
    info = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    engine_cmd = tuple(info["engine_cmd"].split())
    env = {"CONTAINERS_CONF": info["containers_conf"]} if info.get("containers_conf") else {}
    return JobImage(info["tag"], info["id"], ContainerEngine(info["engine"], engine_cmd, env))


def given_job_image(tag: str) -> JobImage:
    """An image built elsewhere (``$AGENT_BOM_BACKUP_IMAGE``); it must exist locally."""
    engine = engine_from_environment()
    result = engine("image", "inspect", "--format", "{{.Id}}", tag)
    if result.returncode != 0:
        raise JobImageError(f"AGENT_BOM_BACKUP_IMAGE={tag} is not an image {engine.name} knows: {result.stderr.strip()}")
    return JobImage(tag, result.stdout.strip(), engine)
