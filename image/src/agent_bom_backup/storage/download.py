"""Download: an object copied to a local file as one stream, or, when the store serves
ranges cheaply, as parallel ranged GETs written at their offsets and hashed in order as
they complete.

Whether ranges are cheap is measured, never assumed from the store's name: a ranged GET of
the object's last MiB runs beside the stream (:func:`range_verdict`). A store known to read
the whole object for every GET (moto) is best given no probe at all: the caller passes no
threshold (``--parallel-download-threshold off``, what the test harness and the benchmark
set for moto).
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from ..background import in_background
from ..errors import StorageError
from ..log import event, get_logger
from ..parts import MiB
from .config import ProgressCallback, StorageConfig
from .errors import UNREACHABLE_HINT, _disk_error, storage_error

#: parallel ranged downloads (restore): objects from this size on, in ranges of this size,
#: this many at a time (what ``aws s3 cp`` does: 8 MiB ranges, 10 threads)
DEFAULT_PARALLEL_DOWNLOAD_THRESHOLD = 64 * MiB
DOWNLOAD_RANGE_SIZE = 16 * MiB
DOWNLOAD_CONCURRENCY = 8
#: a store whose ranged GET of 1 MiB (while the stream runs) takes longer than this x a
#: HEAD plus this slack is not worth ranges (Ceph RGW, measured: 8-40 ms vs 5 ms; moto,
#: which reads the whole object for every GET: 8 MiB ranges of a 753 MB object took 40 s
#: instead of ~1 s)
RANGE_PROBE_BYTES = MiB
RANGE_PROBE_FACTOR = 4
RANGE_PROBE_SLACK_S = 0.1


@dataclass(frozen=True)
class RangeProbe:
    """What a ranged GET said about the store: whether ranges are cheap, else why not."""

    cheap: bool
    why: str
    timings: dict[str, float] = field(default_factory=dict)


def range_verdict(start: int, answered: str, timings: dict[str, float]) -> RangeProbe:
    """Whether ranged GETs are cheap, from a ranged GET from ``start`` to the object's end:
    the store answered that range (``answered``: its Content-Range; a store that ignores
    ranges answers with the whole object) not much slower than a HEAD (``timings``:
    ``head_seconds``, ``ranged_get_seconds``)."""
    if not answered.startswith(f"bytes {start}-"):
        return RangeProbe(False, "the store ignores ranged GETs", timings)
    if timings["ranged_get_seconds"] > RANGE_PROBE_FACTOR * timings["head_seconds"] + RANGE_PROBE_SLACK_S:
        return RangeProbe(False, "the store reads the whole object for a ranged GET", timings)
    return RangeProbe(True, "", timings)


def head_object(client: Any, config: StorageConfig, key: str) -> dict[str, Any]:
    try:
        return dict(client.head_object(Bucket=config.bucket, Key=key))
    except (ClientError, BotoCoreError) as exc:
        raise storage_error(exc, "reading the metadata of", config.uri(key)) from None


@dataclass
class ObjectDownload:
    """One object of the bucket copied to a local file (:meth:`to_file`)."""

    client: Any
    config: StorageConfig
    key: str
    progress: ProgressCallback | None = None

    @property
    def uri(self) -> str:
        return self.config.uri(self.key)

    def to_file(self, path: Path, parallel_threshold: int | None) -> tuple[int, str]:
        """Copy the object to the file ``path`` (created or replaced); returns (size, sha256)
        of what was read, hashed in order. ``progress`` gets the bytes written so far.

        The object comes as one stream. One of at least ``parallel_threshold`` bytes (None:
        never) is also probed meanwhile (:meth:`_probe_ranges`): when the store serves ranges
        cheaply, the stream stops and the rest comes as :data:`DOWNLOAD_CONCURRENCY`
        parallel ranged GETs of :data:`DOWNLOAD_RANGE_SIZE` written at their offsets, hashed
        in order as they complete (read back from the file, which is in the page cache).
        The stream never waits for the probe.
        """
        try:
            with open(path, "w+b") as handle:  # read back too: ranges are hashed from the file
                started = time.monotonic()
                head = head_object(self.client, self.config, self.key)
                head_s = time.monotonic() - started
                size = int(head.get("ContentLength", 0))
                probe = None
                if parallel_threshold is not None and size >= max(parallel_threshold, RANGE_PROBE_BYTES):
                    probe = in_background(lambda: self._probe_ranges(size, head_s), "range-probe")
                hasher = hashlib.sha256()
                position, switched = self._stream(handle, hasher, probe, size)
                if not switched:
                    return position, hasher.hexdigest()
                _Ranges.of(self, handle.fileno(), position, size).fetch(hasher)
                return size, hasher.hexdigest()
        except OSError as exc:
            raise _disk_error(exc, self.uri) from None

    def _stream(self, handle: BinaryIO, hasher: Any, probe: Future[RangeProbe] | None,
                size: int) -> tuple[int, bool]:
        """Stream the object into ``handle`` until it ends, or until ``probe`` finds ranges
        cheap; returns the bytes written and whether the rest is for ranges to fetch."""
        position = 0
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=self.key)
            body = response["Body"]
            while True:
                if probe is not None and probe.done():
                    verdict = probe.result() if probe.exception() is None else RangeProbe(False, "the probe failed")
                    probe = None
                    if self._switch_to_ranges(verdict, position, size):
                        body.close()
                        return position, True
                chunk = body.read(MiB)
                if not chunk:
                    return position, False
                hasher.update(chunk)
                handle.write(chunk)
                position += len(chunk)
                if self.progress:
                    self.progress(position)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "downloading", self.uri) from None

    @staticmethod
    def _switch_to_ranges(verdict: RangeProbe, position: int, size: int) -> bool:
        """Whether the stream, at ``position``, gives way to ranges (logged either way)."""
        log = get_logger()
        if verdict.cheap and size - position > DOWNLOAD_RANGE_SIZE:
            event(log, "downloading in parallel ranges", bytes=size, offset=position,
                  range_size=DOWNLOAD_RANGE_SIZE, concurrency=DOWNLOAD_CONCURRENCY, **verdict.timings)
            return True
        if not verdict.cheap:
            event(log, f"{verdict.why}: downloading in one stream", bytes=size, **verdict.timings)
        return False

    def _probe_ranges(self, size: int, head_s: float) -> RangeProbe:
        """A ranged GET of the object's last MiB, judged by :func:`range_verdict`. 1 MiB, not
        1 byte: a tiny answer can wait 40 ms for a delayed TCP ACK."""
        start = size - RANGE_PROBE_BYTES
        started = time.monotonic()
        response = self.client.get_object(Bucket=self.config.bucket, Key=self.key, Range=f"bytes={start}-{size - 1}")
        answered = str(response.get("ContentRange", ""))
        response["Body"].close()
        timings = {"head_seconds": round(head_s, 3), "ranged_get_seconds": round(time.monotonic() - started, 3)}
        return range_verdict(start, answered, timings)

    def fetch_range(self, fd: int, start: int, end: int, stop: threading.Event,
                    wrote: Callable[[int], None]) -> None:
        """Bytes ``start`` to ``end`` of the object written at their offsets in ``fd``."""
        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=self.key,
                                              Range=f"bytes={start}-{end - 1}")
            answered = str(response.get("ContentRange", ""))
            if not answered.startswith(f"bytes {start}-{end - 1}/"):
                raise StorageError(f"downloading {self.uri} failed: the store answered the range {start}-{end - 1} "
                                   f"with {answered or 'the whole object'}", hint=UNREACHABLE_HINT)
            body = response["Body"]
            position = start
            while position < end and not stop.is_set():
                chunk = body.read(min(MiB, end - position))
                if not chunk:
                    raise StorageError(f"downloading {self.uri} failed: the range {start}-{end - 1} ended early")
                view = memoryview(chunk)
                while view:
                    count = os.pwrite(fd, view, position)
                    view = view[count:]
                    position += count
                wrote(len(chunk))
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, "downloading", self.uri) from None


@dataclass
class _Ranges:
    """``offset`` to ``size`` of a download in ranges fetched by worker threads, hashed by
    the calling thread in order as each completes."""

    download: ObjectDownload
    fd: int
    offset: int
    ranges: list[tuple[int, int]]
    results: list[Future[None]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    written: int = 0

    @classmethod
    def of(cls, download: ObjectDownload, fd: int, offset: int, size: int) -> _Ranges:
        try:
            os.posix_fallocate(fd, offset, size - offset)  # no space: fail now, not at the last range
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        ranges = [(start, min(start + DOWNLOAD_RANGE_SIZE, size)) for start in range(offset, size, DOWNLOAD_RANGE_SIZE)]
        return cls(download, fd, offset, ranges, [Future() for _ in ranges], written=offset)

    def fetch(self, hasher: Any) -> None:
        pending = iter(range(len(self.ranges)))
        for number in range(min(DOWNLOAD_CONCURRENCY, len(self.ranges))):
            threading.Thread(target=self._worker, args=(pending,), name=f"download-{number}", daemon=True).start()
        try:
            for (start, end), result in zip(self.ranges, self.results):
                result.result()
                self._hash(hasher, start, end)
        finally:
            self.stop.set()
            for result in self.results:
                result.cancel()

    def _hash(self, hasher: Any, start: int, end: int) -> None:
        position = start
        while position < end:
            chunk = os.pread(self.fd, min(MiB, end - position), position)
            if not chunk:
                raise StorageError(f"the download of {self.download.uri} is shorter than its ranges")
            hasher.update(chunk)
            position += len(chunk)

    def _wrote(self, count: int) -> None:
        with self.lock:
            self.written += count
            done = self.written
        if self.download.progress:
            self.download.progress(done)

    def _worker(self, pending: Any) -> None:
        while not self.stop.is_set():
            with self.lock:
                index = next(pending, None)
            if index is None:
                return
            result = self.results[index]
            if not result.set_running_or_notify_cancel():
                continue
            try:
                self.download.fetch_range(self.fd, *self.ranges[index], self.stop, self._wrote)
                result.set_result(None)
            except BaseException as exc:  # handed to the hashing thread
                result.set_exception(exc)
