"""Fetching: the fetch loop, leasing ahead (prefetch), holding back while suspects wait,
and starting leased deliveries in free slots.

Each fetch round trip also carries the outbox (``outbox.py``) to be settled in
``fetch.lua``; a started delivery runs in ``running.py``; leases taken here are renewed by
``renewal.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from ..brokers.base import Delivery, FetchResult
from ..middleware import run_hooks
from ..redact import redact_text
from .records import Running

if TYPE_CHECKING:
    from .core import Worker

log = logging.getLogger("taskq.worker")
#: how finely Redis times out a blocking wait (its server cron, hz 10): shorter waits are
#: ended from here
_SERVER_TICK = 0.25

_SHORT_TASK = 0.005  # seconds: tasks this short are leased ahead (prefetch=None)
_MOST_AHEAD = 16  # times concurrency


def ahead(worker: Worker) -> int:
    """How many tasks to lease beyond the free slots (see ``WorkerSettings.prefetch``)."""
    if worker.prefetch is not None:
        return worker.prefetch
    if worker._runtime >= _SHORT_TASK:
        return 0
    # about _SHORT_TASK of work per slot: a task waits no longer than that behind others
    per_slot = int(_SHORT_TASK / max(worker._runtime, 1e-6))
    return worker.concurrency * min(_MOST_AHEAD, max(1, per_slot))


#: a batch this small, all the worker holds, starts before the next fetch is sent
_START_NOW = 2


async def fetch_loop(worker: Worker) -> None:
    """Lease tasks for the free slots (and ahead), settling the outbox in the same round
    trip; when there is nothing, block in Redis until a task is due or enqueued."""
    broker = worker.app.broker
    watch = worker.fetch_watch
    assert worker._slot_freed is not None
    assert worker._loop is not None
    backoff = 0.05
    while not worker._stopping:
        if worker._suspects.holding_back(worker._held, bool(worker._held)):
            if not await worker._hold_back():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            continue
        want = worker.concurrency + worker._ahead() - len(worker._held)
        if want <= 0:
            worker._slot_freed.clear()
            worker._start_buffered()
            if worker.concurrency + worker._ahead() - len(worker._held) <= 0:
                await worker._slot_freed.wait()
            continue
        outcomes, stats = worker._take_outbox()
        sent = time.monotonic()
        worker._settled_aside = False
        fetching = asyncio.ensure_future(
            broker.fetch_async(
                worker.queues, want, worker._broker_ms(), outcomes, stats, alone=not worker._held
            )
        )
        if worker._buffer:
            # the tasks leased last time run while Redis works on this round trip: the
            # fetch sends its request before this callback runs (the loop is FIFO)
            worker._loop.call_soon(worker._start_buffered)
        try:
            result, stale = await watch.watched(fetching, broker)
        except Exception as exc:
            worker._restore_outbox(outcomes, stats)
            log.warning(
                "worker %s: broker error while fetching: %s", worker.id, redact_text(str(exc))
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            continue
        backoff = 0.05
        worker._note_stale(stale)
        worker._note_suspects(result)
        leases_taken(worker, result.deliveries, sent)
        if (
            0 < len(result.deliveries) <= _START_NOW
            and len(worker._held) == len(result.deliveries)
            and not worker._stopping  # stopping: they are handed back, not started
        ):
            # one or two tasks and nothing else here: they start now, before the next round
            # trip, which then carries the outcomes of those that end at once (a workflow's
            # next step is released by its predecessor's settle: one round trip a step
            # instead of two). A larger batch starts while that round trip is on its way.
            worker._start_buffered()
        if result.deliveries or worker._outbox or worker._suspects.waiting:
            continue
        if worker.burst and not worker._held:
            if worker._settling is not None:
                await worker._settling
            if not worker._settled_aside:
                return
            continue  # what the settle loop settled meanwhile may have released tasks
        timeout = worker._longest_wait
        if result.next_due_ms is not None:
            # both by the broker's clock: a worker whose clock is off neither spins nor
            # oversleeps
            timeout = min(timeout, max(0.001, (result.next_due_ms - result.now_ms) / 1000))
        if worker._stopping:
            break  # stop() came during the fetch: it had no idle wait to cancel
        # block until a wake token (or a nudge, or the timeout), and lease in the same
        # round trip: Redis runs the fetch the moment the wait returns
        want = worker.concurrency + worker._ahead() - len(worker._held)
        if want <= 0:
            continue  # slots filled up meanwhile (the run time average moved)
        worker._blocking = True
        sent = time.monotonic()
        worker._idle_wait = asyncio.ensure_future(
            broker.wait_fetch_async(
                worker.queues, timeout, want, worker._broker_ms(), worker.id, alone=not worker._held
            )
        )
        # Redis ends a blocking wait on its own timer, ten times a second (hz 10): a task
        # due sooner than that (a short delay, the next token of a rate limit) would start
        # up to 100 ms late, so the wait is nudged from here when it is due
        timer = (
            asyncio.get_running_loop().call_later(timeout, worker._nudge)
            if result.next_due_ms is not None and timeout < _SERVER_TICK
            else None
        )
        try:
            _, result = await watch.watched(worker._idle_wait, broker)
        except Exception as exc:
            log.warning("worker %s: broker error while idle: %s", worker.id, redact_text(str(exc)))
            await asyncio.sleep(backoff)
            continue
        finally:
            if timer is not None:
                timer.cancel()
            worker._blocking = False
            worker._idle_wait = None
        worker._note_suspects(result)
        leases_taken(worker, result.deliveries, sent)
        if not worker._stopping:
            worker._start_buffered()  # at once: nothing else is waiting for the loop


def note_suspects(worker: Worker, result: FetchResult) -> None:
    delivery = worker._suspects.note(result)
    if delivery is not None:
        log.info(
            "worker %s: running suspect task %s alone (its last delivery ended without an outcome)",
            worker.id,
            delivery.id,
        )


async def hold_back(worker: Worker) -> bool:
    """Suspects wait, or one runs here: lease nothing new. Settle what finished and
    learn whether suspects still wait (a fetch of nothing: one round trip), then wait
    for a task to end. False after a broker error."""
    assert worker._slot_freed is not None
    worker._slot_freed.clear()
    worker._start_buffered()  # what this worker holds runs to its end
    outcomes, stats = worker._take_outbox()
    broker = worker.app.broker
    try:
        # watched as the other fetches are: a round trip that never ends would hold the
        # loop here for good
        result, stale = await worker.fetch_watch.watched(
            asyncio.ensure_future(
                broker.fetch_async(worker.queues, 0, worker._broker_ms(), outcomes, stats)
            ),
            broker,
        )
    except Exception as exc:
        worker._restore_outbox(outcomes, stats)
        log.warning("worker %s: broker error while fetching: %s", worker.id, redact_text(str(exc)))
        return False
    worker._note_stale(stale)
    worker._suspects.waiting = result.suspects
    if worker._suspects.holding_back(worker._held, bool(worker._held)) and not worker._outbox:
        # a task's end, or now and then (another worker may have taken the suspects)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker._slot_freed.wait(), worker._longest_wait)
    return True


def leases_taken(worker: Worker, deliveries: list[Delivery], sent: float) -> None:
    """Hold the deliveries of one fetch (see :func:`lease_taken`), then tell the
    middleware that wants to know (the supervisor's child) before any starts."""
    for delivery in deliveries:
        worker._lease_taken(delivery, sent)
    if deliveries and worker._hooks.leased:
        run_hooks(worker._hooks.leased, worker, deliveries)


def lease_taken(worker: Worker, delivery: Delivery, sent: float) -> None:
    """Hold a delivery just leased (round trip sent at ``sent``) until a slot is free."""
    run = Running(delivery, until=worker._lease_clock.until(sent))
    worker._held[(delivery.queue, delivery.id)] = run
    worker._buffer.append((delivery, run))


def start_buffered(worker: Worker) -> None:
    """Start leased tasks in the free slots (as many as are free now: a task that ends
    at once schedules the next call rather than recursing)."""
    worker._start_pending = False
    buffer = worker._buffer
    n = min(len(buffer), worker.concurrency - (len(worker._held) - len(buffer)))
    now = time.monotonic()
    lapsed: list[Running] = []
    while n > 0 and buffer:
        delivery, run = buffer.popleft()
        if now > run.until:
            lapsed.append(run)  # another worker may have run it: must not start here
            continue
        worker._start(delivery, run)
        n -= 1
    if lapsed:
        worker._drop_lapsed(lapsed)


def drop_lapsed(worker: Worker, lapsed: list[Running]) -> None:
    """Forget leased-ahead deliveries whose lease lapsed before they could start (the
    broker re-delivers each, counted as a delivery without an outcome)."""
    for run in lapsed:
        worker._held.pop((run.lease.queue, run.lease.id), None)
    worker.counts.lost_leases += len(lapsed)
    log.warning(
        "worker %s: lost the lease of %d task(s) leased ahead before they could start "
        "(was this process frozen or starved?); not starting them",
        worker.id,
        len(lapsed),
    )
    assert worker._slot_freed is not None
    worker._slot_freed.set()


def nudge(worker: Worker) -> None:
    """Wake the fetch loop from its idle wait (stop, or burst mode running dry)."""
    if worker._idle_wait is not None and worker._loop is not None and not worker._nudging:
        worker._nudging = True
        task = asyncio.ensure_future(worker.app.broker.nudge_async(worker.queues, worker.id))
        task.add_done_callback(worker._nudged)


def nudged(worker: Worker, task: asyncio.Future[None]) -> None:
    worker._nudging = False
    if not task.cancelled() and (exc := task.exception()) is not None:
        # the idle wait still ends by its own timeout
        log.warning("worker %s: could not wake the fetch loop: %s", worker.id, exc)
