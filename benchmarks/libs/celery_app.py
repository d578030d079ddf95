"""Celery's side: the app its worker runs (``celery -A benchmarks.libs.celery_app worker``)
and the producer adapter.

Production setup: the Redis broker, no result backend (Celery's default), the prefork pool
with one child per core (``-c`` = cores, Celery's default concurrency), default prefetch
(4 per child) and acknowledgement on receipt (``task_acks_late=False``, the default).
"""

from __future__ import annotations

import os
import sys
import time
from importlib.metadata import version
from typing import Any

from celery import Celery

from .. import probe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
CORES = os.cpu_count() or 1

app = Celery("bench", broker=URL)
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=True)


@app.task(name="noop")
def noop() -> None:
    probe.started()
    probe.finished()


@app.task(name="lat")
def lat(tag: str, t0: float) -> None:
    probe.picked_up(tag, t0)


@app.task(name="hold")
def hold(i: int) -> None:
    time.sleep(probe.HOLD_LONG if probe.hold_start(i) else 0.01)
    probe.hold_done(i)


TASKS: dict[str, Any] = {"noop": noop, "lat": lat, "hold": hold}


class Adapter:
    name = "celery"
    sync_producer = True
    async_producer = False  # Celery has no asyncio producer API
    bulk = None  # group() publishes one message per task: not a bulk enqueue
    worker_note = f"prefork pool, {CORES} child processes (-c {CORES} = cores), prefetch 4"
    recovery_running = CORES

    def throughput_kind(self, variant: str) -> str:
        return "noop"

    def latency_kind(self, variant: str) -> str:
        return "lat"

    def enqueue(self, kind: str, *args: Any) -> None:
        TASKS[kind].delay(*args)

    def prefill(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        for _ in range(n):
            task.delay()

    def worker_command(self, variant: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.libs.celery_app",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(CORES),
            "-l",
            "WARNING",
        ]

    def close(self) -> None:
        app.close()


def versions() -> dict[str, str]:
    return {"celery": version("celery"), "kombu": version("kombu"), "redis": version("redis")}
