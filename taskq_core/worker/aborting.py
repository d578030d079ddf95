"""Aborting a running task on request (``handle.abort()``, ``POST <prefix>/jobs/{id}/abort``,
``taskq abort``).

The request is stored by the broker (``cancel.lua`` with ``abort``); the worker holding the
task learns of it at its next lease renewal (``renewal.py``), and acts on the loop:

- an async task is cancelled: it stops at its next ``await``;
- a sync task cannot be interrupted safely: ``current_task().aborted`` turns true and its
  next ``current_task().progress(...)`` raises :class:`~taskq_core.errors.TaskAborted`;
- a task leased ahead and not started yet never starts;
- under the supervisor, the child tells it (``abort_requested`` hook), and a task still
  running ``worker.abort_grace`` seconds later has its process killed.

Whatever stops it, the outcome is ``aborted``: final, not a failure, never retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..brokers.base import Lease
from ..middleware import call_hooks
from .records import Running

if TYPE_CHECKING:
    from ..message import Message
    from ..task import Task
    from .core import Worker

log = logging.getLogger("taskq.worker")


def on_abort(worker: Worker, leases: Sequence[Lease]) -> None:
    """On the loop: the tasks of ``leases`` were asked to abort."""
    for lease in leases:
        run = worker._held.get((lease.queue, lease.id))
        if run is None or run.lease.fence != lease.fence or run.aborted_at:
            continue
        run.aborted_at = time.monotonic()
        log.info("worker %s: task %s was asked to abort", worker.id, lease.id)
        call_hooks(worker.middleware, "abort_requested", worker, run.lease)
        task = worker.app.registry.get(run.name) if run.name else None
        if task is not None and task.is_async and run.task is not None and not run.task.done():
            run.task.cancel()  # it stops at its next await; execute() records it aborted


def aborted(
    worker: Worker,
    run: Running,
    task: Task[Any, Any] | None,
    msg: Message,
    base: dict[str, Any],
) -> None:
    """Record the run as aborted: final, not a failure, not retried."""
    error = {
        "type": "TaskAborted",
        "message": f"task {msg.task} was aborted on request",
        "traceback": "",
    }
    worker._finish(
        run,
        "aborted",
        {
            **base,
            "status": "aborted",
            "task": msg.task,
            "attempts": msg.attempt + (1 if run.began or task is not None else 0),
            "finished_at": worker._now_ms(),
            "reason": "aborted",
            "error": error,
        },
        error=error,
    )
