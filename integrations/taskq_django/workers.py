"""Embedded workers: a background thread of the web process, when ``EMBEDDED_WORKERS`` > 0."""

from __future__ import annotations

import logging
import os
import sys
import threading

from taskq_core.errors import ConfigurationError
from taskq_core.prefork import start_when_serving
from taskq_core.wsgi import WorkerThread

from .conf import get_taskqueue, read_conf

log = logging.getLogger("taskq.django")


class _Slot:
    """The one embedded worker thread of this process, if any."""

    lock = threading.Lock()
    current: WorkerThread | None = None


def start_workers(*, wait: bool = True) -> WorkerThread | None:
    """Make the embedded workers match the settings: start them, or restart them if ``TASKQ``
    changed. None when there are none.

    The app starts them when a serving process starts (:func:`start_when_serving`); the
    middleware calls this at each request too, a fallback for servers taskq does not
    recognise. ``wait=False`` does not wait for the workers to run (for fork hooks).
    """
    count = read_conf().options.embedded_workers
    tq = get_taskqueue()
    with _Slot.lock:
        current = _Slot.current
        if current is not None and current.tq is tq and current.count == count:
            current.start(
                wait=wait
            )  # nothing if it runs; again in a forked child, where it does not
            return current
        _Slot.current = None
        if current is not None:
            current.stop()
        if count == 0:
            return None
        workers = WorkerThread(tq, count)
        workers.start(wait=wait)
        _Slot.current = workers
        return workers


def stop_workers() -> None:
    """Stop the embedded workers (running tasks get the grace period) and join their thread.
    Also done at interpreter exit."""
    with _Slot.lock:
        current, _Slot.current = _Slot.current, None
    if current is not None:
        current.stop()


def runserver_serves(argv: list[str] | None = None) -> bool | None:
    """Under ``manage.py runserver``: True in the process that serves (the autoreloader's
    child, or ``--noreload``), False in the autoreloader's parent (it only restarts the
    child). None under any other command or server."""
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] != "runserver":
        return None
    if os.environ.get("RUN_MAIN") == "true":
        return True
    return "--noreload" in argv


def start_when_serving_process() -> None:
    """Start the embedded workers, if ``EMBEDDED_WORKERS`` asks for them, when this process
    serves requests (called when the app is ready): see :mod:`taskq_core.prefork`."""
    try:
        count = read_conf().options.embedded_workers
    except ConfigurationError:
        return  # the system checks name the problem (manage.py check must still run)
    if count:
        moment = start_when_serving(_start, dev_server=runserver_serves())
        log.debug("embedded workers: start %s", moment)


def _start(wait: bool) -> None:
    start_workers(wait=wait)
