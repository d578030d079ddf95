"""Checks that an embedded worker pool left nothing behind: no thread, no asyncio task."""

from __future__ import annotations

import asyncio
import threading


def taskq_threads() -> set[threading.Thread]:
    """Threads a worker starts: the lease renewer and the sync-task pool."""
    return {t for t in threading.enumerate() if t.name.startswith("taskq-")}


def leftover_threads(before: set[threading.Thread], timeout: float = 15.0) -> list[str]:
    """Worker threads started since ``before`` that are still alive after ``timeout``.

    A stopped worker shuts its idle pool down without waiting, so its threads are joined
    here (an event wait, not a sleep) before anything is called a leak.
    """
    new = taskq_threads() - before
    for t in new:
        t.join(timeout)
    return sorted(t.name for t in new if t.is_alive())


def embedded_tasks() -> list[str]:
    """Names of the embedded workers' asyncio tasks alive in the running loop."""
    return sorted(
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith("taskq-embedded") and not t.done()
    )
