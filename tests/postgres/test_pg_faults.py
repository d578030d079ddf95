"""Faults with real worker processes on the PostgreSQL broker: a worker SIGKILLed while it
holds tasks (they finish elsewhere within lease + renewal + 2 s), and PostgreSQL itself
crashing and restarting mid-run (nothing acknowledged is lost: every task whose enqueue
returned runs to its end).

The worker app is the Redis fault suite's (tests/reliability/workerapp.py) with its broker
URL pointed at PostgreSQL; the tasks still record their runs in Redis, which the faults
here do not touch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis

from taskq_core import Settings, TaskQueue
from taskq_core.brokers.postgres import migrate
from taskq_core.errors import TaskqError
from taskq_core.handle import TaskHandle
from tests.conftest import drop_namespace
from tests.postgres.server import PgServer
from tests.reliability.test_faults import BOUND, LEASE, RENEW, Workers, runs, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def workers(redis_url: str, prefix: str) -> Iterator[Workers]:
    w = Workers(redis_url, prefix)
    yield w
    w.close()


def register(app: TaskQueue) -> TaskQueue:
    # the worker app's task names, registered here only to enqueue them
    for name in ("rel.long_then_short", "rel.along_then_short", "rel.quick"):
        app.task(name=name)(lambda *a, **k: None)
    return app


def test_sigkill_worker_tasks_finish_elsewhere_within_bound(
    make_app: Callable[..., TaskQueue],
    workers: Workers,
    redis_client: redis.Redis,
    redis_url: str,
    postgres_url: str,
    prefix: str,
) -> None:
    tq = register(make_app("postgres", worker={"lease_seconds": LEASE, "renew_interval": RENEW}))
    on_pg = {"TASKQ_TEST_REDIS_URL": postgres_url, "TASKQ_TEST_RECORD_URL": redis_url}
    a = workers.start(concurrency=4, **on_pg)
    in_flight = tq.enqueue_many(
        [tq.signature("rel.long_then_short", [i]) for i in range(2)]
        + [tq.signature("rel.along_then_short", [i]) for i in range(2, 4)]
    )
    wait_until(lambda: len(runs(redis_client, prefix, "started")) == 4, 30, "A to start 4 tasks")
    b = workers.start(concurrency=4, **on_pg)
    time.sleep(1.0)  # B is up and idle, listening
    a.kill()
    killed_at = time.monotonic()
    for h in in_flight:
        h.result(timeout=BOUND + 10)
    recovered = time.monotonic() - killed_at
    assert recovered <= BOUND, f"recovery took {recovered:.2f}s, bound {BOUND}s"
    assert all(h.result(timeout=1) == str(b.pid) for h in in_flight)
    finished = runs(redis_client, prefix, "finished")
    assert sorted(i for i, _ in finished) == ["0", "1", "2", "3"]


def test_a_postgres_crash_and_restart_mid_run_loses_nothing_acknowledged(
    pg_server: PgServer, workers: Workers, redis_client: redis.Redis, redis_url: str, prefix: str
) -> None:
    url = pg_server.url
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    # calls give up after 1 s without the database: an enqueue during the outage fails
    # (not acknowledged) rather than wait for the server to come back
    tq = register(
        TaskQueue(
            settings=Settings(broker_url=url, key_prefix=prefix, broker={"socket_timeout": 1})
        )
    )
    acknowledged: list[TaskHandle] = []
    refused: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        n = 1000
        while not stop.is_set():
            try:
                acknowledged.append(tq.enqueue("rel.quick", [n]))
            except (TaskqError, psycopg.Error) as exc:  # the database is down: not acknowledged
                refused.append(type(exc).__name__)
                time.sleep(0.05)
            n += 1
            time.sleep(0.005)

    try:
        first = tq.enqueue_many([tq.signature("rel.quick", [i]) for i in range(300)])
        acknowledged.extend(first)
        on_pg = {"TASKQ_TEST_REDIS_URL": url, "TASKQ_TEST_RECORD_URL": redis_url}
        workers.start(concurrency=4, **on_pg)
        workers.start(concurrency=4, **on_pg)
        producer = threading.Thread(target=produce)
        producer.start()
        wait_until(
            lambda: len(runs(redis_client, prefix, "finished")) >= 50, 30, "50 tasks to finish"
        )
        pg_server.kill()  # a crash: no clean shutdown, crash recovery at the next start
        time.sleep(3.0)
        pg_server.start()
        time.sleep(1.0)
        stop.set()
        producer.join(30)
        assert refused, "the producer never saw the database down: the test proved nothing"
        wanted = {str(h.id) for h in acknowledged}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if all(h.status() == "succeeded" for h in acknowledged):
                    break
            except TaskqError:
                # the pool is still reconnecting after the outage (psycopg_pool backs off
                # between attempts): the test's own reads wait for it like any caller
                pass
            time.sleep(0.25)
        lost = [h.id for h in acknowledged if h.status() != "succeeded"]
        assert not lost, f"{len(lost)} of {len(wanted)} acknowledged tasks did not finish"
        finished = {i for i, _ in runs(redis_client, prefix, "finished")}
        assert {str(i) for i in range(300)} <= finished
    finally:
        stop.set()
        tq.close()
        drop_namespace(url, prefix)
