"""The PostgreSQL benchmark's smoke run: ``benchmarks/pg_run.py --quick`` for procrastinate
and PgQueuer, end to end.

Runs only where ``.venv-pgpeers`` exists (the peers are not taskq's dependencies; see
``benchmarks/requirements-pg-peers.txt``) and PostgreSQL answers on 127.0.0.1:5432. No
thresholds (the machines are noisy): every measure must be there, a positive number, for
each peer.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS_PY = ROOT / ".venv-pgpeers" / "bin" / "python"
PEERS = ["procrastinate", "pgqueuer"]
#: the headline numbers of benchmarks/pg/common.py's METRICS (one test below checks both
#: lists agree, where the peers' environment can import it)
MEASURES = [
    "enqueue_one_per_s",
    "enqueue_bulk_per_s",
    "processing_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "idle_first_ms",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not PEERS_PY.exists(),
        reason=".venv-pgpeers does not exist (python3 -m venv .venv-pgpeers && "
        ".venv-pgpeers/bin/pip install -r benchmarks/requirements-pg-peers.txt -e .)",
    ),
]


def _postgres_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        return False
    return True


def test_the_measures_are_the_common_ones() -> None:
    from benchmarks.pg.common import METRICS

    assert [key for key, *_ in METRICS] == MEASURES


def test_the_pg_benchmark_runs_for_the_peers(tmp_path: Path) -> None:
    if not _postgres_answers():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    out = tmp_path / "postgres.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "pg_run.py"), "--quick",
         "--libs", ",".join(PEERS), "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=400, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["mode"] == "quick"
    assert not data["failed"], data["failed"]
    for lib in PEERS:
        result = data["results"][lib]
        assert result["errors"] == {}, (lib, result["errors"])
        assert result["docs"], f"{lib}: the settings' documentation is not cited"
        for key in MEASURES:
            value = result["metrics"].get(key)
            assert isinstance(value, int | float), (lib, key, value)
            assert math.isfinite(value), (lib, key, value)
            assert value > 0, (lib, key, value)
        assert result["metrics"]["latency_picked_up"] == result["params"]["latency"]
