"""scripts/build-image.sh hands its cache options to the engine (a recording stand-in for
docker, so no image is built): the weekly guardrail's fresh build really skips the cache."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devstack import tools

SCRIPT = tools.repo_root() / "scripts" / "build-image.sh"
FAKE_DOCKER = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["RECORD"], "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["image", "inspect"]:
    # the tag exists and carries the inputs label the script compares with
    print(os.environ["FAKE_LABEL"] if "Labels" in " ".join(sys.argv) else "sha256:fake")
"""


def build(tmp_path: Path, *options: str, label: str = "") -> list[list[str]]:
    """Run the script with the stand-in docker; returns every docker argv it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    record = tmp_path / "docker.jsonl"
    record.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record), "FAKE_LABEL": label}
    result = subprocess.run(["bash", str(SCRIPT), "--engine", "docker", "--tag", "localhost/abb-options:test", *options],
                            capture_output=True, text=True, timeout=120, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in record.read_text().splitlines()]


def builds(calls: list[list[str]]) -> list[list[str]]:
    return [argv for argv in calls if argv[:1] == ["build"]]


def test_no_cache_builds_every_layer_anew(tmp_path: Path) -> None:
    (argv,) = builds(build(tmp_path, "--no-cache"))
    assert "--no-cache" in argv


def test_force_alone_keeps_the_layer_cache(tmp_path: Path) -> None:
    (argv,) = builds(build(tmp_path, "--force"))
    assert "--no-cache" not in argv


def inputs_label(tmp_path: Path) -> str:
    """The inputs hash the script labels its build with (read from a forced build)."""
    (argv,) = builds(build(tmp_path, "--force"))
    label = argv[argv.index("--label") + 1]
    return label.split("=", 1)[1]


def test_an_up_to_date_tag_is_not_rebuilt(tmp_path: Path) -> None:
    assert builds(build(tmp_path, label=inputs_label(tmp_path))) == []


@pytest.mark.parametrize("option", ["--no-cache", "--pull"])
def test_fresh_build_options_rebuild_an_up_to_date_tag(tmp_path: Path, option: str) -> None:
    assert len(builds(build(tmp_path, option, label=inputs_label(tmp_path)))) == 1
