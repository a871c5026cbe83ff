"""The local OCI registry: installed by `scripts/bootstrap.sh registry` (cached by its stamp),
started by devstack.registry on loopback, failing loudly when it cannot serve."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from devstack import tools
from devstack.registry import HOST, OciRegistry, RegistryError

BOOTSTRAP = tools.repo_root() / "scripts" / "bootstrap.sh"


def bootstrap(*args: str, tools_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BOOTSTRAP), *args], capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "AGENT_BOM_TOOLS_DIR": str(tools_dir)})


def test_bootstrap_usage_lists_the_registry_component(tmp_path: Path) -> None:
    usage = bootstrap("--help", tools_dir=tmp_path).stdout
    assert "  registry    docker-registry from Debian" in usage


def test_bootstrap_all_includes_the_registry(tmp_path: Path) -> None:
    (line,) = [line for line in BOOTSTRAP.read_text().splitlines() if line.strip().startswith("all) components+=(")]
    assert "registry" in line.split("(", 1)[1].split(")", 1)[0].split()


def test_bootstrap_registry_is_skipped_while_its_stamp_matches(tmp_path: Path) -> None:
    first = bootstrap("registry", tools_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "registry: up to date" in bootstrap("registry", tools_dir=tmp_path).stdout


def test_registry_listens_on_loopback_only(tmp_path: Path) -> None:
    with OciRegistry(tmp_path) as registry:
        config = yaml.safe_load(registry.config_file.read_text())
        assert config["http"]["addr"] == f"{HOST}:{registry.port}"


def test_registry_keeps_its_data_under_the_given_folder(tmp_path: Path) -> None:
    with OciRegistry(tmp_path) as registry:
        config = yaml.safe_load(registry.config_file.read_text())
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "storage")


def test_registry_stops(tmp_path: Path) -> None:
    with OciRegistry(tmp_path) as registry:
        port = registry.port
    assert not OciRegistry(tmp_path / "probe", port=port)._answers()


def test_a_registry_that_cannot_serve_fails_with_its_log(tmp_path: Path) -> None:
    with OciRegistry(tmp_path / "first") as first:
        failure = r"(?s)docker-registry exited with 1.*registry\.log \(tail\).*address already in use"
        with pytest.raises(RegistryError, match=failure):
            OciRegistry(tmp_path / "second", port=first.port).start()
