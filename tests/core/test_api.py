"""The public API on both brokers: enqueue forms, handles, results, cancel, idempotency."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskq_core import ResultTimeout, TaskFailed, TaskNotFound, TaskQueue


def burst(tq: TaskQueue) -> None:
    tq.worker(burst=True, handle_signals=False).run()


def test_calling_a_task_runs_it_inline(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory")

    @tq.task
    def double(x: int) -> int:
        return 2 * x

    @tq.task(name="shop.triple")
    async def triple(x: int) -> int:
        return 3 * x

    assert double(4) == 8
    assert asyncio.run(triple(2)) == 6
    assert double.name == "tests.core.test_api.test_calling_a_task_runs_it_inline.double"
    assert triple.name == "shop.triple"
    assert tq.registry["shop.triple"] is triple


def test_statuses_through_a_life(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind)
    gate = threading.Event()
    seen: list[str] = []

    @tq.task
    def wait_for_gate() -> str:
        seen.append(handle.status())  # the task sees itself running
        gate.wait(10)
        return "through"

    handle = wait_for_gate.enqueue()
    later = wait_for_gate.options(delay=3600).enqueue()
    assert handle.status() == "queued"
    assert later.status() == "scheduled"

    worker = tq.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == ["running"]
        with pytest.raises(ResultTimeout):
            handle.result(timeout=0.1)
        gate.set()
        assert handle.result(timeout=10) == "through"
        assert handle.status() == "succeeded"
        assert later.cancel() is True
        assert later.status() == "cancelled"
        with pytest.raises(TaskFailed) as err:
            later.result(timeout=1)
        assert err.value.status == "cancelled"
    finally:
        gate.set()
        assert worker._loop is not None
        worker._loop.call_soon_threadsafe(worker.stop)
        thread.join(10)
    assert not thread.is_alive()


def test_result_waits_without_polling(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    """``result()`` returns as soon as the task settles, well before its timeout."""
    tq = make_app(broker_kind)

    @tq.task
    async def quick() -> str:
        return "done"

    handle = quick.enqueue()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(handle.result(timeout=30)))
    waiter.start()
    time.sleep(0.2)
    start = time.monotonic()
    burst(tq)
    waiter.join(10)
    assert got == ["done"]
    assert time.monotonic() - start < 2.0


async def test_async_enqueue_and_result(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task
    async def greet(name: str) -> str:
        return f"hello {name}"

    loop_thread = threading.get_ident()
    threads: list[int] = []
    enqueue = tq.broker.enqueue_async

    async def spy(items: Any, now_ms: int) -> list[str]:
        threads.append(threading.get_ident())
        return await enqueue(items, now_ms)

    tq.broker.enqueue_async = spy  # type: ignore[method-assign]
    handle = await greet.enqueue_async("ada")
    assert threads == [loop_thread]  # natively async: no hop to a thread
    assert await handle.status_async() == "queued"
    worker = tq.worker(burst=True, handle_signals=False)
    await worker.async_run()
    assert await handle.result_async(timeout=5) == "hello ada"
    info = await handle.info_async()
    assert info["status"] == "succeeded"
    assert info["task"] == greet.name
    assert info["enqueued_at"] is not None  # kept after the message is gone
    await tq.aclose()


def test_bulk_enqueue_one_round_trip_many_queues(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task
    def echo(x: int) -> int:
        return x

    sigs = [echo.call(i) for i in range(50)] + [
        echo.options(queue="high").call(i) for i in range(5)
    ]
    handles = tq.enqueue_many(sigs)
    assert len({h.id for h in handles}) == 55
    assert {h.queue for h in handles} == {"default", "high"}
    burst(tq)
    assert [h.result(timeout=5) for h in handles] == list(range(50)) + list(range(5))


def test_idempotency_key(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind)
    runs: list[int] = []

    @tq.task
    def charge(order: int) -> int:
        runs.append(order)
        return order

    first = charge.options(idempotency_key="order-1").enqueue(1)
    second = charge.options(idempotency_key="order-1").enqueue(1)
    other = charge.options(idempotency_key="order-2").enqueue(2)
    assert second == first
    assert other != first
    burst(tq)
    assert sorted(runs) == [1, 2]
    assert second.result(timeout=5) == 1


def test_eta_and_delay(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    from taskq_core import ManualClock

    clock = ManualClock(1_800_000_000.0)
    tq = make_app(broker_kind, clock=clock)

    @tq.task
    def tick() -> str:
        return "tock"

    at = datetime.fromtimestamp(clock.time(), UTC) + timedelta(minutes=5)
    by_eta = tick.options(eta=at).enqueue()
    by_delay = tick.options(delay=timedelta(seconds=90)).enqueue()
    burst(tq)
    assert (by_eta.status(), by_delay.status()) == ("scheduled", "scheduled")
    clock.advance(90)
    burst(tq)
    assert (by_eta.status(), by_delay.status()) == ("scheduled", "succeeded")
    clock.advance(210)
    burst(tq)
    assert by_eta.result(timeout=5) == "tock"


def test_results_expire_after_their_ttl(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    # the TTL runs from the settle, inside the burst: it must outlast the burst worker's
    # stop (closing its pools: a few hundred ms on PostgreSQL on a loaded machine)
    tq = make_app(broker_kind, result_ttl=1.0)

    @tq.task
    def fleeting() -> int:
        return 1

    handle = fleeting.enqueue()
    burst(tq)
    assert handle.result(timeout=5) == 1
    time.sleep(1.2)
    assert handle.status() == "unknown"
    with pytest.raises(TaskNotFound):
        handle.info()


def test_find_by_id_across_queues(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind)

    @tq.task(queue="reports")
    def build() -> None:
        return None

    handle = build.enqueue()
    found = tq.find(handle.id)
    assert found == handle
    assert tq.find("no-such-task") is None
    assert "reports" in tq.queues()


def test_failure_keeps_type_message_and_traceback(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task(max_retries=0)
    def broken(password_url: str) -> None:
        raise ValueError(f"cannot reach {password_url}")

    handle = broken.enqueue("redis://admin:hunter2@db.internal:6379/0")
    burst(tq)
    with pytest.raises(TaskFailed) as err:
        handle.result(timeout=5)
    error = err.value.error
    assert error["type"] == "ValueError"
    assert error["message"] == "cannot reach redis://admin:***@db.internal:6379/0"
    assert "hunter2" not in error["traceback"]
    assert 'raise ValueError(f"cannot reach {password_url}")' in error["traceback"]
    (dead,) = tq.broker.dead_list("default", 0, 10)
    assert dead.id == handle.id


def test_imports_and_entry_points(
    make_app: Callable[..., TaskQueue], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_tasks_mod.py").write_text(
        "from taskq_core.app import TaskQueue\n"
        "def register(tq: TaskQueue) -> None:\n"
        "    tq.task(name='plugin.hello')(lambda: 'hi')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tq = make_app("memory", imports=["json"])

    class EP:
        def load(self) -> Any:
            import my_tasks_mod  # type: ignore[import-not-found]

            return my_tasks_mod.register

    monkeypatch.setattr("taskq_core.app.entry_points", lambda group: [EP()])
    tq.load_imports()
    tq.load_imports()  # twice is harmless
    assert "plugin.hello" in tq.registry
