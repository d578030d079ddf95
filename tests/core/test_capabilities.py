"""Routing by worker capabilities (taskq_core/capabilities.py): tasks that require
capabilities reach only workers that have them all, new requirement sets are picked up by
running workers, and a task no live worker can run is reported."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from taskq_core import TaskQueue, current_task
from taskq_core.capabilities import missing, routed_queue, served_queues, split_queue
from taskq_core.cli.status_cmd import snapshot
from taskq_core.errors import InvalidName, InvalidOption
from taskq_core.observability import health
from taskq_core.settings import Settings
from tests.inthread import InThread, wait_for

MakeApp = Callable[..., TaskQueue]


def app(make_app: MakeApp, kind: str) -> TaskQueue:
    # short ticks: a running worker reads the broker's queue set again every 0.3 s
    return make_app(kind, worker={"renew_interval": 0.3, "idle_wait": 0.3})


# -- names and order


def test_a_routed_queue_is_named_by_its_base_and_sorted_requirements() -> None:
    assert routed_queue("default", frozenset()) == "default"
    assert routed_queue("default", frozenset({"gpu", "eu"})) == "default@eu.gpu"
    # requirements named by the queue join those given
    assert routed_queue("default@gpu", frozenset({"eu"})) == "default@eu.gpu"
    assert split_queue("default@eu.gpu") == ("default", frozenset({"eu", "gpu"}))
    assert split_queue("low") == ("low", frozenset())


def test_bad_requirements_are_refused_by_name_before_anything_is_written(
    make_app: MakeApp,
) -> None:
    tq = make_app("memory")
    with pytest.raises(InvalidName, match="capability 'g pu'"):
        tq.task(requires={"g pu"})(lambda: None)
    with pytest.raises(InvalidOption, match="at most 8 capabilities"):
        tq.task(requires={f"c{i}" for i in range(9)})(lambda: None)
    with pytest.raises(InvalidName, match="over 64 characters"):
        tq.task(queue="q" * 50, requires={"a-long-capability"})(lambda: None)
    # a routed queue has one spelling: its capabilities sorted, each once
    assert tq.task(name="cap.spelled", queue="default@gpu.eu.gpu")(lambda: None).queue == (
        "default@eu.gpu"
    )
    with pytest.raises(InvalidName, match="at most 8"):
        tq.task(queue="q@" + ".".join("abcdefghi"))(lambda: None)
    with pytest.raises(InvalidOption, match="requires must be a set"):
        tq.task(requires=42)(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="capability"):
        Settings(worker={"capabilities": ["ok", "not ok"]})
    assert tq.broker.known_queues() == []  # nothing was written


def test_a_worker_serves_what_it_can_before_each_base_queue_in_priority_order() -> None:
    known = ["low@gpu", "high@eu.gpu", "high@gpu", "high@tpu", "default", "other@gpu"]
    caps = frozenset({"gpu", "eu"})
    assert served_queues(["high", "low"], caps, known) == [
        "high@eu.gpu",  # most requirements first: the work only this worker can do
        "high@gpu",
        "high",
        "low@gpu",
        "low",
    ]
    # without capabilities: the base queues only
    assert served_queues(["high", "low"], frozenset(), known) == ["high", "low"]


def test_what_no_capable_worker_has_is_named() -> None:
    workers: list[dict[str, object]] = [
        {"queues": ["default", "default@gpu"], "capabilities": ["gpu"]},
        {"queues": ["other"], "capabilities": ["gpu", "tpu", "eu"]},
    ]
    # the best worker serving the base queue lacks tpu; one serving another queue is no help
    assert missing("default@gpu.tpu", workers) == ["tpu"]
    # no worker serves the base queue at all: every requirement is missing
    assert missing("low@gpu", workers) == ["gpu"]


# -- tasks reach only capable workers


def test_tasks_reach_only_workers_with_every_capability(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app(make_app, broker_kind)
    ran: dict[str, list[str]] = {"plain": [], "gpu": [], "gpu_eu": []}

    def recorder(kind: str) -> Callable[[], Any]:
        async def record() -> None:
            ran[kind].append(threading.current_thread().name)

        return record

    plain = tq.task(name="cap.plain")(recorder("plain"))
    gpu = tq.task(name="cap.gpu", requires={"gpu"})(recorder("gpu"))
    gpu_eu = tq.task(name="cap.gpu_eu", requires="gpu,eu")(recorder("gpu_eu"))
    assert gpu.routed_queue == "default@gpu"
    assert gpu_eu.routed_queue == "default@eu.gpu"
    handles = tq.enqueue_many(
        [s for _ in range(30) for s in (plain.call(), gpu.call(), gpu_eu.call())]
    )
    assert {h.queue for h in handles} == {"default", "default@gpu", "default@eu.gpu"}
    workers = {
        "none": InThread(tq, concurrency=2),
        "gpu": InThread(tq, concurrency=2, capabilities={"gpu"}),
        "both": InThread(tq, concurrency=2, capabilities="gpu,eu"),
    }
    try:
        wait_for(lambda: sum(map(len, ran.values())) == 90, 30, "every task to run")
    finally:
        for w in workers.values():
            w.stop()
    ids = {name: w.worker.id for name, w in workers.items()}
    assert set(ran["gpu_eu"]) == {ids["both"]}
    assert set(ran["gpu"]) <= {ids["gpu"], ids["both"]}
    assert len(ran["gpu"]) == 30
    assert len(ran["plain"]) == 30
    # the default queues are high, default and low: the routed ones take their base's place
    assert workers["none"].worker.queues == ["high", "default", "low"]
    assert workers["gpu"].worker.queues == ["high", "default@gpu", "default", "low"]
    assert workers["both"].worker.queues == [
        "high",
        "default@eu.gpu",
        "default@gpu",
        "default",
        "low",
    ]


def test_an_enqueue_may_add_requirements_and_keeps_the_tasks(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app(make_app, broker_kind)
    task = tq.task(name="cap.any", requires={"gpu"})(lambda: None)
    h = task.options(requires={"eu"}, queue="low").enqueue()
    assert h.queue == "low@eu.gpu"
    assert "low@eu.gpu" in tq.broker.known_queues()


def test_a_running_worker_serves_a_requirement_set_first_seen_after_it_started(
    make_app: MakeApp, broker_kind: str
) -> None:
    tq = app(make_app, broker_kind)
    ran: list[str] = []

    # the worker's app knows the task without requirements: only the broker's queue set,
    # read on the worker's tick, tells it of the routed queue
    async def late() -> None:
        ran.append(current_task().queue)

    tq.task(name="cap.late")(late)
    w = InThread(tq, concurrency=1, capabilities={"eu"})
    try:
        wait_for(lambda: w.worker._loop is not None, 10, "the worker to start")
        assert w.worker.queues == ["high", "default", "low"]
        producer = make_app(broker_kind) if broker_kind == "redis" else tq
        if producer is not tq:
            producer.task(name="cap.late", requires={"eu"})(lambda: None)
            sig = producer.get_task("cap.late").call()
        else:
            sig = tq.get_task("cap.late").options(requires={"eu"}).call()
        started = time.monotonic()
        producer.enqueue_many([sig])
        wait_for(lambda: ran, 10, "the routed task to run")
        # within a tick or two of 0.3 s, and on the routed queue
        assert time.monotonic() - started < 3
        assert ran == ["default@eu"]
        assert w.worker.queues == ["high", "default@eu", "default", "low"]
    finally:
        w.stop()


# -- an unroutable task is reported


def test_a_task_no_live_worker_can_run_is_reported(make_app: MakeApp, broker_kind: str) -> None:
    tq = app(make_app, broker_kind)
    gpu = tq.task(name="cap.tpu", requires={"tpu", "gpu"})(lambda: None)
    plain = tq.task(name="cap.free")(lambda: None)
    w = InThread(tq, concurrency=1, capabilities={"gpu"})
    try:
        wait_for(tq.broker.heartbeats, 10, "the worker's heartbeat")
        plain.enqueue()
        gpu.enqueue()
        time.sleep(0.5)  # a tick or so: the worker has read the queue set again
        report = health.check(tq)["components"]["workers"]
        assert report["status"] == "degraded"
        assert report["unroutable"] == {"default@gpu.tpu": ["tpu"]}
        assert "no live worker has the capabilities tpu" in report["detail"]
        snap = snapshot(tq)
        by_name = {q["name"]: q for q in snap["queues"]}
        assert by_name["default@gpu.tpu"]["unroutable"] == ["tpu"]
        assert by_name["default@gpu.tpu"]["requires"] == ["gpu", "tpu"]
        assert by_name["default@gpu.tpu"]["ready"] == 1
        assert by_name["default"]["unroutable"] is None
        (record,) = snap["workers"]
        assert record["capabilities"] == ["gpu"]
    finally:
        w.stop()
    # the task is still there, waiting for a capable worker
    assert tq.broker.queue_info(["default@gpu.tpu"])[0].ready == 1


def test_stray_members_of_the_queue_set_stop_neither_a_worker_nor_status(
    make_app: MakeApp,
) -> None:
    """Anything else written into ``<prefix>:queues`` (bytes that are not UTF-8, a name the
    core refuses) is skipped where the set is read: a worker with capabilities still starts
    and serves, and ``taskq status`` still answers."""
    tq = app(make_app, "redis")
    broker: Any = tq.broker
    raw = broker.client
    raw.sadd(broker.keys.queues(), b"\xff\xfe", "bad name!", "x" * 500, "default@gpu..eu")
    ran: list[str] = []

    async def routed() -> None:
        ran.append(current_task().queue)

    tq.task(name="cap.stray", requires={"gpu"})(routed).enqueue()
    assert broker.known_queues() == ["default@gpu"]
    w = InThread(tq, concurrency=1, capabilities={"gpu"})
    try:
        wait_for(lambda: ran, 10, "the routed task to run")
        assert ran == ["default@gpu"]
    finally:
        w.stop()
    names = [q["name"] for q in snapshot(tq)["queues"]]
    assert "default@gpu" in names
    assert not any("\ufffd" in n or "!" in n for n in names)
