"""``taskq workflow show|cancel|retry`` as subprocesses on the real Redis and on PostgreSQL,
with workflows run by ``taskq worker`` (one process, and the supervisor's)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskq_core import TaskQueue, chain, chord
from tests.cli.conftest import Cli, clean_environ
from tests.conftest import drop_namespace

APP = """
import os

import redis

from taskq_core import TaskQueue

tq = TaskQueue.from_config()
flags = redis.Redis.from_url(os.environ["FLAGS_REDIS_URL"])


@tq.task(name="add")
def add(x, y=1):
    return x + y


@tq.task(name="total")
def total(xs):
    return sum(xs)


@tq.task(name="flaky", max_retries=0)
def flaky(x):
    if flags.exists(os.environ["TASKQ_KEY_PREFIX"] + ":test:fail"):
        raise RuntimeError("the flag says fail")
    return x * 10
"""


@pytest.fixture(params=["redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def broker_url(request: pytest.FixtureRequest, redis_url: str, prefix: str) -> Iterator[str]:
    """The broker the workflows run on (the flags the tasks read are in Redis on both)."""
    if request.param == "redis":
        yield redis_url
        return
    url = str(request.getfixturevalue("postgres_url"))
    yield url
    drop_namespace(url, prefix)


@pytest.fixture
def cli(tmp_path: Path, broker_url: str, redis_url: str, prefix: str) -> Cli:
    (tmp_path / "wfapp.py").write_text(APP)
    env = clean_environ()
    env.update(TASKQ_BROKER_URL=broker_url, TASKQ_KEY_PREFIX=prefix, FLAGS_REDIS_URL=redis_url)
    return Cli(tmp_path, env)


@pytest.fixture
def tq(broker_url: str, prefix: str) -> Iterator[TaskQueue]:
    app = TaskQueue(broker_url, key_prefix=prefix)

    # registered here only to build the workflows (wfapp.py's run them)
    for name in ("add", "total"):
        app.task(name=name)(lambda *a, **k: None)
    app.task(name="flaky", max_retries=0)(lambda *a, **k: None)

    yield app
    app.close()


def test_show_retry_and_cancel(
    cli: Cli, tq: TaskQueue, redis_client: redis.Redis, prefix: str
) -> None:
    redis_client.set(f"{prefix}:test:fail", 1)
    h = chain(tq.get_task("add").call(1), tq.get_task("flaky").call()).enqueue()
    run = cli("worker", "--app", "wfapp:tq", "--burst", "--log-level", "WARNING")
    assert run.code == 0, run.err
    shown = cli("--app", "wfapp:tq", "workflow", "show", h.id, "--json")
    assert shown.code == 0, shown.err
    info = shown.json()
    assert info["status"] == "failed"
    assert info["failed_step"] == 1
    assert info["steps"][1]["error"]["message"] == "the flag says fail"
    human = cli("--app", "wfapp:tq", "workflow", "show", h.id)
    assert "failed at" in human.out
    assert "the flag says fail" in human.out

    redis_client.delete(f"{prefix}:test:fail")
    again = cli("--app", "wfapp:tq", "workflow", "retry", h.id, "--json")
    assert again.code == 0, again.err
    assert again.json() == {"id": h.id, "retried_steps": 1}
    run = cli("worker", "--app", "wfapp:tq", "--burst", "--log-level", "WARNING")
    assert run.code == 0, run.err
    assert h.result(timeout=5) == 20
    refused = cli("--app", "wfapp:tq", "workflow", "retry", h.id)
    assert refused.code == 1
    assert "only a failed or cancelled workflow" in refused.err

    queued = chord([tq.get_task("add").call(i) for i in range(5)], tq.get_task("total").call())
    q = queued.enqueue()
    cancelled = cli("--app", "wfapp:tq", "workflow", "cancel", q.id)
    assert cancelled.code == 0, cancelled.err
    assert q.status() == "cancelled"
    twice = cli("--app", "wfapp:tq", "workflow", "cancel", q.id)
    assert twice.code == 1
    missing = cli("--app", "wfapp:tq", "workflow", "show", "wf_nothere")
    assert missing.code == 5
    assert "no workflow 'wf_nothere'" in missing.err


def test_a_chord_and_a_chain_under_the_supervisor(cli: Cli, tq: TaskQueue) -> None:
    add, total = tq.get_task("add"), tq.get_task("total")
    c = chord([add.call(i) for i in range(40)], total.call()).enqueue()
    long = chain(add.call(0), *(add.call() for _ in range(29))).enqueue()
    proc = cli.popen("worker", "--app", "wfapp:tq", "--processes", "2")
    try:
        assert c.result(timeout=60) == sum(range(1, 41))
        assert long.result(timeout=60) == 30
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    started = time.monotonic()
    assert c.info()["counts"] == {"succeeded": 41}
    assert time.monotonic() - started < 5
