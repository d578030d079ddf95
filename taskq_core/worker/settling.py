"""Settling without a fetch, and the end of a worker: the settle loop flushes the outbox
(``outbox.py``) while the fetch loop sleeps; ``drain`` waits out the grace period and
hands back what is left; ``internal_error`` hands back a task a bug of ours broke.

While the worker is busy, the fetch loop (``fetching.py``) settles instead, with its fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..brokers.base import Delivery
from ..redact import redact_text
from ..suspects import internal_error_reason
from .records import Running

if TYPE_CHECKING:
    from .core import Worker

log = logging.getLogger("taskq.worker")


async def settle_loop(worker: Worker) -> None:
    """Settles finished tasks while the fetch loop sleeps (otherwise it does it)."""
    assert worker._outbox_ready is not None
    while not worker._settler_exit:
        await worker._outbox_ready.wait()
        worker._outbox_ready.clear()
        if worker._blocking or worker._stopping:
            await worker._flush()


async def flush(worker: Worker) -> None:
    outcomes, stats = worker._take_outbox()
    if not outcomes and not stats:
        return
    # a burst worker does not end while this is in flight, and fetches once more after it:
    # these outcomes may release tasks (a workflow's next steps)
    done = asyncio.get_running_loop().create_future()
    worker._settling = done
    try:
        stale = await worker.app.broker.settle_async(outcomes, worker._broker_ms(), stats)
    except Exception as exc:
        worker._restore_outbox(outcomes, stats)
        log.warning("worker %s: broker error while settling: %s", worker.id, redact_text(str(exc)))
        return
    finally:
        worker._settling = None
        done.set_result(None)
    worker._note_stale(stale)
    worker._settled_aside = True


async def drain(worker: Worker) -> None:
    """After the fetch loop ends: hand back what never started, wait out the grace
    period, hand back the rest."""
    if worker._buffer:
        waiting = [run for _, run in worker._buffer]
        worker._buffer.clear()
        await worker._hand_back(waiting, "leased but not started")
    running = [run.task for run in worker._held.values() if run.task is not None]
    if running and worker.grace_period > 0:
        worker._drain_wait = asyncio.ensure_future(
            asyncio.wait(running, timeout=worker.grace_period)
        )
        with contextlib.suppress(asyncio.CancelledError):
            await worker._drain_wait
        worker._drain_wait = None
    leftover = [run for run in worker._held.values() if run.task is None or not run.task.done()]
    if leftover:
        await worker._hand_back(leftover, "running")
        for run in leftover:
            if run.task is not None:
                run.task.cancel()
        # cancelled async tasks must not settle; sync ones are refused by their fence
        await asyncio.sleep(0)
    for _ in range(3):
        await worker._flush()
        if not worker._outbox:
            break
        await asyncio.sleep(0.2)


async def hand_back(worker: Worker, runs: list[Running], what: str) -> None:
    leases = [run.lease for run in runs]
    for lease in leases:
        worker._held.pop((lease.queue, lease.id), None)
    try:
        n = await worker.app.broker.release_async(leases)
        worker.counts.released += n
        log.info("worker %s: handed back %d %s task(s)", worker.id, n, what)
    except Exception as exc:
        log.error(
            "worker %s: could not hand back %d task(s), their leases will lapse: %s",
            worker.id,
            len(leases),
            redact_text(str(exc)),
        )


async def internal_error(
    worker: Worker, delivery: Delivery, run: Running, exc: BaseException
) -> None:
    # a bug of ours (or of a middleware) must not hold the slot or lose the task; nor
    # may it hand the same message back without bound: the hand-back counts as a
    # delivery without an outcome (the poison rule), so after max_deliveries the task
    # is dead-lettered with this error
    log.error(
        "worker %s: internal error around task %s; handing it back (counted as a delivery)",
        worker.id,
        delivery.id,
        exc_info=exc,  # passed: this may run outside the except block
    )
    key = (delivery.queue, delivery.id)
    if worker._held.get(key) is run:
        try:
            await worker.app.broker.release_async(
                [run.lease], "unexplained", internal_error_reason(exc), worker._broker_ms()
            )
        except Exception as err:
            log.error(
                "worker %s: could not hand back task %s, its lease will lapse: %s",
                worker.id,
                delivery.id,
                redact_text(str(err)),
            )
        # a fetch whose answer is still on its way may have found the queue empty before
        # this hand-back landed: a burst worker fetches once more instead of ending
        worker._settled_aside = True
        # held until handed back: a burst worker must not see itself empty and close
        worker._held.pop(key, None)
        assert worker._slot_freed is not None
        worker._slot_freed.set()
        if worker.burst and not worker._held:
            worker._nudge()
