"""Timers: lease renewal and the loop's tick.

A thread of its own renews the leases of every held task (``Worker._held``, filled by
``fetching.py``) through ``leases.LeaseClock``, whatever the loop or the tasks are doing;
releasing them is ``settling.py``'s. The tick loop runs on the loop, every ``renew_every``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..middleware import call_hooks
from ..redact import redact_text

if TYPE_CHECKING:
    from .core import Worker

log = logging.getLogger("taskq.worker")


def renew_loop(worker: Worker) -> None:
    """Renews leases from a thread of its own, whatever the loop or the tasks are doing."""
    broker = worker.app.broker
    while not worker._renew_stop.wait(worker.renew_every):
        try:
            # only leases still held after the call count as lost (a task settled
            # meanwhile is refused too)
            renewal = worker._lease_clock.renew(broker, worker._held, worker._broker_ms())
        except Exception as exc:
            log.warning("worker %s: could not renew leases: %s", worker.id, redact_text(str(exc)))
            continue
        if renewal.aborting and worker._loop is not None:
            # acted on in the loop: it owns the runs and their asyncio tasks
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                worker._loop.call_soon_threadsafe(worker._on_abort, renewal.aborting)
        lost = renewal.lost
        if lost:
            worker.counts.lost_leases += len(lost)
            log.warning("worker %s: lost the lease of %d task(s)", worker.id, len(lost))


async def tick_loop(worker: Worker) -> None:
    """Every ``renew_every``: count a fetch the watchdog found overdue, call the ``tick``
    hooks (heartbeats, metrics, alerts)."""
    while True:
        await asyncio.sleep(worker.renew_every)
        if worker.fetch_watch.overdue():
            worker.counts.fetch_stalls += 1
        call_hooks(worker.middleware, "tick", worker)
        drain_workflows(worker)


def drain_workflows(worker: Worker) -> None:
    """Advance the workflows of steps that ended outside a settle carrying their step
    (dead-lettered as poison or unreadable, cancelled by id: the queues' outboxes), in a
    task of its own: the tick loop awaits nothing (a broker call cancelled mid-way can
    surface as another error, which must not swallow the loop's own cancellation)."""
    if worker._draining is not None and not worker._draining.done():
        return
    coro = worker.app.broker.wf_drain_async(worker.queues, worker._broker_ms())
    worker._draining = asyncio.get_running_loop().create_task(coro)
    worker._draining.add_done_callback(lambda t: _drained(worker, t))


def _drained(worker: Worker, task: asyncio.Task[int]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning(
            "worker %s: could not drain workflow outboxes: %s", worker.id, redact_text(str(exc))
        )
