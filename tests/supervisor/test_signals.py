"""The autoscaler's inputs read from a broker (both brokers, the Redis one real), and the
published records of contract 2."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest

from taskq_core import ManualClock, TaskQueue
from taskq_core.observability import facade
from taskq_core.supervisor.publish import (
    FORGET_MS,
    drop_autoscaler,
    make_record,
    read_autoscaler,
    write_autoscaler,
)
from taskq_core.supervisor.signals import OwnFigures, SignalCollector

T0 = 1_800_000_000.0


def _app(make_app: Callable[..., TaskQueue], kind: str) -> TaskQueue:
    app = make_app(
        kind,
        clock=ManualClock(T0),
        supervisor={"queue_weights": {"high": 4.0, "low": 0.5}, "error_window": 10.0},
    )

    @app.task(name="sig.t")
    def t() -> None: ...

    return app


def test_collects_backlog_wait_utilisation_runtime_errors_and_memory(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    app = _app(make_app, broker_kind)
    app.enqueue_many([app.signature("sig.t", queue="high") for _ in range(3)])
    app.enqueue_many([app.signature("sig.t", queue="low") for _ in range(8)])
    clock = [100.0]
    wall = [int(T0 * 1000) + 5_000]  # the oldest task has waited 5 s
    sc = SignalCollector(
        app,
        queues=["high", "default", "low"],
        settings=app.settings.supervisor,
        supervisor_id="sup-a",
        clock=lambda: clock[0],
        wall_ms=lambda: wall[0],
    )
    # counters before the window: 10 executions of 0.5 s, none failed
    app.broker.settle(
        [],
        wall[0],
        {"high": {"ok": 10, "runtime_bucket|sig.t|0.5": 10, "runtime_sum_us|sig.t": 5_000_000}},
    )
    # another worker (no supervisor) serving "high": 3 of 4 slots busy
    beat = {"id": "w1", "queues": ["high"], "concurrency": 4, "busy": 3, "supervisor": None}
    app.broker.put_heartbeat("w1", orjson.dumps(beat), 60_000, wall[0])
    # one of our own processes, already counted through its pipe: ignored here
    own = {"id": "w2", "queues": ["high"], "concurrency": 4, "busy": 4, "supervisor": "sup-a"}
    app.broker.put_heartbeat("w2", orjson.dumps(own), 60_000, wall[0])
    figures = OwnFigures(processes=2, concurrency=2, busy=1, pids=[])
    first = sc.collect(figures)
    assert {q.name: (q.ready, q.weight) for q in first.queues} == {
        "high": (3, 4.0),
        "default": (0, 1.0),
        "low": (8, 0.5),
    }
    assert first.weighted_backlog == 3 * 4.0 + 8 * 0.5
    assert first.oldest_wait == pytest.approx(5.0)
    assert (first.busy, first.slots) == (1 + 3, 2 * 2 + 4)
    assert first.executions == 0  # no window yet
    high = next(q for q in first.queues if q.name == "high")
    assert high.mean_runtime == pytest.approx(0.5)  # cumulative until the window has data
    assert first.available_mb is not None
    assert first.available_mb > 0
    assert (first.supervisors, first.rank) == (1, 0)

    # 4 s later: 8 more executions of 2 s, of which 6 raised
    clock[0] += 4
    wall[0] += 4000
    app.broker.settle(
        [],
        wall[0],
        {
            "high": {
                "ok": 2,
                "retry": 4,
                "failed": 2,
                "runtime_bucket|sig.t|2.5": 8,
                "runtime_sum_us|sig.t": 16_000_000,
            }
        },
    )
    second = sc.collect(figures)
    assert (second.executions, second.errors) == (8, 6)
    assert second.error_rate == pytest.approx(0.75)
    high = next(q for q in second.queues if q.name == "high")
    assert high.mean_runtime == pytest.approx(2.0)  # the window's mean, not the cumulative
    # past the window, the old readings no longer count
    clock[0] += 20
    wall[0] += 20_000
    sc.collect(figures)
    third = sc.collect(figures)
    assert third.executions == 0


def test_the_routed_queues_its_workers_can_serve_count_as_load(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    """A supervisor whose workers have capabilities counts the ready tasks of the routed
    queues they serve (found in the queue set), weighted as their base queue."""
    app = _app(make_app, broker_kind)
    gpu = app.task(name="sig.gpu", requires={"gpu"})(lambda: None)
    tpu = app.task(name="sig.tpu", requires={"tpu"}, queue="high")(lambda: None)
    app.enqueue_many([gpu.call() for _ in range(5)] + [tpu.call() for _ in range(7)])
    figures = OwnFigures(processes=1, concurrency=1, busy=0, pids=[])

    def collector(caps: frozenset[str]) -> SignalCollector:
        return SignalCollector(
            app,
            queues=["high", "default", "low"],
            settings=app.settings.supervisor,
            supervisor_id="sup-caps",
            capabilities=caps,
        )

    loads = {
        q.name: (q.ready, q.weight) for q in collector(frozenset({"gpu"})).collect(figures).queues
    }
    assert loads == {
        "high": (0, 4.0),
        "default@gpu": (5, 1.0),
        "default": (0, 1.0),
        "low": (0, 0.5),
    }
    both = collector(frozenset({"gpu", "tpu"})).collect(figures)
    assert {q.name: q.weight for q in both.queues}["high@tpu"] == 4.0  # its base's weight
    assert both.weighted_backlog == 7 * 4.0 + 5 * 1.0
    # without capabilities: the base queues only
    plain = collector(frozenset()).collect(figures)
    assert [q.name for q in plain.queues] == ["high", "default", "low"]


def test_live_supervisors_share_the_cluster(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    app = _app(make_app, broker_kind)
    now = int(time.time() * 1000)
    for sid, at in (("sup-b", now - 1000), ("sup-c", now - 2000), ("sup-old", now - 30_000)):
        write_autoscaler(app, _record(sid, at))
    sc = SignalCollector(
        app, queues=["default"], settings=app.settings.supervisor, supervisor_id="sup-a"
    )
    inputs = sc.collect(OwnFigures(processes=1, concurrency=1, busy=0))
    # sup-old's record is older than 5 readings (10 s at least): not live
    assert (inputs.supervisors, inputs.rank) == (3, 0)


def _record(sid: str, at: int) -> dict[str, object]:
    return make_record(
        supervisor=sid,
        host="h",
        at_ms=at,
        processes=2,
        low=1,
        high=4,
        inputs={"backlog": 0},
        decision="hold",
        target=2,
        reason="steady",
    )


def test_publish_and_read_back(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    app = make_app(broker_kind)
    now = int(time.time() * 1000)
    write_autoscaler(app, _record("sup-2", now))
    write_autoscaler(app, _record("sup-1", now - 1000))
    write_autoscaler(app, _record("sup-stale", now - 61_000))
    write_autoscaler(app, _record("sup-gone", now - FORGET_MS - 1000))
    app.broker.put_autoscaler("sup-bad", b"not json")
    records = read_autoscaler(app)
    assert [r["supervisor"] for r in records] == ["sup-1", "sup-2"]
    assert set(records[0]) == {
        "supervisor",
        "host",
        "at",
        "processes",
        "min",
        "max",
        "inputs",
        "decision",
        "target",
        "reason",
    }
    # the record of a supervisor gone for an hour is deleted by the reader
    assert "sup-gone" not in app.broker.autoscaler_records()
    assert "sup-stale" in app.broker.autoscaler_records()
    # the façade's /metrics/autoscaler reads the same records
    assert [r["supervisor"] for r in facade.autoscaler(app)["supervisors"]] == ["sup-1", "sup-2"]
    drop_autoscaler(app, "sup-2")
    assert [r["supervisor"] for r in read_autoscaler(app)] == ["sup-1"]
    with pytest.raises(ValueError, match="supervisor"):
        write_autoscaler(app, {"at": now})
