"""Embedded workers: a background thread of the web process, when ``EMBEDDED_WORKERS`` > 0."""

from __future__ import annotations

import threading

from taskq_core.wsgi import WorkerThread

from .conf import get_taskqueue, read_conf


class _Slot:
    """The one embedded worker thread of this process, if any."""

    lock = threading.Lock()
    current: WorkerThread | None = None


def start_workers() -> WorkerThread | None:
    """Make the embedded workers match the settings: start them (the middleware does at the
    first request), or restart them if ``TASKQ`` changed. None when there are none."""
    count = read_conf().options.embedded_workers
    tq = get_taskqueue()
    with _Slot.lock:
        current = _Slot.current
        if current is not None and current.tq is tq and current.count == count:
            current.start()  # nothing if it runs; again in a forked child, where it does not
            return current
        _Slot.current = None
        if current is not None:
            current.stop()
        if count == 0:
            return None
        workers = WorkerThread(tq, count)
        workers.start()
        _Slot.current = workers
        return workers


def stop_workers() -> None:
    """Stop the embedded workers (running tasks get the grace period) and join their thread.
    Also done at interpreter exit."""
    with _Slot.lock:
        current, _Slot.current = _Slot.current, None
    if current is not None:
        current.stop()
