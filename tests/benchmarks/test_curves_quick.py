"""The cost curves' smoke run (``benchmarks/curves.py --quick``): a redis-server of its own,
all six curves with their points, a computed growth label for every metric, and the section
of ``docs/benchmarks.md`` rendered from the results."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.curves import QUICK
from benchmarks.curves_doc import appended, section
from benchmarks.curves_growth import LABELS, classify
from tests.benchmarks import quick_run

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]

X = {"depth": "depth", "delayed": "delayed", "queues": "queues", "names": "names",
     "payload": "payload", "processes": "processes"}  # fmt: skip


def test_the_classifier_tells_the_shapes_apart() -> None:
    xs = [1e3, 1e4, 1e5, 1e6, 1e7]
    assert classify(xs, [20, 21, 19, 22, 20])["label"] == "flat"
    assert classify(xs, [5 + 2 * math.log(x) for x in xs])["label"] == "logarithmic"
    assert classify(xs, [100 + x / 1000 for x in xs])["label"] == "linear"
    assert classify(xs, [x**1.5 for x in xs])["label"] == "superlinear"
    assert classify(xs, [x**0.5 for x in xs])["label"] == "sublinear"
    assert classify(xs, [1e6 / x for x in xs])["label"] == "decreasing"
    # a cost that barely moves over four decades, then rises at the last point (the fetch
    # per task, 1,000 to 10,000,000 queued): a straight line with a large fixed part fits
    # it, yet it is not linear
    depth = [1e3, 1e4, 1e5, 1e6, 1e7]
    assert classify(depth, [10.8, 10.7, 15.2, 12.8, 20.0])["label"] == "sublinear"


def test_the_curves_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "curves.json"
    data = quick_run("curves.py", out, "--out")
    assert data["quick"] is True
    assert list(data["curves"]) == list(X)
    for name, curve in data["curves"].items():
        sizes = QUICK[name].get("sizes") or QUICK[name]["procs"]
        xs = [s[0] if isinstance(s, (list, tuple)) else s for s in sizes]
        assert [p[X[name]] for p in curve["points"]] == xs, name
        assert curve["metrics"], name
        for m in curve["metrics"]:
            values = [p[m["key"]] for p in curve["points"]]
            assert all(isinstance(v, (int, float)) and v >= 0 for v in values), (name, m, values)
            assert curve["growth"][m["key"]]["label"] in LABELS, (name, m)
    depth = data["curves"]["depth"]["points"]
    assert all(p["failed_status"] == 200 and p["failed_bytes"] > 100 for p in depth)
    assert all(p["prometheus_status"] == 200 for p in depth)
    names = data["curves"]["names"]["points"]
    assert all(p["series"] > 0 for p in names)
    assert names[-1]["series"] > names[0]["series"]
    assert all(p["series_naming_a_task"] >= p["names"] for p in names)
    payload = data["curves"]["payload"]["points"]
    assert all(p["memory_per_task"] > p["payload"] for p in payload)
    delayed = data["curves"]["delayed"]["points"]
    assert all(p["promote_calls"] >= 1 and p["lateness_p99_ms"] >= 0 for p in delayed)

    text = section(data)
    assert text.startswith("## How cost grows with the work")
    for curve in data["curves"].values():
        assert f"### {curve['title']}" in text
    for name in X:
        assert f"images/curve-{name}.png" in text
    assert "**linear**" in text or "**flat**" in text
    assert appended("# doc\n", out).startswith("# doc\n\n## How cost grows with the work")
    assert appended("# doc\n", tmp_path / "missing.json") == "# doc\n"
