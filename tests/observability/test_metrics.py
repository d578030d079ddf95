"""Metrics written by the worker middleware, on both brokers: counters, histograms, the
off switch, and the histogram arithmetic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from taskq_core import TaskQueue
from taskq_core.observability import facade
from taskq_core.observability.metrics import (
    BUCKETS,
    LE,
    Histogram,
    MetricsMiddleware,
    error_rate,
    parse_stats,
)


def run_worker(tq: TaskQueue) -> None:
    tq.worker(burst=True, handle_signals=False).run()


def default_queue(tq: TaskQueue) -> dict[str, object]:
    return next(q for q in facade.queues(tq)["queues"] if q["name"] == "default")


def test_counters_and_histograms_of_a_known_mix(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, retry={"max_retries": 0})

    @tq.task(name="m.ok")
    def ok() -> None: ...

    @tq.task(name="m.bad")
    async def bad() -> None:
        raise ValueError("no")

    @tq.task(name="m.slow", timeout=0.05)
    async def slow() -> None:
        await asyncio.sleep(5)

    tq.enqueue_many([tq.signature("m.ok") for _ in range(5)] + [tq.signature("m.bad")])
    tq.enqueue("m.slow")
    run_worker(tq)
    q = default_queue(tq)
    counters = q["counters"]
    assert isinstance(counters, dict)
    assert {k: counters[k] for k in ("enqueued", "started", "succeeded", "failed",
                                      "timed_out")} == {
        "enqueued": 7, "started": 7, "succeeded": 5, "failed": 2, "timed_out": 1,
    }  # fmt: skip
    tasks = {t["task"]: t for t in q["tasks"]}  # type: ignore[attr-defined]
    assert tasks["m.ok"]["runtime"]["count"] == 5
    assert tasks["m.ok"]["wait"]["count"] == 5
    assert tasks["m.slow"]["counters"]["timed_out"] == 1
    assert tasks["m.slow"]["runtime"]["sum"] >= 0.05
    assert tasks["m.bad"]["error_rate"] == 1.0
    assert q["runtime"]["count"] == 7  # type: ignore[index]


def test_metrics_switch_off_records_no_histogram(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind, monitoring={"metrics": False})
    assert not any(isinstance(m, MetricsMiddleware) for m in tq.middleware)
    tq.task(name="m.ok")(lambda: None)
    tq.enqueue("m.ok")
    run_worker(tq)
    info = tq.broker.queue_info(["default"])[0]
    assert info.stats["ok"] == 1  # Lua's counters stay
    assert not any(k.startswith(("runtime_", "wait_", "started")) for k in info.stats)


def test_middleware_is_installed_once() -> None:
    from taskq_core.observability import install_defaults

    tq = TaskQueue("memory://")
    before = list(tq.middleware)
    install_defaults(tq)
    assert tq.middleware == before
    assert [type(m).__name__ for m in before] == [
        "MetricsMiddleware",
        "HeartbeatMiddleware",
        "AlertMiddleware",
        "DurabilityMiddleware",
        "TaskLogMiddleware",
        "CustomMetricsMiddleware",
    ]


def test_histogram_quantiles_and_cumulative_buckets() -> None:
    h = Histogram()
    assert h.quantile(0.5) is None
    i1 = BUCKETS.index(1.0)
    h.counts[i1] = 90  # (0.5, 1]
    h.counts[i1 + 2] = 10  # (2.5, 5]
    assert h.quantile(0.5) == pytest.approx(0.5 + 0.5 * 50 / 90)
    assert 2.5 < (h.quantile(0.95) or 0) <= 5.0
    cumulative = h.cumulative()
    assert cumulative[-1] == ("+Inf", 100)
    assert cumulative[i1] == ("1", 90)
    assert len(cumulative) == len(LE)
    h.counts[-1] = 1000  # beyond the last bound
    assert h.quantile(0.99) == BUCKETS[-1]
    assert h.minus(h).count == 0


def test_parse_stats_ignores_unknown_and_malformed_fields() -> None:
    s = parse_stats(
        {
            "ok": 3,
            "ok|t": 3,
            "started|t": 4,
            "runtime_bucket|t|0.5": 4,
            "runtime_bucket|t|nope": 9,
            "runtime_bucket||1": 9,
            "runtime_sum_us|t": 1_500_000,
            "something_else|x": 1,
            "weird": 2,
        }
    )
    assert s.counters["ok"] == 3
    assert s.counters["started"] == 4
    assert list(s.tasks) == ["t"]
    assert s.tasks["t"].runtime.count == 4
    assert s.tasks["t"].runtime.sum == 1.5
    assert error_rate({"ok": 3, "retry": 1}) == 0.25
    assert error_rate({}) is None
