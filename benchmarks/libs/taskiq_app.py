"""taskiq's side: the broker its worker runs (``taskiq worker
benchmarks.libs.taskiq_app:broker --workers 1``: one worker process under taskiq's
supervisor; default ``max_async_tasks`` 100) and the producer adapter (async only).

The setup of taskiq-redis's README: ``RedisStreamBroker`` (acknowledged delivery) with the
``RedisAsyncResultBackend``.

The ``tuned`` variant (``BENCH_VARIANT=tuned``, set by ``benchmarks/side.py`` for the worker
and the producer alike) has no result backend, taskiq's own default (a task's result is
then not stored: one Redis write less per task; taskiq-redis's README shows both), and lets
the worker prefetch 100 deliveries beyond the ``max_async_tasks`` (100) it runs at once
(``--max-prefetch``, 0 by default; taskiq's worker options,
https://taskiq-python.github.io/guide/cli.html).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from .. import probe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
#: the recovery test (``BENCH_RECOVERY=1``): the stream broker re-claims (XAUTOCLAIM)
#: unacknowledged messages idle for longer than ``idle_timeout`` (by default 10 minutes)
RECOVERY_OPTIONS = {"idle_timeout": 10_000} if os.environ.get("BENCH_RECOVERY") == "1" else {}
TUNED = os.environ.get("BENCH_VARIANT") == "tuned"
broker = RedisStreamBroker(url=URL, **RECOVERY_OPTIONS)
if not TUNED:  # the tuned variant: no result backend
    broker = broker.with_result_backend(RedisAsyncResultBackend(redis_url=URL))


@broker.task(task_name="noop")
async def noop() -> None:
    probe.started()
    probe.finished()


@broker.task(task_name="lat")
async def lat(tag: str, t0: float) -> None:
    probe.picked_up(tag, t0)


@broker.task(task_name="hold")
async def hold(i: int) -> None:
    await asyncio.sleep(probe.HOLD_LONG if probe.hold_start(i) else 0.01)
    probe.hold_done(i)


TASKS: dict[str, Any] = {"noop": noop, "lat": lat, "hold": hold}


class Adapter:
    name = "taskiq"
    sync_producer = False  # taskiq's producer API (kiq) is async only
    async_producer = True
    bulk = None
    worker_note = "1 worker process (`--workers 1`) under its supervisor, max_async_tasks 100"
    recovery_running = 100
    recovery_setting = "idle_timeout 10 s"

    def __init__(self) -> None:
        self._started = False

    def throughput_kind(self, variant: str) -> str:
        return "noop"

    def latency_kind(self, variant: str) -> str:
        return "lat"

    async def aenqueue(self, kind: str, *args: Any) -> None:
        if not self._started:
            await broker.startup()
            self._started = True
        await TASKS[kind].kiq(*args)

    def prefill(self, kind: str, n: int) -> None:
        async def fill() -> None:
            try:  # 100 at a time: the fill is not what is measured
                for start in range(0, n, 100):
                    batch = min(100, n - start)
                    await asyncio.gather(*(self.aenqueue(kind) for _ in range(batch)))
            finally:
                await self.aclose()

        asyncio.run(fill())

    def worker_command(self, variant: str) -> list[str]:
        return [
            str(Path(sys.executable).parent / "taskiq"),
            "worker",
            "benchmarks.libs.taskiq_app:broker",
            "--workers",
            "1",
            "--log-level",
            "WARNING",
            *(["--max-prefetch", "100"] if variant == "tuned" else []),
        ]

    async def aclose(self) -> None:
        if self._started:
            await broker.shutdown()
            self._started = False

    def close(self) -> None:
        if self._started:
            # best effort: after a failure the connections may belong to a closed loop
            with contextlib.suppress(RuntimeError):
                asyncio.run(self.aclose())
            self._started = False


def versions() -> dict[str, str]:
    return {
        "taskiq": version("taskiq"),
        "taskiq-redis": version("taskiq-redis"),
        "redis": version("redis"),
    }
