"""The cluster scaling benchmark's smoke run (``benchmarks/cluster_scaling.py --quick``), as CI
runs it: a single Redis and a 3-master Cluster of its own, 2,000 tasks through each, its
figures written. The bounds are loose (a noisy shared machine); they check that every node
was read, every master did its share, and the projection grows with the masters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks import quick_run

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def test_the_cluster_scaling_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "cluster_scaling.json"
    figures: dict[str, Any] = quick_run("cluster_scaling.py", out)
    measured, projected = figures["measured"], figures["projected"]["rows"]
    assert figures["machine"]["cores"] >= 1

    single, cluster = measured["single"], measured["cluster"]
    assert single["tasks"] == cluster["tasks"] == 2000
    for setup in (single, cluster):
        for phase in ("enqueue", "work", "total"):
            assert setup[phase]["sum"]["cpu_us_per_task"] > 0, phase
            assert setup[phase]["sum"]["commands_per_task"] > 0, phase
            assert setup[phase]["sum"]["net_bytes_per_task"] > 0, phase
        assert setup["work"]["tasks_per_s"] > 0
        assert setup["client_cpu_us_per_task"] > 0

    masters = cluster["total"]["nodes"]
    assert len(masters) == 3
    assert set(measured["cluster_queues"].values()) == set(masters)  # no master without a queue
    for name, node in masters.items():
        assert node["cpu_us_per_task"] > 0, name
        assert node["commands_per_task"] > 0, name
        assert cluster["task_share"][name] > 0, name
        assert cluster["keys_before_work"][name] > 0, name
    assert sum(cluster["task_share"].values()) == pytest.approx(1.0)
    # the work goes where the queues are: a master's CPU share follows its share of the
    # tasks (loosely: one run, the heartbeats and the queue set land on one master)
    for name, node in masters.items():
        assert abs(node["cpu_share"] - cluster["task_share"][name]) < 0.25, (name, node)

    assert set(projected) == {"1", "3", "10", "30"}
    assert projected["30"]["tasks_per_s_even"] > projected["10"]["tasks_per_s_even"]
    assert projected["10"]["tasks_per_s_even"] > projected["3"]["tasks_per_s_even"]
    assert (
        projected["30"]["tasks_per_s_12_queues_hashed"]
        >= projected["3"]["tasks_per_s_12_queues_hashed"]
    )
    assert projected["30"]["client_cores_needed"] > projected["3"]["client_cores_needed"]
