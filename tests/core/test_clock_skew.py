"""Whose clock decides (docs/architecture.md, "Time"): leases, delays, retries' due times and
their promotion run on the broker's clock (Redis's TIME), so a host whose wall clock is 30 s
off neither takes over the live leases of others, nor promotes delayed tasks early, nor
delays them by its skew. Both brokers: the in-memory broker's own clock plays the server's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from taskq_core import Retry, SystemClock, TaskQueue
from taskq_core.brokers.base import Outcome
from taskq_core.web import RequestScope

SKEW = 30.0


class AheadClock(SystemClock):
    """A host whose wall clock runs 30 s ahead. A system clock (not a test's ManualClock):
    the broker's own clock decides its leases and due times."""

    def time(self) -> float:
        return time.time() + SKEW


class BehindClock(SystemClock):
    """A host whose wall clock runs 30 s behind."""

    def time(self) -> float:
        return time.time() - SKEW


#: the broker's and this process's readings of one clock, rounded to whole ms
_TICK = 2


def _ms() -> float:
    return time.time() * 1000


def twin(tq: TaskQueue, clock: SystemClock) -> TaskQueue:
    """The same application (broker, settings, tasks) on a host with another clock."""
    other = TaskQueue(tq.broker, settings=tq.settings, clock=clock)
    other.registry = tq.registry
    return other


def burst(tq: TaskQueue, **options: Any) -> None:
    tq.worker(burst=True, handle_signals=False, **options).run()


def test_a_worker_ahead_does_not_take_over_live_leases(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    runs: list[str] = []

    @tq.task
    def job() -> None:
        runs.append("ran")

    handle = job.enqueue()
    # a worker with a good clock holds the task (a 15 s lease, by the broker's clock)
    result, _ = tq.broker.fetch(["default"], 1, 0)
    (d,) = result.deliveries
    # a worker 30 s ahead fetches: on its own clock that lease lapsed 15 s ago
    burst(twin(tq, AheadClock()))
    assert runs == []
    info = tq.broker.queue_info(["default"])[0]
    assert (info.leased, info.ready, info.stats.get("lease_expired", 0)) == (1, 0, 0)
    # the holder still settles it: its lease was never lost
    ok = Outcome("default", handle.id, d.fence, "ok", job.name, b'{"status":"succeeded"}')
    assert tq.broker.settle([ok], 0) == []


def test_delays_count_from_the_broker_clock_whoever_enqueues_or_fetches(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    ahead = twin(tq, AheadClock())
    runs: list[str] = []

    @tq.task
    def job(tag: str) -> None:
        runs.append(tag)

    # enqueued by a host 30 s ahead with a 1 s delay: due 1 s from now, not 31 s
    before = _ms()
    ahead.enqueue_many([ahead.signature(job.name, ["from-ahead"], delay=1.0)])
    after = _ms()
    # enqueued by a good host with a 20 s delay: a worker 30 s ahead must not promote it
    job.options(delay=20.0).enqueue("later")
    burst(ahead)
    assert runs == []
    result, _ = tq.broker.fetch(["default"], 0, 0)
    assert result.next_due_ms is not None
    # the server shares this machine's clock: 1 s after the enqueue reached it
    assert before + 1_000 - _TICK <= result.next_due_ms <= after + 1_000 + _TICK
    # and the fetch says when it ran, by the clock of its due times
    assert abs(result.now_ms - _ms()) < 5_000
    deadline = time.monotonic() + 15
    while not runs and time.monotonic() < deadline:
        time.sleep(0.2)
        burst(ahead)
    assert runs == ["from-ahead"]
    assert tq.broker.queue_info(["default"])[0].delayed == 1  # "later" still waits


def test_a_retry_is_due_by_the_broker_clock(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    runs: list[int] = []

    @tq.task(max_retries=3)
    def flaky() -> None:
        runs.append(1)
        raise Retry(delay=1, reason="later")

    flaky.enqueue()
    before = _ms()
    burst(twin(tq, AheadClock()))
    after = _ms()
    assert runs == [1]
    result, _ = tq.broker.fetch(["default"], 0, 0)
    assert result.next_due_ms is not None
    # 1 s after the broker's now when the worker settled (31 s by the worker's own clock)
    assert before + 1_000 - _TICK <= result.next_due_ms <= after + 1_000 + _TICK


@pytest.mark.slow
def test_a_worker_behind_keeps_its_leases_alive(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    """Renewals by a worker 30 s behind extend its leases from the broker's now: another
    worker must not find them lapsed, and the task runs once."""
    tq = make_app(broker_kind, worker={"lease_seconds": 1.5, "renew_interval": 0.3})
    started = threading.Event()
    runs: list[int] = []

    @tq.task
    def slow() -> None:
        runs.append(1)
        started.set()
        time.sleep(3.5)

    slow.enqueue()
    behind = twin(tq, BehindClock())
    t = threading.Thread(target=burst, args=(behind,))
    t.start()
    try:
        assert started.wait(10)
        # past the first lease (1.5 s): only the renewals keep the task leased
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            # a host with a good clock, passing its own time
            result, _ = tq.broker.fetch(["default"], 1, int(_ms()))
            assert result.deliveries == []
            time.sleep(0.25)
    finally:
        t.join(20)
    assert runs == [1]
    info = tq.broker.queue_info(["default"])[0]
    assert (info.stats.get("lease_expired", 0), info.stats.get("ok", 0)) == (0, 1)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_deferred_enqueue_counts_its_delay_from_the_broker_clock(
    make_app: Callable[..., TaskQueue], broker_kind: str, mode: str
) -> None:
    """A request scope that holds its enqueues until the response sends them with the
    broker's clock too (web.py; wsgi.py, asgi.py and the Django middleware do the same)."""
    tq = make_app(broker_kind)
    ahead = twin(tq, AheadClock())

    @tq.task
    def job() -> None:
        pass

    before = _ms()
    if mode == "sync":
        with RequestScope(ahead, {}, defer=True):
            ahead.enqueue_many([ahead.signature(job.name, delay=1.0)])
    else:

        async def request() -> None:
            async with RequestScope(ahead, {}, defer=True):
                await ahead.enqueue_many_async([ahead.signature(job.name, delay=1.0)])
            await tq.broker.aclose()

        asyncio.run(request())
    after = _ms()
    result, _ = tq.broker.fetch(["default"], 0, 0)
    assert result.next_due_ms is not None
    assert before + 1_000 - _TICK <= result.next_due_ms <= after + 1_000 + _TICK


def test_an_idle_worker_ahead_sleeps_until_the_due_time_by_the_broker_clock(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    """The idle wait is the next due time minus the broker's now from the last fetch: a
    worker 30 s ahead neither runs the task early nor spins (by its own clock the task is
    overdue, which would make every wait 1 ms)."""
    tq = make_app(broker_kind)
    ahead = twin(tq, AheadClock())
    worker = ahead.worker(handle_signals=False)
    ran: list[float] = []

    @tq.task
    async def job() -> None:
        ran.append(time.monotonic())
        worker.stop()

    fetches = 0
    broker: Any = tq.broker
    fetch, wait_fetch = broker.fetch_async, broker.wait_fetch_async

    async def counted_fetch(*args: Any, **kwargs: Any) -> Any:
        nonlocal fetches
        fetches += 1
        return await fetch(*args, **kwargs)

    async def counted_wait_fetch(*args: Any, **kwargs: Any) -> Any:
        nonlocal fetches
        fetches += 1
        return await wait_fetch(*args, **kwargs)

    broker.fetch_async, broker.wait_fetch_async = counted_fetch, counted_wait_fetch
    enqueued = time.monotonic()
    job.options(delay=2.0).enqueue()

    async def main() -> None:
        await asyncio.wait_for(worker.async_run(), 20)
        await broker.aclose()

    asyncio.run(main())
    assert len(ran) == 1
    assert ran[0] - enqueued >= 1.9  # not promoted on the worker's clock
    # about one wait per idle_wait (1 s) until the task is due, and a few more around it;
    # waits of 1 ms for 2 s would be hundreds
    assert fetches < 30, fetches
