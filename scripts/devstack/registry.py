"""A real OCI registry on 127.0.0.1: Debian's ``docker-registry`` (CNCF distribution).

The release pipeline pushes the job image and the packaged chart to GHCR; this server
lets the same pushes and pulls (``podman push``, ``helm push``, ``helm pull``, ``helm
template oci://...``) run on loopback. Plain HTTP: clients need ``--tls-verify=false``
(podman) or ``--plain-http`` (helm). Data lives in a folder of the caller's choosing.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from devstack import tools
from devstack.pgcluster import free_port
from devstack.process import StartStop, start_logged, stop_process_group

HOST = "127.0.0.1"
START_TIMEOUT_S = 30


class RegistryError(RuntimeError):
    """The registry did not start or answer; carries its log tail."""


def registry_config(root_dir: Path, port: int) -> str:
    """The distribution configuration: filesystem storage under ``root_dir``, HTTP on
    127.0.0.1:``port``, deletes allowed (tests clean up), no auth, no TLS, a random upload
    secret (one registry, no load balancer). JSON is YAML, so no YAML library is needed."""
    config = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(root_dir)}, "delete": {"enabled": True}},
        "http": {"addr": f"{HOST}:{port}", "secret": secrets.token_hex(16),
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    return json.dumps(config, indent=2) + "\n"


class OciRegistry(StartStop):
    """``docker-registry serve CONFIG`` as a subprocess; storage and log under ``work_dir``."""

    def __init__(self, work_dir: Path | str, port: int | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.port = port if port is not None else free_port()
        self.log_file = self.work_dir / "registry.log"
        self.config_file = self.work_dir / "config.yml"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image or chart reference."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> OciRegistry:
        """Write the config, start the server and wait until ``/v2/`` answers."""
        if self._process is not None:
            return self
        storage = self.work_dir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(registry_config(storage, self.port))
        argv = [str(tools.registry_binary()), "serve", str(self.config_file)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.work_dir)}
        self._process = start_logged(argv, env, self.log_file, self._serving, name="docker-registry",
                                     timeout_s=START_TIMEOUT_S, error=RegistryError)
        return self

    def _serving(self) -> bool:
        """This process listens (its log says so: another server on the port would also
        answer ``/v2/``) and ``/v2/`` answers."""
        try:
            listening = f"listening on {self.address}" in self.log_file.read_text(errors="replace")
        except OSError:
            return False
        return listening and self._answers()

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def manifest_digest(self, repository: str, reference: str) -> str:
        """The registry's own digest (``Docker-Content-Digest``) of a manifest or index, by
        tag or digest: what a pull by digest asks for."""
        accept = ", ".join((
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ))
        request = urllib.request.Request(
            f"{self.url}/v2/{repository}/manifests/{reference}", method="HEAD", headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return str(response.headers["Docker-Content-Digest"])

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL). Idempotent."""
        process, self._process = self._process, None
        stop_process_group(process)
