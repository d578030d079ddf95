"""Curves c to f of ``benchmarks/curves.py``: queues per worker, distinct task names, payload
size, worker processes."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import psutil
import redis

from benchmarks import payloads
from benchmarks.curves_measure import (
    QUEUE,
    WANT,
    Starts,
    app,
    broker,
    ok_outcomes,
    pct,
    worker_thread,
)
from taskq_core import TaskQueue
from taskq_core.http.routes import RouteTable
from taskq_core.http.types import Request

Log = Callable[[str], None]


def pickup_ms(tq: TaskQueue, starts: Starts, queue: str, idle: float) -> float:
    """One task enqueued on ``queue`` after ``idle`` seconds of rest: its start minus the
    time just before the enqueue call, in ms."""
    time.sleep(idle)
    starts.reset(1)
    mark = tq.get_task("bench.mark").options(queue=queue)
    t0 = time.time()
    mark.enqueue()
    if not starts.done.wait(30):
        raise SystemExit(f"a task on {queue} was not picked up within 30 s")
    return (starts.times[0] - t0) * 1000


def queues_curve(url: str, sizes: list[int], rounds: int, probes: int, idle: float,
                 log: Log) -> dict[str, Any]:  # fmt: skip
    """One worker serving ``n`` queues, every one empty but the last (the lowest priority,
    so the fetch looks at every queue before it finds work): the fetch of ``WANT`` tasks
    (the broker call the worker makes), and an idle worker's pick-up of one task enqueued
    on the last queue."""
    tq, starts = app(url)
    b, points = broker(tq), []
    try:
        for n in sizes:
            b.client.flushdb()
            queues = [f"q{i:03d}" for i in range(n)]
            noop = tq.get_task("bench.noop").options(queue=queues[-1])
            fetch = []
            for r in range(rounds):
                tq.enqueue_many([noop.call(r * WANT + i) for i in range(WANT)])
                t = time.perf_counter()
                result, _ = b.fetch(queues, WANT, 0)
                fetch.append(time.perf_counter() - t)
                if len(result.deliveries) != WANT:
                    raise SystemExit(f"{n} queues: fetch leased {len(result.deliveries)}")
                b.settle(ok_outcomes(result.deliveries), 0)
            with worker_thread(tq, queues=queues, concurrency=WANT):
                pickup_ms(tq, starts, queues[-1], idle)  # warm: the worker has started
                idle_ms = [pickup_ms(tq, starts, queues[-1], idle) for _ in range(probes)]
            point = {
                "queues": n,
                "fetch_us": round(statistics.median(fetch) * 1e6, 1),
                "fetch_us_per_task": round(statistics.median(fetch) * 1e6 / WANT, 2),
                "idle_pickup_p50_ms": round(pct(idle_ms, 50), 3),
                "idle_pickup_max_ms": round(max(idle_ms), 3),
            }
            points.append(point)
            log(f"queues {n:>5}: {point}")
    finally:
        tq.close()
    return {"points": points, "rounds": rounds, "probes": probes, "idle_s": idle}


def _noop() -> None:
    return None


def names_curve(url: str, sizes: list[int], reps: int, log: Log) -> dict[str, Any]:
    """``n`` task names, each run once by a burst worker (metrics on: taskq's default), then
    ``GET /metrics/prometheus``: its series (sample lines), bytes and time."""
    points = []
    for n in sizes:
        tq, _ = app(url)
        try:
            broker(tq).client.flushdb()
            tasks = [tq.task(name=f"bench.name{i:05d}")(_noop) for i in range(n)]
            for start in range(0, n, 10_000):
                tq.enqueue_many([t.call() for t in tasks[start : start + 10_000]])
            tq.worker(burst=True, handle_signals=False, queues=[QUEUE], concurrency=32).run()
            (info,) = tq.broker.queue_info([QUEUE])
            if info.stats.get("ok", 0) != n or info.ready:
                raise SystemExit(f"{n} names: {info}")
            table = RouteTable(tq)
            request = Request("GET", "/metrics/prometheus")
            times, body = [], b""
            for _ in range(reps):
                t = time.perf_counter()
                response = table.dispatch(request)
                times.append(time.perf_counter() - t)
                if response.status != 200:
                    raise SystemExit(f"/metrics/prometheus: {response.status} {response.body!r}")
                body = response.body
            lines = body.decode().splitlines()
            samples = [line for line in lines if line and not line.startswith("#")]
            point = {
                "names": n,
                "series": len(samples),
                "series_naming_a_task": sum("bench.name" in line for line in samples),
                "scrape_ms": round(statistics.median(times) * 1000, 2),
                "bytes": len(body),
            }
        finally:
            tq.close()
        points.append(point)
        log(f"names {n:>6}: {point}")
    return {"points": points, "reps": reps}


def payload_curve(url: str, sizes: list[tuple[int, int]], log: Log) -> dict[str, Any]:
    """``benchmarks/payloads.py``'s measurement (``payload_case``) of random content as a
    base64 string, compression off (the default), one size after another."""
    c = redis.Redis.from_url(url, socket_timeout=120)
    points = []
    try:
        payloads.warm_up(c, url)
        for size, m in sizes:
            row = payloads.payload_case(
                c, url, size, "random", payloads.incompressible(size), m, False
            )
            point = {
                "payload": size,
                "tasks": m,
                "payload_bytes": row["payload_bytes"],
                "enqueue_per_s": row["enqueue_per_s"],
                "worker_per_s": row["worker_per_s"],
                "enqueue_us_per_task": round(1e6 / row["enqueue_per_s"], 1),
                "worker_us_per_task": round(1e6 / row["worker_per_s"], 1),
                "memory_per_task": row["used_memory_per_task"],
                "enqueue_mb_per_s": row["enqueue_mb_per_s"],
            }
            points.append(point)
            log(f"payload {size:>8}: {point}")
    finally:
        c.close()
    return {"points": points, "kind": "random (base64 string)", "compress_above": None}


def settled(pid: int, timeout: float = 60.0) -> float:
    """Seconds until the process tree of ``pid`` uses less than a tenth of a core (every
    child has booted: the first task is run by the first one up)."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        used = 0.0
        try:
            root = psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    cpu = p.cpu_times()
                    used += cpu.user + cpu.system
        except psutil.NoSuchProcess:
            break
        if last is not None and used - last < 0.05:
            break
        last = used
        time.sleep(0.5)
    return time.monotonic() - start


def processes_curve(url: str, procs: list[int], rates: list[int], seconds: float, idle: float,
                    log: Log) -> dict[str, Any]:  # fmt: skip
    """``taskq worker --processes N`` (the production command, ``benchmarks/side.py``'s
    worker and probe): after ``idle`` s at rest one task (idle pick-up), then at each
    offered rate ``rate × seconds`` tasks from a paced producer; each records its start
    minus the time taken just before its enqueue call."""
    # side.py and the probe read BENCH_REDIS_URL when imported: curves.py set it first
    assert os.environ.get("BENCH_REDIS_URL") == url
    from benchmarks import probe, side
    from benchmarks.libs import taskq_app

    class Adapter(taskq_app.Adapter):
        def __init__(self, processes: int) -> None:
            self.processes = processes

        def worker_command(self, variant: str) -> list[str]:
            return [*super().worker_command(variant), "--processes", str(self.processes)]

    c = side.rclient()
    key = f"{probe.KEY}:lat"
    points = []

    def send(tag: str) -> None:
        taskq_app.lat.enqueue(tag, time.monotonic())

    def paced(total: int, rate: float) -> tuple[int, float]:
        """Task ``i`` is due ``i / rate`` s after the start: one enqueue per call while the
        producer keeps up; what is due at once when it fell behind (it shares the cores
        with the workers), in one ``enqueue_many``, ``t0`` read just before the call.
        Enqueue calls made, and the rate achieved."""
        i, calls, start = 0, 0, time.monotonic()
        while i < total:
            now = time.monotonic()
            due = min(total, int((now - start) * rate) + 1)
            if due <= i:
                time.sleep(start + i / rate - now)
                continue
            t0 = time.monotonic()
            if due - i == 1:
                taskq_app.lat.enqueue(f"b{i}", t0)
            else:
                taskq_app.tq.enqueue_many([taskq_app.lat.call(f"b{k}", t0) for k in range(i, due)])
            i, calls = due, calls + 1
        return calls, total / (time.monotonic() - start)

    def picked(count: int, w: Any, timeout: float) -> list[float]:
        if not side.wait_until(lambda: c.llen(key) >= count, timeout, w):
            raise SystemExit(f"{c.llen(key)} of {count} tasks picked up:\n{w.tail()}")
        return [float(e.split()[1]) * 1000 for e in c.lrange(key, 0, -1)]

    try:
        for n in procs:
            c.flushdb()
            point: dict[str, Any] = {"processes": n}
            with side.worker(Adapter(n), "async") as w:
                t = time.perf_counter()
                send("warm")
                picked(1, w, 60)
                point["boot_s"] = round(time.perf_counter() - t, 2)
                point["settled_s"] = round(settled(w.pid), 2)
                c.delete(key)
                time.sleep(idle)
                send("idle")
                point["idle_pickup_ms"] = round(picked(1, w, 30)[0], 2)
                for rate in rates:
                    c.delete(key)
                    total = max(20, int(rate * seconds))
                    calls, achieved = paced(total, rate)
                    lat = picked(total, w, 60)
                    point[f"p50_ms_at_{rate}"] = round(side._percentile(lat, 50), 2)
                    point[f"p99_ms_at_{rate}"] = round(side._percentile(lat, 99), 2)
                    point[f"achieved_per_s_at_{rate}"] = round(achieved)
                    point[f"calls_at_{rate}"] = calls
                    time.sleep(min(idle, 0.5))
                point["processes_seen"] = w.processes()
            points.append(point)
            log(f"processes {n}: {point}")
    finally:
        taskq_app.tq.close()
        c.close()
    short = [
        f"{p['processes']} process(es) at {r:,}/s: sent {p[f'achieved_per_s_at_{r}']:,}/s"
        for p in points
        for r in rates
        if p[f"achieved_per_s_at_{r}"] < 0.9 * r
    ]
    notes = [
        "The producer fell short of the offered rate (it shares the cores with the workers "
        "and Redis): " + "; ".join(short) + "."
    ] if short else []  # fmt: skip
    return {"points": points, "rates": rates, "seconds_per_rate": seconds, "idle_s": idle,
            "notes": notes}  # fmt: skip
