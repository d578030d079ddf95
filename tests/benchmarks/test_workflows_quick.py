"""The workflow benchmark's smoke run (``benchmarks/workflows.py --quick --no-celery``), as
CI runs it: it must finish, with the chord, chain and group done and their results right
(the script asserts them), and its figures written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_workflow_benchmark_runs(tmp_path: Path, redis_url: str) -> None:
    out = tmp_path / "workflows.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "workflows.py"), "--quick", "--no-celery",
         "--url", redis_url, "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    taskq = json.loads(out.read_text())["taskq"]
    assert taskq["chord"]["n"] == 100
    assert taskq["chain"]["n"] == 100
    assert taskq["group"]["n"] == 1000
    assert 0 < taskq["group"]["enqueue_seconds"] < taskq["group"]["complete_seconds"]
    assert taskq["step_cost_us"]["redis_round_trip"] > 0
