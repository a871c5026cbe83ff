"""`backup --metrics-file`: Prometheus textfile-collector metrics of the last success."""

from __future__ import annotations

from datetime import datetime

from tests.operator.conftest import SessionBackup


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            samples[name] = float(value)
    return samples


def _types(text: str) -> dict[str, str]:
    return {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_metrics_file_has_the_three_gauges(op_backup: SessionBackup) -> None:
    assert _types(op_backup.metrics_file.read_text()) == {
        "agent_bom_backup_last_success_timestamp_seconds": "gauge",
        "agent_bom_backup_last_size_bytes": "gauge",
        "agent_bom_backup_last_duration_seconds": "gauge",
    }


def test_last_success_is_the_manifest_finish_time(op_backup: SessionBackup) -> None:
    finished = datetime.fromisoformat(op_backup.real.manifest["finished_at"]).timestamp()
    samples = _samples(op_backup.metrics_file.read_text())
    assert abs(samples["agent_bom_backup_last_success_timestamp_seconds"] - finished) < 1


def test_size_is_the_dump_object_size(op_backup: SessionBackup) -> None:
    samples = _samples(op_backup.metrics_file.read_text())
    assert samples["agent_bom_backup_last_size_bytes"] == len(op_backup.real.dump)


def test_duration_is_positive_and_bounded(op_backup: SessionBackup) -> None:
    samples = _samples(op_backup.metrics_file.read_text())
    assert 0 < samples["agent_bom_backup_last_duration_seconds"] < 120


def test_no_temporary_file_is_left_next_to_it(op_backup: SessionBackup) -> None:
    assert [p.name for p in op_backup.metrics_file.parent.iterdir()] == [op_backup.metrics_file.name]
