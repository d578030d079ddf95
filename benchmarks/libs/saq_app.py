"""SAQ's side: the worker settings (``saq benchmarks.libs.saq_app.settings``: one asyncio
process, SAQ's default concurrency 10) and the producer adapter (async only).

The ``tuned`` variant (``saq benchmarks.libs.saq_app.settings_tuned``) raises the worker's
``concurrency`` (jobs run at once, 10 by default) to 100: the worker setting of SAQ's
README (https://github.com/tobymao/saq), as arq's ``max_jobs`` and taskiq's
``max_async_tasks`` (100 by default) are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from saq import Queue

from .. import probe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


async def noop(ctx: Any) -> None:
    probe.started()
    probe.finished()


async def lat(ctx: Any, *, tag: str, t0: float) -> None:
    probe.picked_up(tag, t0)


async def hold(ctx: Any, *, i: int) -> None:
    await asyncio.sleep(probe.HOLD_LONG if probe.hold_start(i) else 0.01)
    probe.hold_done(i)


settings = {
    "queue": Queue.from_url(URL),
    "functions": [noop, lat, hold],
    "concurrency": 10,
}
#: the recovery test (``BENCH_RECOVERY=1``): a worker's sweep (every 5 s; by default 60 s)
#: finds active jobs past their timeout and, with a retry left, enqueues them again
RECOVERY_JOB = {"timeout": 15, "retries": 2}
if os.environ.get("BENCH_RECOVERY") == "1":
    settings["timers"] = {"sweep": 5}

#: the tuned variant's settings (its worker is never the recovery test's)
settings_tuned = {**settings, "concurrency": 100}

_ARGS = {"noop": (), "lat": ("tag", "t0"), "hold": ("i",)}


class Adapter:
    name = "saq"
    sync_producer = False  # SAQ's producer API is async only
    async_producer = True
    bulk = None  # Queue.map enqueues and then waits for every result
    worker_note = "one asyncio process, concurrency 10 (default)"
    recovery_running = 10
    recovery_setting = "timeout 15 s, retries 2, sweep every 5 s"

    def __init__(self) -> None:
        self._queue: Any = None

    def throughput_kind(self, variant: str) -> str:
        return "noop"

    def latency_kind(self, variant: str) -> str:
        return "lat"

    async def aenqueue(self, kind: str, *args: Any) -> None:
        if self._queue is None:
            self._queue = Queue.from_url(URL)
            await self._queue.connect()
        options = RECOVERY_JOB if os.environ.get("BENCH_RECOVERY") == "1" else {}
        await self._queue.enqueue(kind, **options, **dict(zip(_ARGS[kind], args, strict=True)))

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
        name = "settings_tuned" if variant == "tuned" else "settings"
        return [str(Path(sys.executable).parent / "saq"), f"benchmarks.libs.saq_app.{name}"]

    async def aclose(self) -> None:
        if self._queue is not None:
            await self._queue.disconnect()
            self._queue = None

    def close(self) -> None:
        if self._queue is not None:
            # best effort: after a failure the connections may belong to a closed loop
            with contextlib.suppress(RuntimeError):
                asyncio.run(self.aclose())
            self._queue = None


def versions() -> dict[str, str]:
    return {"saq": version("saq"), "redis": version("redis")}
