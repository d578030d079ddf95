"""taskq's side: the application its worker runs and the producer adapter.

Environment: ``BENCH_REDIS_URL``; ``BENCH_TASKQ_METRICS=0`` turns metrics off (the
``monitoring={"metrics": False}`` setting when this taskq has it, otherwise the app's
default middleware list is cleared; ``METRICS_MODE`` says which), ``bare`` clears the
default middleware list (no metrics, heartbeats, alerts or task logs);
``BENCH_TASKQ_LEASE`` / ``BENCH_TASKQ_RENEW`` override the lease (quick runs only).
The worker is the production command: ``taskq worker --app benchmarks.libs.taskq_app:tq``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from taskq_core import Signature, Task, TaskQueue

from .. import probe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
QUEUE = "default"


def _make_app() -> tuple[TaskQueue, str]:
    worker: dict[str, Any] = {}
    if os.environ.get("BENCH_TASKQ_LEASE"):
        worker["lease_seconds"] = float(os.environ["BENCH_TASKQ_LEASE"])
        worker["renew_interval"] = float(os.environ["BENCH_TASKQ_RENEW"])
    options: dict[str, Any] = {"key_prefix": "bench", "worker": worker}
    setting = os.environ.get("BENCH_TASKQ_METRICS", "1")
    if setting == "1":
        app, mode = TaskQueue(URL, **options), "on (defaults)"
    elif setting == "bare":
        app, mode = TaskQueue(URL, **options), "bare: the app's default middleware list cleared"
        app.middleware.clear()
    else:
        try:
            app = TaskQueue(URL, monitoring={"metrics": False}, **options)
            mode = 'off: monitoring={"metrics": False}'
        except Exception:  # this taskq has no monitoring setting yet
            app = TaskQueue(URL, **options)
            app.middleware.clear()
            mode = "off: the app's default middleware list cleared (no monitoring setting yet)"
    if os.environ.get("BENCH_TASKQ_TRACING") == "1":
        # OpenTelemetry's SDK with no span processor: every span is made, recorded and
        # ended, and none is exported (an exporter's cost is its collector's, not ours)
        from opentelemetry.sdk.trace import TracerProvider

        from taskq_core.observability.tracing import instrument

        instrument(app, tracer_provider=TracerProvider())
        mode += "; tracing on (OpenTelemetry SDK, spans not exported)"
    names = ", ".join(type(m).__name__ for m in app.middleware) or "none"
    return app, f"{mode}; middleware: {names}"


tq, METRICS_MODE = _make_app()


@tq.task(name="noop_async")
async def noop_async() -> None:
    probe.started()
    probe.finished()


@tq.task(name="noop_sync")
def noop_sync() -> None:
    probe.started()
    probe.finished()


@tq.task(name="lat")
async def lat(tag: str, t0: float) -> None:
    probe.picked_up(tag, t0)


@tq.task(name="lat_traced")
async def lat_traced(tag: str) -> None:
    probe.started_at(tag)


@tq.task(name="hold")
async def hold(i: int) -> None:
    await asyncio.sleep(probe.HOLD_LONG if probe.hold_start(i) else 0.01)
    probe.hold_done(i)


#: the context a traced web request hands to the tasks it enqueues (W3C trace context)
TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}

TASKS: dict[str, Task[Any, Any]] = {
    "noop_async": noop_async,
    "noop_traced": noop_async,  # enqueued with TRACE
    "noop_sync": noop_sync,
    "lat": lat,
    "lat_traced": lat_traced,
    "hold": hold,
}


class Adapter:
    """Enqueues taskq's benchmark tasks."""

    name = "taskq"
    sync_producer = True
    async_producer = True
    bulk = "TaskQueue.enqueue_many (one script call per queue and batch)"
    worker_note = "`taskq worker`, 1 process, concurrency 16 (default; sync tasks: 16 threads)"
    recovery_running = 16
    recovery_setting = (
        f"lease {tq.settings.worker.lease_seconds:g} s, "
        f"renewal every {tq.settings.worker.renew_every:g} s"
    )

    def throughput_kind(self, variant: str) -> str:
        if variant == "async-traced":
            return "noop_traced"
        return "noop_sync" if variant.startswith("sync") else "noop_async"

    def latency_kind(self, variant: str) -> str:
        return "lat"

    def enqueue(self, kind: str, *args: Any) -> None:
        TASKS[kind].enqueue(*args)

    async def aenqueue(self, kind: str, *args: Any) -> None:
        await TASKS[kind].enqueue_async(*args)

    def enqueue_bulk(self, kind: str, argss: list[tuple[Any, ...]]) -> None:
        task = TASKS[kind]
        tq.enqueue_many([task.call(*a) for a in argss])

    def prefill(self, kind: str, n: int) -> None:
        from taskq_core.context import reset_trace, set_trace

        task = TASKS[kind]
        token = set_trace(TRACE if kind == "noop_traced" else None)
        try:
            for start in range(0, n, 1000):
                sigs: list[Signature] = [task.call() for _ in range(min(1000, n - start))]
                tq.enqueue_many(sigs)
        finally:
            reset_trace(token)

    def worker_command(self, variant: str) -> list[str]:
        return [
            str(Path(sys.executable).parent / "taskq"),  # the console script users run
            "worker",
            "--app",
            "benchmarks.libs.taskq_app:tq",
            "--queues",
            QUEUE,
            "--log-level",
            "WARNING",
        ]

    def worker_env(self, variant: str) -> dict[str, str]:
        if variant == "async-traced":
            return {"BENCH_TASKQ_METRICS": "1", "BENCH_TASKQ_TRACING": "1"}
        if variant.endswith("bare"):
            return {"BENCH_TASKQ_METRICS": "bare"}
        return {"BENCH_TASKQ_METRICS": "0" if variant.endswith("nometrics") else "1"}

    def extras(self) -> dict[str, Any]:
        """Round trips per one-at-a-time enqueue, counted at the socket (not timed)."""
        import redis.connection

        sent = 0
        original: Callable[..., None] = redis.connection.AbstractConnection.send_packed_command

        def counting(self: Any, command: Any, check_health: bool = True) -> None:
            nonlocal sent
            sent += 1
            original(self, command, check_health)

        redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        try:
            noop_async.enqueue()  # the first call may load scripts
            sent = 0
            for _ in range(100):
                noop_async.enqueue()
        finally:
            redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
        return {
            "round_trips_per_enqueue": sent / 100,
            "metrics_off_mode": _off_mode(),
            **_decompose(),
        }

    def close(self) -> None:
        tq.close()

    async def aclose(self) -> None:
        await tq.aclose()


def _decompose(blocks: int = 10, per_block: int = 300, batches: int = 5) -> dict[str, float]:
    """One enqueue taken apart, on taskq's own clients, in interleaved blocks (so that the
    machine's ups and downs fall on every part alike):

    - RPUSH of a message-sized payload (the floor, with redis-py's client);
    - the same RPUSH sent the way taskq sends its hot commands (packed by hiredis, written
      and read on a pooled connection: ``RedisBroker._send_lean``);
    - the enqueue script alone: the exact command taskq sends, built beforehand, sent the
      same way;
    - taskq's enqueue;

    for the blocking client, for the asyncio one, and for 100 tasks at a time (a pipeline
    of 100 RPUSH; one script call for 100 tasks; ``enqueue_many``). Medians of the blocks'
    rates, in tasks per second. Also the two CPU-only stages of an enqueue, in µs per
    task: building and encoding the message (``TaskQueue._items``) and building the
    script call (``Plans.enqueue``). Private internals: a change there shows up here."""
    from taskq_core.brokers import resp
    from taskq_core.brokers.base import EnqueueItem
    from taskq_core.brokers.redis import RedisBroker
    from taskq_core.brokers.redis_plans import ScriptCall
    from taskq_core.message import Message

    broker = tq.broker
    if not isinstance(broker, RedisBroker):
        return {}

    def command(count: int) -> bytes:
        now_ms = int(time.time() * 1000)
        items = []
        for _ in range(count):
            task_id = uuid.uuid4().hex
            body = Message(id=task_id, task="noop_async", queue=QUEUE, enqueued_at=now_ms)
            items.append(EnqueueItem(QUEUE, task_id, "noop_async", body.encode()))
        call = broker.plans.enqueue(items, now_ms).commands[0]
        assert isinstance(call, ScriptCall)
        return call.packed()

    client = broker.client
    lean, lean_async = broker._send_lean, broker._send_lean_async

    def run(packed: bytes) -> None:
        lean([packed])

    sample = Message(id=uuid.uuid4().hex, task="noop_async", queue=QUEUE, enqueued_at=1 << 40)
    payload = b"x" * len(sample.encode())
    push = resp.pack(("RPUSH", "bench:floor", payload))
    singles = [command(1) for _ in range(blocks * per_block)]
    asingles = [command(1) for _ in range(blocks * per_block)]
    bulks = [command(100) for _ in range(blocks * batches)]
    one, hundred = [noop_async.call()], [noop_async.call() for _ in range(100)]
    rates: dict[str, list[float]] = {}

    def timed(name: str, count: int, fn: Callable[[], object]) -> None:
        t = time.perf_counter()
        fn()
        rates.setdefault(name, []).append(count / (time.perf_counter() - t))

    async def timed_async(name: str, count: int, fn: Callable[[], Awaitable[object]]) -> None:
        t = time.perf_counter()
        await fn()
        rates.setdefault(name, []).append(count / (time.perf_counter() - t))

    async def async_block(b: int) -> None:
        aclient = broker.aclient()
        mine = asingles[b * per_block : (b + 1) * per_block]

        async def rpush() -> None:
            for _ in range(per_block):
                await aclient.rpush("bench:floor", payload)

        async def lean_rpush() -> None:
            for _ in range(per_block):
                await lean_async([push])

        async def script() -> None:
            for c in mine:
                await lean_async([c])

        async def enqueue() -> None:
            for _ in range(per_block):
                await noop_async.enqueue_async()

        await timed_async("decomp_rpush_async", per_block, rpush)
        await timed_async("decomp_leanpush_async", per_block, lean_rpush)
        await timed_async("decomp_script_async", per_block, script)
        await timed_async("decomp_enqueue_async", per_block, enqueue)

    async def all_async_blocks() -> None:
        for b in range(blocks):
            await async_block(b)
        await tq.aclose()

    built, now_ms = tq._items(one)
    built_bulk, _ = tq._items(hundred)
    for b in range(blocks):
        mine = singles[b * per_block : (b + 1) * per_block]
        mine_bulk = bulks[b * batches : (b + 1) * batches]

        def rpush() -> None:
            for _ in range(per_block):
                client.rpush("bench:floor", payload)

        def lean_rpush() -> None:
            for _ in range(per_block):
                lean([push])

        def lean_pipeline() -> None:
            for _ in range(batches):
                lean([push] * 100)

        def script(cmds: list[bytes] = mine) -> None:
            for c in cmds:
                run(c)

        def enqueue() -> None:
            for _ in range(per_block):
                noop_async.enqueue()

        def rpush_pipeline() -> None:
            for _ in range(batches):
                pipe = client.pipeline(transaction=False)
                for _ in range(100):
                    pipe.rpush("bench:floor", payload)
                pipe.execute()

        def script_bulk(cmds: list[bytes] = mine_bulk) -> None:
            for c in cmds:
                run(c)

        def enqueue_bulk() -> None:
            for _ in range(batches):
                tq.enqueue_many(hundred)

        def items() -> None:
            for _ in range(per_block):
                tq._items(one)

        def items_bulk() -> None:
            for _ in range(batches):
                tq._items(hundred)

        def plan() -> None:
            for _ in range(per_block):
                for c in broker.plans.enqueue(built, now_ms).commands:
                    if isinstance(c, ScriptCall):
                        c.packed()

        def plan_bulk() -> None:
            for _ in range(batches):
                for c in broker.plans.enqueue(built_bulk, now_ms).commands:
                    if isinstance(c, ScriptCall):
                        c.packed()

        timed("decomp_rpush_sync", per_block, rpush)
        timed("decomp_leanpush_sync", per_block, lean_rpush)
        timed("decomp_script_sync", per_block, script)
        timed("decomp_enqueue_sync", per_block, enqueue)
        timed("decomp_rpush_pipeline", 100 * batches, rpush_pipeline)
        timed("decomp_leanpush_pipeline", 100 * batches, lean_pipeline)
        timed("decomp_script_bulk", 100 * batches, script_bulk)
        timed("decomp_enqueue_bulk", 100 * batches, enqueue_bulk)
        timed("stage_items_sync", per_block, items)
        timed("stage_plan_sync", per_block, plan)
        timed("stage_items_bulk", 100 * batches, items_bulk)
        timed("stage_plan_bulk", 100 * batches, plan_bulk)
    asyncio.run(all_async_blocks())
    client.delete("bench:floor")
    out = {name: statistics.median(v) for name, v in rates.items()}
    # the stages are reported in µs per task, not tasks per second
    return {k: (1e6 / v if k.startswith("stage_") else v) for k, v in out.items()}


def _off_mode() -> str:
    if os.environ.get("BENCH_TASKQ_METRICS", "1") == "0":
        return METRICS_MODE
    saved = os.environ.get("BENCH_TASKQ_METRICS")
    os.environ["BENCH_TASKQ_METRICS"] = "0"
    try:
        app, mode = _make_app()
        app.close()
    finally:
        if saved is None:
            del os.environ["BENCH_TASKQ_METRICS"]
        else:
            os.environ["BENCH_TASKQ_METRICS"] = saved
    return mode


def versions() -> dict[str, Any]:
    """Package versions, and the lease settings the recovery target is judged against."""
    ws = tq.settings.worker
    return {
        "taskq": version("taskq"),
        "redis": version("redis"),
        "hiredis": version("hiredis"),
        "orjson": version("orjson"),
        "lease_seconds": ws.lease_seconds,
        "renew_seconds": ws.renew_every,
        "concurrency": ws.concurrency,
        "middleware": [type(m).__name__ for m in tq.middleware],
        "monitoring": _monitoring(),
    }


def _monitoring() -> dict[str, Any] | None:
    m = getattr(tq.settings, "monitoring", None)
    return m.model_dump(mode="json") if m is not None else None
