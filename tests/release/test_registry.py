"""The release mechanics with real parts, on loopback: a real OCI registry (Debian's
docker-registry, CNCF distribution) receives the built job image (podman push) and the
chart packaged by scripts/release.py (the same code the release workflow runs), and a
user's view of them is checked from the registry: `helm show`, `helm template`, `helm
pull` of oci://127.0.0.1:PORT/charts/agent-bom, and the image pulled by digest reports
the release version."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import release
from devstack import tools
from devstack.chart import NAMESPACE, RELEASE, backup_values
from devstack.jobimage import ContainerEngine, JobImage
from devstack.registry import OciRegistry

pytestmark = pytest.mark.image

#: a user's values for the backup (the runbook's, no placeholders left), in another region
USER_VALUES = backup_values(destination={"bucketRegion": "eu-west-1"})


@dataclass(frozen=True)
class Published:
    registry: OciRegistry
    version: str
    image_repository: str
    image_digest: str
    pushed_digest: str
    chart_package: Path
    chart_digest: str
    chart_reference: str
    work: Path

    def helm(self, major: int, *args: str) -> subprocess.CompletedProcess[str]:
        """``helm ARGS... --version VERSION --plain-http`` against the local registry."""
        result = subprocess.run(
            [str(tools.helm_binary(major)), *args, "--version", self.version, "--plain-http"],
            capture_output=True, text=True, timeout=120, check=False,
        )
        assert result.returncode == 0, result.stderr
        return result


def _push_image(engine: ContainerEngine, image: JobImage, reference: str, digest_file: Path) -> str:
    """Push the image; returns the manifest digest the engine pushed."""
    if engine.name == "podman":
        engine("push", "--tls-verify=false", "--digestfile", str(digest_file), image.tag, reference,
               check=True, timeout=600)
        return digest_file.read_text().strip()
    engine("tag", image.tag, reference, check=True)
    pushed = engine("push", reference, check=True, timeout=600).stdout
    return next(word for word in pushed.split() if word.startswith("sha256:"))


@pytest.fixture(scope="module")
def published(tmp_root: Path, job_image_build: JobImage) -> Iterator[Published]:
    """The image and the chart of this checkout's release version, published to a fresh
    registry the way the release workflow publishes them to GHCR."""
    work = tmp_root / "release"
    work.mkdir()
    # the version the image reports (test_release_script checks every file agrees with it)
    version = release.project_versions()["pyproject.toml"]
    with pytest.MonkeyPatch.context() as mp, OciRegistry(work / "registry") as registry:
        # helm keeps registry logins and caches under these; keep them out of $HOME
        for name, folder in (("HELM_CONFIG_HOME", "config"), ("HELM_CACHE_HOME", "cache"), ("HELM_DATA_HOME", "data")):
            mp.setenv(name, str(work / "helm" / folder))
        image_repository = f"{registry.address}/{release.IMAGE_NAME}"
        pushed_digest = _push_image(job_image_build.engine, job_image_build, f"{image_repository}:{version}",
                                    work / "image.digest")
        # what a user's pull by digest will get: the registry's own answer, not ours
        image_digest = registry.manifest_digest(release.IMAGE_NAME, version)
        package = release.package_chart(version, work / "dist", digest=image_digest, repository=image_repository,
                                        helm=str(tools.helm_binary(4)))
        chart_digest = release.push_chart(package, f"oci://{registry.address}/{release.CHART_REPOSITORY}",
                                          plain_http=True, helm=str(tools.helm_binary(4)))
        reference = f"oci://{registry.address}/{release.CHART_REPOSITORY}/{release.chart_name()}"
        yield Published(registry, version, image_repository, image_digest, pushed_digest, package, chart_digest,
                        reference, work)


@pytest.fixture(scope="module")
def pulled_image(published: Published, container_engine: ContainerEngine) -> Iterator[str]:
    """The job image pulled from the registry by digest, as the kubelet pulls the packaged chart's image."""
    reference = f"{published.image_repository}@{published.image_digest}"
    pull = ["pull", "--tls-verify=false", reference] if container_engine.name == "podman" else ["pull", reference]
    container_engine(*pull, check=True, timeout=600)
    yield reference
    container_engine("rmi", reference)  # the name only: the built image keeps its own tag


@pytest.fixture(scope="module")
def user_values_file(published: Published) -> Path:
    path = published.work / "values.yaml"
    path.write_text(yaml.safe_dump(USER_VALUES))
    return path


def _backup_cronjob(manifests: str) -> dict[str, Any]:
    (cronjob,) = [doc for doc in yaml.safe_load_all(manifests)
                  if doc and doc["kind"] == "CronJob" and doc["metadata"]["name"].endswith("-control-plane-backup")]
    return cronjob


def test_registry_holds_the_image_the_engine_pushed(published: Published) -> None:
    assert published.image_digest == published.pushed_digest


def test_registry_holds_the_chart_under_the_digest_helm_push_reported(published: Published) -> None:
    chart_path = f"{release.CHART_REPOSITORY}/{release.chart_name()}"
    assert published.registry.manifest_digest(chart_path, published.version) == published.chart_digest


@pytest.mark.parametrize("helm_major", [3, 4])
def test_show_values_pins_the_pushed_image_by_digest(published: Published, helm_major: int) -> None:
    values = yaml.safe_load(published.helm(helm_major, "show", "values", published.chart_reference).stdout)
    image = values["controlPlane"]["backup"]["image"]
    assert (image["repository"], image["digest"]) == (published.image_repository, published.image_digest)


def test_show_values_keeps_the_documented_comments(published: Published) -> None:
    shown = published.helm(4, "show", "values", published.chart_reference).stdout
    assert "## @param controlPlane.backup.image.digest" in shown


@pytest.mark.parametrize("field", ["version", "appVersion"])
def test_show_chart_carries_the_release_version(published: Published, field: str) -> None:
    chart = yaml.safe_load(published.helm(4, "show", "chart", published.chart_reference).stdout)
    assert str(chart[field]) == published.version


@pytest.mark.parametrize("helm_major", [3, 4])
def test_template_runs_the_pushed_image_by_digest(published: Published, user_values_file: Path, helm_major: int) -> None:
    manifests = published.helm(helm_major, "template", RELEASE, published.chart_reference,
                               "--namespace", NAMESPACE, "--values", str(user_values_file)).stdout
    (container,) = _backup_cronjob(manifests)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{published.image_repository}@{published.image_digest}"


def test_pulled_chart_is_byte_for_byte_the_pushed_package(published: Published) -> None:
    destination = published.work / "pulled"
    destination.mkdir()
    published.helm(4, "pull", published.chart_reference, "--destination", str(destination))
    pulled = destination / published.chart_package.name
    assert hashlib.sha256(pulled.read_bytes()).hexdigest() == hashlib.sha256(published.chart_package.read_bytes()).hexdigest()


def test_image_pulled_by_digest_is_the_built_image(pulled_image: str, job_image_build: JobImage,
                                                   container_engine: ContainerEngine) -> None:
    pulled_id = container_engine("image", "inspect", "--format", "{{.Id}}", pulled_image, check=True).stdout.strip()
    assert pulled_id.removeprefix("sha256:") == job_image_build.image_id.removeprefix("sha256:")


def test_image_pulled_by_digest_reports_the_release_version(published: Published, pulled_image: str,
                                                            container_engine: ContainerEngine) -> None:
    result = container_engine.run(pulled_image, "agent-bom-backup", "--version")
    assert result.stdout.strip() == f"agent-bom-backup, version {published.version}", result.stderr
