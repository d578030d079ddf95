"""Three worker processes on a real Redis run a known mix of tasks; the façade, read from
this (fourth) process, and the Prometheus text report exactly those counts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskq_core import TaskFailed, TaskQueue
from taskq_core.http import Request
from taskq_core.http.routes import RouteTable
from taskq_core.observability import facade, prometheus
from taskq_core.observability.heartbeat import read_workers

from .clusterapp import build
from .conftest import Workers, wait_until

pytestmark = pytest.mark.slow

N_OK, N_FAIL, N_FLAKY = 24, 3, 3


def enqueue_mix(tq: TaskQueue) -> list[Any]:
    @tq.task(name="obs.only_here")
    def only_here() -> None:
        """Registered in this process only: the workers dead-letter it as unknown."""

    sigs = [tq.signature("obs.ok", [i]) for i in range(N_OK)]
    sigs += [tq.signature("obs.fail") for _ in range(N_FAIL)]
    sigs += [tq.signature("obs.flaky", [f"k{i}"]) for i in range(N_FLAKY)]
    sigs += [tq.signature("obs.only_here")]
    return tq.enqueue_many(sigs)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_three_workers_and_the_facade_agree_on_every_count(
    redis_url: str, prefix: str, workers: Workers
) -> None:
    tq = build(redis_url, prefix)
    for _ in range(3):
        workers.start(concurrency=2)
    wait_until(lambda: len(read_workers(tq)) == 3, 30, "three worker heartbeats")

    handles = enqueue_mix(tq)
    for h in handles:
        with contextlib.suppress(TaskFailed):
            h.result(timeout=60)

    executions = N_OK + 2 * N_FAIL + 2 * N_FLAKY  # each failing or flaky task ran twice
    # the heartbeats carry each process's own counts (refreshed every 0.5 s)
    live = wait_until(
        lambda: (ws := read_workers(tq)) and sum(w["done"] for w in ws) == executions + 1 and ws,
        20,
        "heartbeats to count every execution",
    )
    assert len(live) == 3
    assert len({w["pid"] for w in live}) == 3
    assert sum(w["failed"] for w in live) == 2 * N_FAIL + N_FLAKY + 1
    assert all(w["rss_bytes"] > 0 and w["queues"] == ["default"] for w in live)

    q = next(x for x in facade.queues(tq)["queues"] if x["name"] == "default")
    expected = {
        "enqueued": N_OK + N_FAIL + N_FLAKY + 1,
        "started": executions,
        "succeeded": N_OK + N_FLAKY,
        "retried": N_FAIL + N_FLAKY,
        "failed": N_FAIL,
        "dead": 1,
        "timed_out": 0,
        "stale_acks": 0,
    }
    assert {k: q["counters"][k] for k in expected} == expected
    assert (q["depth"], q["delayed"], q["in_flight"], q["dead_letter"]) == (0, 0, 0, N_FAIL + 1)
    assert q["runtime"]["count"] == executions
    assert q["wait"]["count"] == executions
    tasks = {t["task"]: t for t in q["tasks"]}
    assert tasks["obs.ok"]["counters"]["succeeded"] == N_OK
    assert tasks["obs.ok"]["runtime"]["count"] == N_OK
    assert tasks["obs.ok"]["runtime"]["p50"] >= 0.01  # each slept 20 ms
    assert tasks["obs.fail"]["counters"] == {
        "enqueued": N_FAIL, "started": 2 * N_FAIL, "succeeded": 0, "retried": N_FAIL,
        "failed": N_FAIL, "dead": 0, "timed_out": 0, "expired": 0, "aborted": 0,
    }  # fmt: skip
    assert tasks["obs.flaky"]["counters"]["retried"] == N_FLAKY
    assert tasks["obs.only_here"]["counters"]["dead"] == 1

    summary = facade.summary(tq)
    assert (summary["succeeded"], summary["failed"], summary["workers"]) == (27, 3, 3)
    failed = facade.failed(tq, "default", 0, 50)
    assert failed["total"] == N_FAIL + 1
    assert sorted(i["error"]["type"] for i in failed["items"]) == ["RuntimeError"] * 3 + [
        "UnknownTask"
    ]

    # the same numbers through the route table and through Prometheus
    table = RouteTable(tq)
    response = table.dispatch(Request("GET", "/metrics/prometheus"))
    assert response.status == 200
    got = samples(response.body.decode())

    def value(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    d = {"queue": "default"}
    assert value("taskq_tasks_enqueued_total", task="obs.ok", **d) == N_OK
    assert value("taskq_tasks_succeeded_total", task="obs.ok", **d) == N_OK
    assert value("taskq_tasks_succeeded_total", task="obs.flaky", **d) == N_FLAKY
    assert value("taskq_tasks_retried_total", task="obs.fail", **d) == N_FAIL
    assert value("taskq_tasks_failed_total", task="obs.fail", **d) == N_FAIL
    assert value("taskq_tasks_dead_total", task="obs.only_here", **d) == 1
    assert value("taskq_tasks_started_total", task="obs.flaky", **d) == 2 * N_FLAKY
    assert value("taskq_task_runtime_seconds_count", task="obs.ok", **d) == N_OK
    assert value("taskq_task_runtime_seconds_bucket", task="obs.ok", le="+Inf", **d) == N_OK
    assert value("taskq_task_wait_seconds_count", task="obs.fail", **d) == 2 * N_FAIL
    assert value("taskq_queue_dead_letter", **d) == N_FAIL + 1
    assert value("taskq_queue_depth", **d) == 0
    assert value("taskq_workers") == 3
    assert value("taskq_queue_workers", **d) == 3
    assert (
        sum(v for (n, _), v in got.items() if n == "taskq_task_runtime_seconds_count") == executions
    )

    workers.stop()
    # a worker that stops cleanly deletes its heartbeat at once
    assert read_workers(tq) == []
    tq.close()


def test_prometheus_text_of_a_whole_cluster_is_independent_of_the_reader(
    make_app: Callable[..., TaskQueue],
) -> None:
    """Two processes' views are two TaskQueue objects here: same broker, same text."""
    a = make_app()
    b = make_app()
    for app in (a, b):
        app.task(name="same.task")(lambda: None)
    a.enqueue("same.task")

    def view(app: TaskQueue) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        got = samples(prometheus.exposition(app).decode())
        # the only figure that moves with the reading time
        return {k: v for k, v in got.items() if k[0] != "taskq_queue_oldest_age_seconds"}

    assert view(a) == view(b)
    assert view(b)[("taskq_tasks_enqueued_total", frozenset(
        {("queue", "default"), ("task", "same.task")}
    ))] == 1  # fmt: skip
