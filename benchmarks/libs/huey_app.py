"""Huey's side: the tasks its consumer runs (``huey_consumer
benchmarks.libs.huey_app.huey -k thread -w 8``: one process, 8 worker threads) and the
producer adapter. ``RedisHuey`` with its defaults (blocking reads, results kept for tasks
that return something).

The ``tuned`` variant runs the consumer's process workers, one per core (``-k process -w
cores``): Huey's consumer documentation (https://huey.readthedocs.io/en/latest/consumer.html)
advises processes for CPU-bound work, and a no-op task's cost is all the consumer's own
Python. The workers fork after this module is imported, so the probe's counters are shared.
"""

from __future__ import annotations

import os
import sys
import time
from importlib.metadata import version
from typing import Any

from huey import RedisHuey

from .. import probe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
CORES = os.cpu_count() or 1
huey = RedisHuey("bench", url=URL)


@huey.task(name="noop")
def noop() -> None:
    probe.started()
    probe.finished()


@huey.task(name="lat")
def lat(tag: str, t0: float) -> None:
    probe.picked_up(tag, t0)


@huey.task(name="hold")
def hold(i: int) -> None:
    time.sleep(probe.HOLD_LONG if probe.hold_start(i) else 0.01)
    probe.hold_done(i)


TASKS: dict[str, Any] = {"noop": noop, "lat": lat, "hold": hold}


class Adapter:
    name = "huey"
    sync_producer = True
    async_producer = False  # Huey has no asyncio producer API
    bulk = None
    worker_note = "consumer with 8 worker threads (`-k thread -w 8`), one process"
    recovery_running = 8
    recovery_setting = None  # Huey has no recovery feature: a dequeued task is gone from Redis

    def throughput_kind(self, variant: str) -> str:
        return "noop"

    def latency_kind(self, variant: str) -> str:
        return "lat"

    def enqueue(self, kind: str, *args: Any) -> None:
        TASKS[kind](*args)

    def prefill(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        for _ in range(n):
            task()

    def worker_command(self, variant: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "huey.bin.huey_consumer",
            "benchmarks.libs.huey_app.huey",
            "-k",
            "process" if variant == "tuned" else "thread",
            "-w",
            str(CORES) if variant == "tuned" else "8",
            "-q",
        ]

    def close(self) -> None:
        huey.storage.conn.close()


def versions() -> dict[str, str]:
    return {"huey": version("huey"), "redis": version("redis")}
