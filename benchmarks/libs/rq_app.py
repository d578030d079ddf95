"""RQ's side: the jobs, the worker (``python -m benchmarks.libs.rq_app``: RQ's standard
``Worker``, which forks a work horse for every job) and the producer adapter.

The worker is started through this module rather than the ``rq worker`` command only so
that the module (and the probe's shared counters) is imported before the worker forks.

The ``tuned`` variant runs RQ's ``SimpleWorker``, which runs each job in the worker process
instead of forking a work horse for it: RQ's performance notes
(https://github.com/rq/rq/blob/master/docs/benchmark.md) name it the choice for jobs of a
few milliseconds, where the fork is the bottleneck.
"""

from __future__ import annotations

import os
import sys
import time
from importlib.metadata import version
from typing import Any

from redis import Redis
from rq import Queue, Retry, SimpleWorker, Worker

from .. import probe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
conn = Redis.from_url(URL)
queue = Queue("default", connection=conn)


def noop() -> None:
    probe.started()
    probe.finished()


def lat(tag: str, t0: float) -> None:
    probe.picked_up(tag, t0)


def hold(i: int) -> None:
    time.sleep(probe.HOLD_LONG if probe.hold_start(i) else 0.01)
    probe.hold_done(i)


TASKS: dict[str, Any] = {"noop": noop, "lat": lat, "hold": hold}


class Adapter:
    name = "rq"
    sync_producer = True
    async_producer = False  # RQ has no asyncio producer API
    bulk = "Queue.enqueue_many (one pipeline per batch)"
    worker_note = "standard `Worker`: one process that forks a work horse per job"
    recovery_running = 1
    #: the setting the recovery test ran with, as the results show it (all: RECOVERY_WORKER)
    recovery_setting = "Retry(max=1), maintenance_interval 5 s, job_monitoring_interval 5 s"

    def throughput_kind(self, variant: str) -> str:
        return "noop"

    def latency_kind(self, variant: str) -> str:
        return "lat"

    def enqueue(self, kind: str, *args: Any) -> None:
        if os.environ.get("BENCH_RECOVERY") == "1":  # a job re-queued once if abandoned
            queue.enqueue(TASKS[kind], *args, retry=Retry(max=1))
        else:
            queue.enqueue(TASKS[kind], *args)

    def enqueue_bulk(self, kind: str, argss: list[tuple[Any, ...]]) -> None:
        fn = TASKS[kind]
        queue.enqueue_many([Queue.prepare_data(fn, args=a) for a in argss])

    def prefill(self, kind: str, n: int) -> None:
        for start in range(0, n, 1000):
            self.enqueue_bulk(kind, [()] * min(1000, n - start))

    def worker_command(self, variant: str) -> list[str]:
        return [sys.executable, "-m", "benchmarks.libs.rq_app", variant]

    def close(self) -> None:
        conn.close()


def versions() -> dict[str, str]:
    return {"rq": version("rq"), "redis": version("redis")}


#: the recovery test (``BENCH_RECOVERY=1``): the StartedJobRegistry's cleanup, in a worker's
#: maintenance (by default every 10 minutes, and an idle worker's blocking dequeue waits
#: worker_ttl - 15 s before it gets there), re-queues an abandoned job with retries left
#: once its entry expires (the job monitoring interval + 60 s after the last heartbeat)
RECOVERY_WORKER = {"maintenance_interval": 5, "job_monitoring_interval": 5, "worker_ttl": 20}

if __name__ == "__main__":
    options = RECOVERY_WORKER if os.environ.get("BENCH_RECOVERY") == "1" else {}
    # the tuned variant: no work horse forked per job
    worker_class = SimpleWorker if sys.argv[1:] == ["tuned"] else Worker
    worker_class([queue], connection=conn, **options).work(logging_level="WARNING")
