"""Leasing ahead (prefetch) and the eager start of async tasks."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from taskq_core import TaskQueue
from taskq_core.worker import Worker


def burst_wants(tq: TaskQueue) -> tuple[Worker, list[int]]:
    """Run a burst worker; the ``want`` of every fetch it made."""
    worker = tq.worker(burst=True, handle_signals=False)
    wants: list[int] = []
    broker: Any = tq.broker
    fetch = broker.fetch_async

    async def spy(queues: Any, want: int, *args: Any, **kwargs: Any) -> Any:
        wants.append(want)
        return await fetch(queues, want, *args, **kwargs)

    broker.fetch_async = spy
    worker.run()
    return worker, wants


def test_short_tasks_are_leased_ahead(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind, worker={"concurrency": 2})
    ran: list[int] = []

    @tq.task(name="short")
    async def short(i: int) -> None:
        ran.append(i)

    tq.enqueue_many([short.call(i) for i in range(400)])
    _, wants = burst_wants(tq)
    assert sorted(ran) == list(range(400))  # each exactly once
    assert wants[0] == 2  # a fresh worker takes no more than its free slots
    assert max(wants) > 2  # once its tasks proved short, it leased ahead
    assert max(wants) <= 2 + 16 * 2


def test_prefetch_zero_and_long_tasks_never_lease_ahead(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, worker={"concurrency": 2, "prefetch": 0})

    @tq.task(name="short")
    async def short() -> None:
        pass

    tq.enqueue_many([short.call() for _ in range(200)])
    worker, wants = burst_wants(tq)
    assert worker.counts.succeeded == 200
    assert max(wants) <= 2

    slow_app = make_app(broker_kind, worker={"concurrency": 2})

    @slow_app.task(name="slow")
    async def slow() -> None:
        await asyncio.sleep(0.02)  # over 5 ms: nothing is held back behind it

    slow_app.enqueue_many([slow.call() for _ in range(16)])
    worker, wants = burst_wants(slow_app)
    assert worker.counts.succeeded == 16
    assert max(wants) <= 2


def test_stop_hands_back_tasks_leased_ahead_at_once(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, worker={"concurrency": 1, "prefetch": 10, "grace_period": 5})
    release = threading.Event()

    @tq.task(name="block")
    def block() -> None:
        release.wait(10)

    handles = [block.enqueue() for _ in range(5)]
    worker = tq.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 10
    while worker.busy < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.busy == 1
    assert len(worker._held) == 5  # one running, four leased ahead
    assert worker._loop is not None
    worker._loop.call_soon_threadsafe(worker.stop)
    # the four that never started go back while the running one has its grace period
    while worker.counts.released < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.counts.released == 4
    (info,) = tq.broker.queue_info(["default"])
    assert (info.ready, info.leased) == (4, 1)
    assert [h.status() for h in handles].count("running") == 1
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    assert worker.counts.succeeded == 1


def test_eager_start_keeps_each_task_in_its_own_context(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    """Async tasks run at once up to their first await, in a context of their own: a
    variable one sets is not seen by the next, nor by the worker."""
    tq = make_app(broker_kind, worker={"concurrency": 4})
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)
    seen: dict[str, int] = {}

    @tq.task(name="setter")
    async def setter(n: int) -> None:
        var.set(n)
        await asyncio.sleep(0.01)
        seen[f"setter{n}"] = var.get()

    @tq.task(name="reader")
    async def reader(n: int) -> None:
        seen[f"reader{n}"] = var.get()
        await asyncio.sleep(0)
        seen[f"reader{n}-after"] = var.get()

    tq.enqueue_many([setter.call(1), reader.call(1), setter.call(2), reader.call(2)])
    worker = tq.worker(burst=True, handle_signals=False)
    worker.run()
    assert seen == {
        "setter1": 1,
        "setter2": 2,
        "reader1": 0,
        "reader1-after": 0,
        "reader2": 0,
        "reader2-after": 0,
    }
