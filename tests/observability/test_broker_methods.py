"""The broker methods observability adds hold the same semantics on Redis and in memory."""

from __future__ import annotations

import time
from collections.abc import Callable

from taskq_core import TaskQueue


def test_heartbeats_put_replace_drop(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    b = make_app(broker_kind).broker
    assert b.heartbeats() == []
    b.put_heartbeat("a", b'{"id":"a","v":1}', 60_000, 0)
    b.put_heartbeat("b", b'{"id":"b"}', 60_000, 0)
    b.put_heartbeat("a", b'{"id":"a","v":2}', 60_000, 0)
    assert sorted(b.heartbeats()) == [b'{"id":"a","v":2}', b'{"id":"b"}']
    b.drop_heartbeat("a")
    b.drop_heartbeat("never-there")
    assert b.heartbeats() == [b'{"id":"b"}']


async def test_async_heartbeat(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind)
    await tq.broker.put_heartbeat_async("x", b'{"id":"x"}', 60_000, 0)
    assert tq.broker.heartbeats() == [b'{"id":"x"}']
    await tq.aclose()


def test_lock_is_taken_once_until_it_lapses(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    b = make_app(broker_kind).broker
    assert b.try_lock("l", 150) is True
    assert b.try_lock("l", 150) is False
    assert b.try_lock("other", 150) is True
    time.sleep(0.25)  # the lock's TTL is what is tested: real time has to pass
    assert b.try_lock("l", 150) is True


def test_alert_state_and_bounded_history(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    b = make_app(broker_kind).broker
    assert b.alerts_read(10) == ({}, [])
    b.alerts_write({"k1": b"1", "k2": b"2"}, [], [b"e1", b"e2"], 3)
    b.alerts_write({"k2": b"22"}, ["k1", "nope"], [b"e3", b"e4"], 3)
    b.alerts_write({}, [], [], 3)
    active, history = b.alerts_read(10)
    assert active == {"k2": b"22"}
    assert history == [b"e4", b"e3", b"e2"]  # newest first, three kept
    assert b.alerts_read(1)[1] == [b"e4"]


def test_snapshots_are_kept_from_a_time_on(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    b = make_app(broker_kind).broker
    b.snapshot_add(1000, b'{"at":1000}', 0)
    b.snapshot_add(2000, b'{"at":2000}', 0)
    b.snapshot_add(3000, b'{"at":3000}', 1500)  # drops the one taken at 1000
    assert b.snapshots(0) == [(2000, b'{"at":2000}'), (3000, b'{"at":3000}')]
    assert b.snapshots(2500) == [(3000, b'{"at":3000}')]


def test_probe_and_server_info(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    b = make_app(broker_kind).broker
    probe = b.probe(0.5)
    assert b.probe(0.5) is probe  # made once per timeout
    assert probe.ping() >= 0
    info = b.server_info()
    if broker_kind == "redis":
        assert info["redis_version"]
        assert "maxmemory_policy" in info
    elif broker_kind == "postgres":
        assert info["postgres_version"]
        assert info["max_connections"] > 0
    else:
        assert info == {}
