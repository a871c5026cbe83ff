"""devstack.podrun models the kubelet: `$(VAR)` expansion, fieldRef and claims (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.podrun import UnsupportedPodSpec, container_run, expand


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("restore $(BACKUP_URI)", {"BACKUP_URI": "latest"}, "restore latest"),
        ("$(MISSING)", {}, "$(MISSING)"),
        ("$$(BACKUP_URI)", {"BACKUP_URI": "latest"}, "$(BACKUP_URI)"),
        ("/reports/$(POD_NAME).json", {"POD_NAME": "restore-x"}, "/reports/restore-x.json"),
    ],
    ids=["defined", "undefined-stays", "escaped", "inside-a-path"],
)
def test_expand_as_the_kubelet_does(text, env, expected):
    assert expand(text, env) == expected


def _spec(env, args=("restore", "$(BACKUP_URI)"), volumes=(), mounts=()):
    return {"containers": [{"name": "c", "image": "img", "command": ["agent-bom-backup"], "args": list(args),
                            "env": env, "volumeMounts": list(mounts)}], "volumes": list(volumes)}


def _run(spec, **kwargs):
    run = container_run(spec, ("podman",), **kwargs)
    run.cleanup()
    return run


def test_env_values_see_earlier_variables_only():
    env = [{"name": "B", "value": "$(A)-b"}, {"name": "A", "value": "a"}, {"name": "C", "value": "$(A)-c"}]
    assert _run(_spec(env)).env == {"B": "$(A)-b", "A": "a", "C": "a-c"}


def test_args_are_expanded_from_the_final_environment():
    run = _run(_spec([{"name": "BACKUP_URI", "value": "latest"}]), env_overrides={"BACKUP_URI": "s3://b/k.dump"})
    assert run.argv[-2:] == ["restore", "s3://b/k.dump"]


def test_field_ref_reads_the_pod_name():
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    assert _run(_spec(env), pod_name="restore-abc").env["POD_NAME"] == "restore-abc"


def test_claim_is_mounted_read_write(tmp_path: Path):
    spec = _spec([], volumes=[{"name": "files", "persistentVolumeClaim": {"claimName": "reports"}}],
                 mounts=[{"name": "files", "mountPath": "/files"}])
    assert f"{tmp_path}:/files:rw" in _run(spec, claims={"reports": tmp_path}).argv


def test_a_claim_without_a_folder_is_refused():
    spec = _spec([], volumes=[{"name": "files", "persistentVolumeClaim": {"claimName": "reports"}}],
                 mounts=[{"name": "files", "mountPath": "/files"}])
    with pytest.raises(UnsupportedPodSpec, match="no host folder for claim reports"):
        _run(spec)


def _with_limits(env, limits):
    spec = _spec(env)
    spec["containers"][0]["resources"] = {"limits": limits}
    return spec


MEMORY_LIMIT = [{"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}]


@pytest.mark.parametrize(("limit", "expected"), [
    ("2560Mi", "2684354560"), ("1Gi", "1073741824"), ("1.5Gi", "1610612736"), ("512M", "512000000"),
    ("1e9", "1000000000"),
], ids=["Mi", "Gi", "fractional-Gi", "decimal-M", "exponent"])
def test_resource_field_ref_gives_the_memory_limit_in_bytes(limit, expected):
    assert _run(_with_limits(MEMORY_LIMIT, {"memory": limit})).env["LIMIT"] == expected


def test_resource_field_ref_rounds_cpus_up():
    env = [{"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]
    assert _run(_with_limits(env, {"cpu": "1500m"})).env["CPUS"] == "2"


def test_resource_field_ref_divides_by_the_divisor():
    env = [{"name": "LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}]
    assert _run(_with_limits(env, {"memory": "2560Mi"})).env["LIMIT"] == "2560"


def test_resource_field_ref_without_the_limit_is_not_modelled():
    with pytest.raises(UnsupportedPodSpec, match="sets no limits.memory"):
        _run(_with_limits(MEMORY_LIMIT, {"cpu": "1"}))
