"""Heartbeats (contract 1) on both brokers: published while a worker runs, with the
contract's fields, gone when it stops, and gone on their own when it dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.observability.heartbeat import SUPERVISOR_ENV, HeartbeatMiddleware, read_workers

FIELDS = {
    "capabilities",
    "id", "host", "pid", "queues", "concurrency", "busy", "current", "done", "failed",
    "rss_bytes", "started_at", "seen_at", "supervisor", "memory", "fetch",
}  # fmt: skip


async def test_a_running_worker_publishes_and_a_stopped_one_is_gone(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, worker={"lease_seconds": 1.5, "renew_interval": 0.1})
    gate = asyncio.Event()
    running = asyncio.Event()

    @tq.task(name="hb.wait")
    async def wait() -> None:
        running.set()
        await gate.wait()

    tq.enqueue("hb.wait")
    worker = tq.worker(queues=["default", "low"], concurrency=3, handle_signals=False)
    run = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(running.wait(), 10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = read_workers(tq)
        if records and records[0]["busy"] == 1:
            break
        await asyncio.sleep(0.05)
    [record] = records
    assert set(record) == FIELDS
    assert record["id"] == worker.id
    assert record["queues"] == ["default", "low"]
    assert (record["concurrency"], record["busy"]) == (3, 1)
    assert record["current"][0]["task"] == "hb.wait"
    assert record["current"][0]["queue"] == "default"
    assert record["rss_bytes"] > 0
    assert record["supervisor"] is None
    assert record["seen_at"] >= record["started_at"] > 0
    gate.set()
    worker.stop()
    await asyncio.wait_for(run, 20)
    assert read_workers(tq) == []
    await tq.aclose()


def test_a_dead_workers_record_expires(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    tq.broker.put_heartbeat("w-dead", orjson.dumps({"id": "w-dead"}), 200, 0)
    tq.broker.put_heartbeat("w-live", orjson.dumps({"id": "w-live"}), 60_000, 0)
    tq.broker.put_heartbeat("w-bad", b"not json", 60_000, 0)
    assert [r["id"] for r in read_workers(tq)] == ["w-dead", "w-live"]
    time.sleep(0.3)  # the TTL is what is being tested: real time has to pass
    assert [r["id"] for r in read_workers(tq)] == ["w-live"]


def test_supervisor_id_comes_from_the_environment(
    make_app: Callable[..., TaskQueue], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SUPERVISOR_ENV, "sup-1")
    tq = make_app("memory")
    record = HeartbeatMiddleware(tq.settings.monitoring).record(tq.worker())
    assert record["supervisor"] == "sup-1"
    assert record["memory"]["samples"] == 1
