"""Dramatiq's side: the actors its worker runs (``dramatiq benchmarks.libs.dramatiq_app
-p 1 -t 8``: one worker process with 8 threads, under Dramatiq's supervisor process) and
the producer adapter. Default middleware; no result backend (Dramatiq's default).
"""

from __future__ import annotations

import os
import sys
import time
from importlib.metadata import version
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from .. import probe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop")
def noop() -> None:
    probe.started()
    probe.finished()


@dramatiq.actor(actor_name="lat")
def lat(tag: str, t0: float) -> None:
    probe.picked_up(tag, t0)


@dramatiq.actor(actor_name="hold")
def hold(i: int) -> None:
    time.sleep(probe.HOLD_LONG if probe.hold_start(i) else 0.01)
    probe.hold_done(i)


TASKS: dict[str, Any] = {"noop": noop, "lat": lat, "hold": hold}


class Adapter:
    name = "dramatiq"
    sync_producer = True
    async_producer = False  # Dramatiq has no asyncio producer API
    bulk = None  # group() sends one message per task
    worker_note = "1 worker process with 8 threads (`-p 1 -t 8`) under its supervisor"
    recovery_running = 8

    def throughput_kind(self, variant: str) -> str:
        return "noop"

    def latency_kind(self, variant: str) -> str:
        return "lat"

    def enqueue(self, kind: str, *args: Any) -> None:
        TASKS[kind].send(*args)

    def prefill(self, kind: str, n: int) -> None:
        task = TASKS[kind]
        for _ in range(n):
            task.send()

    def worker_command(self, variant: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dramatiq",
            "benchmarks.libs.dramatiq_app",
            "-p",
            "1",
            "-t",
            "8",
        ]

    def close(self) -> None:
        broker.close()


def versions() -> dict[str, str]:
    return {"dramatiq": version("dramatiq"), "redis": version("redis")}
