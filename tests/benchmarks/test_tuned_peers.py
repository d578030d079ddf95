"""Each peer runs twice, with its defaults and "tuned" (its best documented settings): the
plan runs both back to back, the report keeps them apart ("celery:tuned"), judges taskq
against each peer's best, and the page shows both with the tuned settings' sources. A
results file from before the tuned variants still renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.doc import render  # noqa: E402
from benchmarks.run import PEER_VARIANTS, plan, rotate  # noqa: E402


def _entry(scenario: str, lib: str, variant: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"run": 1, "scenario": scenario, "lib": lib, "variant": variant, "result": result}


def _latency(p50: float, worst: float) -> dict[str, Any]:
    return {
        "latency_p50_ms": p50,
        "latency_p95_ms": p50 * 2,
        "latency_p99_ms": p50 * 3,
        "latency_idle_ms": p50,
        "latency_max_ms": worst,
        "rss_rest_mib": 30.0,
        "achieved_rate": 200.0,
        "complete": True,
    }


def test_the_plan_runs_both_variants_of_every_peer_back_to_back() -> None:
    entries = plan(["taskq", "celery", "rq"])
    for k in range(2):
        order = rotate(entries, k)
        for scenario in ("throughput", "latency"):
            for peer in ("celery", "rq"):
                runs = [v for sc, lib, v in order if sc == scenario and lib == peer]
                assert sorted(runs) == sorted(PEER_VARIANTS)
                at = order.index((scenario, peer, runs[0]))
                assert order[at + 1] == (scenario, peer, runs[1])
        # enqueueing (the same producer) and taskq: once
        assert [v for sc, lib, v in order if sc == "produce" and lib == "rq"] == ["default"]
        assert [v for sc, lib, v in order if sc == "latency" and lib == "taskq"] == ["default"]
    only_defaults = [e for group in plan(["taskq", "rq"], ["default"]) for e in group]
    assert [v for _, lib, v in only_defaults if lib == "rq"] == ["default"] * 3


def test_the_report_keeps_the_variants_apart_and_compares_with_the_best() -> None:
    raw = [
        _entry("throughput", "taskq", "sync", {"throughput": 10000.0, "done": 2000}),
        _entry("latency", "taskq", "default", _latency(1.0, 3.0)),
        _entry("throughput", "rq", "default", {"throughput": 60.0, "done": 2000}),
        _entry("throughput", "rq", "tuned", {"throughput": 600.0, "done": 2000}),
        _entry("latency", "rq", "default", _latency(3000.0, 5000.0)),
        _entry("latency", "rq", "tuned", _latency(2.0, 9.0)),
    ]
    metrics = report.summarise(raw, {}, ["taskq", "rq"])
    assert metrics["rq"]["throughput_sync"]["median"] == 60.0
    assert metrics["rq:tuned"]["throughput_sync"]["median"] == 600.0
    data = {
        "metrics": metrics,
        "sizes": {"latency": {"n": 500, "rate": 200, "windows": 2}, "recovery": {}},
        "versions": {},
    }
    ratios = report.ratios(data)
    assert set(ratios) == {"rq"}
    assert ratios["rq"]["throughput_sync"] == 600.0 / 10000.0
    assert ratios["rq"]["latency_p50_ms"] == 2.0
    found = {t["name"]: t for t in report.targets(data)}
    assert "rq (tuned) 600/s" in found["throughput_sync"]["value"]
    # the default worker cannot keep up with 200 tasks/s: its latencies are a queue's wait
    assert report.backlogged(data, "rq") is not None
    assert report.backlogged(data, "rq:tuned") is None


def test_the_page_renders_results_from_before_the_tuned_variants() -> None:
    data = json.loads((ROOT / "benchmarks/results/latest.json").read_text(encoding="utf-8"))
    # a run from before the tuned variants: the latest, without them
    data["metrics"] = {k: v for k, v in data["metrics"].items() if not k.endswith(":tuned")}
    page = render(data, None)
    header = next(line for line in page.splitlines() if line.startswith("| metric | **taskq**"))
    assert "| Celery | Celery tuned |" in header
    assert "not measured in this run" in page
    for peer in report.TUNED_NOTES:
        for _, url in report.TUNED_NOTES[peer]["settings"]:
            assert f"]({url})" in page
