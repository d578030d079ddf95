"""A Redis that loses its data on a restart, and a Redis that is full (issue 14, defects 4
and 7), each on a private redis-server that the test restarts or fills.

- restart without persistence: the worker sees the marker gone, logs that queued tasks may
  have been lost, raises the ``data_lost`` alert, and says so of the outcome Redis refused;
  health shows the persistence in force, its warning and the loss;
- restart with ``appendonly yes``: no loss warning, no alert, the tasks are still there;
- ``maxmemory`` reached: enqueues fail with ``BrokerFull`` and wrote nothing of the refused
  task; health warns above ``monitoring.memory_warn_ratio`` and about an evicting policy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from taskq_core import BrokerFull, Settings, TaskQueue
from taskq_core.observability import alerts, health
from tests.inthread import InThread, wait_for
from tests.observability.test_health import OwnRedis

pytestmark = pytest.mark.slow


def marker_written(url: str, prefix: str) -> bool:
    with redis.Redis.from_url(url) as c:
        return bool(c.exists(f"{prefix}:marker"))


def app(url: str, prefix: str) -> TaskQueue:
    settings = Settings(
        broker_url=url,
        key_prefix=prefix,
        worker={"lease_seconds": 3, "renew_interval": 0.5, "idle_wait": 0.2},
        broker={"socket_timeout": 2},
    )
    return TaskQueue(settings=settings)


@pytest.fixture
def plain_redis() -> Iterator[OwnRedis]:
    r = OwnRedis(("--maxmemory-policy", "noeviction"))  # --save "" --appendonly no
    r.start()
    yield r
    r.stop()


def test_restart_without_persistence_is_noticed_logged_alerted_and_shown(
    plain_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    tq = app(plain_redis.url, "lossy")
    events: list[dict[str, Any]] = []
    tq.alert_sinks.append(events.append)
    release = threading.Event()

    @tq.task(name="d.slow")
    def slow() -> None:
        release.wait(10)

    @tq.task(name="d.never")
    def never() -> None: ...

    report = health.check(tq)["components"]["broker"]
    assert report["durability"] == {
        "source": "config",
        "appendonly": "no",
        "appendfsync": "everysec",
        "save": "",
        "loses_tasks_on_restart": True,
        "warning": report["durability"]["warning"],
    }
    assert "a restart loses every queued task" in report["durability"]["warning"]
    assert report["durability"]["warning"] in report["warnings"]
    assert report["status"] == "degraded"

    running = InThread(tq, queues=["default"])
    try:
        wait_for(lambda: marker_written(plain_redis.url, "lossy"), 10, "the data marker")
        queued = [tq.enqueue("d.never", queue="low") for _ in range(5)]  # nobody serves low
        assert [h.status() for h in queued] == ["queued"] * 5
        slow.enqueue()
        wait_for(lambda: running.worker.busy == 1, 10, "the slow task to start")

        plain_redis.stop()
        plain_redis.start()
        release.set()  # its outcome reaches a Redis that no longer knows the task

        lost = wait_for(
            lambda: [e for e in events if e["rule"] == "data_lost"], 20, "the data_lost alert"
        )
        assert lost[0]["event"] == "fired"
        assert lost[0]["severity"] == "critical"
        assert "queued tasks may have been lost" in lost[0]["message"]
        assert "restarted without its data" in lost[0]["message"]
        assert [a["key"] for a in alerts.state(tq)["active"]] == ["data_lost:broker"]
        errors = [r.getMessage() for r in caplog.records if r.name == "taskq.durability"]
        assert any("Redis lost its data" in m for m in errors)
        assert any("queued tasks may have been lost" in m for m in errors)
        # the refused outcome is explained by the loss, not by a redelivery
        refused = wait_for(
            lambda: [r.getMessage() for r in caplog.records if "refused" in r.getMessage()],
            20,
            "the refused outcome's log line",
        )
        assert all("Redis lost its data" in m for m in refused)
        assert not any("delivered again" in m for m in refused)
        assert running.worker.counts.stale == 1

        # the tasks are really gone (what the alert is about)
        assert [h.status() for h in queued] == ["unknown"] * 5
        report = health.check(tq)["components"]["broker"]
        assert report["data_loss"] is not None
        assert "restarted without its data" in report["data_loss"]["cause"]
        assert any("Redis lost its data" in w for w in report["warnings"])
        # the alert stays active through the next evaluations (no SLA rule holds it)
        assert alerts.evaluate(tq, force=True)
        assert [a["key"] for a in alerts.state(tq)["active"]] == ["data_lost:broker"]
        # one alert: later ticks see the marker the worker wrote back
        time.sleep(1.5)
        assert len([e for e in events if e["rule"] == "data_lost"]) == 1
    finally:
        release.set()
        running.stop()
        tq.close()


def test_restart_with_appendonly_keeps_the_tasks_and_warns_of_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    r = OwnRedis(("--appendonly", "yes", "--dir", str(tmp_path)))
    r.start()
    tq = app(r.url, "durable")
    events: list[dict[str, Any]] = []
    tq.alert_sinks.append(events.append)

    @tq.task(name="d.never")
    def never() -> None: ...

    running = InThread(tq, queues=["default"])
    try:
        report = health.check(tq)["components"]["broker"]
        assert report["durability"]["appendonly"] == "yes"
        assert report["durability"]["loses_tasks_on_restart"] is False
        assert report["durability"]["warning"] == ""
        assert not any("restart" in w for w in report["warnings"])
        wait_for(lambda: marker_written(r.url, "durable"), 10, "the data marker")
        queued = [tq.enqueue("d.never", queue="low") for _ in range(5)]
        r.stop()
        r.start()
        wait_for(
            lambda: any("kept its data" in x.getMessage() for x in caplog.records),
            20,
            "the worker to notice the restart",
        )
        assert all(h.status() == "queued" for h in queued)
        assert not [e for e in events if e["rule"] == "data_lost"]
        assert health.check(tq)["components"]["broker"]["data_loss"] is None
    finally:
        running.stop()
        tq.close()
        r.stop()


def test_a_full_redis_refuses_enqueues_with_broker_full_and_health_warns_before() -> None:
    r = OwnRedis(("--maxmemory", "2mb", "--maxmemory-policy", "noeviction"))
    r.start()
    tq = TaskQueue(r.url, key_prefix="full", monitoring={"durability_warn": False})

    @tq.task(name="d.big")
    def big(blob: str) -> None: ...

    blob = "x" * 20_000
    try:
        assert not health.check(tq)["components"]["broker"]["warnings"]
        accepted = []
        warned_at = None
        refused: BrokerFull | None = None
        for i in range(1000):
            try:
                accepted.append(big.enqueue(blob))
            except BrokerFull as exc:
                refused = exc
                break
            if warned_at is None and i % 5 == 0:
                warnings = health.check(tq)["components"]["broker"]["warnings"]
                if any("of maxmemory" in w for w in warnings):
                    warned_at = len(accepted)
        assert refused is not None, "Redis never filled up"
        assert "the broker is full" in str(refused)
        assert accepted, "nothing fit"
        assert warned_at is not None
        assert warned_at < len(accepted)  # warned before it was full
        warning = next(
            w for w in health.check(tq)["components"]["broker"]["warnings"] if "maxmemory" in w
        )
        assert "over 80% of maxmemory" in warning
        assert "BrokerFull" in warning
        assert isinstance(refused.__cause__, redis.exceptions.OutOfMemoryError)
        # nothing half-written: every accepted task is queued, nothing else is
        info = tq.broker.queue_info(["default"])[0]
        assert info.ready == len(accepted)
        with redis.Redis.from_url(r.url) as c:
            msgs = [k for k in c.scan_iter("full:*") if b"msg" in k]
            assert sum(c.hlen(k) for k in msgs) == len(accepted)

        async def async_enqueue() -> None:
            try:
                with pytest.raises(BrokerFull):
                    await big.enqueue_async(blob)
            finally:
                await tq.broker.aclose()

        asyncio.run(async_enqueue())

        # an evicting policy is warned about
        with redis.Redis.from_url(r.url) as c:
            c.config_set("maxmemory-policy", "volatile-lru")
        warnings = health.check(tq)["components"]["broker"]["warnings"]
        assert any("volatile-lru" in w and "requires noeviction" in w for w in warnings)
    finally:
        tq.close()
        r.stop()


def test_a_full_redis_still_leases_settles_renews_and_releases_but_refuses_enqueues() -> None:
    """At maxmemory the scripts that drain the queue or keep leases run (their shebang's
    ``allow-oom``): a worker can fetch, renew, settle and hand back, which frees memory,
    while an enqueue is still refused with BrokerFull."""
    from taskq_core.brokers.base import Outcome

    r = OwnRedis(("--maxmemory", "2mb", "--maxmemory-policy", "noeviction"))
    r.start()
    tq = TaskQueue(r.url, key_prefix="drain", monitoring={"durability_warn": False})

    @tq.task(name="d.big")
    def big(blob: str) -> None: ...

    try:
        accepted = 0
        full = False
        while not full and accepted < 1000:
            try:
                big.enqueue("x" * 20_000)
                accepted += 1
            except BrokerFull:
                full = True
        assert full, "Redis never filled up"
        assert accepted > 4
        broker = tq.broker
        result, _ = broker.fetch(["default"], 4, 0)
        got = result.deliveries
        assert len(got) == 4, "a full Redis refused the fetch"
        assert broker.renew(got[:3], 0).lost == [], "a full Redis refused the renewal"
        done = [Outcome(d.queue, d.id, d.fence, "ok", task="d.big") for d in got[:2]]
        assert broker.settle(done, 0) == [], "a full Redis refused the outcomes"
        assert broker.release(got[2:], "graceful") == 2, "a full Redis refused the hand-back"
        with pytest.raises(BrokerFull):
            big.enqueue("x" * 20_000)  # still full: settling two tasks freed too little
        info = broker.queue_info(["default"])[0]
        assert (info.ready, info.leased) == (accepted - 2, 0)
    finally:
        tq.close()
        r.stop()
