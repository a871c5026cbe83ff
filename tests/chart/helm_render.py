"""Render the agent-bom chart with the real ``helm`` and validate what comes out.

Modelled on the Apache Airflow chart's ``render_chart``: values go to a temp file,
``helm template`` runs with ``--kube-version`` pinned, a rendering failure raises
:class:`HelmError` carrying helm's stderr, and every rendered document is validated offline
(``kubernetes-validate`` in strict mode for built-in kinds; the PrometheusRule against the
CRD's ``openAPIV3Schema`` from ``../shared/reference``).

Rendering is cached per distinct input, so many small tests cost one ``helm`` run each.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from devstack.tools import helm_binary, repo_root

REPO = repo_root()
CHART_DIR = REPO / "deploy" / "helm" / "agent-bom"
RELEASE = "agent-bom"
NAMESPACE = "agent-bom"
KUBE_VERSION = "1.32.0"
#: Kubernetes minor versions the chart is validated against (strict OpenAPI schemas).
KUBE_VERSIONS = ("1.27.0", "1.32.0", "1.35.0")
HELM_MAJORS = (3, 4)

#: Beside the project, not in it (see ../shared/reference/README.md).
REFERENCE_DIR = REPO.parent / "shared" / "reference"
PROMETHEUSRULE_CRD = REFERENCE_DIR / "prometheusrule-crd.yaml"

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

CRONJOB_TEMPLATE = "templates/controlplane-backup-cronjob.yaml"
SERVICEACCOUNT_TEMPLATE = "templates/serviceaccount.yaml"
RESTORE_DRILL_TEMPLATE = "templates/controlplane-restore-drill-cronjob.yaml"
NETWORKPOLICY_TEMPLATE = "templates/networkpolicy.yaml"
PROMETHEUSRULE_TEMPLATE = "templates/prometheusrule.yaml"
HELM_TEST_TEMPLATE = "templates/tests/controlplane-backup-test-pod.yaml"
RESTORE_TEMPLATE = "templates/controlplane-restore-cronjob.yaml"
RETENTION_TEMPLATE = "templates/controlplane-retention-cronjob.yaml"


class HelmError(RuntimeError):
    """``helm`` exited non-zero; the message is its stderr."""


class ManifestValidationError(AssertionError):
    """A rendered document does not validate against its schema."""


def backup_values(**overrides: Any) -> dict[str, Any]:
    """The runbook's minimal values (placeholders filled in) with ``controlPlane.backup`` keys
    merged in (nested dicts are merged, everything else replaced)."""
    values = copy.deepcopy(RUNBOOK_VALUES)
    _deep_merge(values["controlPlane"]["backup"], overrides)
    return values


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)


@functools.lru_cache(maxsize=None)
def _helm_template(
    values_json: str,
    values_files: tuple[str, ...],
    set_args: tuple[str, ...],
    kube_version: str,
    namespace: str,
    helm_major: int,
    name: str,
    chart: str,
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one ``helm template`` run; failures are cached too."""
    with tempfile.TemporaryDirectory(prefix="agent-bom-chart-") as tmp:
        values_file = Path(tmp) / "values.yaml"
        values_file.write_text(yaml.safe_dump(json.loads(values_json)))
        args = [
            str(helm_binary(helm_major)), "template", name, chart,
            "--namespace", namespace, "--kube-version", kube_version,
        ]
        for extra in values_files:
            args += ["--values", extra]
        args += ["--values", str(values_file)]
        for item in set_args:
            args += ["--set", item]
        proc = _run(args)
    return proc.returncode, proc.stdout, proc.stderr


def _split_by_source(output: str) -> list[tuple[str, dict[str, Any]]]:
    """(template path relative to the chart, document) for every non-empty document."""
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


@functools.lru_cache(maxsize=None)
def _validated(output: str, kube_version: str) -> tuple[tuple[str, str], ...]:
    docs = _split_by_source(output)
    for _, doc in docs:
        validate_manifest(doc, kube_version)
    return tuple((source, json.dumps(doc)) for source, doc in docs)


def render_chart(
    values: dict[str, Any] | None = None,
    show_only: Iterable[str] | None = None,
    kube_version: str = KUBE_VERSION,
    namespace: str = NAMESPACE,
    helm_major: int = 4,
    name: str = RELEASE,
    values_files: Iterable[str | Path] = (),
    set_values: Iterable[str] = (),
    chart: Path = CHART_DIR,
) -> list[dict[str, Any]]:
    """Render the chart and return its documents (validated, empties dropped).

    ``show_only`` keeps the documents of the given templates (paths relative to the chart,
    e.g. ``templates/serviceaccount.yaml``); unlike ``helm --show-only`` a template that
    renders nothing yields no documents instead of an error. ``values_files`` and
    ``set_values`` are passed as ``--values`` (before ``values``) and ``--set`` (last), the way
    ``helm upgrade --reuse-values --set ...`` layers them; ``chart`` renders another copy of the
    chart (e.g. with a previous release's values.yaml). Raises :class:`HelmError` with helm's
    stderr when rendering fails.
    """
    returncode, output, stderr = _helm_template(
        json.dumps(values or {}, sort_keys=True),
        tuple(str(f) for f in values_files),
        tuple(set_values),
        kube_version,
        namespace,
        helm_major,
        name,
        str(chart),
    )
    if returncode != 0:
        raise HelmError(stderr.strip() or f"helm exited {returncode}")
    wanted = set(show_only) if show_only is not None else None
    return [
        json.loads(doc)
        for source, doc in _validated(output, kube_version)
        if wanted is None or source in wanted
    ]


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
    return _notes(json.dumps(values or {}, sort_keys=True), namespace, name, str(chart))


@functools.lru_cache(maxsize=None)
def _notes(values_json: str, namespace: str, name: str, chart: str) -> str:
    with tempfile.TemporaryDirectory(prefix="agent-bom-notes-") as tmp:
        values_file = Path(tmp) / "values.yaml"
        values_file.write_text(yaml.safe_dump(json.loads(values_json)))
        proc = _run([
            str(helm_binary(4)), "install", name, chart, "--namespace", namespace,
            "--dry-run=client", "--values", str(values_file),
            "--kubeconfig", str(Path(tmp) / "no-cluster"),
        ])
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip())
    marker = "\nNOTES:\n"
    if marker not in proc.stdout:
        raise HelmError(f"no NOTES in helm output:\n{proc.stdout[-2000:]}")
    return proc.stdout.split(marker, 1)[1]


def container(doc: dict[str, Any]) -> dict[str, Any]:
    """The single container of a CronJob or Pod document."""
    return pod_spec(doc)["containers"][0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]


def env_map(doc: dict[str, Any]) -> dict[str, Any]:
    """name -> value (or valueFrom) of the container's environment."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(doc).get("env", [])}


def volumes_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(doc).get("volumes", [])}


def mounts_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container(doc).get("volumeMounts", [])}
