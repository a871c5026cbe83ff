#!/usr/bin/env python3
"""Release steps that run the same on a laptop, in the tests and in .github/workflows/release.yaml.

  release.py version [--tag vX.Y.Z]
      Print the release version. Fails unless pyproject.toml, the package's __version__ and
      Chart.yaml's version and appVersion agree (and equal the tag, when given).
  release.py package-chart VERSION [--digest sha256:...] [--image-repository REPO] [--destination DIR]
      Package deploy/helm/agent-bom as agent-bom-VERSION.tgz: version and appVersion VERSION,
      the job image pinned by digest in the packaged values.yaml (a line edit of a copy that
      keeps every comment, checked by parsing), then confirmed from `helm show`.
  release.py push-chart CHART.tgz oci://REGISTRY/PATH [--plain-http]
      `helm push`, then print the pushed chart's digest (what cosign signs).
  release.py build-python VERSION [--destination DIR] [--no-isolation]
      Build the CLI's sdist and wheel (`python -m build`: the wheel from the sdist) and check
      them: file names and metadata carry VERSION, the README as the description, the
      license, project URLs, classifiers, the `agent-bom-backup` entry point, and no file
      outside the package. Prints the two paths (what the workflow publishes to PyPI).
  release.py notes VERSION --owner OWNER --image-digest sha256:... [--chart-digest sha256:...]
      Release notes (Markdown): install, pinned image, signature and provenance checks.

Needs Python 3.11, PyYAML and helm (--helm, $HELM, PATH, or the bootstrap's .tools/helm/v4).
Errors: one line `release: error: ...` and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "agent-bom"
PACKAGE_INIT = REPO_ROOT / "image" / "src" / "agent_bom_backup" / "__init__.py"
GOLDEN_DIR = REPO_ROOT / "tests" / "golden"

REGISTRY = "ghcr.io"
IMAGE_NAME = "agent-bom-backup"
#: the charts' OCI repository under an owner: oci://ghcr.io/<owner>/charts/<chart name>
CHART_REPOSITORY = "charts"
WORKFLOW_FILE = "release.yaml"
OIDC_ISSUER = "https://token.actions.githubusercontent.com"
#: where the job image is set in the chart's values
IMAGE_VALUES_PATH = ("controlPlane", "backup", "image")

SEMVER = r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?"
VERSION_RE = re.compile(rf"^{SEMVER}$")
TAG_RE = re.compile(rf"^v(?P<version>{SEMVER})$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
HELM_DIGEST_RE = re.compile(r"^Digest:\s*(sha256:[0-9a-f]{64})\s*$", re.MULTILINE)
GOLDEN_RE = re.compile(r"^v(?P<format>\d+)-(?P<release>.+)$")


class ReleaseError(RuntimeError):
    """A release step cannot go on; the message says what is wrong and what to do."""


# ------------------------------------------------------------------ names
def oci_chart_repository(owner: str) -> str:
    """``oci://ghcr.io/<owner>/charts``: where ``helm push`` sends the chart."""
    return f"oci://{REGISTRY}/{owner.lower()}/{CHART_REPOSITORY}"


def chart_name() -> str:
    return str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["name"])


def oci_chart_reference(owner: str) -> str:
    """``oci://ghcr.io/<owner>/charts/agent-bom``: what users install."""
    return f"{oci_chart_repository(owner)}/{chart_name()}"


def image_repository(owner: str) -> str:
    return f"{REGISTRY}/{owner.lower()}/{IMAGE_NAME}"


def certificate_identity_regexp(owner: str) -> str:
    """What cosign's keyless certificate must name: this owner's release workflow, run for a tag."""
    return rf"^https://github\.com/{owner.lower()}/[^/]+/\.github/workflows/{re.escape(WORKFLOW_FILE)}@refs/tags/v"


# ------------------------------------------------------------------ version
def project_versions(root: Path = REPO_ROOT) -> dict[str, str]:
    """The version each file of the release declares."""
    with open(root / "pyproject.toml", "rb") as fh:
        pyproject = str(tomllib.load(fh)["project"]["version"])
    init = (root / PACKAGE_INIT.relative_to(REPO_ROOT)).read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', init, re.MULTILINE)
    if not match:
        raise ReleaseError(f"no __version__ = \"...\" line in {PACKAGE_INIT.relative_to(REPO_ROOT)}")
    chart = yaml.safe_load((root / CHART_DIR.relative_to(REPO_ROOT) / "Chart.yaml").read_text())
    return {
        "pyproject.toml": pyproject,
        "image/src/agent_bom_backup/__init__.py": match.group(1),
        "Chart.yaml version": str(chart["version"]),
        "Chart.yaml appVersion": str(chart["appVersion"]),
    }


def release_version(tag: str | None = None, root: Path = REPO_ROOT) -> str:
    """The one version every file declares; with ``tag``, it must be ``v`` + that version."""
    versions = project_versions(root)
    distinct = sorted(set(versions.values()))
    if len(distinct) != 1:
        listed = ", ".join(f"{where} {value}" for where, value in versions.items())
        raise ReleaseError(f"the release version differs between files ({listed}): set them all to one version")
    (version,) = distinct
    if not VERSION_RE.match(version):
        raise ReleaseError(f"version {version!r} is not semantic (MAJOR.MINOR.PATCH[-PRERELEASE])")
    if tag is not None:
        match = TAG_RE.match(tag)
        if not match:
            raise ReleaseError(f"tag {tag!r} is not a release tag (vMAJOR.MINOR.PATCH, e.g. v{version})")
        if match["version"] != version:
            raise ReleaseError(
                f"tag {tag} does not match the project version {version}: bump pyproject.toml, "
                f"__init__.py and Chart.yaml to {match['version']} and tag that commit")
    return version


# ------------------------------------------------------------------ values.yaml edit
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


def set_yaml_scalar(text: str, path: Sequence[str], value: str) -> str:
    """``text`` with the scalar at ``path`` (block-style mapping keys) set to ``value``,
    every other byte (comments included) unchanged. The result is parsed and must differ
    from ``text`` at exactly that key, or :class:`ReleaseError` is raised."""
    lines = text.splitlines(keepends=True)
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _KEY_LINE.match(line.rstrip("\r\n"))
        if not match:
            continue  # sequence items, flow or block scalar content
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if [key for _, key in stack] != list(path):
            continue
        rest = match["rest"].split(" #", 1)[0].strip()
        if not rest or rest[0] in "|>&*!{[":
            raise ReleaseError(f"{'.'.join(path)} is not a plain scalar in values.yaml (line {number + 1})")
        lines[number] = f"{match['indent']}{match['key']}: {json.dumps(value)}\n"
        edited = "".join(lines)
        _check_only_changed(text, edited, path, value)
        return edited
    raise ReleaseError(f"{'.'.join(path)} not found in values.yaml")


def _check_only_changed(before: str, after: str, path: Sequence[str], value: str) -> None:
    expected: Any = yaml.safe_load(before)
    node = expected
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    if yaml.safe_load(after) != expected:
        raise ReleaseError(f"editing {'.'.join(path)} changed more than that key in values.yaml")


def pin_image(values_text: str, *, repository: str | None, digest: str | None) -> str:
    """values.yaml with the job image's repository and/or digest set."""
    if repository is not None:
        values_text = set_yaml_scalar(values_text, (*IMAGE_VALUES_PATH, "repository"), repository)
    if digest is not None:
        values_text = set_yaml_scalar(values_text, (*IMAGE_VALUES_PATH, "digest"), digest)
    return values_text


def _artifacthub_images(chart: dict[str, Any], image: str, default_repository: str) -> None:
    """Point Chart.yaml's ``artifacthub.io/images`` entry of the job image at ``image``."""
    annotations = chart.get("annotations") or {}
    listed = annotations.get("artifacthub.io/images")
    if not listed:
        return
    entries = yaml.safe_load(listed) or []
    for entry in entries:
        if str(entry.get("image", "")).split("@")[0].rsplit(":", 1)[0] == default_repository:
            entry["image"] = image
    annotations["artifacthub.io/images"] = yaml.safe_dump(entries, sort_keys=False)


# ------------------------------------------------------------------ helm
def helm_command(explicit: str | None = None) -> str:
    candidates = [explicit, os.environ.get("HELM"), shutil.which("helm"), str(REPO_ROOT / ".tools" / "helm" / "v4" / "helm")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ReleaseError("helm not found: pass --helm, set $HELM, put helm on PATH or run scripts/bootstrap.sh helm")


def _helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([helm, *args], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise ReleaseError(f"helm {args[0]} failed: {(result.stderr or result.stdout).strip()}")
    return result


def _check_version(version: str) -> None:
    if not VERSION_RE.match(version):
        raise ReleaseError(f"version {version!r} is not semantic (MAJOR.MINOR.PATCH[-PRERELEASE]); a tag v1.2.3 gives 1.2.3")


def _check_repository(repository: str) -> None:
    last = repository.rsplit("/", 1)[-1]
    if not repository or "@" in repository or ":" in last or repository != repository.lower():
        raise ReleaseError(f"--image-repository {repository!r} must be a lower-case repository without tag or digest")


def package_chart(
    version: str,
    destination: Path,
    *,
    digest: str | None = None,
    repository: str | None = None,
    helm: str | None = None,
) -> Path:
    """Package the chart for ``version`` into ``destination``; returns the .tgz path."""
    _check_version(version)
    if digest is not None and not DIGEST_RE.match(digest):
        raise ReleaseError(f"--digest {digest!r} is not an image digest (sha256: and 64 hex digits)")
    if repository is not None:
        _check_repository(repository)
    helm_bin = helm_command(helm)
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="agent-bom-release-") as tmp:
        copy = Path(tmp) / CHART_DIR.name
        shutil.copytree(CHART_DIR, copy)
        values_file = copy / "values.yaml"
        values = yaml.safe_load(values_file.read_text())
        default_repository = values["controlPlane"]["backup"]["image"]["repository"]
        values_file.write_text(pin_image(values_file.read_text(), repository=repository, digest=digest))
        chart_file = copy / "Chart.yaml"
        chart = yaml.safe_load(chart_file.read_text())
        chart["version"], chart["appVersion"] = version, version
        image = f"{repository or default_repository}:{version}" + (f"@{digest}" if digest else "")
        _artifacthub_images(chart, image, default_repository)
        chart_file.write_text(yaml.safe_dump(chart, sort_keys=False))
        _helm(helm_bin, "package", str(copy), "--version", version, "--app-version", version,
              "--destination", str(destination))
    package = destination / f"{chart['name']}-{version}.tgz"
    _confirm_package(helm_bin, package, version, digest=digest, repository=repository)
    return package


def _confirm_package(helm: str, package: Path, version: str, *, digest: str | None, repository: str | None) -> None:
    """Read back what helm packaged: version, appVersion and the pinned image."""
    if not package.is_file():
        raise ReleaseError(f"helm package wrote no {package}")
    shown = yaml.safe_load(_helm(helm, "show", "chart", str(package)).stdout)
    if (str(shown["version"]), str(shown["appVersion"])) != (version, version):
        raise ReleaseError(f"{package.name}: version {shown['version']}, appVersion {shown['appVersion']}, expected {version}")
    image = yaml.safe_load(_helm(helm, "show", "values", str(package)).stdout)
    for key in IMAGE_VALUES_PATH:
        image = image[key]
    if digest is not None and image["digest"] != digest:
        raise ReleaseError(f"{package.name}: image digest {image['digest']!r}, expected {digest}")
    if repository is not None and image["repository"] != repository:
        raise ReleaseError(f"{package.name}: image repository {image['repository']!r}, expected {repository}")


def push_chart(package: Path, oci_repository: str, *, plain_http: bool = False, helm: str | None = None) -> str:
    """``helm push`` the package; returns the digest the registry gave the chart."""
    if not oci_repository.startswith("oci://"):
        raise ReleaseError(f"{oci_repository!r} is not an OCI repository (oci://REGISTRY/PATH)")
    args = ["push", str(package), oci_repository] + (["--plain-http"] if plain_http else [])
    result = _helm(helm_command(helm), *args)
    match = HELM_DIGEST_RE.search(result.stdout + "\n" + result.stderr)
    if not match:
        raise ReleaseError(f"helm push printed no digest:\n{result.stdout}{result.stderr}")
    return match.group(1)


# ------------------------------------------------------------------ notes
def golden_backups(root: Path = GOLDEN_DIR) -> list[tuple[int, str]]:
    """(manifest format, release that wrote it) of every committed golden backup."""
    found = [GOLDEN_RE.match(p.name) for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []
    return sorted((int(m["format"]), m["release"]) for m in found if m)


def release_notes(version: str, owner: str, image_digest: str | None = None, chart_digest: str | None = None) -> str:
    """The notes; without digests (a dry run publishes nothing) references use the tag."""
    _check_version(version)
    for digest in (image_digest, chart_digest):
        if digest is not None and not DIGEST_RE.match(digest):
            raise ReleaseError(f"{digest!r} is not a digest (sha256: and 64 hex digits)")
    image = image_repository(owner)
    chart = oci_chart_reference(owner)
    identity = certificate_identity_regexp(owner)
    chart_artifact = chart.removeprefix("oci://")
    pinned_image = f"{image}@{image_digest}" if image_digest else f"{image}:{version}"
    formats = ", ".join(f"format {fmt} ({release})" for fmt, release in golden_backups())
    lines = [
        f"## agent-bom-backup {version}",
        "",
        "Install or upgrade the chart from the registry (the job image is pinned by digest):",
        "",
        "```sh",
        f"helm upgrade --install agent-bom-backup {chart} --version {version} -n agent-bom -f values.yaml",
        "```",
        "",
        f"- Job image: `{image}:{version}`" + (f" = `{pinned_image}`" if image_digest else "") + " (linux/amd64, linux/arm64)",
        f"- Chart: `{chart}` version {version}" + (f" = `{chart_artifact}@{chart_digest}`" if chart_digest else ""),
        "- Attached: the packaged chart and the image's SBOM (SPDX JSON).",
        f"- Restores the backups earlier releases wrote: manifest {formats or 'format 1'}"
        " (their golden backups are restored by tests/e2e/test_golden_backups.py).",
        "",
        "Verify before you install (keyless signatures from this repository's release workflow):",
        "",
        "```sh",
        f"cosign verify {pinned_image} \\",
        f"  --certificate-identity-regexp '{identity}' \\",
        f"  --certificate-oidc-issuer {OIDC_ISSUER}",
    ]
    if chart_digest:
        lines += [
            f"cosign verify {chart_artifact}@{chart_digest} \\",
            f"  --certificate-identity-regexp '{identity}' \\",
            f"  --certificate-oidc-issuer {OIDC_ISSUER}",
        ]
    lines += [
        f"gh attestation verify oci://{pinned_image} --owner {owner.lower()}",
        "```",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ the CLI's Python package
DIST_NAME = "agent-bom-backup"
DIST_FILE_STEM = DIST_NAME.replace("-", "_")
PACKAGE_NAME = "agent_bom_backup"
ENTRY_POINT = "agent-bom-backup = agent_bom_backup.cli:main"
LICENSE_EXPRESSION = "Apache-2.0"
#: wheel members allowed beside the package: its .dist-info folder
_WHEEL_TOP_LEVEL = {PACKAGE_NAME}


def build_python(version: str, destination: Path, *, isolation: bool = True, root: Path = REPO_ROOT) -> list[Path]:
    """``python -m build`` (sdist, then the wheel from the sdist) into ``destination``; checked."""
    _check_version(version)
    destination.mkdir(parents=True, exist_ok=True)
    stale = [p for p in destination.iterdir() if p.name.startswith(DIST_FILE_STEM)]
    if stale:
        raise ReleaseError(f"{destination} already holds {stale[0].name}: build into an empty folder")
    argv = [sys.executable, "-m", "build", "--outdir", str(destination), str(root)]
    if not isolation:
        argv.insert(3, "--no-isolation")
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ReleaseError(f"python -m build failed ({tail[0]}): is the `build` package installed?")
    return check_python_dist(destination, version)


def _wheel_metadata(wheel: Path) -> tuple[Any, list[str], str]:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = f"{DIST_FILE_STEM}-{wheel.name.split('-')[1]}.dist-info"
        metadata = HeaderParser().parsestr(zf.read(f"{info}/METADATA").decode())
        entry_points = zf.read(f"{info}/entry_points.txt").decode() if f"{info}/entry_points.txt" in names else ""
    return metadata, names, entry_points


def check_python_dist(destination: Path, version: str) -> list[Path]:
    """The sdist and the wheel of ``version`` in ``destination``, checked; their paths."""
    sdist = destination / f"{DIST_FILE_STEM}-{version}.tar.gz"
    wheel = destination / f"{DIST_FILE_STEM}-{version}-py3-none-any.whl"
    built = sorted(p.name for p in destination.iterdir() if p.name.startswith(DIST_FILE_STEM))
    if built != sorted([sdist.name, wheel.name]):
        raise ReleaseError(f"expected {sdist.name} and {wheel.name} in {destination}, found {built or 'nothing'}")
    metadata, names, entry_points = _wheel_metadata(wheel)
    problems = []
    if metadata["Name"] != DIST_NAME or metadata["Version"] != version:
        problems.append(f"name/version {metadata['Name']} {metadata['Version']} (want {DIST_NAME} {version})")
    if metadata["License-Expression"] != LICENSE_EXPRESSION:
        problems.append(f"License-Expression {metadata['License-Expression']!r} (want {LICENSE_EXPRESSION})")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("no LICENSE file in the wheel")
    if metadata["Description-Content-Type"] != "text/markdown" or not (metadata.get_payload() or "").strip():
        problems.append("the README is not the Markdown long description")
    if not metadata.get_all("Project-URL"):
        problems.append("no Project-URL")
    if not metadata.get_all("Classifier"):
        problems.append("no Classifier")
    if not metadata["Requires-Python"]:
        problems.append("no Requires-Python")
    if ENTRY_POINT not in entry_points.replace("  ", " "):
        problems.append(f"no console script `{ENTRY_POINT}`")
    strays = sorted({n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} - _WHEEL_TOP_LEVEL)
    if strays:
        problems.append(f"files outside the package: {', '.join(strays)}")
    if f"{PACKAGE_NAME}/cli.py" not in names:
        problems.append(f"{PACKAGE_NAME}/cli.py missing")
    if problems:
        raise ReleaseError(f"{wheel.name}: " + "; ".join(problems))
    return [sdist, wheel]


# ------------------------------------------------------------------ CLI
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    version = sub.add_parser("version", help="print the release version after checking every file agrees")
    version.add_argument("--tag", help="the pushed tag (vX.Y.Z); must match the version")
    package = sub.add_parser("package-chart", help="package the chart with version, appVersion and image digest")
    package.add_argument("version")
    package.add_argument("--digest", help="the job image's digest (sha256:...) to pin in values.yaml")
    package.add_argument("--image-repository", help="the job image's repository (default: values.yaml's)")
    package.add_argument("--destination", type=Path, default=Path("dist"), help="output folder (default: dist)")
    package.add_argument("--helm")
    push = sub.add_parser("push-chart", help="helm push a packaged chart and print its digest")
    push.add_argument("package", type=Path)
    push.add_argument("oci_repository")
    push.add_argument("--plain-http", action="store_true", help="registry without TLS (local tests)")
    push.add_argument("--helm")
    python = sub.add_parser("build-python", help="build and check the CLI's sdist and wheel")
    python.add_argument("version")
    python.add_argument("--destination", type=Path, default=Path("dist/python"),
                        help="output folder, empty or new (default: dist/python)")
    python.add_argument("--no-isolation", action="store_true",
                        help="build with the installed setuptools (no build environment from the index)")
    notes = sub.add_parser("notes", help="print the release notes (Markdown)")
    notes.add_argument("version")
    notes.add_argument("--owner", required=True)
    notes.add_argument("--image-digest", help="the pushed image's digest (omit for a dry run)")
    notes.add_argument("--chart-digest")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "version":
            print(release_version(args.tag))
        elif args.command == "package-chart":
            print(package_chart(args.version, args.destination, digest=args.digest,
                                repository=args.image_repository, helm=args.helm))
        elif args.command == "build-python":
            for path in build_python(args.version, args.destination, isolation=not args.no_isolation):
                print(path)
        elif args.command == "push-chart":
            print(push_chart(args.package, args.oci_repository, plain_http=args.plain_http, helm=args.helm))
        else:
            print(release_notes(args.version, args.owner, args.image_digest, args.chart_digest), end="")
    except ReleaseError as err:
        print(f"release: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
