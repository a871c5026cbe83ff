"""What the process may use (resources.py): the memory budget's default and the CPU count,
read from fake cgroup trees (v2 and v1) laid out like the kernel's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_bom_backup.resources import (
    DEFAULT_MEMORY_BUDGET,
    Cgroups,
    cpu_count,
    memory_budget,
)

MiB = 1024 * 1024
V1_UNLIMITED = "9223372036854771712"


def cgroup_tree(tmp_path: Path, proc: str, files: dict[str, str]) -> Cgroups:
    """``proc`` is /proc/self/cgroup; ``files`` maps paths under the cgroup root to contents."""
    root = tmp_path / "cgroup"
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    proc_file = tmp_path / "proc-self-cgroup"
    proc_file.write_text(proc)
    return Cgroups(root=root, proc_cgroup=proc_file)


def test_v2_memory_max_of_the_process_group(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "0::/kubepods/pod1/ctr\n", {"kubepods/pod1/ctr/memory.max": str(512 * MiB)})
    assert cgroups.memory_limit() == 512 * MiB


def test_v2_the_smallest_limit_on_the_way_up_counts(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "0::/kubepods/pod1/ctr\n", {
        "kubepods/pod1/ctr/memory.max": "max",
        "kubepods/pod1/memory.max": str(768 * MiB),
        "kubepods/memory.max": str(64 * 1024 * MiB),
    })
    assert cgroups.memory_limit() == 768 * MiB


def test_v2_inside_a_cgroup_namespace_reads_the_root(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "0::/\n", {"memory.max": str(2048 * MiB)})
    assert cgroups.memory_limit() == 2048 * MiB


def test_v2_max_everywhere_is_no_limit(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "0::/user.slice\n", {"user.slice/memory.max": "max", "memory.max": "max"})
    assert cgroups.memory_limit() is None


def test_v1_memory_limit(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n",
                          {"memory/docker/abc/memory.limit_in_bytes": str(300 * MiB)})
    assert cgroups.memory_limit() == 300 * MiB


def test_v1_unlimited_is_no_limit(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "4:memory:/process_api/x\n", {
        "memory/process_api/x/memory.limit_in_bytes": V1_UNLIMITED,
        "memory/memory.limit_in_bytes": V1_UNLIMITED,
    })
    assert cgroups.memory_limit() is None


def test_no_cgroup_file_is_no_limit(tmp_path: Path) -> None:
    assert Cgroups(root=tmp_path / "none", proc_cgroup=tmp_path / "missing").memory_limit() is None


def test_v2_cpu_quota_rounds_up_to_whole_cpus(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "0::/pod\n", {"pod/cpu.max": "150000 100000"})
    assert cpu_count(cgroups) == min(2, len(os.sched_getaffinity(0)))


def test_v1_cpu_quota(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "2:cpu,cpuacct:/pod\n",
                          {"cpu,cpuacct/pod/cpu.cfs_quota_us": "50000", "cpu,cpuacct/pod/cpu.cfs_period_us": "100000"})
    assert cpu_count(cgroups) == 1


def test_no_cpu_quota_is_every_cpu_the_process_may_run_on(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "0::/pod\n", {"pod/cpu.max": "max 100000"})
    assert cpu_count(cgroups) == len(os.sched_getaffinity(0))


def test_the_cpu_count_is_at_least_one(tmp_path: Path) -> None:
    cgroups = cgroup_tree(tmp_path, "0::/pod\n", {"pod/cpu.max": "1000 100000"})
    assert cpu_count(cgroups) == 1


# ----------------------------------------------------------------------------- the budget
@pytest.fixture
def limited(tmp_path: Path) -> Cgroups:
    return cgroup_tree(tmp_path, "0::/pod\n", {"pod/memory.max": str(1000 * MiB)})


def test_an_explicit_budget_wins(limited: Cgroups) -> None:
    assert memory_budget(300 * MiB, 4000 * MiB, limited).limit == 300 * MiB


def test_the_budget_is_60_percent_of_the_container_limit(limited: Cgroups) -> None:
    chosen = memory_budget(None, 2560 * MiB, limited)
    assert (chosen.limit, chosen.source) == (1536 * MiB, "60% of the container's memory limit 2.5 GiB")


def test_without_the_downward_api_the_cgroup_limit_counts(limited: Cgroups) -> None:
    assert memory_budget(None, None, limited).limit == 600 * MiB


def test_without_any_limit_the_budget_is_the_documented_default(tmp_path: Path) -> None:
    nothing = Cgroups(root=tmp_path / "none", proc_cgroup=tmp_path / "missing")
    assert memory_budget(None, None, nothing).limit == DEFAULT_MEMORY_BUDGET == 2 * 1024 * MiB
