"""Run a rendered pod spec's container the way the kubelet would, with podman/docker.

Image, command and args, environment (``value`` and ``secretKeyRef``/``configMapKeyRef``
resolved from dicts standing in for the cluster's Secrets and ConfigMaps, ``fieldRef`` to the
pod's name and namespace, ``resourceFieldRef`` to the container's requests and limits), the kubelet's ``$(VAR)`` expansion in env values (earlier variables)
and in command and args, user and group, read-only root filesystem, dropped capabilities, no
privilege escalation, and the volumes: ``emptyDir`` as a sized tmpfs, ``secret``/``configMap``
as read-only files, ``persistentVolumeClaim`` as a host folder standing in for the claim.
Environment values travel by name (``--env NAME`` with the value in the engine's own
environment), so no secret ever reaches an argv.
"""

from __future__ import annotations

import math
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any


class UnsupportedPodSpec(ValueError):
    """The pod spec uses something this emulation does not model."""


@dataclass
class ContainerRun:
    argv: list[str]
    env: dict[str, str]
    workdir: tempfile.TemporaryDirectory[str] = field(repr=False)

    def cleanup(self) -> None:
        self.workdir.cleanup()


def _quantity_to_podman(size: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    for suffix, short in units.items():
        if size.endswith(suffix):
            return size[: -len(suffix)] + short
    return size


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's expansion: ``$(NAME)`` becomes the variable's value when it is defined and
    stays as written otherwise; ``$$`` is a literal ``$``."""
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _REFERENCE.sub(replace, text)


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_QUANTITY_SUFFIXES = {None: 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
                      "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(text: str) -> Fraction:
    """A Kubernetes resource quantity (``2560Mi``, ``500m``, ``1.5Gi``, ``1e3``) as a number."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise UnsupportedPodSpec(f"{text!r} is not a Kubernetes quantity")
    return Fraction(match.group(1)) * _QUANTITY_SUFFIXES[match.group(2)]


def resource_field_value(container: dict[str, Any], ref: dict[str, Any]) -> str:
    """What the kubelet puts in an env var with ``resourceFieldRef``: the container's request
    or limit divided by ``divisor`` (default 1), rounded up, e.g. ``limits.memory`` in bytes.
    (A container without that limit gets the node's allocatable: not modelled.)"""
    kind, _, name = str(ref["resource"]).partition(".")
    value = container.get("resources", {}).get(kind, {}).get(name)
    if value is None:
        raise UnsupportedPodSpec(f"resourceFieldRef {ref['resource']}: the container sets no {ref['resource']} "
                                 "(the kubelet would give the node's allocatable, which is not modelled)")
    return str(math.ceil(quantity(value) / quantity(ref.get("divisor", "1"))))


def _env_value(entry: dict[str, Any], secrets: dict[str, dict[str, str]], configmaps: dict[str, dict[str, str]],
               fields: dict[str, str], earlier: dict[str, str], container: dict[str, Any]) -> str | None:
    if "value" in entry:
        return expand(str(entry["value"]), earlier)
    source = entry.get("valueFrom", {})
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None and not ref.get("optional"):
            raise UnsupportedPodSpec(f"Secret {ref['name']} has no key {ref['key']} (the kubelet would not start the pod)")
        return value
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        return configmaps.get(ref["name"], {}).get(ref["key"])
    if "fieldRef" in source:
        path = source["fieldRef"]["fieldPath"]
        if path not in fields:
            raise UnsupportedPodSpec(f"env {entry['name']}: fieldRef {path} is not modelled")
        return fields[path]
    if "resourceFieldRef" in source:
        return resource_field_value(container, source["resourceFieldRef"])
    raise UnsupportedPodSpec(f"env {entry['name']}: unsupported valueFrom {sorted(source)}")


def container_run(
    pod_spec: dict[str, Any],
    engine_command: tuple[str, ...],
    *,
    secrets: dict[str, dict[str, str]] | None = None,
    configmaps: dict[str, dict[str, str]] | None = None,
    image: str | None = None,
    env_overrides: dict[str, str] | None = None,
    name: str | None = None,
    claims: dict[str, Path] | None = None,
    pod_name: str | None = None,
    namespace: str = "default",
) -> ContainerRun:
    """The engine's argv and environment for ``pod_spec``'s one container. ``claims`` maps a
    PersistentVolumeClaim's name to the host folder standing in for it; ``pod_name`` is what
    ``fieldRef: metadata.name`` reads (default: a fresh name)."""
    secrets = secrets or {}
    configmaps = configmaps or {}
    claims = claims or {}
    fields = {"metadata.name": pod_name or f"podrun-{uuid.uuid4().hex[:10]}", "metadata.namespace": namespace}
    (container,) = pod_spec["containers"]
    workdir = tempfile.TemporaryDirectory(prefix="podrun-")
    argv = [*engine_command, "run", "--rm", "--network", "host"]
    if name:
        argv += ["--name", name]
    security = {**pod_spec.get("securityContext", {}), **container.get("securityContext", {})}
    if "runAsUser" in security:
        argv += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', security['runAsUser'])}"]
    if security.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
        if engine_command[0] == "podman":
            argv.append("--read-only-tmpfs=false")
    if "ALL" in security.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", "ALL"]
    if security.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]

    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        path = mount["mountPath"]
        if "emptyDir" in volume:
            size = volume["emptyDir"].get("sizeLimit")
            options = "rw,mode=1777" + (f",size={_quantity_to_podman(size)}" if size else "")
            argv += ["--tmpfs", f"{path}:{options}"]
        elif "secret" in volume or "configMap" in volume:
            kind = "secret" if "secret" in volume else "configMap"
            ref = volume[kind]
            source_name = ref.get("secretName") or ref.get("name")
            data = (secrets if kind == "secret" else configmaps).get(source_name, {})
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            folder = Path(workdir.name) / mount["name"]
            folder.mkdir(mode=0o755)
            for item in items:
                target = folder / item["path"]
                target.write_text(data[item["key"]])
                target.chmod(0o644)
            sub = mount.get("subPath")
            host = folder / sub if sub else folder
            argv += ["-v", f"{host}:{path}:ro"]
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            if claim not in claims:
                raise UnsupportedPodSpec(f"volume {mount['name']}: no host folder for claim {claim} (the pod would stay Pending)")
            mode = "ro" if mount.get("readOnly") or volume["persistentVolumeClaim"].get("readOnly") else "rw"
            argv += ["-v", f"{claims[claim]}:{path}:{mode}"]
        else:
            raise UnsupportedPodSpec(
                f"volume {mount['name']}: only emptyDir, secret, configMap and persistentVolumeClaim are modelled")

    env: dict[str, str] = {}
    for entry in container.get("env", []):
        value = _env_value(entry, secrets, configmaps, fields, env, container)
        if value is not None:
            env[entry["name"]] = value
    env.update(env_overrides or {})
    for key in env:
        argv += ["--env", key]
    command = [expand(part, env) for part in container.get("command") or []]
    if command:
        argv += ["--entrypoint", command[0]]
    argv.append(image or container["image"])
    argv += command[1:] + [expand(arg, env) for arg in container.get("args", [])]
    return ContainerRun(argv=argv, env=env, workdir=workdir)
