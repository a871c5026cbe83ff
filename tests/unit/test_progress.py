"""One progress throttler (log.Progress) for the upload, the download and pg_restore."""

from __future__ import annotations

import io
import json
import logging

import pytest

from agent_bom_backup.log import Progress, setup_logging


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines():  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    setup_logging("json", "info", stream=stream)

    def read() -> list[dict[str, object]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    logging.getLogger("agent_bom_backup").handlers.clear()


def test_nothing_is_logged_before_the_interval(lines) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    progress = Progress("uploading", 15, clock=clock)
    clock.now += 14.9
    progress.update(bytes=1)
    assert lines() == []


def test_one_line_per_interval_with_the_latest_fields(lines) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    progress = Progress("downloading", 5, clock=clock)
    for step in range(1, 12):
        clock.now += 1
        progress.update(bytes=step)
    assert [(line["message"], line["bytes"]) for line in lines()] == [("downloading", 5), ("downloading", 10)]
