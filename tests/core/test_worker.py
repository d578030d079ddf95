"""The worker on both brokers: retries and backoff on a controllable clock, soft time limits,
strict priority, and messages that cannot run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from taskq_core import ManualClock, Retry, TaskFailed, TaskQueue
from taskq_core.brokers.base import EnqueueItem
from taskq_core.message import decode

START = 1_800_000_000.0


def burst(tq: TaskQueue, **options: Any) -> None:
    tq.worker(burst=True, handle_signals=False, **options).run()


def due_in(tq: TaskQueue, queue: str, task_id: str) -> float:
    """Seconds from the clock's now until the scheduled task is due."""
    state = tq.broker.get(queue, task_id)
    assert state is not None
    assert state.state == "scheduled"
    msg = decode(state.message or b"", task_id=state.id, queue=state.queue)
    assert msg.due_at is not None
    return msg.due_at / 1000 - tq.clock.time()


def test_retries_follow_backoff_and_jitter_bounds(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    clock = ManualClock(START)
    tq = make_app(
        broker_kind,
        clock=clock,
        retry={"max_retries": 5, "backoff": 2.0, "backoff_max": 100.0, "jitter": 0.5},
    )
    runs: list[float] = []

    @tq.task
    def flaky() -> str:
        runs.append(clock.time())
        if len(runs) < 3:
            raise ConnectionError(f"attempt {len(runs)} failed")
        return "ok"

    handle = flaky.enqueue()
    burst(tq)
    assert len(runs) == 1
    first = due_in(tq, "default", handle.id)
    assert 1.0 <= first <= 2.0 + 0.001  # retry 1: 2 s, minus up to 50 % jitter

    clock.advance(first - 0.01)
    burst(tq)
    assert len(runs) == 1  # not due yet: nothing ran
    clock.advance(0.02)
    burst(tq)
    assert len(runs) == 2
    second = due_in(tq, "default", handle.id)
    assert 2.0 <= second <= 4.0 + 0.001  # retry 2: 4 s, minus up to 50 %

    clock.advance(second + 0.01)
    burst(tq)
    assert handle.result(timeout=5) == "ok"
    info = handle.info()
    assert info["attempts"] == 3
    assert info["status"] == "succeeded"
    stats = tq.broker.queue_info(["default"])[0].stats
    assert stats["retry"] == 2
    assert stats["ok"] == 1


def test_retry_exception_with_explicit_delay(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    clock = ManualClock(START)
    tq = make_app(broker_kind, clock=clock)
    runs: list[int] = []

    @tq.task(max_retries=1)
    def limited() -> int:
        runs.append(1)
        raise Retry(delay=30, reason="rate limited")

    handle = limited.enqueue()
    burst(tq)
    assert due_in(tq, "default", handle.id) == pytest.approx(30, abs=0.01)
    clock.advance(30)
    burst(tq)
    with pytest.raises(TaskFailed) as err:
        handle.result(timeout=5)
    assert err.value.status == "failed"
    assert "max_retries (1) is exhausted" in err.value.error["message"]
    assert len(runs) == 2


def test_retry_on_limits_which_errors_retry(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task(max_retries=3, retry_on=[ConnectionError])
    def strict() -> None:
        raise KeyError("bad input, retrying will not help")

    handle = strict.enqueue()
    burst(tq)
    with pytest.raises(TaskFailed) as err:
        handle.result(timeout=5)
    assert err.value.error["type"] == "KeyError"
    assert "Traceback" in err.value.error["traceback"]
    assert handle.info()["attempts"] == 1


def test_soft_timeout_async_task(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind)
    cancelled = threading.Event()

    @tq.task(timeout=0.2, max_retries=0)
    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handle = slow.enqueue()
    start = time.monotonic()
    burst(tq)
    assert time.monotonic() - start < 5
    with pytest.raises(TaskFailed) as err:
        handle.result(timeout=5)
    assert err.value.error["type"] == "taskq_core.errors.TaskTimeout"
    assert "soft time limit of 0.2s" in err.value.error["message"]
    assert cancelled.is_set()


def test_a_time_limit_binds_to_the_tasks_own_asyncio_task(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    """A timed async task runs in an asyncio.Task of its own, never in the worker's fetch
    loop: on Python 3.12+ the limit (asyncio.timeout) cancels the current task, which would
    otherwise be the fetch loop's (3.12) or none at all (3.13 raised RuntimeError)."""
    tq = make_app(broker_kind)
    seen: list[str] = []

    @tq.task(timeout=5, max_retries=0)
    async def where() -> str:
        current = asyncio.current_task()
        seen.append(repr(current.get_coro()) if current is not None else "no task")
        return "ok"

    handle = where.enqueue()
    burst(tq)
    assert handle.result(timeout=5) == "ok"
    assert len(seen) == 1
    assert "fetch_loop" not in seen[0], seen
    assert seen[0] != "no task"


def test_soft_timeout_sync_task_raises_inside_the_thread(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    stopped = threading.Event()

    @tq.task(timeout=0.2, max_retries=0)
    def spin() -> None:
        n = 0
        try:
            while True:  # pure Python: the timeout exception lands at the next bytecode
                n += 1
        finally:
            stopped.set()

    handle = spin.enqueue()
    worker = tq.worker(burst=True, handle_signals=False)
    worker.run()
    assert stopped.wait(5)
    assert worker.stragglers == 0
    with pytest.raises(TaskFailed) as err:
        handle.result(timeout=5)
    assert err.value.error["type"] == "taskq_core.errors.TaskTimeout"


def test_timeout_per_enqueue_overrides_task(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task(max_retries=0)
    async def nap(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "rested"

    ok = nap.enqueue(0.01)
    late = nap.options(timeout=0.1).enqueue(5)
    burst(tq)
    assert ok.result(timeout=5) == "rested"
    assert late.status() == "failed"


def test_strict_priority_high_before_low(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    order: list[str] = []

    @tq.task
    async def record(level: str) -> None:
        order.append(level)

    tq.enqueue_many([record.options(queue="low").call("low") for _ in range(1000)])
    tq.enqueue_many([record.options(queue="high").call("high") for _ in range(1000)])
    burst(tq, concurrency=1)
    assert len(order) == 2000
    assert order == ["high"] * 1000 + ["low"] * 1000


def test_unknown_task_and_corrupt_message_are_dead_lettered(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task
    def fine() -> str:
        return "fine"

    now = int(tq.clock.time() * 1000)
    envelope = orjson.dumps(
        {
            "v": 1,
            "id": "u1",
            "task": "gone.task",
            "queue": "default",
            "args": [],
            "kwargs": {},
            "attempt": 0,
            "enqueued_at": now,
        }
    )
    tq.broker.enqueue(
        [
            EnqueueItem("default", "u1", "gone.task", envelope),
            EnqueueItem("default", "c1", "x", b"{not json"),
            EnqueueItem("default", "c2", "x", b'{"v": 99}'),
        ],
        now,
    )
    handle = fine.enqueue()
    worker = tq.worker(burst=True, handle_signals=False)
    worker.run()
    assert handle.result(timeout=5) == "fine"
    dead = {d.id: orjson.loads(d.error or b"") for d in tq.broker.dead_list("default", 0, 10)}
    assert set(dead) == {"u1", "c1", "c2"}
    assert dead["u1"]["error"]["type"] == "UnknownTask"
    assert "gone.task" in dead["u1"]["error"]["message"]
    assert dead["c1"]["error"]["type"] == "BadMessage"
    assert "not valid JSON" in dead["c1"]["error"]["message"]
    assert "version 99" in dead["c2"]["error"]["message"]
    stats = tq.broker.queue_info(["default"])[0].stats
    assert stats["dead"] == 3
    assert stats.get("ok", 0) == 1  # nothing that did not run is counted as a success
    assert worker.counts.succeeded == 1


def test_result_that_is_not_json_fails_without_retry(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)

    @tq.task(max_retries=3)
    def returns_set() -> object:
        return {1, 2}

    handle = returns_set.enqueue()
    burst(tq)
    with pytest.raises(TaskFailed) as err:
        handle.result(timeout=5)
    assert err.value.error["type"] == "taskq_core.errors.NotJSONSerializable"
    assert "result is a set" in err.value.error["message"]
    assert handle.info()["attempts"] == 1


def test_trace_context_reaches_the_task(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    from taskq_core.context import current_trace, reset_trace, set_trace

    tq = make_app(broker_kind)

    @tq.task
    def seen() -> dict[str, str] | None:
        return current_trace()

    @tq.task
    async def seen_async() -> dict[str, str] | None:
        return current_trace()

    token = set_trace({"correlation_id": "req-42"})
    try:
        h1, h2 = seen.enqueue(), seen_async.enqueue()
    finally:
        reset_trace(token)
    burst(tq)
    assert h1.result(timeout=5) == {"correlation_id": "req-42"}
    assert h2.result(timeout=5) == {"correlation_id": "req-42"}


def test_middleware_hooks_run_in_order_and_failures_are_contained(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    from taskq_core.middleware import Middleware, TaskEvent

    tq = make_app(broker_kind)
    seen: list[str] = []

    class Recorder(Middleware):
        def __init__(self, name: str) -> None:
            self.name = name

        def before_task(self, worker: Any, message: Any) -> None:
            seen.append(f"before:{self.name}")

        def after_task(self, worker: Any, event: TaskEvent) -> None:
            seen.append(f"after:{self.name}:{event.outcome}")

    class Broken(Middleware):
        def before_task(self, worker: Any, message: Any) -> None:
            raise RuntimeError("a broken hook must not fail the task")

    tq.middleware += [Recorder("a"), Broken(), Recorder("b")]

    @tq.task
    def work() -> int:
        return 1

    handle = work.enqueue()
    burst(tq)
    assert handle.result(timeout=5) == 1
    assert seen == ["before:a", "before:b", "after:b:ok", "after:a:ok"]


@pytest.mark.parametrize("hooks", [1, 3])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wrap_hooks_nest_around_the_task_and_a_failing_one_is_left_out(
    make_app: Callable[..., TaskQueue],
    broker_kind: str,
    hooks: int,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import contextlib
    from collections.abc import Iterator

    from taskq_core.middleware import Middleware

    tq = make_app(broker_kind, retry={"max_retries": 0})
    seen: list[str] = []

    class Around(Middleware):
        def __init__(self, name: str) -> None:
            self.name = name

        @contextlib.contextmanager
        def wrap(self, message: Any) -> Iterator[None]:
            seen.append(f"enter:{self.name}:{message.task}")
            try:
                yield
            except RuntimeError:
                seen.append(f"error:{self.name}")
                raise
            finally:
                seen.append(f"exit:{self.name}")

    class Broken(Middleware):
        def wrap(self, message: Any) -> Any:
            raise RuntimeError("a broken wrap must not fail the task")

    tq.middleware += [Around("a"), Broken(), Around("b")] if hooks == 3 else [Around("a")]
    if kind == "sync":

        @tq.task(name="w.ok")
        def ok() -> None:
            seen.append("run")

        @tq.task(name="w.boom")
        def boom() -> None:
            raise RuntimeError("boom")

    else:

        @tq.task(name="w.ok")
        async def ok() -> None:
            await asyncio.sleep(0)
            seen.append("run")

        @tq.task(name="w.boom")
        async def boom() -> None:
            raise RuntimeError("boom")

    done = tq.enqueue("w.ok")
    burst(tq)
    failed = tq.enqueue("w.boom")
    burst(tq)
    assert done.result(timeout=5) is None
    assert tq.broker.get(failed.queue, failed.id).state == "failed"  # type: ignore[union-attr]
    if hooks == 1:
        assert seen == ["enter:a:w.ok", "run", "exit:a", "enter:a:w.boom", "error:a", "exit:a"]
    else:
        assert seen == [
            *("enter:a:w.ok", "enter:b:w.ok", "run", "exit:b", "exit:a"),
            *("enter:a:w.boom", "enter:b:w.boom", "error:b", "exit:b", "error:a", "exit:a"),
        ]
        assert "Broken.wrap failed" in caplog.text


@pytest.mark.parametrize("limit", [None, 30.0])
def test_a_sync_tasks_wait_for_a_thread_is_queue_wait_not_run_time(
    make_app: Callable[..., TaskQueue], broker_kind: str, limit: float | None
) -> None:
    from taskq_core.middleware import Middleware, TaskEvent

    tq = make_app(broker_kind)
    events: list[TaskEvent] = []

    class Recorder(Middleware):
        def after_task(self, worker: Any, event: TaskEvent) -> None:
            events.append(event)

    tq.middleware.append(Recorder())

    @tq.task(name="w.nap", timeout=limit)
    def nap() -> None:
        time.sleep(0.3)

    # one call, so both are stamped together: two calls were apart by the first one's
    # connecting (0.3 s to a Cluster's slot map), which the second task's wait then lacked
    handles = tq.enqueue_many([tq.signature("w.nap"), tq.signature("w.nap")])
    # two slots, one thread: the second task waits about 0.3 s for the thread
    burst(tq, concurrency=2, sync_threads=1)
    assert len(events) == 2
    for e in events:
        assert 0.28 <= e.runtime < 0.5, e.runtime  # its own call, not the wait before it
    waits = sorted(e.wait for e in events)
    assert waits[1] - waits[0] >= 0.25, waits
    records = sorted(
        (orjson.loads(tq.broker.get(h.queue, h.id).record or b"{}") for h in handles),  # type: ignore[union-attr]
        key=lambda rec: rec["started_at"],
    )
    # the second started when the thread took it, after the first had finished
    assert records[1]["started_at"] >= records[0]["finished_at"] - 5
    for rec in records:
        assert 280 <= rec["finished_at"] - rec["started_at"] < 500


def test_retry_limits_per_exception_type(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    clock = ManualClock(START)
    tq = make_app(broker_kind, clock=clock, retry={"backoff": 1.0, "jitter": 0.0})
    runs: list[str] = []

    @tq.task(retry_on={ConnectionError: 2, KeyError: 0})
    def fragile(kind: str) -> None:
        runs.append(kind)
        raise ConnectionError("down") if kind == "conn" else KeyError("missing")

    conn, key = fragile.enqueue("conn"), fragile.enqueue("key")
    for _ in range(4):
        burst(tq)
        clock.advance(10)
    assert runs.count("conn") == 3  # first run + its 2 retries
    assert runs.count("key") == 1
    assert (conn.status(), key.status()) == ("failed", "failed")
    assert conn.info()["attempts"] == 3


def test_an_idle_worker_waits_again_every_idle_wait(
    make_app: Callable[..., TaskQueue], redis_url: str
) -> None:
    """An idle worker's blocking wait lasts ``worker.idle_wait`` (then it waits again),
    capped by the renewal period."""
    import redis as redis_py

    assert make_app("memory").worker()._longest_wait == 1.0  # the default
    capped = make_app("memory", worker={"idle_wait": 30, "lease_seconds": 6})
    assert capped.worker()._longest_wait == 2.0  # renewal every 2 s
    tq = make_app("redis", worker={"idle_wait": 0.2})
    r = redis_py.Redis.from_url(redis_url)
    worker = tq.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not worker._blocking and time.monotonic() < deadline:
            time.sleep(0.01)
        before = int(r.info("commandstats").get("cmdstat_blpop", {}).get("calls", 0))
        time.sleep(1.5)
        after = int(r.info("commandstats").get("cmdstat_blpop", {}).get("calls", 0))
        # 5 to 7 waits in 1.5 s (Redis ends a timed-out BLPOP on its next tick, up to 0.1 s
        # late at hz 10); the default 1 s would give one or two
        assert after - before >= 4
    finally:
        assert worker._loop is not None
        worker._loop.call_soon_threadsafe(worker.stop)
        thread.join(10)
    r.close()


@pytest.mark.parametrize("round_", range(3))
def test_stop_wakes_an_idle_worker_at_once(
    make_app: Callable[..., TaskQueue], broker_kind: str, round_: int
) -> None:
    """stop() ends the idle wait by a push to the worker's own list, not by waiting it out
    (here up to the renewal period, 5 s)."""
    tq = make_app(broker_kind, worker={"idle_wait": 30})
    worker = tq.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not worker._blocking and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker._blocking, "the worker never went idle"
    time.sleep(0.05 * round_)
    assert worker._loop is not None
    start = time.monotonic()
    worker._loop.call_soon_threadsafe(worker.stop)
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - start < 1.0


@pytest.mark.slow
def test_idle_wait_longer_than_five_seconds_is_not_an_error(
    make_app: Callable[..., TaskQueue], caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py 8 gives clients a 5 s socket timeout by default: a longer BLPOP must not be
    cut off and logged as a broker error."""
    tq = make_app("redis", worker={"lease_seconds": 18})  # idle waits of 6 s
    worker = tq.worker(handle_signals=False)
    thread = threading.Thread(target=worker.run)
    with caplog.at_level("WARNING", logger="taskq.worker"):
        thread.start()
        time.sleep(7)
        assert worker._loop is not None
        worker._loop.call_soon_threadsafe(worker.stop)
        thread.join(10)
    assert [r.getMessage() for r in caplog.records if r.name == "taskq.worker"] == []


def test_an_internal_error_around_a_task_counts_as_a_delivery_and_dead_letters_it(
    make_app: Callable[..., TaskQueue],
    broker_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug of ours around one task (here: decoding its message raises) hands it back
    counted: after max_deliveries it is dead-lettered with the error, instead of being
    handed back without bound; the other task runs; the log line carries the exception."""
    import taskq_core.message as message_module
    import taskq_core.worker.running as worker_module

    tq = make_app(broker_kind, worker={"max_deliveries": 3})
    real_decode = message_module.decode

    def decode(body: bytes, *args: Any, **kwargs: Any) -> Any:
        if b"doomed" in body:
            raise RuntimeError("decoder bug", "doomed")
        return real_decode(body, *args, **kwargs)

    monkeypatch.setattr(worker_module, "decode", decode)

    @tq.task
    def echo(word: str) -> str:
        return word

    doomed, fine = echo.enqueue("doomed"), echo.enqueue("fine")
    worker = tq.worker(burst=True, handle_signals=False)

    async def run() -> None:
        try:
            await asyncio.wait_for(worker.async_run(), 30)  # today: handed back for ever
        finally:
            await tq.broker.aclose()

    with caplog.at_level("ERROR", logger="taskq.worker"):
        asyncio.run(run())
    assert fine.result(timeout=5) == "fine"
    state = tq.broker.get("default", doomed.id)
    assert state is not None
    assert state.state == "dead"
    error = orjson.loads(state.record or b"")["error"]
    assert error["type"] == "InternalError"
    assert error["message"].startswith("delivered 3 times without finishing; ")
    assert "RuntimeError: ('decoder bug', 'doomed')" in error["message"]
    records = [r for r in caplog.records if "internal error around task" in r.getMessage()]
    assert len(records) == 3
    assert all(r.exc_info is not None and r.exc_info[0] is RuntimeError for r in records)


def test_a_burst_worker_fetches_again_after_a_hand_back_that_lands_during_a_fetch(
    make_app: Callable[..., TaskQueue],
    broker_kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hand-back of an internal error reaches the broker after a fetch already found the
    queue empty but before the worker reads that fetch's answer: the worker then holds
    nothing, yet the task is queued again. A burst worker must fetch once more instead of
    ending (it did end, leaving the task queued, when the two round trips went over
    different connections, as through Sentinel)."""
    import taskq_core.message as message_module
    import taskq_core.worker.running as worker_module

    tq = make_app(broker_kind, worker={"max_deliveries": 2})
    real_decode = message_module.decode
    broker = tq.broker
    real_fetch, real_release = broker.fetch_async, broker.release_async

    def decode(body: bytes, *args: Any, **kwargs: Any) -> Any:
        if b"doomed" in body:
            raise RuntimeError("decoder bug")
        return real_decode(body, *args, **kwargs)

    async def fetch(*args: Any, **kwargs: Any) -> Any:
        result = await real_fetch(*args, **kwargs)
        await asyncio.sleep(0.3)  # the answer is read late: the hand-back finishes first
        return result

    async def release(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.1)  # reaches the broker after the fetch sent meanwhile
        return await real_release(*args, **kwargs)

    monkeypatch.setattr(worker_module, "decode", decode)
    monkeypatch.setattr(broker, "fetch_async", fetch)
    monkeypatch.setattr(broker, "release_async", release)

    @tq.task
    def echo(word: str) -> str:
        return word

    doomed = echo.enqueue("doomed")
    worker = tq.worker(burst=True, handle_signals=False)

    async def run() -> None:
        try:
            await asyncio.wait_for(worker.async_run(), 30)
        finally:
            await broker.aclose()

    asyncio.run(run())
    state = broker.get("default", doomed.id)
    assert state is not None
    assert state.state == "dead"  # delivered twice, then dead-lettered; not left queued


def test_a_worker_runs_a_suspect_alone_after_letting_what_it_holds_finish(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    """A suspect appears while the worker is busy (another worker's process crashed running
    it): the worker stops leasing, finishes what it holds, runs the suspect with nothing
    else beside it, then goes on with the rest."""
    from taskq_core.brokers.base import Lease

    tq = make_app(broker_kind, worker={"concurrency": 4})
    running: set[str] = set()
    beside: dict[str, set[str]] = {}

    @tq.task
    async def step(name: str) -> None:
        beside[name] = set(running)  # in the order they start
        running.add(name)
        await asyncio.sleep(0.02)
        for other in running:
            beside[other] |= running - {other}
        if name == "n0":
            # the suspect: leased by a worker whose process then died running it
            h = step.options(queue="high", task_id="s").enqueue("s")
            (d,) = tq.broker.fetch(["high"], 1, int(tq.clock.time() * 1000))[0].deliveries
            assert d.id == h.id
            lease = Lease(d.queue, d.id, d.fence)
            assert tq.broker.release([lease], "crashed", "worker process 1 died: exit code 1") == 1
        running.discard(name)

    for i in range(40):
        step.enqueue(f"n{i}")
    burst(tq, concurrency=4)
    assert set(beside) == {"s", *(f"n{i}" for i in range(40))}
    assert beside["s"] == set()
    # it did not wait for the queue to run dry: tasks were left when it ran the suspect
    assert list(beside).index("s") < 30
    assert tq.handle("s", queue="high").status() == "succeeded"
