"""Render the agent-bom chart with the real ``helm`` and validate what comes out.

Modelled on the Apache Airflow chart's ``render_chart``: values go to a temp file,
``helm template`` runs with ``--kube-version`` pinned, a rendering failure raises
:class:`HelmError` carrying helm's stderr (all of that is :func:`devstack.chart.render_chart`,
the one implementation, which the benchmarks use too), and every rendered document is
validated offline (``kubernetes-validate`` in strict mode for built-in kinds; the
PrometheusRule against the CRD's ``openAPIV3Schema`` from ``../shared/reference``).

Rendering and validation are cached per distinct input, so many small tests cost one
``helm`` run each.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from devstack import chart, tools
from devstack.chart import (  # noqa: F401 - re-exported for the chart tests
    CHART_DIR,
    CRONJOB_TEMPLATE,
    HELM_TEST_TEMPLATE,
    KUBE_VERSION,
    NAMESPACE,
    NETWORKPOLICY_TEMPLATE,
    PROMETHEUSRULE_TEMPLATE,
    RELEASE,
    RESTORE_DRILL_TEMPLATE,
    RESTORE_TEMPLATE,
    RETENTION_TEMPLATE,
    RUNBOOK_ACCOUNT_ID,
    RUNBOOK_MINIMAL_VALUES,
    RUNBOOK_REGION,
    RUNBOOK_VALUES,
    SERVICEACCOUNT_TEMPLATE,
    HelmError,
    backup_values,
    container,
    deep_merge,
    pod_spec,
)

REPO = tools.repo_root()
#: values files of earlier releases and of upstream agent-bom that chart tests render
CHART_FIXTURES = Path(__file__).parent / "fixtures"
#: The IRSA annotation of a ServiceAccount.
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"


def own_role(role: str) -> dict[str, Any]:
    """``serviceAccount`` values of a component with an IRSA role of its own, in the runbook's
    account: the chart refuses a restore, drill or retention without one beside the backup's."""
    return {"serviceAccount": {"annotations": {ROLE_ARN_ANNOTATION: f"arn:aws:iam::{RUNBOOK_ACCOUNT_ID}:role/{role}"}}}

#: Kubernetes minor versions the chart is validated against (strict OpenAPI schemas).
KUBE_VERSIONS = ("1.27.0", "1.32.0", "1.35.0")
HELM_MAJORS = (3, 4)

#: Beside the project, not in it (see ../shared/reference/README.md).
REFERENCE_DIR = REPO.parent / "shared" / "reference"
PROMETHEUSRULE_CRD = REFERENCE_DIR / "prometheusrule-crd.yaml"


def reference_file(name: str) -> Path:
    """A file of ``../shared/reference``; skips the test loudly when the folder is absent
    (a user's clone). In this project's CI the folder is always present."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.skip(
            f"REFERENCE SCHEMA MISSING: {path} is absent, so this check did NOT run "
            "(expected beside the project as ../shared/reference/)"
        )
    return path


class ManifestValidationError(AssertionError):
    """A rendered document does not validate against its schema."""


def _python_patterns(node: Any) -> Any:
    """Go's RE2 accepts ``^(?i)...``; Python wants global flags first: ``(?i)^...``."""
    if isinstance(node, dict):
        out = {k: _python_patterns(v) for k, v in node.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str):
            out["pattern"] = re.sub(r"^\^\(\?([a-zA-Z]+)\)", r"(?\1)^", pattern)
        return out
    if isinstance(node, list):
        return [_python_patterns(v) for v in node]
    return node


@functools.lru_cache(maxsize=1)
def prometheusrule_schema() -> dict[str, Any] | None:
    """``spec.versions[0].schema.openAPIV3Schema`` of the PrometheusRule CRD (patterns made
    Python-compatible), or None when ``../shared/reference`` is absent (a user's clone)."""
    if not PROMETHEUSRULE_CRD.is_file():
        return None
    crd = yaml.safe_load(PROMETHEUSRULE_CRD.read_text())
    return _python_patterns(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def validate_prometheusrule(doc: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
    """Validate against the CRD's openAPIV3Schema (not the whole CRD, which accepts anything)."""
    schema = schema if schema is not None else prometheusrule_schema()
    if schema is None:
        raise FileNotFoundError(PROMETHEUSRULE_CRD)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        raise ManifestValidationError(
            "PrometheusRule: " + "; ".join(f"{e.message} at {list(e.absolute_path)}" for e in errors)
        )


def validate_manifest(doc: dict[str, Any], kube_version: str = KUBE_VERSION) -> None:
    """Strict offline validation of one rendered document for ``kube_version``."""
    if doc.get("apiVersion") == "monitoring.coreos.com/v1" and doc.get("kind") == "PrometheusRule":
        if prometheusrule_schema() is not None:
            validate_prometheusrule(doc)
        return  # test_prometheusrule.py fails loudly when the reference is absent
    try:
        kubernetes_validate.validate(doc, kube_version, strict=True)
    except kubernetes_validate.ValidationError as err:
        raise ManifestValidationError(
            f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')} is invalid for Kubernetes "
            f"{kube_version}: {err.message} at {list(err.path)}"
        ) from err


def render_chart(
    values: dict[str, Any] | None = None,
    show_only: Iterable[str] | None = None,
    kube_version: str = KUBE_VERSION,
    **options: Any,
) -> list[dict[str, Any]]:
    """:func:`devstack.chart.render_chart` with every document validated strictly
    (:func:`validate_manifest`): the documents of the chart, empties dropped, or
    :class:`HelmError` with helm's stderr. Arguments as there (``show_only``, ``namespace``,
    ``helm_major``, ``name``, ``values_files``, ``set_values``, ``chart``)."""
    return chart.render_chart(values, show_only, kube_version, validate=validate_manifest, **options)


def refusal(values: dict[str, Any] | None = None, helm_major: int = 4, **kwargs: Any) -> list[str]:
    """The problems the chart's own checks (templates/_validate.tpl) report for ``values``,
    one line each; fails the test when the values render."""
    try:
        render_chart(values, helm_major=helm_major, **kwargs)
    except HelmError as err:
        return problem_lines(str(err))
    raise AssertionError("the values rendered, but a refusal was expected")


def problem_lines(error: str) -> list[str]:
    """The lines of a template ``fail`` message: one problem per line (the header of a
    multi-problem message and helm's own prefix and hint dropped)."""
    marker = re.search(r"execution error at \([^)]*\): ", error)
    if marker is None:
        raise AssertionError(f"not a template failure: {error}")
    message = error[marker.end():].split("\n\nUse --debug", 1)[0].strip()
    lines = message.splitlines()
    if re.fullmatch(r"\d+ problems in the values:", lines[0]):
        lines = lines[1:]
    return lines


def render_notes(values: dict[str, Any] | None = None, namespace: str = NAMESPACE, name: str = RELEASE,
                 chart: Path = CHART_DIR) -> str:
    """NOTES.txt as ``helm install --dry-run=client`` prints it (Helm 4 renders it offline)."""
    helm = str(tools.helm_binary(4))
    return _notes(helm, json.dumps(values or {}, sort_keys=True), namespace, name, str(chart))


@functools.lru_cache(maxsize=None)
def _notes(helm: str, values_json: str, namespace: str, name: str, chart_dir: str) -> str:
    with chart.values_file(values_json) as values_path:
        proc = chart.run_helm([
            helm, "install", name, chart_dir, "--namespace", namespace, "--dry-run=client",
            "--values", str(values_path), "--kubeconfig", str(values_path.parent / "no-cluster"),
        ])
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip())
    marker = "\nNOTES:\n"
    if marker not in proc.stdout:
        raise HelmError(f"no NOTES in helm output:\n{proc.stdout[-2000:]}")
    return proc.stdout.split(marker, 1)[1]


def env_cases(*cases: tuple[str, Any]) -> pytest.MarkDecorator:
    """``@env_cases((NAME, VALUE), ...)`` on ``test_...(self, name, expected)``: one test per
    environment variable a container must set, named for the variable and its value."""
    return pytest.mark.parametrize(("name", "expected"), cases, ids=lambda v: v)


def env_map(doc: dict[str, Any]) -> dict[str, Any]:
    """name -> value (or valueFrom) of the container's environment."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(doc).get("env", [])}


def volumes_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(doc).get("volumes", [])}


def mounts_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container(doc).get("volumeMounts", [])}
