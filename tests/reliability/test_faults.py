"""Faults with real processes and a real Redis: a worker SIGKILLed or frozen while it holds
tasks, SIGTERM mid-run, and a poison task that kills every worker it reaches.

Lease 3 s and renewal 1 s here (defaults 15 s and 5 s), so the bound
"lease + renewal + 2 s" is 6 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from taskq_core import TaskQueue
from taskq_core.message import stored_dict

ROOT = Path(__file__).resolve().parents[2]
LEASE, RENEW = 3.0, 1.0
BOUND = LEASE + RENEW + 2.0

pytestmark = pytest.mark.slow


class Workers:
    """Starts worker subprocesses on the test's prefix and cleans them up."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 4, **env: str) -> subprocess.Popen[bytes]:
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TASKQ_TEST_REDIS_URL": self.redis_url,
            "TASKQ_TEST_PREFIX": self.prefix,
            "TASKQ_TEST_LEASE": str(LEASE),
            "TASKQ_TEST_RENEW": str(RENEW),
            **env,
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskq_core.cli",
                "worker",
                "--app",
                "tests.reliability.workerapp:tq",
                "--concurrency",
                str(concurrency),
                "--log-level",
                "WARNING",
            ],
            env=environ,
            cwd=ROOT,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
            p.wait(10)


@pytest.fixture
def workers(redis_url: str, prefix: str) -> Iterator[Workers]:
    w = Workers(redis_url, prefix)
    yield w
    w.close()


@pytest.fixture
def tq(make_app: Callable[..., TaskQueue]) -> TaskQueue:
    app = make_app("redis")
    # the same task names as the worker app, registered here only to enqueue them
    for name in ("rel.long_then_short", "rel.along_then_short", "rel.kill_my_worker"):
        app.task(name=name)(lambda *a, **k: None)
    return app


def runs(r: redis.Redis, prefix: str, which: str) -> list[tuple[str, str]]:
    out = []
    for raw in r.lrange(f"{prefix}:test:{which}", 0, -1):
        assert isinstance(raw, bytes)  # a client without decode_responses
        i, pid = raw.decode().split(":")
        out.append((i, pid))
    return out


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def test_sigkill_worker_tasks_finish_elsewhere_within_bound(
    tq: TaskQueue, workers: Workers, redis_client: redis.Redis, prefix: str
) -> None:
    a = workers.start(concurrency=4)
    in_flight = tq.enqueue_many(
        [tq.signature("rel.long_then_short", [i]) for i in range(2)]
        + [tq.signature("rel.along_then_short", [i]) for i in range(2, 4)]
    )
    wait_until(lambda: len(runs(redis_client, prefix, "started")) == 4, 30, "A to start 4 tasks")
    assert {pid for _, pid in runs(redis_client, prefix, "started")} == {str(a.pid)}
    queued = tq.enqueue_many(
        [tq.signature("rel.long_then_short", [i], {"long": 0.05}) for i in range(10, 16)]
    )
    b = workers.start(concurrency=4)
    wait_until(lambda: len(runs(redis_client, prefix, "finished")) >= 6, 30, "B to run the rest")

    a.kill()
    killed_at = time.monotonic()
    for h in in_flight:
        h.result(timeout=BOUND + 5)
    recovered = time.monotonic() - killed_at
    assert recovered <= BOUND, f"recovery took {recovered:.2f}s, bound {BOUND}s"

    started = runs(redis_client, prefix, "started")
    finished = runs(redis_client, prefix, "finished")
    # nothing lost: every task finished exactly once
    assert sorted(i for i, _ in finished) == sorted(
        [str(i) for i in range(4)] + [str(i) for i in range(10, 16)]
    )
    # only the tasks in flight in A ran twice; the others once
    counts = {i: sum(1 for j, _ in started if j == i) for i, _ in started}
    assert {i for i, n in counts.items() if n == 2} == {"0", "1", "2", "3"}
    assert all(counts[str(i)] == 1 for i in range(10, 16))
    assert all(h.result(timeout=1) == str(b.pid) for h in in_flight)
    assert all(h.status() == "succeeded" for h in queued)


def test_sigstop_late_ack_is_refused_and_counted(
    tq: TaskQueue, workers: Workers, redis_client: redis.Redis, prefix: str
) -> None:
    a = workers.start(concurrency=1)
    (h,) = tq.enqueue_many([tq.signature("rel.long_then_short", [1], {"long": LEASE + 2})])
    wait_until(lambda: len(runs(redis_client, prefix, "started")) == 1, 30, "A to start")
    a.send_signal(signal.SIGSTOP)
    b = workers.start(concurrency=1)
    # the lease lapses (A cannot renew while frozen) and B runs the task to the end
    assert h.result(timeout=LEASE + RENEW + 15) == str(b.pid)
    a.send_signal(signal.SIGCONT)
    # A wakes up, finishes its run and tries to settle: refused (fenced) and counted
    wait_until(lambda: len(runs(redis_client, prefix, "finished")) == 2, 30, "A to finish late")
    wait_until(
        lambda: int(redis_client.hget(f"{prefix}:{{default}}:stats", "stale_acks") or 0) == 1,
        10,
        "the stale ack to be counted",
    )
    assert h.result(timeout=1) == str(b.pid)
    assert h.info()["status"] == "succeeded"
    stats = redis_client.hgetall(f"{prefix}:{{default}}:stats")
    assert int(stats[b"ok"]) == 1
    assert int(stats[b"lease_expired"]) == 1


def test_sigterm_short_tasks_finish_rest_handed_back(
    tq: TaskQueue, workers: Workers, redis_client: redis.Redis, prefix: str
) -> None:
    a = workers.start(concurrency=4, TASKQ_TEST_GRACE="0.3")
    short = tq.enqueue_many(
        [tq.signature("rel.long_then_short", [i], {"long": 0.15}) for i in range(2)]
    )
    long = tq.enqueue_many(
        [
            tq.signature("rel.long_then_short", [2], {"long": 60}),
            tq.signature("rel.along_then_short", [3], {"long": 60}),
        ]
    )
    wait_until(lambda: len(runs(redis_client, prefix, "started")) == 4, 30, "A to start 4")
    b = workers.start(concurrency=4)
    time.sleep(1.0)  # let B boot and go idle (it has nothing to do yet)
    assert len(runs(redis_client, prefix, "started")) == 4
    a.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    wait_until(
        lambda: (
            {i for i, pid in runs(redis_client, prefix, "started") if pid == str(b.pid)}
            == {"2", "3"}
        ),
        5,
        "B to start the handed-back tasks",
    )
    elapsed = time.monotonic() - sent
    assert elapsed <= 1.0 + 0.3, f"handed-back tasks running elsewhere after {elapsed:.2f}s"
    assert a.wait(10) == 0
    # the short ones finished on A, within its grace period
    assert all(h.result(timeout=5) == str(a.pid) for h in short)
    assert all(h.result(timeout=10) == str(b.pid) for h in long)
    stats = redis_client.hgetall(f"{prefix}:{{default}}:stats")
    assert int(stats[b"released"]) == 2
    assert b"lease_expired" not in stats


def test_poison_task_dead_lettered_after_k_deliveries(
    tq: TaskQueue, workers: Workers, redis_client: redis.Redis, prefix: str
) -> None:
    k = 3
    env = {"TASKQ_TEST_MAX_DELIVERIES": str(k), "TASKQ_TEST_LEASE": "1", "TASKQ_TEST_RENEW": "0.3"}
    (h,) = tq.enqueue_many([tq.signature("rel.kill_my_worker")])
    launches = 0
    while h.status() != "dead":
        assert launches < k + 2, "the poison task kept killing workers"
        proc = workers.start(concurrency=1, **env)
        launches += 1
        try:
            proc.wait(timeout=8)  # it dies delivering the task...
        except subprocess.TimeoutExpired:
            break  # ...or, once the task is dead-lettered, it stays up
    wait_until(lambda: h.status() == "dead", 10, "the task to be dead-lettered")
    assert len(runs(redis_client, prefix, "started")) == k
    info = h.info()
    assert info["error"]["type"] == "PoisonTask"
    assert f"delivered {k} times" in info["error"]["message"]
    (dead,) = tq.broker.dead_list("default", 0, 10)
    assert stored_dict(dead.message, dead.id, dead.queue)["task"] == "rel.kill_my_worker"
