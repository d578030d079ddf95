"""A worker cut off by a half-open link (issue 14, defect 3) fetches again once the link is
back: a worker subprocess talks to Redis through the fault proxy, the proxy drops every byte
both ways for a while (connections left open), then passes bytes again.

Socket timeout 2 s here (``TASKQ_TEST_SOCKET_TIMEOUT``; the default is 10 s). After the link
returns, a round trip already on its way gives up within the socket timeout, the fetch loop
sleeps its back-off (at most 5 s) and fetches on a fresh connection: the first new task runs
within ``socket timeout + 5 s`` plus scheduling slack, asserted with a generous margin.
``TASKQ_TEST_BLACKHOLE`` sets the blackhole's length (12 s by default; the report's one-off
run used 30 s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest
import redis

from taskq_core import TaskQueue
from tests.reliability.proxy import Proxy
from tests.reliability.test_faults import Workers, runs, wait_until

pytestmark = pytest.mark.slow

BLACKHOLE = float(os.environ.get("TASKQ_TEST_BLACKHOLE", "12"))
SOCKET_TIMEOUT = float(os.environ.get("TASKQ_TEST_SOCKET_TIMEOUT", "2"))
#: room for a loaded 2-core machine
SLACK = 10.0


@pytest.fixture
def tq(make_app: Callable[..., TaskQueue]) -> TaskQueue:
    app = make_app("redis")
    app.task(name="rel.long_then_short")(lambda *a, **k: None)
    return app


def test_a_worker_cut_off_by_a_half_open_link_runs_new_tasks_once_it_returns(
    tq: TaskQueue, proxy: Proxy, redis_url: str, redis_client: redis.Redis, prefix: str
) -> None:
    cut_off_and_back(
        tq, proxy, proxy.url, redis_url, redis_client, prefix, SOCKET_TIMEOUT, BLACKHOLE
    )


def cut_off_and_back(
    tq: TaskQueue,
    proxy: Proxy,
    broker_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    prefix: str,
    socket_timeout: float,
    blackhole: float,
) -> None:
    """The scenario of this module, for any broker: a worker subprocess on ``broker_url``
    (through ``proxy``) runs 10 tasks, is cut off for ``blackhole`` seconds while 10 more
    arrive, then runs all 110 more within the promised time once the link is back; each of
    the 120 exactly once. ``tq`` enqueues on a link of its own."""
    promised = socket_timeout + 5.0
    workers = Workers(broker_url, prefix)
    try:
        workers.start(
            concurrency=4,
            TASKQ_TEST_RECORD_URL=redis_url,
            TASKQ_TEST_SOCKET_TIMEOUT=str(socket_timeout),
        )

        def sig(i: int) -> object:
            return tq.signature("rel.long_then_short", [i], {"long": 0.01, "short": 0.01})

        def finished() -> int:
            return len(runs(redis_client, prefix, "finished"))

        tq.enqueue_many([sig(i) for i in range(10)])  # type: ignore[misc]
        wait_until(lambda: finished() == 10, 30, "the worker to run the first 10 tasks")

        proxy.blackhole()
        time.sleep(1.0)  # the worker is now inside a round trip that will get no answer
        tq.enqueue_many([sig(i) for i in range(10, 20)])  # type: ignore[misc]
        time.sleep(blackhole - 1.0)
        assert finished() == 10  # the link really was dead
        proxy.passthrough()
        back = time.monotonic()
        tq.enqueue_many([sig(i) for i in range(20, 120)])  # type: ignore[misc]

        first = wait_until(lambda: finished() > 10, promised + SLACK, "the first task after")
        wait_until(lambda: finished() == 120, 60, "all 110 tasks after")
        total = time.monotonic() - back
        print(
            f"\nblackhole {blackhole:g}s, socket timeout {socket_timeout:g}s: first task "
            f"{first:.2f}s after the link returned, all 110 in {total:.2f}s"
        )
        assert first <= promised + SLACK
        done = sorted(int(i) for i, _ in runs(redis_client, prefix, "finished"))
        assert done == list(range(120))  # each task once: nothing lost, nothing doubled
    finally:
        workers.close()
