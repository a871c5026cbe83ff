"""Every shell script of the project is shellcheck-clean, checked together with the helpers
it sources (.shellcheckrc follows them), and runs in strict mode."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack import tools

pytestmark = pytest.mark.unit

REPO = tools.repo_root()
#: scripts that run (a sourced helper, scripts/lib/*.sh, is checked through them and on its own)
SCRIPTS = sorted([*REPO.glob("scripts/**/*.sh"), *REPO.glob("deploy/**/*.sh"), *REPO.glob("bench/*.sh"),
                  REPO / ".ci" / "run"])
LIBRARIES = sorted(REPO.glob("scripts/lib/*.sh"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def test_the_scripts_are_found() -> None:
    assert {"scripts/bootstrap.sh", "scripts/bootstrap-chart-tools.sh", "deploy/ops/restore-postgres-backup.sh",
            "scripts/deploy/verify-eks-reference.sh"} <= set(_ids(SCRIPTS))


def _shellcheck(shellcheck: str, script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shellcheck, str(script)], capture_output=True, text=True, timeout=60, cwd="/")


@functools.lru_cache(maxsize=1)
def _shellcheck_all(shellcheck: str) -> dict[Path, subprocess.CompletedProcess[str]]:
    """shellcheck of every script, one process per script, as many at once as there are
    cores (the first test pays for all; each test then reads its script's result)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return dict(zip(SCRIPTS, pool.map(lambda script: _shellcheck(shellcheck, script), SCRIPTS)))


@pytest.mark.parametrize("script", SCRIPTS, ids=_ids(SCRIPTS))
def test_is_shellcheck_clean(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: run scripts/bootstrap.sh shellcheck"
    result = _shellcheck_all(shellcheck)[script]
    assert result.returncode == 0, result.stdout


def test_a_script_with_a_finding_fails_shellcheck(tmp_path: Path) -> None:
    """Guards the check above: shellcheck run this way does report a finding."""
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: run scripts/bootstrap.sh shellcheck"
    script = tmp_path / "bad.sh"
    script.write_text("#!/usr/bin/env bash\necho $1\n")
    result = _shellcheck(shellcheck, script)
    assert (result.returncode, "SC2086" in result.stdout) == (1, True), result.stdout


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s not in LIBRARIES], ids=_ids([s for s in SCRIPTS
                                                                                         if s not in LIBRARIES]))
def test_runs_in_strict_mode(script: Path) -> None:
    assert "set -euo pipefail" in script.read_text()


BOOTSTRAPS = ["scripts/bootstrap.sh", "scripts/bootstrap-chart-tools.sh"]


@pytest.mark.parametrize("script", BOOTSTRAPS)
def test_the_bootstraps_source_the_shared_helpers(script: str) -> None:
    assert 'source "$REPO_ROOT/scripts/lib/bootstrap-common.sh"' in (REPO / script).read_text()


@pytest.mark.parametrize("script", BOOTSTRAPS)
def test_the_bootstraps_define_no_helper_of_their_own(script: str) -> None:
    text = (REPO / script).read_text()
    assert [name for name in ("log", "die", "run_logged", "stamp_matches", "apt_install") if f"\n{name}() {{" in text] == []


@pytest.mark.parametrize("workers", ["0", "two", "-1", "2 "])
def test_test_sh_refuses_a_worker_count_before_installing_anything(workers: str) -> None:
    result = subprocess.run([str(REPO / "scripts" / "test.sh")], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "AGENT_BOM_TEST_WORKERS": workers},
                            stdin=subprocess.DEVNULL)
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", f"test.sh: error: AGENT_BOM_TEST_WORKERS must be a whole number from 1 up, got '{workers}'\n")
