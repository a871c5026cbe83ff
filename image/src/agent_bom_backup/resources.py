"""What this process may use: its container's memory limit and CPU count.

In a pod the chart passes the container's memory limit through the downward API
(``resourceFieldRef: limits.memory`` -> ``AGENT_BOM_BACKUP_MEMORY_LIMIT``, in bytes). Elsewhere
(and for the CPU count) the process's cgroup says: ``memory.max`` / ``cpu.max`` (v2) or
``memory.limit_in_bytes`` / ``cpu.cfs_quota_us`` (v1), the smallest limit on the way from
the process's own group up to the root, which is what the kernel enforces.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .units import human_size

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
#: cgroup v1 reports "no limit" as a page-aligned LONG_MAX; anything this large is none
UNLIMITED = 1 << 60
#: the share of the container's memory limit the backup may fill; the rest is pg_dump's
#: (its catalog in memory) and the page cache's
BUDGET_SHARE = 0.6
#: the budget when no limit is known (documented in docs/limits.md)
DEFAULT_MEMORY_BUDGET = 2 * 1024**3


@dataclass(frozen=True)
class Cgroups:
    """Where to read the process's cgroups (a fake tree in tests)."""

    root: Path = CGROUP_ROOT
    proc_cgroup: Path = PROC_CGROUP

    def _groups(self) -> dict[str, str]:
        """controller ("" for v2) -> the process's group path."""
        groups: dict[str, str] = {}
        try:
            text = self.proc_cgroup.read_text()
        except OSError:
            return groups
        for line in text.splitlines():
            _, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            for controller in controllers.split(","):
                groups.setdefault(controller, path)
        return groups

    def _dirs(self, mount: Path, group: str) -> list[Path]:
        """The group's directory and its ancestors up to the mount (inside a container's
        cgroup namespace the group is "/" and the mount is the container's own group)."""
        dirs = []
        path = mount / group.strip("/")
        while True:
            dirs.append(path)
            if path == mount or mount not in path.parents:
                break
            path = path.parent
        return dirs

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text().strip()
        except OSError:
            return None

    def memory_limit(self) -> int | None:
        """The smallest memory limit on the process's cgroup path, in bytes (None: none)."""
        groups = self._groups()
        limits: list[int] = []
        if "" in groups:
            for directory in self._dirs(self.root, groups[""]):
                value = self._read(directory / "memory.max")
                if value and value.isdigit():
                    limits.append(int(value))
        if "memory" in groups:
            for directory in self._dirs(self.root / "memory", groups["memory"]):
                value = self._read(directory / "memory.limit_in_bytes")
                if value and value.isdigit() and int(value) < UNLIMITED:
                    limits.append(int(value))
        return min(limits) if limits else None

    def cpu_quota(self) -> float | None:
        """The smallest CPU quota on the process's cgroup path, in CPUs (None: none)."""
        groups = self._groups()
        quotas: list[float] = []
        if "" in groups:
            for directory in self._dirs(self.root, groups[""]):
                quota, _, period = (self._read(directory / "cpu.max") or "").partition(" ")
                if quota.isdigit() and period.isdigit() and int(period) > 0:
                    quotas.append(int(quota) / int(period))
        # v1 mounts the cpu controller as cpu,cpuacct (with a cpu link on most systems)
        mount = next((self.root / name for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu")
                      if (self.root / name).is_dir()), None)
        if "cpu" in groups and mount is not None:
            for directory in self._dirs(mount, groups["cpu"]):
                quota_text = self._read(directory / "cpu.cfs_quota_us") or ""
                period_text = self._read(directory / "cpu.cfs_period_us") or ""
                if quota_text.isdigit() and period_text.isdigit() and int(period_text) > 0:
                    quotas.append(int(quota_text) / int(period_text))
        return min(quotas) if quotas else None


def cpu_count(cgroups: Cgroups = Cgroups()) -> int:
    """CPUs this process may use: the CPUs it may run on, fewer when a CPU quota is set
    (a quota of 1.5 CPUs counts as 2); at least 1."""
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count() or 1
    quota = cgroups.cpu_quota()
    if quota is not None:
        available = min(available, math.ceil(quota))
    return max(1, available)


@dataclass(frozen=True)
class MemoryBudget:
    """The memory the backup CLI may use, and where that figure came from."""

    limit: int
    source: str

    def __str__(self) -> str:
        return f"{human_size(self.limit)} ({self.source})"


def memory_budget(explicit: int | None = None, container_limit: int | None = None,
                  cgroups: Cgroups = Cgroups()) -> MemoryBudget:
    """``--memory-budget`` when given; else 60 % of the container's memory limit (the
    downward API's value), else of the cgroup's; else the documented default."""
    if explicit:
        return MemoryBudget(explicit, "--memory-budget")
    if container_limit:
        return MemoryBudget(int(container_limit * BUDGET_SHARE),
                            f"60% of the container's memory limit {human_size(container_limit)}")
    limit = cgroups.memory_limit()
    if limit:
        return MemoryBudget(int(limit * BUDGET_SHARE), f"60% of the cgroup's memory limit {human_size(limit)}")
    return MemoryBudget(DEFAULT_MEMORY_BUDGET, "the default: no memory limit found")
