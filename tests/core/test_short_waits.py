"""A task due sooner than Redis times out a blocking wait (its cron runs ten times a second)
starts on time: the worker ends its own wait when the task is due, instead of oversleeping
by up to 100 ms. Rate limits depend on it (the next token is often 2 to 20 ms away)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable

from taskq_core import TaskQueue


async def test_a_task_due_in_milliseconds_starts_on_time(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app("redis")
    late: list[float] = []

    @tq.task(name="short.due")
    async def due(at: float) -> None:
        late.append(time.time() - at)

    worker = tq.worker(concurrency=2, handle_signals=False)
    run = asyncio.create_task(worker.async_run())
    await asyncio.sleep(0.3)  # the worker is idle, blocked on its wake list
    # 15 tasks, each due a little while after the last started, at various phases of
    # Redis's 100 ms tick; each is enqueued while the worker waits
    for n in range(15):
        delay = 0.03 + (n % 5) * 0.017
        await due.options(delay=delay).enqueue_async(time.time() + delay)
        deadline = time.monotonic() + 5
        while len(late) <= n and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
    worker.stop()
    await asyncio.wait_for(run, 20)
    await tq.aclose()
    assert len(late) == 15
    # oversleeping to Redis's tick makes the mean about 50 ms; on time it is a few
    assert statistics.mean(late) < 0.025, late
