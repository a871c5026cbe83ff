""".github/workflows/release.yaml: triggered by a version tag (and by hand, as a dry run in
which nothing is pushed, signed, attested or released), the test suite before anything is
published, version and appVersion from the tag, least privilege per job, pinned actions.
(Schema validation: tests/unit/repo/test_workflows.py validates every workflow.)"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import pytest

import release
from tests.unit.repo.test_workflows import WORKFLOWS_DIR, load_workflow

pytestmark = pytest.mark.unit

WORKFLOW = WORKFLOWS_DIR / release.WORKFLOW_FILE
PUBLISH_GATE = "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"
#: steps that reach out: log in, push, sign, attest, release
PUBLISHING_RUN = re.compile(r"\b(cosign sign|helm push|push-chart|registry login|docker login|gh release)\b")
PUBLISHING_ACTIONS = ("docker/login-action", "actions/attest-build-provenance", "actions/attest-sbom",
                      "pypa/gh-action-pypi-publish")
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


@lru_cache(maxsize=1)
def workflow() -> dict[str, Any]:
    return load_workflow(WORKFLOW)


def jobs() -> dict[str, dict[str, Any]]:
    return workflow()["jobs"]


def steps(job: str) -> list[dict[str, Any]]:
    return jobs()[job]["steps"]


def all_steps() -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in jobs().items() for step in job["steps"]]


def run_text(job: str) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def needs(job: str) -> list[str]:
    value = jobs()[job].get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def upstream(job: str) -> set[str]:
    """Every job ``job`` waits for, directly or not."""
    found: set[str] = set()
    todo = needs(job)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += needs(name)
    return found


def gated(job: str, step: dict[str, Any]) -> bool:
    return PUBLISH_GATE in str(step.get("if", "")) or PUBLISH_GATE in str(jobs()[job].get("if", ""))


def publishing_steps() -> list[tuple[str, dict[str, Any]]]:
    return [(job, step) for job, step in all_steps()
            if PUBLISHING_RUN.search(step.get("run", ""))
            or any(step.get("uses", "").startswith(action + "@") for action in PUBLISHING_ACTIONS)]


def build_step() -> dict[str, Any]:
    (step,) = [s for s in steps("image") if s.get("id") == "build"]
    return step


# ------------------------------------------------------------------ triggers
def test_runs_on_version_tags_only() -> None:
    assert workflow()["on"]["push"] == {"tags": ["v*.*.*"]}


def test_can_be_started_by_hand_as_a_dry_run() -> None:
    assert "workflow_dispatch" in workflow()["on"]


def test_has_no_other_trigger() -> None:
    assert set(workflow()["on"]) == {"push", "workflow_dispatch"}


def test_runs_one_release_per_ref_and_never_cancels_one() -> None:
    concurrency = workflow()["concurrency"]
    assert "${{ github.ref }}" in concurrency["group"]
    assert not concurrency["cancel-in-progress"]


# ------------------------------------------------------------------ dry run gate
def test_publishing_steps_exist() -> None:
    assert len(publishing_steps()) >= 8


@pytest.mark.parametrize("job_step", publishing_steps(),
                         ids=[f"{job}:{step.get('name') or step.get('uses')}" for job, step in publishing_steps()])
def test_every_publishing_step_runs_only_for_a_tag_push(job_step: tuple[str, dict[str, Any]]) -> None:
    assert gated(*job_step)


def test_image_is_pushed_only_for_a_tag_push() -> None:
    assert build_step()["with"]["push"] == "${{ " + PUBLISH_GATE + " }}"


def test_release_job_runs_only_for_a_tag_push() -> None:
    assert jobs()["release"]["if"] == PUBLISH_GATE


def test_dry_run_still_packages_the_chart() -> None:
    (package,) = [s for s in steps("chart") if "package-chart" in s.get("run", "")]
    assert "if" not in package


# ------------------------------------------------------------------ order: the suite first
def test_the_test_job_runs_the_whole_suite() -> None:
    assert ".ci/run" in run_text("test").split()


@pytest.mark.parametrize("job", ["image", "chart", "release", "python", "pypi"])
def test_nothing_is_published_before_the_suite_passed(job: str) -> None:
    assert "test" in upstream(job)


def test_the_chart_waits_for_the_image_digest() -> None:
    assert "image" in needs("chart")


def test_the_release_waits_for_image_and_chart() -> None:
    assert {"image", "chart"} <= set(needs("release"))


# ------------------------------------------------------------------ what is built and published
def test_image_is_built_for_amd64_and_arm64_from_the_dockerfile() -> None:
    options = build_step()["with"]
    assert (set(options["platforms"].split(",")), options["file"]) == ({"linux/amd64", "linux/arm64"}, "image/Dockerfile")


def test_arm64_is_emulated_with_qemu() -> None:
    assert any(s.get("uses", "").startswith("docker/setup-qemu-action@") for s in steps("image"))


def test_image_build_attaches_sbom_and_full_provenance() -> None:
    options = build_step()["with"]
    assert (options["sbom"], options["provenance"]) == (True, "mode=max")


def test_release_image_builds_from_fresh_bases() -> None:
    options = build_step()["with"]
    assert (options["pull"], options["no-cache"]) == (True, True)


def test_image_is_tagged_with_the_release_version() -> None:
    assert build_step()["with"]["tags"] == "${{ env.IMAGE }}:${{ env.VERSION }}"


def test_image_reports_the_release_version() -> None:
    assert "VERSION=${{ env.VERSION }}" in build_step()["with"]["build-args"].splitlines()


def test_version_comes_from_the_tag() -> None:
    assert 'scripts/release.py version --tag "$GITHUB_REF_NAME"' in run_text("prepare")


@pytest.mark.parametrize("job", ["image", "chart", "release", "python", "pypi"])
def test_jobs_take_the_version_from_the_prepare_job(job: str) -> None:
    assert jobs()[job]["env"]["VERSION"] == "${{ needs.prepare.outputs.version }}"


def test_chart_is_packaged_with_the_version_and_the_image_digest() -> None:
    expected = ['args=("$VERSION"', 'args+=(--digest "$IMAGE_DIGEST")', 'scripts/release.py package-chart "${args[@]}"']
    assert [part for part in expected if part not in run_text("chart")] == []


def test_chart_digest_input_is_the_built_image_digest() -> None:
    assert (jobs()["chart"]["env"]["IMAGE_DIGEST"], jobs()["image"]["outputs"]["digest"]) == (
        "${{ needs.image.outputs.digest }}", "${{ steps.build.outputs.digest }}")


def test_chart_is_pushed_to_the_owner_charts_repository() -> None:
    assert f'"oci://{release.REGISTRY}/$OWNER/{release.CHART_REPOSITORY}"' in run_text("chart")


@pytest.mark.parametrize(("job", "reference"), [
    ("image", '"$IMAGE@$DIGEST"'),
    ("chart", f'"{release.REGISTRY}/$OWNER/{release.CHART_REPOSITORY}/agent-bom@$DIGEST"'),
])
def test_image_and_chart_are_signed_keylessly_by_digest(job: str, reference: str) -> None:
    assert f"cosign sign --yes {reference}" in run_text(job)


def test_release_attaches_the_chart_the_sbom_and_the_notes() -> None:
    expected = ['"dist/agent-bom-$VERSION.tgz"', '"dist/agent-bom-backup-$VERSION.spdx.json"',
                "--notes-file dist/release-notes.md"]
    assert [part for part in expected if part not in run_text("release")] == []


# ------------------------------------------------------------------ the CLI on PyPI
def pypi_publish_step() -> dict[str, Any]:
    (step,) = [s for s in steps("pypi") if s.get("uses", "").startswith("pypa/gh-action-pypi-publish@")]
    return step


def test_sdist_and_wheel_are_built_and_checked_by_the_release_script() -> None:
    assert 'scripts/release.py build-python "$VERSION" --destination dist/python' in run_text("python")


def test_sdist_and_wheel_pass_twine_check_strict() -> None:
    assert "twine check --strict dist/python/*" in run_text("python")


def test_the_python_build_job_cannot_publish() -> None:
    assert jobs()["python"]["permissions"] == {"contents": "read"}


def test_pypi_gets_what_the_python_job_built() -> None:
    (download,) = [s for s in steps("pypi") if s.get("uses", "").startswith("actions/download-artifact@")]
    assert (download["with"]["name"], download["with"]["path"], pypi_publish_step()["with"]["packages-dir"]) == (
        "python-dist", "dist/python", "dist/python/")


def test_pypi_publishing_is_trusted_publishing_without_a_token() -> None:
    assert (jobs()["pypi"]["permissions"], set(pypi_publish_step().get("with", {}))) == (
        {"id-token": "write"}, {"packages-dir"})


def test_pypi_publishing_runs_in_the_pypi_environment() -> None:
    assert jobs()["pypi"]["environment"] == "pypi"


def test_pypi_is_published_after_image_and_chart() -> None:
    assert {"python", "image", "chart"} <= set(needs("pypi"))


# ------------------------------------------------------------------ least privilege, pinned actions
def test_workflow_grants_nothing_by_default() -> None:
    assert workflow()["permissions"] == {}


@pytest.mark.parametrize("job", ["prepare", "test", "image", "chart", "release", "python", "pypi"])
def test_every_job_declares_its_permissions(job: str) -> None:
    assert isinstance(jobs()[job].get("permissions"), dict)


def test_only_the_publishing_jobs_may_write_packages_and_use_oidc() -> None:
    writers = {name for name, job in jobs().items()
               if job["permissions"].get("packages") == "write" or job["permissions"].get("id-token") == "write"}
    assert writers == {"image", "chart", "pypi"}


def test_only_the_release_job_may_write_the_repository() -> None:
    assert {name for name, job in jobs().items() if job["permissions"].get("contents") == "write"} == {"release"}


def test_the_suite_runs_with_read_only_permissions() -> None:
    assert jobs()["test"]["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("uses", sorted({s["uses"] for _, s in all_steps() if "uses" in s}))
def test_every_action_is_pinned_to_a_full_version(uses: str) -> None:
    assert PINNED.match(uses), f"{uses}: pin a full version (vX.Y.Z) or a commit"
