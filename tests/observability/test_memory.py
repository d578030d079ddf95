"""Memory trend and leak detection: the rule on synthetic samples, then two real worker
processes, one running a task that leaks on purpose and one running a steady task."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from taskq_core import TaskQueue
from taskq_core.observability import alerts, facade
from taskq_core.observability.heartbeat import read_workers
from taskq_core.observability.memory import MB, LeakRule, MemoryTrend

from .clusterapp import build
from .conftest import Workers, wait_until

RULE = LeakRule(min_samples=10, mb_per_hour=50, min_growth_mb=32)


def trend(samples: list[int], every: float = 60.0) -> dict[str, Any]:
    t = MemoryTrend(window=3600, rule=RULE)
    for i, rss in enumerate(samples):
        t.add(i * every, rss, done=i * 10)
    return t.trend()


def test_steady_growth_is_a_leak() -> None:
    # 4 MB a minute for 20 minutes: 240 MB/hour, 76 MB in all
    got = trend([100 * MB + i * 4 * MB for i in range(20)])
    assert got["leaking"] is True
    assert got["slope_bytes_per_hour"] == 240 * MB
    assert got["slope_bytes_per_task"] == pytest.approx(4 * MB / 10)
    assert got["r2"] == 1.0
    assert got["growth_bytes"] == 76 * MB


def test_flat_noisy_memory_is_not_a_leak() -> None:
    rng = random.Random(7)
    got = trend([100 * MB + rng.randint(-8 * MB, 8 * MB) for _ in range(60)])
    assert got["leaking"] is False


def test_one_step_up_is_not_a_steady_leak() -> None:
    # a cache warmed once: 100 MB then 200 MB, flat on both sides
    got = trend([100 * MB] * 5 + [200 * MB] * 25)
    assert got["leaking"] is False
    assert got["r2"] is not None
    assert got["r2"] < 0.8


def test_too_few_samples_or_too_little_growth_is_not_reported() -> None:
    assert trend([100 * MB + i * 10 * MB for i in range(5)])["leaking"] is False
    assert trend([100 * MB + i * MB // 10 for i in range(50)])["leaking"] is False  # 5 MB


def test_window_drops_old_samples() -> None:
    t = MemoryTrend(window=100, rule=RULE)
    for i in range(50):
        t.add(i * 10.0, MB, 0)
    assert len(t) == 11  # samples within 100 s of the last one


def test_memory_route_figures_on_the_memory_broker(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory")
    out = facade.memory(tq)
    assert out["workers"] == []
    assert out["leaking"] == []
    assert out["process"]["rss_bytes"] > 10 * MB


@pytest.mark.slow
def test_a_leaking_task_fires_the_leak_alert_and_a_steady_one_does_not(
    redis_url: str, prefix: str, workers: Workers
) -> None:
    env = {
        "TASKQ_TEST_MEMORY_WINDOW": "60",
        "TASKQ_TEST_LEAK_SAMPLES": "6",
        "TASKQ_TEST_LEAK_MB_HOUR": "50",
        "TASKQ_TEST_LEAK_GROWTH_MB": "16",
    }
    leaky = workers.start(queues="leaky", concurrency=1, **env)
    steady = workers.start(queues="steady", concurrency=1, **env)
    tq = build(redis_url, prefix, max_worker_rss_mb=None, alert_no_worker=False)
    wait_until(lambda: len(read_workers(tq)) == 2, 30, "two worker heartbeats")
    ids = {w["pid"]: w["id"] for w in read_workers(tq)}
    tq.enqueue_many([tq.signature("obs.leak", [i], queue="leaky") for i in range(150)])
    tq.enqueue_many([tq.signature("obs.steady", [i], queue="steady") for i in range(150)])

    def leak_alert() -> dict[str, object] | None:
        alerts.evaluate(tq, force=True)
        found = {a["key"]: a for a in alerts.state(tq)["active"]}
        return found.get(f"memory_leak:worker={ids[leaky]}")

    fired = wait_until(leak_alert, 40, "the memory leak alert of the leaking worker")
    assert fired["severity"] == "warning"
    assert fired["subject"] == {"worker": ids[leaky]}
    active = alerts.state(tq)["active"]
    assert [a["key"] for a in active] == [f"memory_leak:worker={ids[leaky]}"]
    memory = {w["id"]: w["trend"] for w in facade.memory(tq)["workers"]}
    assert memory[ids[leaky]]["leaking"] is True
    # about 2 MB kept per task
    per_task = memory[ids[leaky]]["slope_bytes_per_task"]
    assert 1 * MB < per_task < 4 * MB
    # the steady worker, judged on as many samples as the leaking one needed
    samples = wait_until(
        lambda: (
            (w := next(x for x in read_workers(tq) if x["id"] == ids[steady]))["done"] > 10
            and w["memory"]["samples"] >= 6
            and w["memory"]
        ),
        30,
        "the steady worker's samples",
    )
    assert samples["leaking"] is False
    assert memory[ids[steady]]["leaking"] is False
    assert facade.memory(tq)["leaking"] == [ids[leaky]]

    workers.stop()
    alerts.evaluate(tq, force=True)
    assert alerts.state(tq)["active"] == []  # the leaking worker is gone: cleared
    tq.close()
