"""The project's dependency locks: what they pin, whether they were made from today's inputs,
and what changed between two sets of them.

``scripts/lock.sh`` writes the locks and runs this module with the host's ``python3``
(standard library only): ``stamp LOCK...`` records the digest of each Python lock's inputs
in it, ``build-requirements`` prints pyproject.toml's build backend, ``diff OLD NEW`` prints
what changed (``package old -> new``) between two trees holding the lock files. The release
workflow runs ``sbom-check SBOM LOCK`` (the image's SPDX SBOM against its lock).
``tests/unit/repo/test_locks.py`` checks the locks with the same functions.

The Python locks are uv-compiled requirements files with hashes (``uv pip compile --universal
--generate-hashes``): they name packages, versions and hashes only, no index, so they install
from whichever index pip or uv is configured with. The npm locks are package-lock.json files
without registry URLs (``--omit-lockfile-registry-resolved``), installed with ``npm ci``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK_DIR = Path("locks")
#: uv itself, installed with pip --require-hashes before anything else
UV_LOCK = LOCK_DIR / "uv.txt"
#: .tools/venv: the project's dependencies, every extra and the build backend
DEV_LOCK = LOCK_DIR / "dev.txt"
#: .tools/checkov: checkov's own venv (its pins conflict with the test venv's)
CHECKOV_LOCK = LOCK_DIR / "checkov.txt"
#: the job image's /opt/venv (dependencies + the pg18 extra, wheels only), versions as DEV_LOCK
IMAGE_LOCK = Path("image") / "requirements.lock"
#: the job image's build backend (/opt/build), versions as DEV_LOCK
IMAGE_BUILD_LOCK = Path("image") / "build-requirements.lock"
#: .tools/upstream-venv: Alembic and the rest that build upstream agent-bom's schema in the tests
UPSTREAM_LOCK = LOCK_DIR / "upstream-schema.txt"
#: agent-bom itself for those migrations, installed without its dependencies
UPSTREAM_NODEPS_LOCK = LOCK_DIR / "upstream-schema-nodeps.txt"
PYTHON_LOCKS = (UV_LOCK, DEV_LOCK, CHECKOV_LOCK, IMAGE_LOCK, IMAGE_BUILD_LOCK, UPSTREAM_LOCK, UPSTREAM_NODEPS_LOCK)
CONSTRAINTS = LOCK_DIR / "constraints.txt"
#: what each Python lock is made from ("pyproject.toml": its dependency tables)
LOCK_INPUTS = {
    UV_LOCK: (LOCK_DIR / "uv.in",),
    DEV_LOCK: (Path("pyproject.toml"), CONSTRAINTS),
    CHECKOV_LOCK: (LOCK_DIR / "checkov.in",),
    IMAGE_LOCK: (Path("pyproject.toml"), CONSTRAINTS),
    IMAGE_BUILD_LOCK: (Path("pyproject.toml"), CONSTRAINTS),
    UPSTREAM_LOCK: (LOCK_DIR / "upstream-schema.in",),
    UPSTREAM_NODEPS_LOCK: (LOCK_DIR / "upstream-schema-nodeps.in",),
}
NPM_DIR = LOCK_DIR / "npm"
DIGEST_PREFIX = "# inputs-sha256: "

_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
                          r"\s*(?:;\s*(?P<marker>[^\\]*?))?\s*(?P<hashes>(?:--hash=\S+\s*)*)$")


@dataclass(frozen=True)
class Pin:
    """One line of a requirements lock: ``name==version ; marker --hash=...``."""

    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]


def normalize(name: str) -> str:
    """PEP 503 name: ``PyYAML`` and ``pyyaml``, ``typing_extensions`` and ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> list[Pin]:
    """Every requirement of a uv-compiled lock (continuation lines joined, comments dropped)."""
    pins: list[Pin] = []
    for line in re.sub(r"\\\n", " ", path.read_text()).splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _REQUIREMENT.match(line)
        if not match:
            raise ValueError(f"{path}: not a pinned requirement with hashes: {line!r}")
        pins.append(Pin(normalize(match["name"]), match["version"], (match["marker"] or "").strip() or None,
                        tuple(h.removeprefix("--hash=") for h in match["hashes"].split())))
    return pins


def lock_inputs(lock: Path, repo: Path = REPO) -> dict[str, object]:
    """What a Python lock is made from: its LOCK_INPUTS files; of pyproject.toml only the
    tables that decide dependencies (a version bump or a new pytest marker changes no lock)."""
    inputs: dict[str, object] = {}
    for path in LOCK_INPUTS[lock]:
        if path.name == "pyproject.toml":
            pyproject = tomllib.loads((repo / path).read_text())
            project = pyproject["project"]
            inputs[str(path)] = {
                "requires-python": project.get("requires-python"),
                "dependencies": project.get("dependencies", []),
                "optional-dependencies": project.get("optional-dependencies", {}),
                "build-system": pyproject.get("build-system", {}).get("requires", []),
            }
        else:
            inputs[str(path)] = (repo / path).read_text()
    return inputs


def inputs_digest(lock: Path, repo: Path = REPO) -> str:
    """The digest scripts/lock.sh records in LOCK: a changed input changes it."""
    return hashlib.sha256(json.dumps(lock_inputs(lock, repo), sort_keys=True).encode()).hexdigest()


def build_requirements(repo: Path = REPO) -> list[str]:
    """pyproject.toml's build-system requirements (the backend the editable install and the image use)."""
    return list(tomllib.loads((repo / "pyproject.toml").read_text())["build-system"]["requires"])


def recorded_digest(path: Path) -> str | None:
    """The inputs digest scripts/lock.sh recorded in a Python lock (None: none recorded)."""
    for line in path.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


def stamp(path: Path, digest: str) -> None:
    """Record DIGEST as the lock's last line (replacing an earlier one)."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith(DIGEST_PREFIX)]
    path.write_text("\n".join([*lines, f"{DIGEST_PREFIX}{digest}"]) + "\n")


def npm_pins(lockfile: Path) -> dict[str, str]:
    """``install path -> name@version`` of every package a package-lock.json installs."""
    packages = json.loads(lockfile.read_text()).get("packages", {})
    pins = {}
    for path, entry in packages.items():
        if not path:
            continue
        name = entry.get("name") or path.rsplit("node_modules/", 1)[-1]
        pins[path.removeprefix("node_modules/")] = f"{name}@{entry.get('version', '?')}"
    return pins


def npm_installs(lockfile: Path) -> dict[str, tuple[str, str, str]]:
    """``install path -> (name, version, integrity)``: what ``npm ci`` installs from a lock,
    whatever npm release wrote it."""
    packages = json.loads(lockfile.read_text()).get("packages", {})
    return {path: (entry.get("name", ""), entry.get("version", ""), entry.get("integrity", ""))
            for path, entry in packages.items() if path}


def _versions(root: Path, lock: Path) -> dict[str, str]:
    """``package -> version(s)`` of one lock under ROOT ({} when the file is missing)."""
    path = root / lock
    if not path.is_file():
        return {}
    if lock.name == "package-lock.json":
        return {key: pin.rsplit("@", 1)[-1] for key, pin in npm_pins(path).items()}
    versions: dict[str, set[str]] = {}
    for pin in read_pins(path):
        versions.setdefault(pin.name, set()).add(pin.version)
    return {name: ", ".join(sorted(v)) for name, v in versions.items()}


def all_locks(root: Path) -> list[Path]:
    """Every lock file under ROOT, relative to it."""
    npm = sorted(p.relative_to(root) for p in (root / NPM_DIR).glob("*/package-lock.json"))
    return [*PYTHON_LOCKS, *npm]


def changes(old_root: Path, new_root: Path) -> list[str]:
    """One line per changed package: ``LOCK: name old -> new`` (``+ name new``, ``- name old``)."""
    lines = []
    for lock in sorted(set(all_locks(old_root)) | set(all_locks(new_root)), key=str):
        old, new = _versions(old_root, lock), _versions(new_root, lock)
        for name in sorted(set(old) | set(new)):
            if name not in old:
                lines.append(f"{lock}: + {name} {new[name]}")
            elif name not in new:
                lines.append(f"{lock}: - {name} {old[name]}")
            elif old[name] != new[name]:
                lines.append(f"{lock}: {name} {old[name]} -> {new[name]}")
    return lines


def sbom_mismatches(sbom: dict, lock: Path, project: str = "agent-bom-backup") -> list[str]:
    """How an image's SPDX SBOM disagrees with its Python lock: a Python package at a version
    the lock does not pin, or an unconditional pin the SBOM does not list."""
    pins: dict[str, set[str]] = {}
    unconditional = set()
    for pin in read_pins(lock):
        pins.setdefault(pin.name, set()).add(pin.version)
        if pin.marker is None:
            unconditional.add(pin.name)
    listed: dict[str, set[str]] = {}
    for package in sbom.get("packages", []):
        for ref in package.get("externalRefs", []):
            locator = ref.get("referenceLocator", "")
            if ref.get("referenceType") == "purl" and locator.startswith("pkg:pypi/"):
                name, _, version = locator.removeprefix("pkg:pypi/").split("?", 1)[0].partition("@")
                listed.setdefault(normalize(name), set()).add(version)
    problems = [f"{name} {', '.join(sorted(versions))} is in the SBOM, the lock pins "
                f"{', '.join(sorted(pins.get(name, ()))) or 'nothing'}"
                for name, versions in sorted(listed.items())
                if name != normalize(project) and not versions <= pins.get(name, set())]
    problems += [f"{name} is pinned, the SBOM lists no such Python package"
                 for name in sorted(unconditional - set(listed))]
    return problems


def main(argv: list[str]) -> int:
    usage = ("usage: locks.py build-requirements | stamp LOCK... | diff OLD_ROOT NEW_ROOT"
             " | npm-same LOCK LOCK | sbom-check SPDX_JSON LOCK")
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "build-requirements" and not args:
        print("\n".join(build_requirements()))
    elif command == "stamp" and args:
        # LOCK paths relative to the working directory, which holds the lock files; their
        # inputs are read from the repository
        for name in args:
            stamp(Path(name), inputs_digest(Path(name)))
    elif command == "diff" and len(args) == 2:
        lines = changes(Path(args[0]), Path(args[1]))
        print("\n".join(lines) if lines else "no package changed")
    elif command == "npm-same" and len(args) == 2:
        return 0 if npm_installs(Path(args[0])) == npm_installs(Path(args[1])) else 1
    elif command == "sbom-check" and len(args) == 2:
        problems = sbom_mismatches(json.loads(Path(args[0]).read_text()), Path(args[1]))
        for problem in problems:
            print(f"{args[0]}: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"{args[0]}: every Python package is the version {args[1]} pins")
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
