"""Curves a and b of ``benchmarks/curves.py``: queue depth and delayed tasks, and what every
curve shares (the application, timers).

Everything runs in this process against the run's own redis-server: the producer API
(``Task.enqueue``, ``TaskQueue.enqueue_many``), the broker calls a worker makes
(``RedisBroker.fetch`` and ``settle``, the plans the worker's fetch loop sends), the HTTP
route table every web adapter mounts (``RouteTable.dispatch``), and a ``Worker`` in a thread.
"""

from __future__ import annotations

import datetime as dt
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from taskq_core import TaskQueue
from taskq_core.brokers.base import Delivery, Outcome
from taskq_core.brokers.redis import RedisBroker
from taskq_core.http.routes import RouteTable
from taskq_core.http.types import Request
from taskq_core.settings import Settings
from taskq_core.worker import Worker

PREFIX = "bench-curves"
QUEUE = "default"
#: a worker's fetch: as many tasks as its slots (taskq's default concurrency)
WANT = 16
FILL_BATCH = 10_000
#: the routes of curve a, as adapters forward them (path under the mount point)
ROUTES = {
    "health": "/health",
    "status": "/status",
    "prometheus": "/metrics/prometheus",
    "failed": "/failed",
}


class Starts:
    """Task starts (wall clock, ``time.time()``) recorded by the tasks themselves."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()
        self.done = threading.Event()
        self.expect = 0

    def add(self) -> None:
        now = time.time()
        with self._lock:
            self.times.append(now)
            if self.expect and len(self.times) >= self.expect:
                self.done.set()

    def reset(self, expect: int) -> None:
        with self._lock:
            self.times, self.expect = [], expect
            self.done.clear()


def app(url: str, **settings: Any) -> tuple[TaskQueue, Starts]:
    """The benchmark application: ``bench.noop(i)``, ``bench.mark()`` (records its start,
    async) and ``bench.fail()`` (raises, no retries)."""
    tq = TaskQueue(settings=Settings(broker_url=url, key_prefix=PREFIX, **settings))
    starts = Starts()

    @tq.task(name="bench.noop")
    def noop(i: int = 0) -> None:
        return None

    @tq.task(name="bench.mark")
    async def mark() -> None:
        starts.add()

    @tq.task(name="bench.fail", max_retries=0)
    def fail(i: int = 0) -> None:
        raise RuntimeError(f"benchmark failure {i}")

    return tq, starts


def broker(tq: TaskQueue) -> RedisBroker:
    found = tq.broker
    assert isinstance(found, RedisBroker), found
    return found


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list (``side.py``'s rule)."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))]


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` took."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@contextmanager
def worker_thread(tq: TaskQueue, **options: Any) -> Iterator[Worker]:
    """A worker of ``tq`` in a thread of this process (``tests/inthread.py``'s way), stopped
    on leaving."""
    w = Worker(tq, handle_signals=False, **options)
    thread = threading.Thread(target=w.run, name="bench-worker", daemon=True)
    thread.start()
    try:
        yield w
    finally:
        deadline = time.monotonic() + 10
        while w._loop is None and time.monotonic() < deadline:
            time.sleep(0.01)
        loop = w._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(w.stop)
        thread.join(60)
        if thread.is_alive():
            raise SystemExit("the benchmark worker did not stop within 60 s")


def fill(tq: TaskQueue, n: int, *, eta: dt.datetime | None = None) -> float:
    """Enqueue ``n`` no-op tasks (``bench.mark`` with ``eta``) with ``enqueue_many`` in
    batches of ``FILL_BATCH``; the seconds it took."""
    task = tq.get_task("bench.mark").options(eta=eta) if eta else tq.get_task("bench.noop")
    took = 0.0
    for start in range(0, n, FILL_BATCH):
        sigs = [task.call() if eta else task.call(start + i)
                for i in range(min(FILL_BATCH, n - start))]  # fmt: skip
        t = time.perf_counter()
        tq.enqueue_many(sigs)
        took += time.perf_counter() - t
    return took


def counts(tq: TaskQueue) -> dict[str, int]:
    (info,) = tq.broker.queue_info([QUEUE])
    return {"ready": info.ready, "delayed": info.delayed, "leased": info.leased, "dead": info.dead}


def ok_outcomes(deliveries: list[Delivery]) -> list[Outcome]:
    """What a worker settles after running each delivery once, successfully."""
    now = int(time.time() * 1000)
    return [
        Outcome(
            d.queue,
            d.id,
            d.fence,
            "ok",
            "bench.noop",
            orjson.dumps({"status": "succeeded", "task": "bench.noop", "result": None,
                          "attempts": 1, "finished_at": now}),
        )
        for d in deliveries
    ]  # fmt: skip


def dead_letter(tq: TaskQueue, n: int) -> None:
    """``n`` tasks in the dead-letter list of ``QUEUE`` (``bench.fail`` run once each)."""
    fail = tq.get_task("bench.fail")
    tq.enqueue_many([fail.call(i) for i in range(n)])
    tq.worker(burst=True, handle_signals=False, queues=[QUEUE], concurrency=32).run()
    found = counts(tq)
    if found["dead"] != n or found["ready"]:
        raise SystemExit(f"expected {n} dead-lettered tasks, found {found}")


def route_ms(table: RouteTable, path: str, reps: int) -> tuple[float, int, int]:
    """Median milliseconds of ``reps`` in-process calls of a GET route, its status and size."""
    request = Request("GET", path, headers={"authorization": "Bearer bench"})
    times, status, size = [], 0, 0
    for _ in range(reps):
        t = time.perf_counter()
        response = table.dispatch(request)
        times.append(time.perf_counter() - t)
        status, size = response.status, len(response.body)
        if status not in (200, 503) or (status == 503 and path != "/health"):
            raise SystemExit(f"GET {path}: {status} {response.body[:300]!r}")
    return statistics.median(times) * 1000, status, size


def depth_point(tq: TaskQueue, table: RouteTable, rounds: int, route_reps: int) -> dict[str, Any]:
    """At the queue's current depth: ``rounds`` × (``WANT`` one-task enqueues, one fetch of
    ``WANT``, one settle of what it leased), so the depth stays where it was; then the
    routes."""
    b, noop = broker(tq), tq.get_task("bench.noop")
    enq: list[float] = []
    fetch: list[float] = []
    settle: list[float] = []
    for r in range(rounds):
        for i in range(WANT):
            t = time.perf_counter()
            noop.enqueue(r * WANT + i)
            enq.append(time.perf_counter() - t)
        t = time.perf_counter()
        result, _ = b.fetch([QUEUE], WANT, 0)
        fetch.append(time.perf_counter() - t)
        if len(result.deliveries) != WANT:
            raise SystemExit(f"fetch leased {len(result.deliveries)} tasks, not {WANT}")
        outcomes = ok_outcomes(result.deliveries)
        t = time.perf_counter()
        b.settle(outcomes, 0)
        settle.append(time.perf_counter() - t)
    out: dict[str, Any] = {
        "enqueue_us": round(statistics.median(enq) * 1e6, 1),
        "fetch_us_per_task": round(statistics.median(fetch) * 1e6 / WANT, 2),
        "settle_us_per_task": round(statistics.median(settle) * 1e6 / WANT, 2),
    }
    for name, path in ROUTES.items():
        ms, status, size = route_ms(table, path, route_reps)
        out[f"{name}_ms"] = round(ms, 3)
        out[f"{name}_status"], out[f"{name}_bytes"] = status, size
    return out


def depth_curve(url: str, depths: list[int], rounds: int, route_reps: int, dead: int,
                log: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    tq, _ = app(url)
    table = RouteTable(tq, auth=lambda request: True)
    points = []
    try:
        dead_letter(tq, dead)
        filled, fill_s = 0, 0.0
        for depth in depths:
            fill_s += fill(tq, depth - filled)
            if not filled:  # a first, discarded pass: the connections and scripts warm
                depth_point(tq, table, max(2, rounds // 4), 1)
            filled = depth
            found = counts(tq)
            if found["ready"] != depth or found["dead"] != dead:
                raise SystemExit(f"depth {depth}: the queue holds {found}")
            point = {"depth": depth, **depth_point(tq, table, rounds, route_reps)}
            found = counts(tq)
            if found["ready"] != depth or found["leased"]:
                raise SystemExit(f"depth {depth}: after the measurement the queue holds {found}")
            point["fill_per_s"] = round(filled / fill_s)
            points.append(point)
            log(f"depth {depth:>10,}: {point}")
    finally:
        tq.close()
    return {"points": points, "dead_lettered": dead, "rounds": rounds, "route_reps": route_reps}


def delayed_point(tq: TaskQueue, starts: Starts, n: int, margin: float,
                  concurrency: int) -> dict[str, Any]:  # fmt: skip
    """``n`` delayed tasks all due at one instant, twice. (1) Promotion, no worker: due in an
    hour, then ``fetch(want=0)`` calls (the first step of a worker's fetch) told that the
    time is past it (the ``now_ms`` a test's clock passes; the same scores, the same
    script) until none is left delayed: their time per task. (2) Lateness: an idle worker in
    this process, the tasks due once the enqueue is over (its time in (1), plus a quarter,
    plus ``margin``); each task's start minus the due time."""
    b = broker(tq)
    redis = b.client
    redis.flushdb()
    due = time.time() + 3600
    enqueue_s = fill(tq, n, eta=dt.datetime.fromtimestamp(due, dt.UTC))
    if counts(tq)["delayed"] != n:
        raise SystemExit(f"{n} delayed: {counts(tq)} after the enqueue")
    calls, promote_s, now_ms = 0, 0.0, int(due * 1000) + 1
    while counts(tq)["delayed"]:
        promote_s += timed(lambda: b.fetch([QUEUE], 0, now_ms))
        calls += 1
    if counts(tq)["ready"] != n:
        raise SystemExit(f"{n} delayed: {counts(tq)} after promotion")
    redis.flushdb()
    due = time.time() + margin + 1.25 * enqueue_s
    starts.reset(n)
    with worker_thread(tq, concurrency=concurrency, queues=[QUEUE]):
        fill(tq, n, eta=dt.datetime.fromtimestamp(due, dt.UTC))
        late = time.time() > due
        if not starts.done.wait(max(60.0, n / 500)):
            raise SystemExit(f"{n} delayed: {len(starts.times)} started")
    lateness = [(t - due) * 1000 for t in starts.times]
    redis.flushdb()
    return {
        "delayed": n,
        "enqueue_per_s": round(n / enqueue_s),
        "promote_us_per_task": round(promote_s * 1e6 / n, 3),
        "promote_calls": calls,
        "lateness_p50_ms": round(pct(lateness, 50), 2),
        "lateness_p99_ms": round(pct(lateness, 99), 2),
        "lateness_max_ms": round(max(lateness), 2),
        "drain_s": round(max(lateness) / 1000, 3),
        "enqueue_overran_due": late,
    }


def delayed_curve(url: str, sizes: list[int], margin: float, concurrency: int,
                  log: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    tq, starts = app(url)
    points = []
    try:
        for n in sizes:
            point = delayed_point(tq, starts, n, margin, concurrency)
            points.append(point)
            log(f"delayed {n:>10,}: {point}")
    finally:
        tq.close()
    late = [p["delayed"] for p in points if p["enqueue_overran_due"]]
    notes = [f"The enqueue of {late} ran past the due time: some tasks were never delayed."]
    return {"points": points, "worker_concurrency": concurrency, "notes": notes if late else []}
