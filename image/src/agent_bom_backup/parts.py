"""Multipart part sizes, and the memory their buffers may take (no boto3 here).

A dump's length is unknown while it streams, and S3 allows at most 10,000 parts of
5 MiB-5 GiB, so part sizes grow as the upload proceeds (:class:`PartSchedule`). Every part
is held in memory while it uploads (S3 needs its length up front, and a retry sends it
again), so the parts in flight are what the backup's memory grows with. An
:class:`UploadPlan` keeps them within a memory budget at every dump size: the number of
buffers falls as parts grow (down to one: read a part, upload it, read the next), parts
stop growing at what the budget holds. A budget too small for the parts a 5 TiB dump
needs caps them lower, which caps the dump size too: the backup says so at start and a
dump that outgrows it fails cleanly (only a budget that cannot hold one first part is
refused). :class:`PartBuffers` hands out the buffers and takes them back when a part's
upload finishes.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from .background import in_background
from .errors import ConfigError, StorageError
from .resources import BUDGET_SHARE, MemoryBudget
from .units import human_size

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TiB
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_GROWTH_INTERVAL = 900
DEFAULT_CONCURRENCY = 4
#: the backup process's own memory besides its part buffers: the interpreter, its
#: libraries, botocore's connections and the manifest (measured ~70 MiB with 8 MiB
#: parts; docs/limits.md)
PROCESS_RESERVE = 96 * MiB


@dataclass(frozen=True)
class PartSchedule:
    """Part sizes for a stream of unknown length.

    Part n (1-based) is ``initial x 2**((n-1) // growth_interval)``, at most ``max_size``
    (S3's 5 GiB, or less under a memory budget). With the defaults (8 MiB, doubling every
    900 parts) 10,000 parts hold ~11.9 TiB, well past S3's 5 TiB object limit; any start
    size >= 5 MiB reaches it.
    """

    initial: int = DEFAULT_PART_SIZE
    growth_interval: int = DEFAULT_GROWTH_INTERVAL
    max_size: int = MAX_PART_SIZE

    def validate(self) -> None:
        if self.initial < MIN_PART_SIZE or self.initial > MAX_PART_SIZE:
            raise ConfigError(
                f"part size {self.initial} is outside S3's limits",
                hint="use 5MiB..5GiB (e.g. 8MiB)",
            )
        if self.growth_interval < 1:
            raise ConfigError("part growth interval must be at least 1 part")

    def size(self, part_number: int) -> int:
        steps = (part_number - 1) // self.growth_interval
        return min(self.initial << min(steps, 40), self.max_size)

    def capacity(self, parts: int = MAX_PARTS) -> int:
        """Bytes that ``parts`` parts can hold (a tier of equal parts at a time)."""
        total = 0
        done = 0
        while done < parts:
            size = self.size(done + 1)
            if size >= self.max_size:
                return total + (parts - done) * size
            count = min(self.growth_interval, parts - done)
            total += count * size
            done += count
        return total

    def capped(self, max_size: int) -> PartSchedule:
        return replace(self, max_size=min(self.max_size, max_size))

    def smallest_cap_reaching(self, total: int = MAX_OBJECT_SIZE) -> int | None:
        """The smallest largest part (a whole number of MiB, at least ``initial``) with which
        10,000 parts hold ``total`` bytes; None when not even 5 GiB parts do."""
        if self.capped(MAX_PART_SIZE).capacity() < total:
            return None
        low, high = self.initial // MiB, MAX_PART_SIZE // MiB
        while low < high:
            middle = (low + high) // 2
            if self.capped(middle * MiB).capacity() >= total:
                high = middle
            else:
                low = middle + 1
        return max(low * MiB, self.initial)

    def describe(self) -> str:
        interval = "never grows" if self.growth_interval >= MAX_PARTS else f"doubling every {self.growth_interval} parts"
        return f"{human_size(self.initial)}, {interval}, at most {human_size(self.max_size)}"


@dataclass(frozen=True)
class UploadPlan:
    """How a dump is uploaded within a memory budget: its part schedule (capped at what
    the budget holds), and how many part buffers may exist at a time for each part size
    (``concurrency`` uploading plus one being read, fewer as parts grow)."""

    schedule: PartSchedule
    concurrency: int
    budget: MemoryBudget

    @property
    def buffer_bytes(self) -> int:
        """The budget less the process's own memory: what part buffers may take."""
        return self.budget.limit - PROCESS_RESERVE

    @property
    def max_dump_size(self) -> int:
        """The largest dump this plan uploads: what 10,000 parts hold, at most S3's 5 TiB."""
        return min(self.schedule.capacity(), MAX_OBJECT_SIZE)

    def ceiling_warning(self) -> tuple[str, str] | None:
        """(message, hint) when the budget keeps the dump below S3's 5 TiB object limit."""
        if self.max_dump_size >= MAX_OBJECT_SIZE:
            return None
        full = replace(self.schedule, max_size=MAX_PART_SIZE)
        needed = full.smallest_cap_reaching(MAX_OBJECT_SIZE) or MAX_PART_SIZE
        minimum = needed + PROCESS_RESERVE
        return (
            f"memory budget {self.budget} holds upload parts of at most {human_size(self.schedule.max_size)}: "
            f"dumps up to {human_size(self.max_dump_size)} (S3 allows 5 TiB); a larger dump fails when it gets "
            "there, leaving no object",
            f"for dumps up to 5 TiB set --memory-budget (AGENT_BOM_BACKUP_MEMORY_BUDGET) to at least "
            f"{_round_up_mib(minimum)}, or a container memory limit of at least "
            f"{_round_up_mib(int(minimum / BUDGET_SHARE))} (chart: controlPlane.backup.resources.limits.memory)",
        )

    def buffers(self, part_size: int) -> int:
        """Part buffers allowed while parts are ``part_size`` bytes (at least one)."""
        return max(1, min(self.concurrency + 1, self.buffer_bytes // max(part_size, 1)))

    def to_log(self) -> dict[str, object]:
        return {"part_size": self.schedule.initial, "part_growth_interval": self.schedule.growth_interval,
                "max_part_size": self.schedule.max_size, "upload_concurrency": self.concurrency,
                "memory_budget": self.budget.limit, "memory_budget_source": self.budget.source,
                "buffer_bytes": self.buffer_bytes, "max_dump_size": self.max_dump_size}


def plan_upload(schedule: PartSchedule, concurrency: int, budget: MemoryBudget) -> UploadPlan:
    """The upload plan, or a :class:`ConfigError` (exit 3, before anything is touched) when
    the schedule cannot reach S3's 5 TiB object limit or the budget cannot hold even the
    first part.

    Parts stop growing at half of what the budget holds for buffers (two parts: one
    uploading while the next is read) when that still reaches 5 TiB, else at all of it.
    A budget below what a 5 TiB dump's parts need caps them there: the plan then holds a
    smaller dump (:meth:`UploadPlan.ceiling_warning` says how large), and refusing every
    backup of a database far below that size would help nobody.
    """
    schedule.validate()
    needed = schedule.smallest_cap_reaching(MAX_OBJECT_SIZE)
    if needed is None:
        raise ConfigError(
            f"part schedule {schedule.describe()} cannot reach S3's 5 TiB object limit within "
            f"{MAX_PARTS} parts (it stops at {human_size(schedule.capped(MAX_PART_SIZE).capacity())})",
            hint="lower --part-growth-interval (AGENT_BOM_BACKUP_PART_GROWTH_INTERVAL) or raise --part-size",
        )
    room = budget.limit - PROCESS_RESERVE
    if room < schedule.initial:
        least, full = schedule.initial + PROCESS_RESERVE, needed + PROCESS_RESERVE
        raise ConfigError(
            f"memory budget {budget} leaves {human_size(max(room, 0))} for upload buffers, less than one "
            f"{human_size(schedule.initial)} part (part schedule {schedule.describe()})",
            hint=f"set --memory-budget (AGENT_BOM_BACKUP_MEMORY_BUDGET) to at least {_round_up_mib(least)}, or a "
            f"container memory limit of at least {_round_up_mib(int(least / BUDGET_SHARE))} (chart: "
            f"controlPlane.backup.resources.limits.memory); {_round_up_mib(full)} and "
            f"{_round_up_mib(int(full / BUDGET_SHARE))} hold dumps up to S3's 5 TiB",
        )
    pair = (room // 2) // MiB * MiB
    if pair >= needed:
        cap = pair
    else:
        cap = room // MiB * MiB
    return UploadPlan(schedule.capped(cap), max(1, concurrency), budget)


def _round_up_mib(size: int) -> str:
    return f"{-(-size // MiB)}MiB"


class BuffersClosed(Exception):
    """Raised in a reader waiting for a buffer when the upload stopped."""


class PartBuffers:
    """Reusable part buffers within an :class:`UploadPlan`'s memory: :meth:`take` blocks
    until a buffer of the size asked for may exist (every buffer, free or in use, counts
    until it is dropped), :meth:`give_back` returns one when its part's upload finished.
    Part sizes only grow: a free buffer of a smaller size is dropped.

    A dropped buffer's memory is released at once (:func:`_release`), not when its last
    reference goes: a thread that just gave a buffer back may still hold one (the GIL can
    keep it from returning while the reader allocates the next, larger buffer, which
    would then briefly hold both)."""

    def __init__(self, plan: UploadPlan) -> None:
        self.plan = plan
        self._condition = threading.Condition()
        self._free: list[bytearray] = []
        self._held = 0
        self._count = 0
        self._closed = False
        #: the most bytes the buffers held at once
        self.peak = 0

    def take(self, size: int) -> bytearray:
        with self._condition:
            while True:
                if self._closed:
                    raise BuffersClosed
                for index in reversed(range(len(self._free))):
                    if len(self._free[index]) != size:
                        self._drop(self._free.pop(index))
                if self._free:
                    return self._free.pop()
                fits = self._held + size <= self.plan.buffer_bytes or self._count == 0
                if self._count < self.plan.buffers(size) and fits:
                    self._held += size
                    self._count += 1
                    self.peak = max(self.peak, self._held)
                    break
                self._condition.wait()
        return bytearray(size)

    def give_back(self, buffer: bytearray, size: int) -> None:
        """Return a buffer taken for ``size`` bytes; one cut short (the last part) is dropped."""
        with self._condition:
            if len(buffer) == size and not self._closed:
                self._free.append(buffer)
            else:
                self._drop(buffer, size)
            self._condition.notify_all()

    def close(self) -> None:
        """Stop: a reader waiting for a buffer gets :class:`BuffersClosed`; free buffers go."""
        with self._condition:
            self._closed = True
            while self._free:
                self._drop(self._free.pop())
            self._condition.notify_all()

    def _drop(self, buffer: bytearray, size: int | None = None) -> None:
        self._held -= len(buffer) if size is None else size
        self._count -= 1
        _release(buffer)


def _release(buffer: bytearray) -> None:
    """Give a buffer's memory back now, whoever still refers to it (emptying a bytearray
    frees its allocation). One still exported (a memoryview of it in use) is left alone."""
    try:
        del buffer[:]
    except BufferError:
        pass


@dataclass(frozen=True)
class Part:
    number: int
    #: the part's bytes: a buffer of ``size`` bytes, cut to ``len(data)`` for the last part
    data: bytearray
    size: int


#: fills a part buffer from the stream and returns how many bytes it holds (fewer than
#: the buffer's length only at the stream's end)
Fill = Callable[[bytearray], int]


def fill_with(*, read: Callable[[int], bytes] | None = None,
              readinto: Callable[[memoryview], int] | None = None) -> Fill:
    """A :data:`Fill` from ``readinto(view)`` (fills the buffer in place: the dump's pipe)
    or ``read(n)`` (returns up to ``n`` bytes, copied into the buffer)."""
    if (read is None) == (readinto is None):
        raise TypeError("give the stream as read or as readinto")

    def fill(buffer: bytearray) -> int:
        with memoryview(buffer) as view:
            if read is not None:
                data = read(len(view))
                view[: len(data)] = data
                return len(data)
            filled = 0
            while filled < len(view):
                count = readinto(view[filled:])  # type: ignore[misc]
                if not count:
                    break
                filled += count
            return filled

    return fill


class PartReader:
    """Reads a stream into part buffers in a background thread, ahead of the uploads as
    far as the plan's buffers allow: while the bucket is checked and the backup id
    claimed, and while parts upload, the dump keeps flowing. The stream's SHA-256 and
    length are computed as it is read. Iterate to get the parts in order."""

    def __init__(self, plan: UploadPlan, fill: Fill) -> None:
        self.plan = plan
        self.buffers = PartBuffers(plan)
        self.hasher = hashlib.sha256()
        #: bytes read so far
        self.total = 0
        self._fill = fill
        self._parts: queue.Queue[Part | BaseException | None] = queue.Queue()
        in_background(self._read, "read-parts")

    def _read(self) -> None:
        try:
            number = 0
            while True:
                number += 1
                if number > MAX_PARTS:
                    raise StorageError(
                        f"the dump is larger than the {human_size(self.plan.max_dump_size)} that {MAX_PARTS} parts of "
                        f"at most {human_size(self.plan.schedule.max_size)} hold (memory budget {self.plan.budget})",
                        hint="raise the memory budget (--memory-budget, or the container's memory limit) so parts "
                        "may grow larger, or raise --part-size",
                    )
                size = self.plan.schedule.size(number)
                buffer = self.buffers.take(size)
                length = self._fill(buffer)
                if not length and number > 1:
                    self.buffers.give_back(buffer, size)
                    break
                if length < size:
                    del buffer[length:]  # the last part: the stream ended inside it
                self.hasher.update(buffer)
                self.total += length
                if self.total > MAX_OBJECT_SIZE:
                    raise StorageError("the dump exceeds S3's 5 TiB object limit")
                self._parts.put(Part(number, buffer, size))
                # no reference may outlive the pool's accounting (see __iter__)
                del buffer
                if length < size:
                    break
            self._parts.put(None)
        except BuffersClosed:
            self._parts.put(None)
        except BaseException as exc:  # handed to the thread that iterates
            self._parts.put(exc)

    def __iter__(self) -> Iterator[Part]:
        """The parts in order. A part's buffer goes back to the pool when its upload ends;
        nothing here holds it while waiting for the next (the pool drops buffers when parts
        grow, and a buffer still referenced would be memory outside the budget)."""
        while True:
            item = self._parts.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            del item

    def close(self) -> None:
        """Stop reading (the upload failed): buffers are released as parts come back."""
        self.buffers.close()
