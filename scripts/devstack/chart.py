"""Render the agent-bom chart with the real ``helm template``: values in, documents out.

The one ``render_chart``: what the benchmarks (``bench/run.py``: the CronJob's pod spec, run
as the kubelet would) and the chart tests share. The tests pass a ``validate`` function
(strict schema validation of every document, ``tests/chart/helm_render.py``); this module
only renders, parses and calls it.

Rendering (and validation) is cached per distinct input, so many small callers cost one
``helm`` run each.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from devstack import tools

CHART_DIR = tools.repo_root() / "deploy" / "helm" / "agent-bom"
RELEASE = "agent-bom"
NAMESPACE = "agent-bom"
KUBE_VERSION = "1.32.0"

CRONJOB_TEMPLATE = "templates/controlplane-backup-cronjob.yaml"
SERVICEACCOUNT_TEMPLATE = "templates/serviceaccount.yaml"
RESTORE_DRILL_TEMPLATE = "templates/controlplane-restore-drill-cronjob.yaml"
NETWORKPOLICY_TEMPLATE = "templates/networkpolicy.yaml"
PROMETHEUSRULE_TEMPLATE = "templates/prometheusrule.yaml"
HELM_TEST_TEMPLATE = "templates/tests/controlplane-backup-test-pod.yaml"
RESTORE_TEMPLATE = "templates/controlplane-restore-cronjob.yaml"
RETENTION_TEMPLATE = "templates/controlplane-retention-cronjob.yaml"

#: The runbook's "Minimal shape" (seed), verbatim: the chart refuses its two placeholders.
RUNBOOK_MINIMAL_VALUES: dict[str, Any] = {
    "controlPlane": {
        "backup": {
            "enabled": True,
            "schedule": "0 3 * * *",
            "serviceAccount": {
                "annotations": {
                    "eks.amazonaws.com/role-arn": "arn:aws:iam::<account-id>:role/agent-bom-backup",
                },
            },
            "destination": {
                "bucket": "agent-bom-prod-backups",
                "prefix": "agent-bom/postgres",
                "bucketRegion": "<your-backup-bucket-region>",
                "encryption": {"enabled": True, "mode": "aws:kms", "kmsKeyId": "alias/agent-bom-backups"},
            },
        }
    }
}
#: What a user fills in for the runbook's placeholders.
RUNBOOK_ACCOUNT_ID = "123456789012"
RUNBOOK_REGION = "us-east-1"
#: The runbook's minimal values with the placeholders filled in (= ci/runbook-minimal-values.yaml).
RUNBOOK_VALUES: dict[str, Any] = json.loads(
    json.dumps(RUNBOOK_MINIMAL_VALUES)
    .replace("<account-id>", RUNBOOK_ACCOUNT_ID)
    .replace("<your-backup-bucket-region>", RUNBOOK_REGION)
)


#: checks one rendered document for a Kubernetes version; raises when it is invalid
Validator = Callable[[dict[str, Any], str], None]


class HelmError(RuntimeError):
    """``helm`` exited non-zero; the message is its stderr."""


def backup_values(**overrides: Any) -> dict[str, Any]:
    """The runbook's minimal values (placeholders filled in) with ``controlPlane.backup`` keys
    merged in (nested dicts are merged, everything else replaced)."""
    values = copy.deepcopy(RUNBOOK_VALUES)
    deep_merge(values["controlPlane"]["backup"], overrides)
    return values


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into ``base`` (nested dicts merged, everything else replaced)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def run_helm(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)


def template(
    values: dict[str, Any] | None = None,
    *,
    kube_version: str = KUBE_VERSION,
    namespace: str = NAMESPACE,
    helm_major: int = 4,
    name: str = RELEASE,
    values_files: Iterable[str | Path] = (),
    set_values: Iterable[str] = (),
    chart: Path = CHART_DIR,
) -> str:
    """``helm template`` of the chart: its output, or :class:`HelmError` with helm's stderr.

    ``values_files`` and ``set_values`` are passed as ``--values`` (before ``values``) and
    ``--set`` (last), the way ``helm upgrade --reuse-values --set ...`` layers them."""
    helm = tools.helm_binary(helm_major)  # outside the cache: a missing helm always says so
    returncode, output, stderr = _helm_template(
        str(helm), json.dumps(values or {}, sort_keys=True), tuple(str(f) for f in values_files),
        tuple(set_values), kube_version, namespace, name, str(chart),
    )
    if returncode != 0:
        raise HelmError(stderr.strip() or f"helm exited {returncode}")
    return output


@functools.lru_cache(maxsize=None)
def _helm_template(helm: str, values_json: str, values_files: tuple[str, ...], set_args: tuple[str, ...],
                   kube_version: str, namespace: str, name: str, chart: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one ``helm template`` run; failures are cached too."""
    with values_file(values_json) as values_path:
        args = [helm, "template", name, chart, "--namespace", namespace, "--kube-version", kube_version]
        for extra in values_files:
            args += ["--values", extra]
        args += ["--values", str(values_path)]
        for item in set_args:
            args += ["--set", item]
        proc = run_helm(args)
    return proc.returncode, proc.stdout, proc.stderr


@contextlib.contextmanager
def values_file(values_json: str) -> Iterator[Path]:
    """The values (JSON text) as a YAML file in a temp folder, for ``--values``."""
    with tempfile.TemporaryDirectory(prefix="agent-bom-chart-") as tmp:
        path = Path(tmp) / "values.yaml"
        path.write_text(yaml.safe_dump(json.loads(values_json)))
        yield path


def documents_by_source(output: str) -> list[tuple[str, dict[str, Any]]]:
    """(template path relative to the chart, document) for every non-empty document of
    ``helm template`` output."""
    docs = []
    prefix = f"# Source: {CHART_DIR.name}/"
    for chunk in output.split("\n---"):
        source = ""
        for line in chunk.splitlines():
            if line.startswith(prefix):
                source = line[len(prefix):].strip()
                break
        doc = yaml.safe_load(chunk)
        if doc:
            docs.append((source, doc))
    return docs


def only(docs: Iterable[tuple[str, dict[str, Any]]], show_only: Iterable[str] | None) -> list[dict[str, Any]]:
    """The documents of the templates in ``show_only`` (all when None); unlike
    ``helm --show-only`` a template that renders nothing yields nothing, not an error."""
    wanted = set(show_only) if show_only is not None else None
    return [doc for source, doc in docs if wanted is None or source in wanted]


def render_chart(values: dict[str, Any] | None = None, show_only: Iterable[str] | None = None,
                 kube_version: str = KUBE_VERSION, *, validate: Validator | None = None,
                 **options: Any) -> list[dict[str, Any]]:
    """Render the chart and return its documents (empties dropped; fresh copies, so a
    caller may change them).

    ``show_only`` keeps the documents of the given templates (paths relative to the chart,
    e.g. ``templates/serviceaccount.yaml``); unlike ``helm --show-only`` a template that
    renders nothing yields no documents instead of an error. ``validate(doc, kube_version)``
    checks every document first (not at all when None). ``options`` are those of
    :func:`template`: ``namespace``, ``helm_major``, ``name``, ``values_files`` and
    ``set_values`` (``--values`` before ``values``, ``--set`` last, the way
    ``helm upgrade --reuse-values --set ...`` layers them) and ``chart`` (another copy of the
    chart, e.g. with a previous release's values.yaml). Raises :class:`HelmError` with helm's
    stderr when rendering fails.
    """
    output = template(values, kube_version=kube_version, **options)
    documents = ((source, json.loads(doc)) for source, doc in _documents(output, kube_version, validate))
    return only(documents, show_only)


@functools.lru_cache(maxsize=None)
def _documents(output: str, kube_version: str, validate: Validator | None) -> tuple[tuple[str, str], ...]:
    """(source, document as JSON) of ``output``, each validated first when ``validate`` is given."""
    docs = documents_by_source(output)
    if validate is not None:
        for _, doc in docs:
            validate(doc, kube_version)
    return tuple((source, json.dumps(doc)) for source, doc in docs)


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a CronJob or Pod document."""
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]


def container(doc: dict[str, Any]) -> dict[str, Any]:
    """The single container of a CronJob or Pod document."""
    return pod_spec(doc)["containers"][0]
