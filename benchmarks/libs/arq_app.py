"""arq's side: the worker settings (``arq benchmarks.libs.arq_app.WorkerSettings``: one
asyncio process, arq's defaults: ``max_jobs`` 10, ``poll_delay`` 0.5 s, results kept an
hour) and the producer adapter (arq's producer API is async only).

The ``tuned`` variant (``BENCH_VARIANT=tuned``, set by ``benchmarks/side.py``) polls the
queue every 10 ms (``poll_delay``) and runs up to 100 jobs at once (``max_jobs``), the
``Worker`` parameters of arq's documentation (https://arq-docs.helpmanual.io/).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from .. import probe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SETTINGS = RedisSettings.from_dsn(URL)
TUNED = os.environ.get("BENCH_VARIANT") == "tuned"


async def noop(ctx: dict[str, Any]) -> None:
    probe.started()
    probe.finished()


async def lat(ctx: dict[str, Any], tag: str, t0: float) -> None:
    probe.picked_up(tag, t0)


async def hold(ctx: dict[str, Any], i: int) -> None:
    await asyncio.sleep(probe.HOLD_LONG if probe.hold_start(i) else 0.01)
    probe.hold_done(i)


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop, lat, hold]
    redis_settings = SETTINGS
    # arq's defaults (0.5 s, 10), or the tuned variant's
    poll_delay = 0.01 if TUNED else 0.5
    max_jobs = 100 if TUNED else 10


#: the recovery test (``BENCH_RECOVERY=1``): arq runs a job again once its in-progress key
#: has expired, the job timeout + 10 s after it started (by default 300 s + 10 s)
if os.environ.get("BENCH_RECOVERY") == "1":
    WorkerSettings.job_timeout = 15  # type: ignore[attr-defined]


class Adapter:
    name = "arq"
    sync_producer = False  # arq has no blocking producer API
    async_producer = True
    bulk = None
    worker_note = "one asyncio process, defaults (max_jobs 10, poll_delay 0.5 s)"
    recovery_running = 10
    recovery_setting = "job_timeout 15 s"

    def __init__(self) -> None:
        self._pool: ArqRedis | None = None

    def throughput_kind(self, variant: str) -> str:
        return "noop"

    def latency_kind(self, variant: str) -> str:
        return "lat"

    async def aenqueue(self, kind: str, *args: Any) -> None:
        if self._pool is None:
            self._pool = await create_pool(SETTINGS)
        await self._pool.enqueue_job(kind, *args)

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
        return [str(Path(sys.executable).parent / "arq"), "benchmarks.libs.arq_app.WorkerSettings"]

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            # best effort: after a failure the connections may belong to a closed loop
            with contextlib.suppress(RuntimeError):
                asyncio.run(self.aclose())
            self._pool = None


def versions() -> dict[str, str]:
    return {"arq": version("arq"), "redis": version("redis")}
