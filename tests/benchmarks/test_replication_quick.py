"""The replication benchmark's smoke run (``benchmarks/replication.py --quick``), as CI runs
it: a Sentinel group of its own, enqueues with and without ``min_replicas_acked``, its
figures written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks import quick_run

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.sentinel]


def test_the_replication_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "replication.json"
    figures = quick_run("replication.py", out)
    for key in ("acked_0", "acked_1"):
        assert figures[key]["single_per_s"] > 0
        assert figures[key]["bulk_per_s"] > figures[key]["single_per_s"]
    assert figures["single_cost"] > 0
