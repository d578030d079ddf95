"""Timers: lease renewal and the loop's tick.

A thread of its own renews the leases of every held task (``Worker._held``, filled by
``fetching.py``) through ``leases.LeaseClock``, whatever the loop or the tasks are doing;
releasing them is ``settling.py``'s. The tick loop runs on the loop, every ``renew_every``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from ..capabilities import served_queues
from ..middleware import call_hooks
from ..redact import redact_text

if TYPE_CHECKING:
    from .core import Worker

log = logging.getLogger("taskq.worker")
T = TypeVar("T")


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
        if worker.capabilities:
            find_routed_queues(worker)


def serve(worker: Worker, known: Iterable[str]) -> None:
    """Serve the routed queues among ``known`` (and those of the app's tasks) that the
    worker's capabilities allow; an idle wait on the old list is woken to wait on the new."""
    queues = served_queues(
        worker.base_queues,
        worker.capabilities,
        [*known, *(t.routed_queue for t in worker.app.registry.values())],
    )
    if queues != worker.queues:
        log.info("worker %s: now serving %s", worker.id, ", ".join(queues))
        worker._nudge()  # first: the waiting round trip's nudge key is its first queue's
        worker.queues = queues


def find_routed_queues(worker: Worker) -> None:
    """Read the broker's queue set in a task of its own (a tick awaits nothing, see
    drain_workflows) and serve the routed queues a producer has used since."""
    if worker._routing is not None and not worker._routing.done():
        return
    task = asyncio.get_running_loop().create_task(worker.app.broker.known_queues_async())
    worker._routing = task

    def done(t: asyncio.Task[list[str]]) -> None:
        known = _outcome(worker, t, "read the queue set")
        if known is not None and not worker._stopping:
            serve(worker, known)

    task.add_done_callback(done)


def drain_workflows(worker: Worker) -> None:
    """Advance the workflows of steps that ended outside a settle carrying their step
    (dead-lettered as poison or unreadable, cancelled by id: the queues' outboxes), in a
    task of its own: the tick loop awaits nothing (a broker call cancelled mid-way can
    surface as another error, which must not swallow the loop's own cancellation)."""
    if worker._draining is not None and not worker._draining.done():
        return
    coro = worker.app.broker.wf_drain_async(worker.queues, worker._broker_ms())
    worker._draining = asyncio.get_running_loop().create_task(coro)
    worker._draining.add_done_callback(lambda t: _outcome(worker, t, "drain workflow outboxes"))


def _outcome(worker: Worker, task: asyncio.Task[T], what: str) -> T | None:
    """A background call's result; None when it was cancelled or failed (logged)."""
    if task.cancelled():
        return None
    exc = task.exception()
    if exc is not None:
        log.warning("worker %s: could not %s: %s", worker.id, what, redact_text(str(exc)))
        return None
    return task.result()
