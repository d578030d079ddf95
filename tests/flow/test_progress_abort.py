"""Progress reports and aborting tasks, on both brokers: async tasks (cancelled at their next
await) and sync tasks (``current_task().aborted``, ``TaskAborted`` at ``progress()``); the
outcome is ``aborted``, never retried. Under the supervisor: tests/flow/test_flow_cli.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from taskq_core import TaskAborted, TaskFailed, TaskqError, TaskQueue, current_task
from taskq_core.errors import InvalidOption
from taskq_core.http import Request
from taskq_core.http.routes import RouteTable

FAST = {"lease_seconds": 2.0, "renew_interval": 0.1}


async def wait_for(check: Callable[[], Any], what: str, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def job_route(tq: TaskQueue, task_id: str) -> dict[str, Any]:
    table = RouteTable(tq, auth=lambda request: True)
    out = table.dispatch(Request("GET", f"/jobs/{task_id}", {}, {}, b""))
    assert out.status == 200, out.body
    found: dict[str, Any] = orjson.loads(out.body)
    return found


async def test_an_async_task_reports_progress_through_its_renewals(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, worker=FAST)
    go_on = asyncio.Event()

    @tq.task(name="p.async")
    async def work() -> str:
        current_task().progress(0.4, "step 2 of 5")
        await go_on.wait()
        return "done"

    handle = work.enqueue()
    worker = tq.worker(handle_signals=False)
    run = asyncio.create_task(worker.async_run())
    info = await wait_for(lambda: handle.info().get("progress"), "progress")
    assert info == {"fraction": 0.4, "text": "step 2 of 5", "at": info["at"]}
    assert handle.info()["status"] == "running"
    assert job_route(tq, handle.id)["progress"]["text"] == "step 2 of 5"
    go_on.set()
    assert await handle.result_async(10) == "done"
    assert "progress" not in handle.info()  # gone with the task's outcome
    worker.stop()
    await asyncio.wait_for(run, 20)
    await tq.aclose()


async def test_a_sync_task_reports_progress_from_its_thread(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, worker=FAST)
    go_on = threading.Event()

    @tq.task(name="p.sync")
    def work() -> int:
        me = current_task()
        assert me.name == "p.sync"
        me.progress(0.5)
        go_on.wait(10)
        return me.attempt

    handle = work.enqueue()
    worker = tq.worker(handle_signals=False)
    run = asyncio.create_task(worker.async_run())
    info = await wait_for(lambda: handle.info().get("progress"), "progress")
    assert (info["fraction"], info["text"]) == (0.5, None)
    go_on.set()
    assert await handle.result_async(10) == 0
    worker.stop()
    await asyncio.wait_for(run, 20)
    await tq.aclose()


async def test_a_running_async_task_is_cancelled_and_recorded_aborted_not_retried(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, worker=FAST)
    started = asyncio.Event()
    cleaned = []

    @tq.task(name="a.async", max_retries=3)
    async def long() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append(True)

    handle = long.enqueue()
    worker = tq.worker(handle_signals=False)
    run = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(started.wait(), 10)
    assert await handle.abort_async() == "aborting"
    assert handle.info()["abort_requested_at"] > 0
    with pytest.raises(TaskFailed, match="aborted"):
        await handle.result_async(10)
    info = handle.info()
    assert info["status"] == "aborted"
    assert info["error"]["type"] == "TaskAborted"
    assert cleaned == [True]  # cancelled at its await: its finally ran
    assert worker.counts.aborted == 1
    assert worker.counts.retried == 0
    (q,) = tq.broker.queue_info(["default"])
    assert (q.stats["aborted"], q.stats.get("retry", 0), q.ready, q.delayed) == (1, 0, 0, 0)
    assert handle.abort() == "aborted"  # already over: its status
    worker.stop()
    await asyncio.wait_for(run, 20)
    await tq.aclose()


async def test_a_sync_task_sees_the_abort_and_stops_at_its_next_progress(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, worker=FAST)
    seen: list[bool] = []
    started = threading.Event()

    @tq.task(name="a.sync", max_retries=3)
    def crunch() -> None:
        me = current_task()
        started.set()
        for step in range(1000):
            seen.append(me.aborted)
            me.progress(step / 1000)  # raises TaskAborted once asked
            time.sleep(0.02)

    handle = crunch.enqueue()
    worker = tq.worker(handle_signals=False)
    run = asyncio.create_task(worker.async_run())
    assert await asyncio.to_thread(started.wait, 10)
    await asyncio.sleep(0.2)
    assert await handle.abort_async() == "aborting"
    with pytest.raises(TaskFailed, match="aborted"):
        await handle.result_async(10)
    assert seen[0] is False
    assert len(seen) < 1000
    assert worker.counts.aborted == 1
    assert worker.counts.retried == 0
    worker.stop()
    await asyncio.wait_for(run, 20)
    await tq.aclose()


def test_aborting_a_task_that_has_not_started_cancels_it(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task(name="a.queued")
    def later() -> None: ...

    queued = later.enqueue()
    scheduled = later.options(delay=60).enqueue()
    assert queued.abort() == "cancelled"
    assert scheduled.abort() == "cancelled"
    assert queued.status() == "cancelled"
    assert tq.handle("never-enqueued").abort() == "unknown"


def test_current_task_outside_a_task_and_bad_progress_are_clear_errors(
    make_app: Callable[..., TaskQueue],
) -> None:
    with pytest.raises(TaskqError, match="outside a running task"):
        current_task()
    tq = make_app("memory")
    errors: list[str] = []

    @tq.task(name="p.bad")
    def bad() -> None:
        for args in ((1.5,), (-0.1,), (float("nan"),), (True,), ("half",), (0.5, "x" * 201)):
            try:
                current_task().progress(*args)
            except InvalidOption as exc:
                errors.append(str(exc))

    bad.enqueue()
    tq.worker(burst=True, handle_signals=False).run()
    assert len(errors) == 6
    assert "progress fraction must be a number from 0 to 1" in errors[0]
    assert "progress text must be a string of at most 200" in errors[-1]


def test_task_aborted_is_exported() -> None:
    assert issubclass(TaskAborted, TaskqError)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1]", b'{"fraction": "x", "text": null, "at": 1}',
     b'{"fraction": 7, "text": null, "at": 1}', b'{"fraction": 0.5}'],
)  # fmt: skip
def test_a_forged_progress_or_abort_entry_is_left_out_not_a_failed_read(
    make_app: Callable[..., TaskQueue], raw: bytes
) -> None:
    """Progress and abort entries written into Redis by something else than taskq: the
    task still reads (handle, route), without them."""
    import redis as redis_py

    from taskq_core.keys import Keys

    tq = make_app("redis")

    @tq.task(name="p.forged")
    def forged() -> None: ...

    handle = forged.enqueue()
    keys = Keys(tq.settings.key_prefix).queue("default")
    client = redis_py.Redis.from_url(tq.settings.broker_url)
    client.hset(keys.progress, handle.id, raw)
    client.hset(keys.abort, handle.id, b"soon")
    client.close()
    info = handle.info()
    assert info["status"] == "queued"
    assert "progress" not in info
    assert "abort_requested_at" not in info
    assert job_route(tq, handle.id)["status"] == "queued"


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_current_task_started_ms_is_the_records_started_at(
    make_app: Callable[..., TaskQueue], broker_kind: str, kind: str
) -> None:
    tq = make_app(broker_kind)
    seen: list[int] = []

    if kind == "async":

        @tq.task(name="p.when")
        async def when() -> None:
            seen.append(current_task().started_ms)

    else:

        @tq.task(name="p.when")
        def when() -> None:
            time.sleep(0.01)  # a later reading of the clock would differ
            seen.append(current_task().started_ms)

    handle = when.enqueue()
    tq.worker(burst=True, handle_signals=False).run()
    assert handle.info()["status"] == "succeeded"
    assert seen == [job_route(tq, handle.id)["started_at"]]
