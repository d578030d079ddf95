"""A worker running in a thread of the test process, and a bounded wait for a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from taskq_core import TaskQueue
from taskq_core.worker import Worker


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """``cond()``'s first true value, polled every 20 ms; the test fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (found := cond()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return found


class InThread:
    """A worker of ``tq`` running in a thread named by the worker's id (async tasks run in
    that thread, so its name tells which worker ran them)."""

    def __init__(self, tq: TaskQueue, **options: Any) -> None:
        self.worker = Worker(tq, handle_signals=False, **options)
        self.thread = threading.Thread(target=self.worker.run, name=self.worker.id, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        loop = self.worker._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(20)
