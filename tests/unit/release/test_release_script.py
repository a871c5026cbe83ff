"""scripts/release.py without a registry: the version every file must agree on, the
comment-keeping edit of the packaged values.yaml, input checks, and the release notes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import release

pytestmark = pytest.mark.unit

VALUES_FILE = release.CHART_DIR / "values.yaml"
DIGEST = "sha256:" + "ab" * 32
NESTED = """\
# top comment
controlPlane:
  ## @param controlPlane.backup.image.digest pinned digest
  backup:
    image:
      repository: ghcr.io/agent-bom/agent-bom-backup
      digest: ""   # trailing comment
    other:
      digest: keep-me
digest: top-level
"""


def _fake_release(root: Path, *, pyproject: str = "1.2.3", package: str = "1.2.3", chart: str = "1.2.3",
                  app: str = "1.2.3") -> Path:
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\nversion = "{pyproject}"\n')
    init = root / release.PACKAGE_INIT.relative_to(release.REPO_ROOT)
    init.parent.mkdir(parents=True)
    init.write_text(f'"""x"""\n\n__version__ = "{package}"\n')
    chart_yaml = root / release.CHART_DIR.relative_to(release.REPO_ROOT) / "Chart.yaml"
    chart_yaml.parent.mkdir(parents=True)
    chart_yaml.write_text(f'name: agent-bom\nversion: {chart}\nappVersion: "{app}"\n')
    return root


# ------------------------------------------------------------------ version
def test_version_is_the_one_every_file_declares(tmp_path: Path) -> None:
    assert release.release_version(root=_fake_release(tmp_path)) == "1.2.3"


def test_version_matching_tag_is_accepted(tmp_path: Path) -> None:
    assert release.release_version("v1.2.3", root=_fake_release(tmp_path)) == "1.2.3"


@pytest.mark.parametrize("where", ["pyproject", "package", "chart", "app"])
def test_version_refuses_files_that_disagree(tmp_path: Path, where: str) -> None:
    root = _fake_release(tmp_path, **{where: "1.2.4"})
    with pytest.raises(release.ReleaseError, match="differs between files"):
        release.release_version(root=root)


def test_version_refuses_a_tag_of_another_version(tmp_path: Path) -> None:
    with pytest.raises(release.ReleaseError, match="does not match the project version 1.2.3"):
        release.release_version("v1.2.4", root=_fake_release(tmp_path))


@pytest.mark.parametrize("tag", ["1.2.3", "v1.2", "release-1.2.3", "v01.2.3"])
def test_version_refuses_a_tag_that_is_not_a_release_tag(tmp_path: Path, tag: str) -> None:
    with pytest.raises(release.ReleaseError, match="is not a release tag"):
        release.release_version(tag, root=_fake_release(tmp_path))


def test_this_checkout_declares_one_release_version() -> None:
    """pyproject.toml, __init__.py and Chart.yaml must move together: the tag is checked against all."""
    versions = release.project_versions()
    assert len(set(versions.values())) == 1, versions


def test_version_error_is_one_line_and_exit_1() -> None:
    result = subprocess.run([sys.executable, str(release.REPO_ROOT / "scripts" / "release.py"), "version",
                             "--tag", "v999.0.0"], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr.count("\n"), result.stderr.startswith("release: error: tag v999.0.0")) == (
        1, 1, True), result.stderr


# ------------------------------------------------------------------ values.yaml edit
def test_scalar_edit_sets_the_nested_value() -> None:
    edited = release.set_yaml_scalar(NESTED, ("controlPlane", "backup", "image", "digest"), DIGEST)
    assert yaml.safe_load(edited)["controlPlane"]["backup"]["image"]["digest"] == DIGEST


def test_scalar_edit_changes_only_that_line() -> None:
    edited = release.set_yaml_scalar(NESTED, ("controlPlane", "backup", "image", "digest"), DIGEST)
    changed = [(a, b) for a, b in zip(NESTED.splitlines(), edited.splitlines()) if a != b]
    assert changed == [('      digest: ""   # trailing comment', f'      digest: "{DIGEST}"')]


def test_scalar_edit_leaves_keys_of_the_same_name_elsewhere() -> None:
    edited = yaml.safe_load(release.set_yaml_scalar(NESTED, ("controlPlane", "backup", "image", "digest"), DIGEST))
    assert (edited["controlPlane"]["backup"]["other"]["digest"], edited["digest"]) == ("keep-me", "top-level")


def test_scalar_edit_refuses_a_missing_key() -> None:
    with pytest.raises(release.ReleaseError, match="controlPlane.backup.image.tag not found"):
        release.set_yaml_scalar(NESTED, ("controlPlane", "backup", "image", "tag"), "x")


def test_scalar_edit_refuses_a_mapping() -> None:
    with pytest.raises(release.ReleaseError, match="not a plain scalar"):
        release.set_yaml_scalar(NESTED, ("controlPlane", "backup", "image"), "x")


def test_pinning_the_chart_values_sets_repository_and_digest() -> None:
    pinned = yaml.safe_load(release.pin_image(VALUES_FILE.read_text(), repository="ghcr.io/acme/agent-bom-backup",
                                              digest=DIGEST))
    image = pinned["controlPlane"]["backup"]["image"]
    assert (image["repository"], image["digest"]) == ("ghcr.io/acme/agent-bom-backup", DIGEST)


def test_pinning_the_chart_values_keeps_every_comment() -> None:
    original = VALUES_FILE.read_text()
    pinned = release.pin_image(original, repository="ghcr.io/acme/agent-bom-backup", digest=DIGEST)
    comments = [line for line in original.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in pinned.splitlines() if line.lstrip().startswith("#")] == comments


def test_pinning_the_chart_values_changes_two_lines() -> None:
    original = VALUES_FILE.read_text()
    pinned = release.pin_image(original, repository="ghcr.io/acme/agent-bom-backup", digest=DIGEST)
    assert sum(a != b for a, b in zip(original.splitlines(), pinned.splitlines())) == 2


# ------------------------------------------------------------------ package-chart input checks (before helm runs)
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"version": "v1.2.3"}, "is not semantic"),
    ({"version": "1.2"}, "is not semantic"),
    ({"digest": "sha256:abc"}, "is not an image digest"),
    ({"digest": "ab" * 32}, "is not an image digest"),
    ({"repository": "ghcr.io/Acme/agent-bom-backup"}, "lower-case repository"),
    ({"repository": "ghcr.io/acme/agent-bom-backup:1.2.3"}, "without tag or digest"),
    ({"repository": f"ghcr.io/acme/agent-bom-backup@{DIGEST}"}, "without tag or digest"),
], ids=["v-prefix", "two-parts", "short-digest", "no-algorithm", "upper-case", "tag", "digest"])
def test_package_chart_refuses_bad_input(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    args = {"version": "1.2.3", **kwargs}
    version = args.pop("version")
    with pytest.raises(release.ReleaseError, match=message):
        release.package_chart(version, tmp_path / "dist", helm="/nonexistent/helm", **args)


def test_package_chart_names_the_missing_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("HELM", raising=False)
    monkeypatch.setattr(release, "REPO_ROOT", tmp_path)
    with pytest.raises(release.ReleaseError, match="helm not found"):
        release.package_chart("1.2.3", tmp_path / "dist", helm=str(tmp_path / "helm"))


def test_push_refuses_a_repository_that_is_not_oci(tmp_path: Path) -> None:
    with pytest.raises(release.ReleaseError, match="not an OCI repository"):
        release.push_chart(tmp_path / "agent-bom-1.2.3.tgz", "ghcr.io/acme/charts")


# ------------------------------------------------------------------ names and notes
def test_users_install_from_the_owner_charts_repository() -> None:
    assert release.oci_chart_reference("Agent-BOM") == "oci://ghcr.io/agent-bom/charts/agent-bom"


@pytest.mark.parametrize(("identity", "accepted"), [
    ("https://github.com/agent-bom/agent-bom-backup/.github/workflows/release.yaml@refs/tags/v0.2.0", True),
    ("https://github.com/agent-bom/agent-bom-backup/.github/workflows/release.yaml@refs/heads/main", False),
    ("https://github.com/agent-bom/agent-bom-backup/.github/workflows/chart.yaml@refs/tags/v0.2.0", False),
    ("https://github.com/someone-else/agent-bom-backup/.github/workflows/release.yaml@refs/tags/v0.2.0", False),
    ("https://github.com/agent-bom/x/y/.github/workflows/release.yaml@refs/tags/v0.2.0", False),
], ids=["release-tag", "branch", "other-workflow", "other-owner", "nested-path"])
def test_certificate_identity_accepts_only_the_release_workflow_on_a_tag(identity: str, accepted: bool) -> None:
    assert bool(re.match(release.certificate_identity_regexp("agent-bom"), identity)) is accepted


def test_the_identity_names_this_workflow_file() -> None:
    assert (release.REPO_ROOT / ".github" / "workflows" / release.WORKFLOW_FILE).is_file()


def test_notes_install_the_version_from_the_registry() -> None:
    notes = release.release_notes("1.2.3", "acme", DIGEST)
    assert "helm upgrade --install agent-bom-backup oci://ghcr.io/acme/charts/agent-bom --version 1.2.3" in notes


def test_notes_verify_the_image_by_digest() -> None:
    notes = release.release_notes("1.2.3", "acme", DIGEST)
    assert f"cosign verify ghcr.io/acme/agent-bom-backup@{DIGEST}" in notes


def test_notes_verify_the_chart_when_it_was_pushed() -> None:
    chart_digest = "sha256:" + "cd" * 32
    assert f"cosign verify ghcr.io/acme/charts/agent-bom@{chart_digest}" in release.release_notes(
        "1.2.3", "acme", DIGEST, chart_digest)


def test_dry_run_notes_refer_to_the_tag() -> None:
    assert "cosign verify ghcr.io/acme/agent-bom-backup:1.2.3" in release.release_notes("1.2.3", "acme")


def test_notes_name_every_golden_backup_format() -> None:
    notes = release.release_notes("1.2.3", "acme", DIGEST)
    assert all(f"format {fmt} ({version})" in notes for fmt, version in release.golden_backups())


def test_golden_backups_include_the_first_release() -> None:
    assert (1, "0.1.0") in release.golden_backups()
