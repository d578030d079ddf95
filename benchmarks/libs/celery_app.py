"""Celery's side: the app its worker runs (``celery -A benchmarks.libs.celery_app worker``)
and the producer adapter.

Production setup: the Redis broker, no result backend (Celery's default), the prefork pool
with one child per core (``-c`` = cores, Celery's default concurrency), default prefetch
(4 per child) and acknowledgement on receipt (``task_acks_late=False``, the default).

The ``tuned`` variant follows Celery's optimizing guide for many short tasks
(https://docs.celeryq.dev/en/stable/userguide/optimizing.html): a large prefetch multiplier
(128 per child), and the default scheduling (``-O default``: ``-O fair`` is the guide's
advice for long tasks); and it turns off what a lone worker does not need, gossip, mingle
and event heartbeats (``--without-gossip --without-mingle --without-heartbeat``,
https://docs.celeryq.dev/en/stable/reference/cli.html).
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
#: the recovery test (``BENCH_RECOVERY=1``): Celery's redelivery of the tasks of a lost
#: worker, late acknowledgement with the Redis transport's visibility timeout, short
RECOVERY = os.environ.get("BENCH_RECOVERY") == "1"
if RECOVERY:
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_transport_options={
            "visibility_timeout": 10,
            # kombu's sweep of unacknowledged messages: every 5 s, each time (by default
            # every 10 s, and only every 10th time)
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
        },
    )


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
#: the tuned variant's worker options (see the module's docstring for their sources)
TUNED_ARGS = [
    "--prefetch-multiplier",
    "128",
    "-O",
    "default",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
]


class Adapter:
    name = "celery"
    sync_producer = True
    async_producer = False  # Celery has no asyncio producer API
    bulk = None  # group() publishes one message per task: not a bulk enqueue
    worker_note = f"prefork pool, {CORES} child processes (-c {CORES} = cores), prefetch 4"
    recovery_running = CORES
    #: the setting the recovery test ran with, as the results show it (all: RECOVERY above)
    recovery_setting = "acks_late, visibility_timeout 10 s, restore sweep every 5 s"

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
            *(TUNED_ARGS if variant == "tuned" else []),
        ]

    def close(self) -> None:
        app.close()


def versions() -> dict[str, str]:
    return {"celery": version("celery"), "kombu": version("kombu"), "redis": version("redis")}
