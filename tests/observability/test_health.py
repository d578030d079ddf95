"""Health: components and status codes, and answers within 1.5 s while Redis is frozen
(SIGSTOP) or stopped, recovering once it is back. Those tests run a redis-server of their
own on a free port: the shared server is never touched."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import orjson
import pytest
import redis

from taskq_core import TaskQueue
from taskq_core.http import Request
from taskq_core.http.routes import RouteTable
from taskq_core.observability import health

from .conftest import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of this test's own, which it may freeze, stop and start again."""

    def __init__(self, extra: tuple[str, ...] = ()) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed")
        self.server = server
        self.port = free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", *self.extra],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

        def answers() -> bool:
            try:
                with redis.Redis.from_url(self.url, socket_timeout=0.5) as c:
                    return bool(c.ping())
            except redis.RedisError:
                return False

        wait_until(answers, 10, "the test's redis-server to answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)

    def freeze(self, on: bool) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if on else signal.SIGCONT)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    r = OwnRedis(("--maxmemory-policy", "noeviction"))
    r.start()
    yield r
    r.stop()


def timed_health(table: RouteTable) -> tuple[float, int, dict[str, object]]:
    start = time.monotonic()
    response = table.dispatch(Request("GET", "/health"))
    return time.monotonic() - start, response.status, orjson.loads(response.body)


@pytest.mark.slow
def test_health_answers_fast_while_redis_is_frozen_or_stopped_and_recovers(
    own_redis: OwnRedis,
) -> None:
    # a Redis without persistence on purpose: its durability is not what this test is about
    tq = TaskQueue(
        own_redis.url,
        key_prefix="healthtest",
        monitoring={"health_timeout": 0.5, "durability_warn": False},
    )
    table = RouteTable(tq)
    try:
        _, status, body = timed_health(table)
        assert status == 200
        assert body["components"]["broker"]["status"] == "healthy"  # type: ignore[index]

        own_redis.freeze(True)
        try:
            elapsed, status, body = timed_health(table)
            assert elapsed < 1.5
            assert (status, body["status"]) == (503, "unhealthy")
            ready = table.dispatch(Request("GET", "/health/ready"))
            assert ready.status == 503
            # liveness never asks Redis
            assert table.dispatch(Request("GET", "/health/live")).status == 200
        finally:
            own_redis.freeze(False)
        wait_until(lambda: timed_health(table)[1] == 200, 10, "health to recover after SIGCONT")

        own_redis.stop()
        elapsed, status, body = timed_health(table)
        assert elapsed < 1.5
        assert (status, body["status"]) == (503, "unhealthy")
        components = body["components"]
        assert isinstance(components, dict)
        assert "error" in components["broker"]

        own_redis.start()  # same port
        wait_until(lambda: timed_health(table)[1] == 200, 10, "health to recover after restart")
        _, _, body = timed_health(table)
        assert body["status"] == "degraded"  # Redis is back; no worker runs
    finally:
        tq.close()


def test_components_and_degraded_states(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app(monitoring={"max_backlog": 2})
    report = health.check(tq)
    broker = report["components"]["broker"]
    assert broker["kind"] == "redis"
    assert broker["rtt_ms"] >= 0
    assert broker["maxmemory_policy"]
    assert report["components"]["scheduler"]["status"] == "not_configured"
    assert report["components"]["workers"] == {
        "status": "degraded",
        "alive": 0,
        "per_queue": {"high": 0, "default": 0, "low": 0},
        "unroutable": {},
        "stalled": [],
        "detail": "no live worker",
    }
    # eviction policy: degraded unless noeviction; persistence: degraded if a restart loses
    # tasks (the shared test Redis may run without it)
    durable = broker["durability"]
    assert durable["source"] == "config"
    assert durable["appendonly"] in ("yes", "no")
    fine = broker["maxmemory_policy"] == "noeviction" and not durable["loses_tasks_on_restart"]
    assert broker["status"] == ("healthy" if fine else "degraded")
    assert broker["data_loss"] is None

    @tq.task(name="h.noop")
    def noop() -> None: ...

    for _ in range(3):
        noop.enqueue()
    report = health.check(tq)
    assert report["components"]["backlog"]["status"] == "degraded"
    assert report["components"]["backlog"]["queues"]["default"]["ready"] == 3
    assert report["status"] == "degraded"
    assert health.http_status(report["status"]) == 200


def test_eviction_policy_other_than_noeviction_degrades_the_broker() -> None:
    r = OwnRedis(("--maxmemory-policy", "allkeys-lru"))
    r.start()
    tq = TaskQueue(r.url, key_prefix="evictiontest")
    try:
        broker = health.check(tq)["components"]["broker"]
        assert broker["status"] == "degraded"
        assert broker["maxmemory_policy"] == "allkeys-lru"
        assert any("evict" in w for w in broker["warnings"])
    finally:
        tq.close()
        r.stop()


def test_memory_broker_health(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory")
    report = health.check(tq)
    assert report["components"]["broker"] == {
        "status": "healthy", "kind": "memory", "rtt_ms": 0.0, "warnings": []
    }  # fmt: skip
    assert health.ready(tq)["status"] == "ready"
