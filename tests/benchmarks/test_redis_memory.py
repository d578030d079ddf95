"""Redis memory per queued task (``benchmarks/side.py memory``) and how the results show it
and the recovery measured with each library's own recovery feature."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.doc import render  # noqa: E402
from benchmarks.redis_memory import keys_memory, used_memory  # noqa: E402


def test_used_memory_grows_with_what_a_database_holds(redis_url: str) -> None:
    c = redis.Redis.from_url(redis_url)
    try:
        c.delete("bench-test:memory")
        before = used_memory(c)
        c.rpush("bench-test:memory", *(b"x" * 100 for _ in range(2000)))
        after = used_memory(c)
        keys, held = keys_memory(c)
        assert after - before > 2000 * 100
        assert keys >= 1
        assert held >= 2000 * 100
    finally:
        c.delete("bench-test:memory")
        c.close()


def test_the_memory_scenario_measures_taskq_per_queued_task(redis_url: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BENCH_REDIS_URL": redis_url,
        "BENCH_PROBE_KEY": "bench-probe:test",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.side", "taskq", "memory", "--params", '{"n": 500}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH-RESULT "))
    res = json.loads(line.removeprefix("BENCH-RESULT "))
    assert res["tasks"] == 500
    assert res["how"] == "bulk"
    # a message, its id in a list and a hash field: tens to a few hundred bytes, not 0
    assert 20 < res["redis_bytes_per_task"] < 5000
    assert 20 < res["keys_bytes_per_task"] < 5000
    assert res["used_memory_after"] > res["used_memory_before"]


def _recovery(seconds: float | None, setting: str | None, left: dict[str, str]) -> dict[str, Any]:
    detail = {
        "recovered": seconds is not None,
        "seconds": seconds,
        "bound_s": 120,
        "held_by_killed_worker": [0, 1],
        "finished_within_bound": [0, 1, 2, 3] if seconds is not None else [],
        **({} if seconds is not None else {"keys_left": left}),
    }
    return {
        "recovery_s_runs": [seconds],
        "recovery_detail": [detail],
        "recovered_all_runs": seconds is not None,
        "recovery_setting": setting,
    }


def test_results_show_memory_and_each_recovery_with_its_setting() -> None:
    raw = [
        {"run": 1, "scenario": "memory", "lib": lib, "variant": "default",
         "result": {"redis_bytes_per_task": b, "keys_bytes_per_task": b - 10, "tasks": 2000,
                    "used_memory_before": 1, "used_memory_after": 2, "keys": 3, "how": "sync"}}
        for lib, b in (("taskq", 173.0), ("celery", 1004.5), ("huey", 134.5))
    ]  # fmt: skip
    recovery = {
        "taskq": _recovery(14.7, "lease 15 s, renewal every 5 s", {}),
        "celery": _recovery(6.1, "acks_late, visibility_timeout 10 s", {}),
        "huey": _recovery(None, None, {}),
        "taskiq": _recovery(None, "idle_timeout 10 s", {"taskiq": "stream 4"}),
    }
    libs = ["taskq", "celery", "huey", "taskiq"]
    metrics = report.summarise(raw, recovery, libs)
    data: dict[str, Any] = {"metrics": metrics}
    by_key = report.BY_KEY
    mem, rec = by_key["redis_bytes_per_task"], by_key["recovery_s"]
    assert report.cell(data, "celery", mem) == "1,004"
    assert report.cell(data, "taskiq", mem) == "—"  # not measured: a dash
    assert report.cell(data, "celery", rec) == "6.1 (acks_late, visibility_timeout 10 s)"
    assert report.cell(data, "huey", rec) == "no recovery feature: the task is lost"
    assert report.cell(data, "taskiq", rec) == "> 120 (idle_timeout 10 s)"
    # the doc renders them: the row, the settings with their sources, the memory table
    latest = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    latest["metrics"] = {**metrics, "redis-py": latest["metrics"].get("redis-py", {})}
    latest["libraries"] = report.library_notes(libs)
    latest["ratios"] = report.ratios(latest)
    latest["targets"] = []
    latest["sizes"] = {**latest["sizes"], "memory": {"n": 2000}}
    doc = render(latest, None)
    assert "| Redis memory per queued task (bytes) |" in doc
    assert "no recovery feature: the task is lost" in doc
    assert "https://docs.celeryq.dev/" in doc
    assert "`taskiq` (stream 4)" in doc
    assert "What 2,000 queued tasks" in doc
