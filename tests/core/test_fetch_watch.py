"""The fetch loop's watchdog (taskq_core/fetch_watch.py): a round trip that outlives its
bound is abandoned and the worker fetches again; health reports a stalled fetch loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.brokers.redis import RedisBroker
from taskq_core.fetch_watch import MARGIN, FetchWatch, stalled
from taskq_core.observability import health
from taskq_core.observability.heartbeat import read_workers


@pytest.mark.slow
def test_a_hung_idle_wait_is_abandoned_and_the_worker_runs_new_tasks(
    redis_url: str, prefix: str
) -> None:
    broker = RedisBroker(redis_url, prefix=prefix, socket_timeout=0.5, socket_connect_timeout=0.5)
    tq = TaskQueue(
        broker,
        worker={"idle_wait": 0.1, "lease_seconds": 3, "renew_interval": 0.5},
    )
    ran = threading.Event()

    @tq.task
    def job() -> None:
        ran.set()

    # the first idle wait never ends (as a read on a half-open link without a timeout did):
    # only the watchdog can free the loop
    real = broker.wait_fetch_async
    hung: list[float] = []

    async def wait_fetch(*args: Any, **kwargs: Any) -> Any:
        if not hung:
            hung.append(time.monotonic())
            await asyncio.Event().wait()
        return await real(*args, **kwargs)

    broker.wait_fetch_async = wait_fetch  # type: ignore[method-assign]
    worker = tq.worker(handle_signals=False)
    bound = worker.fetch_watch.bound
    assert bound == pytest.approx(0.1 + broker.call_bound + MARGIN)  # type: ignore[operator]
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not hung and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hung, "the worker never went idle"
        job.enqueue()
        # freed at the first tick past the bound
        assert ran.wait(bound + 0.5 + 10), "the task never ran: the fetch loop stayed stuck"
        took = time.monotonic() - hung[0]
        assert took >= bound  # not before its bound: a slow round trip is not abandoned
        assert worker.counts.fetch_stalls == 1
        # the heartbeat tells it too
        deadline = time.monotonic() + 10
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            records = read_workers(tq)
            if records and records[0]["fetch"]["stalls"] == 1:
                break
            time.sleep(0.1)
        assert records[0]["fetch"]["stalls"] == 1
        assert records[0]["fetch"]["bound_ms"] == int(bound * 1000)
    finally:
        assert worker._loop is not None
        worker._loop.call_soon_threadsafe(worker.stop)
        thread.join(15)
        tq.close()
    assert not thread.is_alive()


def test_health_reports_a_worker_whose_fetch_is_outstanding_past_its_bound(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app("memory")
    now = int(time.time() * 1000)

    def record(wid: str, pending_since: int | None) -> bytes:
        return orjson.dumps(
            {
                "id": wid,
                "queues": ["default"],
                "concurrency": 1,
                "fetch": {
                    "last_progress_ms": now - 60_000,
                    "pending_since_ms": pending_since,
                    "bound_ms": 16_000,
                    "stalls": 0,
                },
            }
        )

    tq.broker.put_heartbeat("w-ok", record("w-ok", now - 1_000), 60_000, now)
    report = health.check(tq)
    assert report["components"]["workers"]["status"] == "healthy"
    assert report["components"]["workers"]["stalled"] == []
    tq.broker.put_heartbeat("w-stuck", record("w-stuck", now - 20_000), 60_000, now)
    report = health.check(tq)
    workers = report["components"]["workers"]
    assert workers["status"] == "degraded"
    assert workers["stalled"] == ["w-stuck"]
    assert "fetch loop stalled: w-stuck" in workers["detail"]


def test_the_watch_abandons_only_past_its_bound() -> None:
    async def main() -> None:
        watch = FetchWatch(0.2)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watch.begin(fut)
        assert not watch.overdue()
        assert not stalled({"fetch": watch.record()}, int(time.time() * 1000))
        await asyncio.sleep(0.3)
        assert stalled({"fetch": watch.record()}, int(time.time() * 1000))
        assert watch.overdue()
        assert fut.cancelled()
        assert watch.abandoned(fut)
        assert not watch.abandoned(fut)  # told once
        watch.end()
        assert watch.record()["pending_since_ms"] is None
        assert watch.stalls == 1

    asyncio.run(main())


def test_the_hold_back_fetch_is_watched_too(make_app: Callable[..., TaskQueue]) -> None:
    """The fetch of nothing a worker sends while suspects hold it back is bounded by the
    watchdog like its other fetches: one that never ends is abandoned at its bound, and
    the hold-back reports a failed round trip (the loop backs off and goes on)."""
    tq = make_app("memory")

    async def hung(*args: Any, **kwargs: Any) -> Any:
        await asyncio.Event().wait()

    tq.broker.fetch_async = hung  # type: ignore[method-assign]

    async def main() -> None:
        worker = tq.worker(handle_signals=False)
        worker.fetch_watch = FetchWatch(0.2)
        worker._slot_freed = asyncio.Event()
        holding = asyncio.ensure_future(worker._hold_back())
        await asyncio.sleep(0.05)
        assert worker.fetch_watch.pending is not None, "the hold-back fetch is not watched"
        assert not worker.fetch_watch.overdue()
        await asyncio.sleep(0.3)
        assert worker.fetch_watch.overdue()  # what the worker's tick does
        assert await asyncio.wait_for(holding, 5) is False
        assert worker.fetch_watch.pending is None
        assert worker.fetch_watch.stalls == 1

    asyncio.run(main())
