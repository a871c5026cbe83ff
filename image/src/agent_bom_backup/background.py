"""Work in a daemon thread, its result or exception in a :class:`~concurrent.futures.Future`.

Not a ThreadPoolExecutor: the interpreter joins its workers at exit, so a SIGTERM would
wait for every request in flight (minutes for a large part on a slow link) before the
process could end, and the Pod would be killed with the upload still open. A daemon
thread ends with the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


def in_background(work: Callable[[], T], name: str) -> Future[T]:
    """Start ``work`` in a daemon thread called ``name``; a future that was cancelled
    before the thread got to it does not run it. The thread lets go of ``work`` (and what
    it holds, e.g. an upload's part buffer) before the future completes, so that callbacks
    run when nothing here keeps its memory alive."""
    future: Future[T] = Future()
    pending = [work]

    def run() -> None:
        task = pending.pop()
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = task()
        except BaseException as exc:  # handed to whoever waits for the result
            del task
            future.set_exception(exc)
            return
        del task
        future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
