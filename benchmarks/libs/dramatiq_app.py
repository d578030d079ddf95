"""Dramatiq's side: the actors its worker runs (``dramatiq benchmarks.libs.dramatiq_app
-p 1 -t 8``: one worker process with 8 threads, under Dramatiq's supervisor process) and
the producer adapter. Default middleware; no result backend (Dramatiq's default).

The ``tuned`` variant sets two of the environment variables of Dramatiq's reference
(https://dramatiq.io/reference.html): ``dramatiq_worker_timeout`` 10 ms (how long an idle
consumer backs off between fetches; 1,000 ms by default) and ``dramatiq_queue_prefetch`` 64
(messages held per worker process; 2 × threads = 16 by default). Still one process
(``-p 1``): Dramatiq's processes import the actors after they fork, so the probe's shared
counters would not be shared.
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
#: the recovery test (``BENCH_RECOVERY=1``): the Redis broker re-queues the messages of a
#: worker whose heartbeat is older than ``heartbeat_timeout``, in the maintenance that runs
#: on ``maintenance_chance`` commands in a million (by default 60 s and 1,000)
RECOVERY = os.environ.get("BENCH_RECOVERY") == "1"
RECOVERY_OPTIONS = {"heartbeat_timeout": 10_000, "maintenance_chance": 100_000} if RECOVERY else {}
broker = RedisBroker(url=URL, **RECOVERY_OPTIONS)
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
    recovery_setting = "heartbeat_timeout 10 s, maintenance_chance 10%"

    def throughput_kind(self, variant: str) -> str:
        return "noop"

    def worker_env(self, variant: str) -> dict[str, str]:
        if variant == "tuned":
            return {"dramatiq_worker_timeout": "10", "dramatiq_queue_prefetch": "64"}
        return {}

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
