"""Strict priority and instant idle pick-up across queues that live on different masters of
a Redis Cluster: the worker's fetch asks its queues one after another in priority order,
and its idle wait blocks on every master at once (brokers/cluster.py)."""

from __future__ import annotations

import functools
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from taskq_core import TaskQueue, current_task
from tests.cluster.servers import node_name
from tests.inthread import InThread, wait_for

pytestmark = pytest.mark.cluster

MakeApp = Callable[..., TaskQueue]


def queues_on_three_masters(client: redis.RedisCluster, prefix: str) -> list[str]:
    """Three queue names whose slots are on three different masters."""
    by_master: dict[str, str] = {}
    for n in range(200):
        name = f"q{n}"
        by_master.setdefault(node_name(client, f"{prefix}:{{{name}}}:ready"), name)
        if len(by_master) == 3:
            return list(by_master.values())
    pytest.fail("no three queues on three masters among 200 names")


def test_the_three_queues_are_on_three_masters(
    cluster_client: redis.RedisCluster, prefix: str
) -> None:
    names = queues_on_three_masters(cluster_client, prefix)
    nodes = {node_name(cluster_client, f"{prefix}:{{{n}}}:wake") for n in names}
    assert len(nodes) == 3


def test_strict_priority_across_masters(
    make_app: MakeApp, cluster_client: redis.RedisCluster, prefix: str
) -> None:
    high, mid, low = queues_on_three_masters(cluster_client, prefix)
    tq = make_app("redis", queues=[high, mid, low], default_queue=high)
    ran: list[str] = []

    async def record() -> None:
        ran.append(current_task().queue)

    task = tq.task(name="prio.record")(record)
    # lowest first: the order of enqueue must not decide the order of runs
    for queue in (low, mid, high):
        tq.enqueue_many([task.options(queue=queue).call() for _ in range(15)])
    w = InThread(tq, queues=[high, mid, low], concurrency=1)
    try:
        wait_for(lambda: len(ran) == 45, 30, "the 45 tasks to run")
    finally:
        w.stop()
    assert ran == [high] * 15 + [mid] * 15 + [low] * 15


def test_a_batch_is_filled_from_the_next_master_only_when_the_higher_queue_is_empty(
    make_app: MakeApp, cluster_client: redis.RedisCluster, prefix: str
) -> None:
    high, mid, low = queues_on_three_masters(cluster_client, prefix)
    tq = make_app("redis", queues=[high, mid, low], default_queue=high)
    task = tq.task(name="prio.noop")(lambda: None)
    tq.enqueue_many([task.options(queue=high).call() for _ in range(3)])
    tq.enqueue_many([task.options(queue=mid).call() for _ in range(3)])
    tq.enqueue_many([task.options(queue=low).call() for _ in range(3)])
    result, _ = tq.broker.fetch([high, mid, low], 5, 0)
    assert [d.queue for d in result.deliveries] == [high] * 3 + [mid] * 2
    result, _ = tq.broker.fetch([high, mid, low], 5, 0)
    assert [d.queue for d in result.deliveries] == [mid] + [low] * 3


def test_an_idle_worker_picks_up_at_once_from_any_master(
    make_app: MakeApp, cluster_client: redis.RedisCluster, prefix: str
) -> None:
    """The worker's idle wait is 30 s: a task picked up within a fraction of a second was
    woken for, not polled for. Each queue, on its own master, in turn and several times."""
    queues = queues_on_three_masters(cluster_client, prefix)
    tq = make_app("redis", queues=queues, default_queue=queues[0], worker={"idle_wait": 30})
    started: dict[str, float] = {}
    lock = threading.Lock()

    async def mark(tid: str) -> None:
        with lock:
            started[tid] = time.monotonic()

    task = tq.task(name="prio.mark")(mark)
    w = InThread(tq, queues=queues, concurrency=4)
    latencies: dict[str, list[float]] = {q: [] for q in queues}
    try:
        wait_for(tq.broker.heartbeats, 10, "the worker's heartbeat")
        for round_ in range(5):
            for queue in reversed(queues):
                time.sleep(0.2)  # the worker is idle again, blocked on every master
                tid = f"{queue}-{round_}"
                sent = time.monotonic()
                task.options(queue=queue, task_id=tid).enqueue(tid)
                wait_for(functools.partial(started.__contains__, tid), 5, f"{tid} to start")
                latencies[queue].append(started[tid] - sent)
    finally:
        w.stop()
    medians: dict[str, Any] = {q: statistics.median(v) for q, v in latencies.items()}
    print("pick-up latency (median s) per queue:", medians)
    for queue, values in latencies.items():
        # an idle wait of 30 s: a polled pick-up would take seconds
        assert max(values) < 1.0, (queue, values)
        assert statistics.median(values) < 0.2, (queue, values)


def test_an_idle_worker_on_three_masters_stops_at_once(
    make_app: MakeApp, cluster_client: redis.RedisCluster, prefix: str
) -> None:
    queues = queues_on_three_masters(cluster_client, prefix)
    tq = make_app("redis", queues=queues, default_queue=queues[0], worker={"idle_wait": 30})
    w = InThread(tq, queues=queues, concurrency=2)
    wait_for(tq.broker.heartbeats, 10, "the worker's heartbeat")
    time.sleep(0.5)  # blocked on every master
    began = time.monotonic()
    w.stop()
    assert not w.thread.is_alive()
    assert time.monotonic() - began < 3
    # no wake token was taken and dropped: none was there, and none is left over
    for queue in queues:
        assert cluster_client.llen(f"{prefix}:{{{queue}}}:wake") == 0
