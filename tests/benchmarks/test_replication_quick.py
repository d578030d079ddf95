"""The replication benchmark's smoke run (``benchmarks/replication.py --quick``), as CI runs
it: a Sentinel group of its own, enqueues with and without ``min_replicas_acked``, its
figures written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.sentinel]


def test_the_replication_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "replication.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "replication.py"), "--quick",
         "--output", str(out)],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for key in ("acked_0", "acked_1"):
        assert figures[key]["single_per_s"] > 0
        assert figures[key]["bulk_per_s"] > figures[key]["single_per_s"]
    assert figures["single_cost"] > 0
