"""The application the observability tests run in worker subprocesses (``--app
tests.observability.clusterapp:tq``), configured from the environment the test sets.

``build`` makes the same application in the test process, to enqueue and to read the
façade; ``obs.only_here`` is registered only there, so the workers dead-letter it.
"""

from __future__ import annotations

import os
import time

import redis

from taskq_core import TaskQueue


def build(url: str, prefix: str, **monitoring: object) -> TaskQueue:
    tq = TaskQueue(
        url,
        key_prefix=prefix,
        worker={"lease_seconds": 3.0, "renew_interval": 0.5},
        retry={"backoff": 0.01, "backoff_max": 0.05},
        monitoring=monitoring,
    )
    r = redis.Redis.from_url(url)

    @tq.task(name="obs.ok")
    def ok(i: int) -> int:
        time.sleep(0.02)
        return i

    @tq.task(name="obs.fail", max_retries=1)
    def fail() -> None:
        raise RuntimeError("this task always fails")

    @tq.task(name="obs.flaky", max_retries=2)
    def flaky(key: str) -> str:
        # fails on its first run, succeeds when retried
        if r.incr(f"{prefix}:test:flaky:{key}") == 1:
            raise ConnectionError("first run fails")
        return key

    @tq.task(name="obs.leak")
    def leak(n: int) -> int:
        # keeps 2 MB per call for good: a leak on purpose (str * n touches every page)
        LEAKED.append("x" * (2 * 1024 * 1024))
        time.sleep(0.05)
        return n

    @tq.task(name="obs.steady")
    def steady(n: int) -> int:
        scratch = "x" * (2 * 1024 * 1024)  # the same allocation, released every time
        time.sleep(0.05)
        return n + len(scratch) * 0

    return tq


LEAKED: list[str] = []

if "TASKQ_TEST_PREFIX" in os.environ:
    tq = build(
        os.environ["TASKQ_TEST_REDIS_URL"],
        os.environ["TASKQ_TEST_PREFIX"],
        memory_window=float(os.environ.get("TASKQ_TEST_MEMORY_WINDOW", "3600")),
        leak_min_samples=int(os.environ.get("TASKQ_TEST_LEAK_SAMPLES", "10")),
        leak_mb_per_hour=float(os.environ.get("TASKQ_TEST_LEAK_MB_HOUR", "50")),
        leak_min_growth_mb=float(os.environ.get("TASKQ_TEST_LEAK_GROWTH_MB", "32")),
    )
