"""README's install path is the registry the release workflow publishes to: the same OCI
reference (owner of the chart's default image, the charts repository, the chart's name),
the release version, and signature checks that name the release workflow."""

from __future__ import annotations

import re

import pytest
import yaml

import release
from tests.unit.release.test_release_workflow import run_text

pytestmark = pytest.mark.unit

README = (release.REPO_ROOT / "README.md").read_text()
RELEASING = (release.REPO_ROOT / "docs" / "releasing.md").read_text()
INSTALL = re.compile(r"^helm install (?P<release>\S+) (?P<chart>oci://\S+) --version (?P<version>\S+) -n (?P<namespace>\S+)"
                     r" -f values\.yaml$", re.MULTILINE)


def default_image_owner() -> str:
    """``<owner>`` of the chart's default image ``ghcr.io/<owner>/agent-bom-backup``."""
    values = yaml.safe_load((release.CHART_DIR / "values.yaml").read_text())
    registry, owner, name = values["controlPlane"]["backup"]["image"]["repository"].split("/")
    assert (registry, name) == (release.REGISTRY, release.IMAGE_NAME)
    return owner


def readme_install() -> re.Match[str]:
    (match,) = INSTALL.finditer(README)
    return match


def test_readme_installs_from_the_registry_the_workflow_publishes_to() -> None:
    assert readme_install()["chart"] == release.oci_chart_reference(default_image_owner())


def test_workflow_pushes_the_chart_under_the_readme_path() -> None:
    registry, _owner, repository, _name = readme_install()["chart"].removeprefix("oci://").split("/")
    assert f'"oci://{registry}/$OWNER/{repository}"' in run_text("chart")


def test_readme_installs_the_release_version() -> None:
    assert readme_install()["version"] == release.project_versions()["Chart.yaml version"]


def test_readme_installs_a_release_of_its_own_beside_upstreams_agent_bom() -> None:
    assert readme_install()["release"] == "agent-bom-backup"


#: `helm install|upgrade [--install] agent-bom <this chart>`: would take over upstream's release
OVER_UPSTREAM = re.compile(r"\bhelm\s+(?:upgrade\s+(?:--install\s+)?|install\s+)agent-bom\s+"
                           r"(?:oci://\S*/charts/agent-bom|\S*deploy/helm/agent-bom)(?:\s|$)")
DOCUMENTED = sorted([*release.REPO_ROOT.glob("*.md"), *(release.REPO_ROOT / "docs").glob("*.md"),
                     *(release.REPO_ROOT / "examples").glob("*.yaml"), release.CHART_DIR / "README.md",
                     release.CHART_DIR / "templates" / "NOTES.txt", release.REPO_ROOT / "scripts" / "release.py"])


@pytest.mark.parametrize("path", DOCUMENTED, ids=lambda p: str(p.relative_to(release.REPO_ROOT)))
def test_no_documented_command_installs_over_a_release_named_agent_bom(path) -> None:
    assert OVER_UPSTREAM.findall(path.read_text()) == []


def test_the_check_finds_a_command_over_upstreams_release() -> None:
    assert [bool(OVER_UPSTREAM.search(c)) for c in (
        "helm upgrade --install agent-bom oci://ghcr.io/x/charts/agent-bom --version 1",
        "helm upgrade agent-bom deploy/helm/agent-bom -n agent-bom",
        "helm upgrade agent-bom upstream/agent-bom --reuse-values --set controlPlane.backup.enabled=false",
        "helm upgrade --install agent-bom-backup oci://ghcr.io/x/charts/agent-bom")] == [True, True, False, False]


def test_readme_installs_into_the_runbook_namespace() -> None:
    assert readme_install()["namespace"] == "agent-bom"


def test_readme_keeps_the_clone_path_for_development() -> None:
    assert "helm upgrade --install agent-bom-backup deploy/helm/agent-bom -n agent-bom -f values.yaml" in README


@pytest.mark.parametrize("artifact", [f"ghcr.io/{{owner}}/{release.IMAGE_NAME}@sha256:",
                                      f"ghcr.io/{{owner}}/{release.CHART_REPOSITORY}/agent-bom@sha256:"],
                         ids=["image", "chart"])
def test_readme_verifies_the_signature_of(artifact: str) -> None:
    owner = default_image_owner()
    identity = release.certificate_identity_regexp(owner)
    verify = (f"cosign verify {artifact.format(owner=owner)}… \\\n  --certificate-identity-regexp '{identity}' \\\n"
              f"  --certificate-oidc-issuer {release.OIDC_ISSUER}")
    assert verify in README


def test_readme_verifies_the_provenance_and_the_sbom_attestation() -> None:
    owner = default_image_owner()
    assert README.count(f"gh attestation verify oci://ghcr.io/{owner}/{release.IMAGE_NAME}@sha256:… --owner {owner}") == 2


def test_readme_names_the_sbom_predicate() -> None:
    assert "--predicate-type https://spdx.dev/Document/v2.3" in README


def test_readme_links_the_release_docs() -> None:
    assert "(docs/releasing.md)" in README


@pytest.mark.parametrize("mention", ["tests/golden/v1-0.1.0", "scripts/make_golden_backup.py",
                                     "tests/e2e/test_golden_backups.py", "scripts/release.py",
                                     "tests/release/test_registry.py", "workflow_dispatch"])
def test_release_docs_mention(mention: str) -> None:
    assert mention in RELEASING


#: every `cosign verify REF` with the lines after it, in every document a user reads
COSIGN = re.compile(r"cosign verify (?P<ref>\S+) \\\n\s*--certificate-identity-regexp '(?P<identity>[^']+)'")
COSIGN_DOCS = sorted([release.REPO_ROOT / "README.md", *(release.REPO_ROOT / "docs").glob("*.md"),
                      release.CHART_DIR / "README.md"])


def cosign_recipes() -> list[tuple[str, str, str]]:
    return [(str(doc.relative_to(release.REPO_ROOT)), m["ref"], m["identity"])
            for doc in COSIGN_DOCS for m in COSIGN.finditer(doc.read_text())]


def test_cosign_recipes_are_found() -> None:
    assert {doc for doc, _, _ in cosign_recipes()} >= {"README.md", "deploy/helm/agent-bom/README.md"}


@pytest.mark.parametrize("recipe", cosign_recipes(), ids=lambda r: f"{r[0]}:{r[1]}")
def test_every_cosign_recipe_verifies_by_digest_with_the_release_workflow_identity(recipe) -> None:
    _, ref, identity = recipe
    assert ("@sha256:" in ref, identity) == (True, release.certificate_identity_regexp(default_image_owner()))
