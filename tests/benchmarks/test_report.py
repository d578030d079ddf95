"""How the benchmark pairs taskq's variants for the cost targets: the plan runs each cost
group there and back, and the report pairs neighbours of the same pass, never a pass's
"on" with another pass's "off"."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.run import TASKQ_THROUGHPUT, plan, rotate  # noqa: E402


def _throughput(run: int, variant: str, rate: float, worker_cpu: float) -> dict[str, Any]:
    return {
        "run": run,
        "scenario": "throughput",
        "lib": "taskq",
        "variant": variant,
        "result": {
            "throughput": rate,
            "throughput_windows": [rate],
            "cpu_us_per_task_worker": worker_cpu,
            "cpu_us_per_task_redis": 10.0,
            "done": 20000,
        },
    }


def test_each_cost_group_runs_there_and_back_in_every_run() -> None:
    entries = plan(["taskq", "huey"])
    for k in range(3):
        order = [v for sc, lib, v in rotate(entries, k) if sc == "throughput" and lib == "taskq"]
        for group in TASKQ_THROUGHPUT[:2]:
            at = order.index(group[0])
            # back to back, the same way in every run: A B (C) (C) B A
            assert order[at : at + len(group)] == group
            assert group == group[::-1]


def test_costs_pair_the_neighbours_of_each_pass() -> None:
    raw = []
    for run in (1, 2):
        # pass 1: off 20 µs, on 22 µs (+10% CPU); pass 2: on 30 µs, off 30 µs (machine slower)
        raw += [
            _throughput(run, "sync-nometrics", 30000, 20.0),
            _throughput(run, "sync", 28000, 22.0),
            _throughput(run, "sync", 20000, 30.0),
            _throughput(run, "sync-nometrics", 20000, 30.0),
        ]
    metrics = report.summarise(raw, {}, ["taskq"])
    cpu = metrics["taskq"]["_extra"]["cpu_by_run"]
    assert sorted(cpu["throughput_sync"]) == ["1.1", "1.2", "2.1", "2.2"]
    data = {"metrics": metrics, "runs": 2, "sizes": {"recovery": {}}, "versions": {}}
    found = {t["name"]: t for t in report.targets(data)}
    cost = found["metrics_cost_sync"]
    # pairs: 1 - 30/32 = 6.25% (pass 1), 0% (pass 2), twice each; median 3.1%
    assert cost["value"].startswith("+3.1%")
    assert "per pair +6.2%, +0.0%, +6.2%, +0.0%" in cost["value"]
    assert cost["met"] is True
    # every window counts in the medians: 4 measurements of each variant
    assert len(metrics["taskq"]["throughput_sync"]["runs"]) == 4


def test_the_tracing_target_is_set_against_the_sdks_own_cost() -> None:
    raw: list[dict[str, Any]] = [
        {"run": 1, "scenario": "floor", "lib": "floor", "variant": "default",
         "result": {"otel_span_us": 12.0, "otel_span_bare_us": 6.0}},
    ]  # fmt: skip
    raw += [
        _throughput(1, "async-nometrics", 50000, 8.0),  # 18 µs a task with Redis's 10
        _throughput(1, "async-traced", 20000, 38.0),
    ]
    metrics = report.summarise(raw, {}, ["taskq"])
    data = {"metrics": metrics, "runs": 1, "sizes": {"recovery": {}}, "versions": {}}
    found = {t["name"]: t for t in report.targets(data)}["tracing_cost_async"]
    assert found["met"] is False
    # 10% of throughput allows 18 / 0.9 - 18 = 2 µs; the SDK alone takes 12
    assert "the SDK alone costs 12.0 µs" in found["detail"]
    assert "allows 2.0 µs on a no-op task of 18.0 µs" in found["detail"]
